//! Group commit on PostgreSQL: one writer task per node runs queued writes in batches, one
//! transaction per batch, and answers each caller after the commit.
//!
//! A write ([`Write`]) that fails on its own (a `Conflict`) does so before changing anything,
//! so its batch still commits. A database error aborts the batch; its writes are then run
//! again one by one (a deadlock with another node's batch, which PostgreSQL breaks by
//! aborting one side, is retried), so only the write that really fails gets `Unavailable`.

use super::Shared;
use crate::model::{Hash32, Refreshed, TokenDoc};
use crate::store::logic::{invalidate_doc, owner_matches, session_matches};
use crate::store::{
    codec, next_profile_seq_no, CommitObserver, Invalidation, InvalidationCounts, RefreshOutcome,
    StoreError,
};
use deadpool_postgres::GenericClient;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;

/// The most writes committed together.
pub const MAX_BATCH: usize = 256;

/// One durable write.
#[derive(Debug)]
pub(crate) enum Write {
    InsertToken(TokenDoc),
    Refresh {
        hash: Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    },
    Invalidate(Invalidation),
    PutRoleMapping(String, Vec<u8>),
    DeleteRoleMapping(String),
    PutProfile {
        uid: String,
        json: Vec<u8>,
        expected_seq_no: Option<u64>,
    },
    RestoreProfile {
        uid: String,
        profile: crate::store::StoredProfile,
    },
    PutRecord {
        kind: String,
        key: String,
        value: Vec<u8>,
        expected: Option<u64>,
    },
    DeleteRecord {
        kind: String,
        key: String,
        expected: Option<u64>,
    },
    RestoreRecord {
        kind: String,
        key: String,
        record: crate::store::StoredRecord,
    },
}

/// What a write answers.
#[derive(Debug)]
pub(crate) enum Done {
    Unit,
    Refresh(RefreshOutcome),
    Counts(InvalidationCounts),
    Bool(bool),
    SeqNo(u64),
}

pub(crate) struct WriteTask {
    pub(crate) write: Write,
    pub(crate) reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// What a batch tells the other nodes (sent with `NOTIFY` inside the transaction).
#[derive(Debug, Default)]
struct Notes {
    access: Vec<Hash32>,
    role_mappings: bool,
    profiles: Vec<String>,
}

/// The `NOTIFY` payloads of `notes`: `a:` and hex access hashes separated by `,`;
/// `m` (role mappings changed); `p:` and a profile uid. Each payload stays under
/// PostgreSQL's 8000-byte limit; past 64 payloads, one `r` (resync) instead.
fn payloads(notes: &Notes) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for h in &notes.access {
        if cur.len() > 7000 {
            out.push(std::mem::take(&mut cur));
        }
        cur.push_str(if cur.is_empty() { "a:" } else { "," });
        for b in h.0 {
            cur.push_str(&format!("{b:02x}"));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if notes.role_mappings {
        out.push("m".into());
    }
    for uid in &notes.profiles {
        if uid.len() < 7000 {
            out.push(format!("p:{uid}"));
        } else {
            out.push("r".into());
        }
    }
    if out.len() > 64 {
        out = vec!["r".into()];
    }
    out
}

pub(super) async fn writer_loop(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<WriteTask>,
    observer: Arc<Mutex<Option<Arc<dyn CommitObserver>>>>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(t) => batch.push(t),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let ran = run_batch(&shared, &batch).await;
        let took = started.elapsed();
        let tasks = batch.len();
        let ok = ran.is_ok();
        let observer = observer.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(o) = observer {
            o.committed(tasks, took, ok);
        }
        match ran {
            Ok(results) => {
                shared.saw(true);
                for (task, result) in batch.into_iter().zip(results) {
                    let _ = task.reply.send(result);
                }
            }
            Err(BatchError::Fail(why)) => {
                shared.saw(false);
                tracing::error!(tasks, "store write batch failed: {why}");
                for task in batch {
                    let _ = task.reply.send(Err(StoreError::Unavailable(why.clone())));
                }
            }
            Err(why) => {
                tracing::warn!(
                    tasks,
                    "store write batch failed, retrying one by one: {why}"
                );
                // One by one: only what really fails fails.
                for task in batch {
                    let result = run_alone(&shared, &task).await;
                    let _ = task.reply.send(result);
                }
            }
        }
    }
}

/// Run `task` in a transaction of its own, retrying a deadlock or serialization failure up to
/// three times in all.
async fn run_alone(shared: &Shared, task: &WriteTask) -> Result<Done, StoreError> {
    let mut last = String::new();
    for _ in 0..3 {
        match run_batch(shared, std::slice::from_ref(task)).await {
            Ok(mut r) => {
                shared.saw(true);
                return r.pop().unwrap_or(Err(StoreError::Unavailable(
                    "write task did not run".into(),
                )));
            }
            Err(BatchError::Retry(why)) => last = why,
            // The database answered: it is there, this write is what fails.
            Err(BatchError::Statement(why)) => return Err(StoreError::Unavailable(why)),
            Err(BatchError::Fail(why)) => {
                shared.saw(false);
                return Err(StoreError::Unavailable(why));
            }
        }
    }
    shared.saw(false);
    Err(StoreError::Unavailable(last))
}

#[derive(Debug)]
enum BatchError {
    /// A deadlock or serialization failure: worth running again.
    Retry(String),
    /// The database refused a statement: run the batch's writes one by one, so only the
    /// write that causes it fails.
    Statement(String),
    /// No connection, a lost connection, or no answer in time: every write of the batch
    /// fails (retrying them one by one would only make each wait again).
    Fail(String),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Retry(s) | BatchError::Statement(s) | BatchError::Fail(s) => f.write_str(s),
        }
    }
}

fn batch_error(e: tokio_postgres::Error) -> BatchError {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            BatchError::Retry(super::pg_text(&e))
        }
        Some(_) => BatchError::Statement(super::pg_text(&e)),
        None => BatchError::Fail(super::pg_text(&e)),
    }
}

/// [`run_batch_now`] within [`CALL_TIMEOUT`](super::CALL_TIMEOUT): a database that stops
/// answering fails the batch (its transaction is rolled back when the connection is dropped)
/// instead of holding every write behind it.
async fn run_batch(
    shared: &Shared,
    batch: &[WriteTask],
) -> Result<Vec<Result<Done, StoreError>>, BatchError> {
    match tokio::time::timeout(super::CALL_TIMEOUT, run_batch_now(shared, batch)).await {
        Ok(r) => r,
        Err(_) => Err(BatchError::Fail(
            "the database did not answer in time".into(),
        )),
    }
}

async fn run_batch_now(
    shared: &Shared,
    batch: &[WriteTask],
) -> Result<Vec<Result<Done, StoreError>>, BatchError> {
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| BatchError::Fail(super::DbFailure::from(e).0))?;
    let tx = client.transaction().await.map_err(batch_error)?;
    let mut notes = Notes::default();
    let mut results = Vec::with_capacity(batch.len());
    for task in batch {
        results.push(apply(&tx, &task.write, &mut notes).await?);
    }
    for payload in payloads(&notes) {
        tx.execute("SELECT pg_notify($1, $2)", &[&shared.channel, &payload])
            .await
            .map_err(batch_error)?;
    }
    tx.commit().await.map_err(batch_error)?;
    Ok(results)
}

/// A database error inside a write: abort the batch.
type Sql<T> = Result<T, BatchError>;

fn decode(bytes: &[u8]) -> Result<TokenDoc, StoreError> {
    codec::decode_token(bytes).map_err(|e| StoreError::Corrupt(format!("token record: {e}")))
}

async fn insert_doc(tx: &impl GenericClient, doc: &TokenDoc) -> Sql<bool> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO tokens
               (access_hash, refresh_hash, family, realm, username, expires_at, doc, oidc_sub, oidc_sid)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(batch_error)?;
    let refresh = doc.refresh_hash.as_ref().map(|r| &r.0[..]);
    let session = doc.oidc_session.as_ref();
    let sub = session.map(|s| s.sub.as_bytes());
    let sid = session.and_then(|s| s.sid.as_deref()).map(str::as_bytes);
    let n = tx
        .execute(
            &stmt,
            &[
                &&doc.access_hash.0[..],
                &refresh,
                &&doc.family.0[..],
                &doc.user.realm.name.as_bytes(),
                &doc.user.username.as_bytes(),
                &doc.expires_at(),
                &codec::encode_token(doc),
                &sub,
                &sid,
            ],
        )
        .await
        .map_err(batch_error)?;
    Ok(n == 1)
}

async fn update_doc(tx: &impl GenericClient, doc: &TokenDoc) -> Sql<()> {
    let stmt = tx
        .prepare_cached("UPDATE tokens SET doc = $2 WHERE access_hash = $1")
        .await
        .map_err(batch_error)?;
    tx.execute(&stmt, &[&&doc.access_hash.0[..], &codec::encode_token(doc)])
        .await
        .map_err(batch_error)?;
    Ok(())
}

/// The docs of `rows` (column 0: the record), locked by the query that read them.
fn docs_of(rows: &[tokio_postgres::Row]) -> Result<Vec<TokenDoc>, StoreError> {
    rows.iter().map(|r| decode(r.get::<_, &[u8]>(0))).collect()
}

async fn locked(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Sql<Vec<tokio_postgres::Row>> {
    let stmt = tx.prepare_cached(sql).await.map_err(batch_error)?;
    tx.query(&stmt, params).await.map_err(batch_error)
}

async fn apply(
    tx: &impl GenericClient,
    write: &Write,
    notes: &mut Notes,
) -> Sql<Result<Done, StoreError>> {
    Ok(match write {
        Write::InsertToken(doc) => {
            if insert_doc(tx, doc).await? {
                Ok(Done::Unit)
            } else {
                Err(StoreError::Conflict)
            }
        }
        Write::Refresh {
            hash,
            refreshed,
            new_doc,
        } => {
            let rows = locked(
                tx,
                "SELECT doc FROM tokens WHERE refresh_hash = $1 FOR UPDATE",
                &[&&hash.0[..]],
            )
            .await?;
            let mut docs = match docs_of(&rows) {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let Some(mut doc) = docs.pop() else {
                return Ok(Ok(Done::Refresh(RefreshOutcome::NotFound)));
            };
            if doc.refreshed.is_some() {
                return Ok(Ok(Done::Refresh(RefreshOutcome::AlreadyRefreshed(
                    Box::new(doc),
                ))));
            }
            if doc.refresh_invalidated {
                return Ok(Ok(Done::Refresh(RefreshOutcome::NotFound)));
            }
            // The new pair first: a conflict leaves nothing written.
            if !insert_doc(tx, new_doc).await? {
                return Ok(Err(StoreError::Conflict));
            }
            doc.refreshed = Some(refreshed.clone());
            update_doc(tx, &doc).await?;
            Ok(Done::Refresh(RefreshOutcome::Applied))
        }
        Write::Invalidate(what) => {
            let (rows, access, refresh) = match what {
                Invalidation::Access(h) => (
                    locked(
                        tx,
                        "SELECT doc FROM tokens WHERE access_hash = $1 FOR UPDATE",
                        &[&&h.0[..]],
                    )
                    .await?,
                    true,
                    false,
                ),
                Invalidation::Refresh(h) => (
                    locked(
                        tx,
                        "SELECT doc FROM tokens WHERE refresh_hash = $1 FOR UPDATE",
                        &[&&h.0[..]],
                    )
                    .await?,
                    false,
                    true,
                ),
                Invalidation::Family(f) => (
                    locked(
                        tx,
                        "SELECT doc FROM tokens WHERE family = $1 ORDER BY access_hash FOR UPDATE",
                        &[&&f.0[..]],
                    )
                    .await?,
                    true,
                    true,
                ),
                Invalidation::Owner { realm, username } => {
                    if realm.is_none() && username.is_none() {
                        (Vec::new(), true, true)
                    } else {
                        (
                            locked(
                                tx,
                                "SELECT doc FROM tokens
                                 WHERE ($1::bytea IS NULL OR realm = $1)
                                   AND ($2::bytea IS NULL OR username = $2)
                                 ORDER BY access_hash FOR UPDATE",
                                &[
                                    &realm.as_deref().map(str::as_bytes),
                                    &username.as_deref().map(str::as_bytes),
                                ],
                            )
                            .await?,
                            true,
                            true,
                        )
                    }
                }
                Invalidation::OidcSession { realm, sub, sid } => {
                    // By the session columns (filled on insert); the record is checked again
                    // below.
                    let realm = realm.as_bytes();
                    let rows = match (sub, sid) {
                        (None, None) => Vec::new(),
                        (Some(sub), None) => {
                            locked(
                                tx,
                                "SELECT doc FROM tokens WHERE realm = $1 AND oidc_sub = $2
                                 ORDER BY access_hash FOR UPDATE",
                                &[&realm, &sub.as_bytes()],
                            )
                            .await?
                        }
                        (None, Some(sid)) => {
                            locked(
                                tx,
                                "SELECT doc FROM tokens WHERE realm = $1 AND oidc_sid = $2
                                 ORDER BY access_hash FOR UPDATE",
                                &[&realm, &sid.as_bytes()],
                            )
                            .await?
                        }
                        (Some(sub), Some(sid)) => {
                            locked(
                                tx,
                                "SELECT doc FROM tokens
                                 WHERE realm = $1 AND oidc_sid = $3 AND oidc_sub = $2
                                 ORDER BY access_hash FOR UPDATE",
                                &[&realm, &sub.as_bytes(), &sid.as_bytes()],
                            )
                            .await?
                        }
                    };
                    (rows, true, true)
                }
            };
            let docs = match docs_of(&rows) {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let mut counts = InvalidationCounts::default();
            for mut doc in docs {
                if let Invalidation::Owner { realm, username } = what {
                    if !owner_matches(&doc, realm.as_deref(), username.as_deref()) {
                        continue;
                    }
                }
                if let Invalidation::OidcSession { realm, sub, sid } = what {
                    if !session_matches(&doc, realm, sub.as_deref(), sid.as_deref()) {
                        continue;
                    }
                }
                let before = counts.invalidated;
                invalidate_doc(&mut doc, access, refresh, &mut counts);
                if counts.invalidated != before {
                    update_doc(tx, &doc).await?;
                }
            }
            notes.access.extend_from_slice(&counts.access_hashes);
            Ok(Done::Counts(counts))
        }
        Write::PutRoleMapping(name, json) => {
            let rows = locked(
                tx,
                "INSERT INTO role_mappings (name, body) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body
                 RETURNING (xmax = 0)",
                &[&name.as_bytes(), json],
            )
            .await?;
            notes.role_mappings = true;
            Ok(Done::Bool(
                rows.first().is_some_and(|r| r.get::<_, bool>(0)),
            ))
        }
        Write::DeleteRoleMapping(name) => {
            let rows = locked(
                tx,
                "DELETE FROM role_mappings WHERE name = $1 RETURNING 1",
                &[&name.as_bytes()],
            )
            .await?;
            notes.role_mappings = true;
            Ok(Done::Bool(!rows.is_empty()))
        }
        Write::RestoreProfile { uid, profile } => {
            let Ok(seq_no) = i64::try_from(profile.seq_no) else {
                return Ok(Err(StoreError::Conflict));
            };
            locked(
                tx,
                "INSERT INTO profiles (uid, seq_no, body) VALUES ($1, $2, $3)
                 ON CONFLICT (uid) DO UPDATE SET seq_no = excluded.seq_no, body = excluded.body",
                &[&uid.as_bytes(), &seq_no, &profile.json],
            )
            .await?;
            notes.profiles.push(uid.clone());
            Ok(Done::Unit)
        }
        Write::PutProfile {
            uid,
            json,
            expected_seq_no,
        } => {
            let rows = locked(
                tx,
                "SELECT seq_no FROM profiles WHERE uid = $1 FOR UPDATE",
                &[&uid.as_bytes()],
            )
            .await?;
            let current = rows.first().map(|r| r.get::<_, i64>(0) as u64);
            let seq_no = match next_profile_seq_no(current, *expected_seq_no) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            let Ok(stored) = i64::try_from(seq_no) else {
                return Ok(Err(StoreError::Conflict));
            };
            let written = if current.is_none() {
                locked(
                    tx,
                    "INSERT INTO profiles (uid, seq_no, body) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING RETURNING 1",
                    &[&uid.as_bytes(), &stored, json],
                )
                .await?
            } else {
                locked(
                    tx,
                    "UPDATE profiles SET seq_no = $2, body = $3 WHERE uid = $1 RETURNING 1",
                    &[&uid.as_bytes(), &stored, json],
                )
                .await?
            };
            if written.is_empty() {
                // Created by another node since the read.
                return Ok(Err(StoreError::Conflict));
            }
            notes.profiles.push(uid.clone());
            Ok(Done::SeqNo(seq_no))
        }
        Write::PutRecord {
            kind,
            key,
            value,
            expected,
        } => {
            let rows = locked(
                tx,
                "SELECT version FROM records WHERE kind = $1 AND key = $2 FOR UPDATE",
                &[&kind.as_bytes(), &key.as_bytes()],
            )
            .await?;
            let current = rows.first().map(|r| r.get::<_, i64>(0) as u64);
            let version = match next_profile_seq_no(current, *expected) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let Ok(stored) = i64::try_from(version) else {
                return Ok(Err(StoreError::Conflict));
            };
            let written = if current.is_none() {
                locked(
                    tx,
                    "INSERT INTO records (kind, key, version, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING RETURNING 1",
                    &[&kind.as_bytes(), &key.as_bytes(), &stored, value],
                )
                .await?
            } else {
                locked(
                    tx,
                    "UPDATE records SET version = $3, value = $4
                     WHERE kind = $1 AND key = $2 RETURNING 1",
                    &[&kind.as_bytes(), &key.as_bytes(), &stored, value],
                )
                .await?
            };
            if written.is_empty() {
                // Created by another node since the read.
                return Ok(Err(StoreError::Conflict));
            }
            Ok(Done::SeqNo(version))
        }
        Write::DeleteRecord {
            kind,
            key,
            expected,
        } => {
            let rows = locked(
                tx,
                "SELECT version FROM records WHERE kind = $1 AND key = $2 FOR UPDATE",
                &[&kind.as_bytes(), &key.as_bytes()],
            )
            .await?;
            let Some(current) = rows.first().map(|r| r.get::<_, i64>(0) as u64) else {
                return Ok(Ok(Done::Bool(false)));
            };
            if expected.is_some_and(|e| e != current) {
                return Ok(Err(StoreError::Conflict));
            }
            let deleted = locked(
                tx,
                "DELETE FROM records WHERE kind = $1 AND key = $2 RETURNING 1",
                &[&kind.as_bytes(), &key.as_bytes()],
            )
            .await?;
            Ok(Done::Bool(!deleted.is_empty()))
        }
        Write::RestoreRecord { kind, key, record } => {
            let Ok(version) = i64::try_from(record.version) else {
                return Ok(Err(StoreError::Conflict));
            };
            locked(
                tx,
                "INSERT INTO records (kind, key, version, value) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, key)
                   DO UPDATE SET version = excluded.version, value = excluded.value",
                &[&kind.as_bytes(), &key.as_bytes(), &version, &record.value],
            )
            .await?;
            Ok(Done::Unit)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit() {
        let notes = Notes {
            access: (0..500u32)
                .map(|n| {
                    let mut h = [0u8; 32];
                    h[..4].copy_from_slice(&n.to_be_bytes());
                    Hash32(h)
                })
                .collect(),
            role_mappings: true,
            profiles: vec!["u_1".into()],
        };
        let p = payloads(&notes);
        assert!(p.iter().all(|p| p.len() < 8000));
        assert!(p.iter().any(|p| p == "m"));
        assert!(p.iter().any(|p| p == "p:u_1"));
        let hashes: usize = p
            .iter()
            .filter_map(|p| p.strip_prefix("a:"))
            .map(|p| p.split(',').count())
            .sum();
        assert_eq!(hashes, 500);
        // Too many payloads for one commit: one resync instead.
        let many = Notes {
            profiles: (0..100).map(|n| format!("u{n}")).collect(),
            ..Notes::default()
        };
        assert_eq!(payloads(&many), vec!["r".to_string()]);
    }
}
