//! The embedded default backend: redb, with group commit.
//!
//! # Layout
//!
//! All keys are byte strings; hashes and ids are stored raw, times as big-endian `i64` with the
//! sign bit flipped (so byte order is time order, negative times included).
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | [`SCHEMA_VERSION`](super::SCHEMA_VERSION) |
//! | `tokens` | access hash | the [`TokenDoc`](crate::model::TokenDoc), in the binary form of [`codec`](super::codec) |
//! | `token_refresh` | refresh hash | access hash |
//! | `token_owner` | `len realm ++ realm ++ len username ++ username ++ access hash` | `()` |
//! | `token_family` | `family ++ access hash` | `()` |
//! | `token_expiry` | `expires_at ++ access hash` | `()` |
//! | `role_mappings` | mapping name (UTF-8) | the mapping's API JSON body |
//! | `profiles` | profile uid (UTF-8) | `seq_no` (big-endian `u64`) `++` the profile record (JSON) |
//! | `records` | `len kind ++ kind ++ key` | `version` (big-endian `u64`) `++` the value (see `records.rs`) |
//!
//! (`len` is a big-endian `u32`, so any byte may appear in a name.) The owner index is keyed
//! realm first: `(realm, username)` and `realm` are prefix scans, `username` alone is a skip
//! scan that visits each realm once. The indexed fields of a doc never change after insert
//! (refresh and invalidation only touch flags), so updates rewrite the `tokens` value only.
//!
//! # Writes
//!
//! Every write runs on one writer thread, fed by a channel. It takes the first waiting task,
//! drains up to [`MAX_BATCH`] more, runs them in order inside one write transaction and
//! commits with `Durability::Immediate`, and only then answers each caller. A task that fails on its own (a `Conflict`, a corrupt
//! record) does so before writing anything, so the other tasks of its batch still commit; a
//! storage failure (or a panic) aborts the batch and every task of it gets `Unavailable`.
//! `refresh` is atomic because nothing else writes in between. Closing (or dropping) the store
//! lets the writer finish every queued task before it stops.
//!
//! Each batch is reported to the [`CommitObserver`](super::CommitObserver) installed with
//! `observe_commits` (its tasks, its time, whether it committed: the commit metrics), and
//! the writer remembers whether the last batch failed on storage (a task that panicked does
//! not count): [`RedbStore::health`] reports it until a commit succeeds.
//!
//! Reads (`get_by_access`, `get_by_refresh`) open a read transaction on the caller's thread:
//! they never wait for the writer.
//!
//! # Flows
//!
//! Pending logins are not written to the file: they live in memory (single-use, limited per
//! caller and in total, removed when expired; see `flow_table::FlowTable`). A restart loses
//! them, which the contract allows (the user logs in again), and a login then costs one
//! durable commit (its tokens) instead of three commits.
//!
//! # Files
//!
//! `schema`: the tables and opening a file (schema version); `keys`: key and value
//! encodings; `tables`: the reads and writes of one transaction; `writer`: the group-commit
//! writer thread; `store_impl`: the [`Store`](super::Store) trait over them; `error`: task
//! errors.

mod error;
mod keys;
mod records;
mod schema;
mod store_impl;
mod tables;
mod writer;

pub use writer::MAX_BATCH;

use super::flow_table::FlowTable;
use super::StoreError;
use ::redb::Database;
use schema::{init_schema, open_error};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use writer::{writer_loop, Task, WriterShared};

/// See the module documentation.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    tasks: Mutex<Option<mpsc::Sender<Box<dyn Task>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The commit observer and the last commit's outcome, shared with the writer thread.
    shared: Arc<WriterShared>,
    flows: FlowTable,
    once: super::once_table::OnceTable,
    /// Users decoded by bearer lookups, shared by the tokens of one user.
    users: super::users::UserCache,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The part of `data.cache_size` that keeps users decoded by bearer lookups: one in this many
/// bytes (the rest is redb's page cache).
pub const USER_CACHE_SHARE: usize = 8;

impl RedbStore {
    /// Open the store at `path`, creating it (and its parent directories) if missing. A file
    /// that was not closed cleanly is recovered by redb itself (which may take a while on a
    /// large file); no integrity check runs otherwise. A file written by a newer, unknown
    /// schema version is refused. redb's page cache holds up to
    /// [`DEFAULT_DATA_CACHE_SIZE`](crate::config::DEFAULT_DATA_CACHE_SIZE) bytes.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        Self::open_with_cache(path, crate::config::DEFAULT_DATA_CACHE_SIZE)
    }

    /// [`open`](Self::open) with `cache_size` bytes of cache (`data.cache_size`): one eighth
    /// for users decoded by bearer lookups ([`USER_CACHE_SHARE`]), the rest redb's page cache.
    pub fn open_with_cache(path: &Path, cache_size: usize) -> Result<RedbStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let shown = path.display().to_string();
        // redb runs its recovery pass on a file it has just created too; only an existing
        // file that was not closed cleanly is worth a warning.
        let existed = path.exists();
        let users = cache_size / USER_CACHE_SHARE;
        let db = Database::builder()
            .set_cache_size(cache_size - users)
            .set_repair_callback(move |session| {
                if existed {
                    tracing::warn!(
                        file = %shown,
                        progress = session.progress(),
                        "store file was not closed cleanly; recovering"
                    );
                }
            })
            .create(path)
            .map_err(|e| open_error(path, e))?;
        Self::start(db, path, users)
    }

    /// A store over a redb [`StorageBackend`](::redb::StorageBackend) of the caller's (tests:
    /// a backend that fails writes on demand). `name` stands for the file in messages.
    #[cfg(any(test, feature = "test-util"))]
    pub fn open_backend(
        backend: impl ::redb::StorageBackend,
        name: &Path,
    ) -> Result<RedbStore, StoreError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| open_error(name, e))?;
        Self::start(
            db,
            name,
            crate::config::DEFAULT_DATA_CACHE_SIZE / USER_CACHE_SHARE,
        )
    }

    /// Check the schema and start the writer thread.
    fn start(db: Database, path: &Path, user_cache: usize) -> Result<RedbStore, StoreError> {
        init_schema(&db, path)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let shared = Arc::new(WriterShared::default());
        shared.refresh_tokens(&db);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx, &writer_shared))
            .map_err(|e| StoreError::Unavailable(format!("cannot start store writer: {e}")))?;
        Ok(RedbStore {
            db,
            path: path.to_owned(),
            tasks: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            shared,
            flows: FlowTable::default(),
            once: Default::default(),
            users: super::users::UserCache::new(user_cache as u64),
        })
    }

    /// See [`Store::health`](super::Store::health) (two atomic reads): failing once the writer
    /// stopped (closed store, or a thread that died) or when the last commit failed on storage and no
    /// commit has succeeded since. redb refuses every write after a failed `fsync` or write
    /// until the file is opened again, so in practice the second lasts until a restart.
    pub fn health(&self) -> super::StoreHealth {
        if self.shared.stopped() {
            super::StoreHealth::Failing {
                reason: "store_writer_stopped",
            }
        } else if self.shared.failing() {
            super::StoreHealth::Failing {
                reason: "store_write_failed",
            }
        } else {
            super::StoreHealth::Ok
        }
    }

    /// See [`Store::observe_commits`](super::Store::observe_commits).
    pub fn observe_commits(&self, observer: Arc<dyn super::CommitObserver>) {
        self.shared.set_observer(observer);
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting writes, finish the queued ones and stop the writer thread. Blocks until
    /// then (one batch: milliseconds). Reads keep working; later writes get `Unavailable`.
    /// Dropping the store does the same.
    pub fn close(&self) {
        drop(lock(&self.tasks).take());
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
        // No read transaction may outlive the store: redb records a clean close only when
        // none is left.
        self.shared.clear_tokens();
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
