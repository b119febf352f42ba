//! The group-commit writer: one thread runs the queued write tasks in batches, one durable
//! commit per batch, and answers each caller after the commit.

use super::error::OpError;
use super::schema::{Bytes, TOKENS};
use super::tables::Tables;
use super::{lock, RedbStore};
use crate::store::{CommitObserver, StoreError};
use ::redb::{Database, Durability, ReadOnlyTable, ReadableDatabase};
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// What the writer thread shares with its store: the commit observer (metrics) and what the
/// last commit did (health).
#[derive(Default)]
pub(super) struct WriterShared {
    observer: Mutex<Option<Arc<dyn CommitObserver>>>,
    /// The last batch failed on storage (not a panicking task) and no commit has succeeded
    /// since.
    failing: AtomicBool,
    /// The writer thread stopped (the store was closed, or the thread died).
    stopped: AtomicBool,
    /// The `tokens` table as of the last commit, for bearer lookups: replaced after every
    /// commit before its callers are answered, so a lookup through it sees every write that
    /// was acknowledged before the lookup began. Saves each lookup a read transaction and a
    /// table open (a lock and a walk of redb's table of tables). `None` until the first
    /// refresh, after a refresh that failed, and once the store closes.
    tokens: ArcSwapOption<ReadOnlyTable<Bytes, Bytes>>,
}

impl WriterShared {
    pub(super) fn set_observer(&self, observer: Arc<dyn CommitObserver>) {
        *lock(&self.observer) = Some(observer);
    }

    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    pub(super) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The `tokens` table as of the last commit, if there is one.
    pub(super) fn tokens(&self) -> arc_swap::Guard<Option<Arc<ReadOnlyTable<Bytes, Bytes>>>> {
        self.tokens.load()
    }

    /// Read the `tokens` table as the database holds it now (after a commit, or at open). On
    /// failure the view is dropped and lookups open their own transaction.
    pub(super) fn refresh_tokens(&self, db: &Database) {
        let table = db
            .begin_read()
            .ok()
            .and_then(|txn| txn.open_table(TOKENS).ok());
        self.tokens.store(table.map(Arc::new));
    }

    /// Drop the view (its read transaction), so the database can close cleanly.
    pub(super) fn clear_tokens(&self) {
        self.tokens.store(None);
    }

    /// One batch of `tasks` ran for `took`: `Ok`, failed on storage, or panicked.
    fn record(&self, tasks: usize, took: std::time::Duration, outcome: BatchOutcome) {
        match outcome {
            BatchOutcome::Committed => self.failing.store(false, Ordering::Release),
            BatchOutcome::StorageFailed => self.failing.store(true, Ordering::Release),
            // A bug in a task says nothing about the file.
            BatchOutcome::Panicked => {}
        }
        // Cloned out: the observer runs without the lock.
        let observer = lock(&self.observer).clone();
        if let Some(o) = observer {
            o.committed(tasks, took, outcome == BatchOutcome::Committed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchOutcome {
    Committed,
    StorageFailed,
    Panicked,
}

/// The most tasks committed together.
pub const MAX_BATCH: usize = 256;

impl RedbStore {
    /// Hand `f` to the writer and wait for its result, committed durably.
    pub(super) async fn submit<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>) -> Result<T, OpError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task = Box::new(PendingTask {
            run: Some(f),
            result: None,
            reply,
        });
        {
            let tasks = lock(&self.tasks);
            let sender = tasks
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("store closed".into()))?;
            sender
                .send(task)
                .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

/// A write task on its way through the writer.
pub(super) trait Task: Send {
    /// Run inside the batch's transaction, keeping the result. `Err`: abort the batch.
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), String>;
    /// Answer the caller: the kept result, or `Unavailable` if the batch failed.
    fn finish(self: Box<Self>, batch_failure: Option<&str>);
}

pub(super) struct PendingTask<T, F> {
    run: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Task for PendingTask<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Tables<'_>) -> Result<T, OpError> + Send + 'static,
{
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), String> {
        let Some(run) = self.run.take() else {
            return Ok(());
        };
        match run(tables) {
            Ok(v) => self.result = Some(Ok(v)),
            Err(OpError::Op(e)) => self.result = Some(Err(e)),
            Err(OpError::Txn(why)) => return Err(why),
        }
        Ok(())
    }

    fn finish(self: Box<Self>, batch_failure: Option<&str>) {
        let result = match (batch_failure, self.result) {
            (None, Some(result)) => result,
            (Some(why), _) => Err(StoreError::Unavailable(why.to_owned())),
            (None, None) => Err(StoreError::Unavailable("write task did not run".into())),
        };
        // The caller may have gone away; its write stands all the same.
        let _ = self.reply.send(result);
    }
}

pub(super) fn writer_loop(
    db: &Database,
    tasks: &mpsc::Receiver<Box<dyn Task>>,
    shared: &WriterShared,
) {
    /// Marks the writer stopped however the loop ends (a panic too).
    struct Stopped<'a>(&'a WriterShared);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            self.0.stopped.store(true, Ordering::Release);
        }
    }
    let _stopped = Stopped(shared);
    // `recv` keeps returning queued tasks after the store dropped its sender: all are done.
    while let Ok(first) = tasks.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match tasks.try_recv() {
                Ok(task) => batch.push(task),
                Err(_) => break,
            }
        }
        // A panic in a task (a bug) fails its batch, not every write to come.
        let started = Instant::now();
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_batch(db, &mut batch)));
        let took = started.elapsed();
        let (outcome, failure) = match ran {
            Ok(Ok(())) => (BatchOutcome::Committed, None),
            Ok(Err(why)) => (BatchOutcome::StorageFailed, Some(why)),
            Err(_) => (
                BatchOutcome::Panicked,
                Some("store write batch panicked".to_string()),
            ),
        };
        if outcome == BatchOutcome::Committed {
            // Before anyone is answered: an acknowledged write is visible to every lookup.
            shared.refresh_tokens(db);
        }
        shared.record(batch.len(), took, outcome);
        if let Some(why) = &failure {
            tracing::error!(tasks = batch.len(), "store write batch failed: {why}");
        }
        for task in batch {
            task.finish(failure.as_deref());
        }
    }
}

/// Run every task of `batch` in one transaction and commit it.
pub(super) fn run_batch(db: &Database, batch: &mut [Box<dyn Task>]) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| e.to_string())?;
    let ran = (|| {
        let mut tables = Tables::open(&txn).map_err(|e| match e {
            OpError::Op(e) => e.to_string(),
            OpError::Txn(why) => why,
        })?;
        for task in batch.iter_mut() {
            task.run(&mut tables)?;
        }
        Ok(())
    })();
    match ran {
        Ok(()) => txn.commit().map_err(|e| format!("commit failed: {e}")),
        Err(why) => {
            if let Err(e) = txn.abort() {
                tracing::error!("aborting store write batch failed: {e}");
            }
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RedbStore;
    use super::*;
    use crate::store::{conformance, Store};

    #[tokio::test]
    async fn a_panicking_task_fails_its_batch_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
        let boom = store
            .submit(|_: &mut Tables<'_>| -> Result<(), OpError> { panic!("a bug in a task") })
            .await;
        assert!(matches!(boom, Err(StoreError::Unavailable(_))), "{boom:?}");
        let doc = conformance::token(1, true, conformance::family(1), "oidc1", "alice");
        store.insert_token(doc.clone()).await.unwrap();
        assert_eq!(
            store.get_by_access(&doc.access_hash).await.unwrap(),
            Some(doc)
        );
    }
}
