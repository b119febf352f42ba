//! The [`Store`] trait over PostgreSQL: reads and pending logins on the pool, durable writes
//! through the writer.

use super::writer::{Done, Write, WriteTask};
use super::{db_error, lock_key, PgStore, Shared};
use crate::clock::UnixMillis;
use crate::model::{Hash32, Refreshed, TokenDoc};
use crate::store::{
    codec, CommitObserver, FlowCondition, FlowInsert, FlowLimits, FlowRecord, FlowTake,
    Invalidation, InvalidationCounts, RefreshOutcome, Store, StoreChange, StoreError, StoreHealth,
    StoredProfile, StoredRecord,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::sync::Arc;
use tokio::sync::{broadcast, oneshot};

fn decode(bytes: &[u8]) -> Result<TokenDoc, StoreError> {
    codec::decode_token(bytes).map_err(|e| StoreError::Corrupt(format!("token record: {e}")))
}

fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A name stored as bytes (always written from a `String`).
fn text(bytes: Vec<u8>, what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
}

fn flow_of(row: &tokio_postgres::Row) -> Result<FlowRecord, StoreError> {
    let caller: &[u8] = row.get("caller");
    Ok(FlowRecord {
        realm: text(row.get("realm"), "flow realm")?,
        caller: Hash32(
            caller
                .try_into()
                .map_err(|_| StoreError::Corrupt("flow caller of a wrong length".into()))?,
        ),
        expires_at: row.get("expires_at"),
        sealed: row.get("sealed"),
    })
}

impl PgStore {
    /// Queue `write` for the writer and wait for its commit.
    async fn write(&self, write: Write) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(WriteTask { write, reply })
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        let result = answer
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        if let Err(StoreError::Unavailable(_)) = &result {
            self.shared.saw(false);
        }
        result
    }

    async fn read_doc(
        &self,
        sql: &'static str,
        hash: Hash32,
    ) -> Result<Option<TokenDoc>, StoreError> {
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
            let row = client
                .query_opt(&stmt, &[&&hash.0[..]])
                .await
                .map_err(db_error)?;
            s.saw(true);
            row.map(|r| decode(r.get::<_, &[u8]>(0))).transpose()
        })
        .await
    }
}

fn unexpected(what: &str, d: Done) -> StoreError {
    StoreError::Unavailable(format!("store writer answered {d:?} to {what}"))
}

#[async_trait]
impl Store for PgStore {
    fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        *self.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    fn health(&self) -> StoreHealth {
        PgStore::health(self)
    }

    fn changes(&self) -> Option<broadcast::Receiver<StoreChange>> {
        Some(self.shared.changes.subscribe())
    }

    async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError> {
        match self.write(Write::InsertToken(doc)).await? {
            Done::Unit => Ok(()),
            d => Err(unexpected("insert_token", d)),
        }
    }

    async fn get_by_access(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.read_doc("SELECT doc FROM tokens WHERE access_hash = $1", *hash)
            .await
    }

    async fn get_by_refresh(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.read_doc("SELECT doc FROM tokens WHERE refresh_hash = $1", *hash)
            .await
    }

    async fn refresh(
        &self,
        hash: &Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    ) -> Result<RefreshOutcome, StoreError> {
        match self
            .write(Write::Refresh {
                hash: *hash,
                refreshed,
                new_doc,
            })
            .await?
        {
            Done::Refresh(r) => Ok(r),
            d => Err(unexpected("refresh", d)),
        }
    }

    async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, StoreError> {
        match self.write(Write::Invalidate(what)).await? {
            Done::Counts(c) => Ok(c),
            d => Err(unexpected("invalidate", d)),
        }
    }

    async fn insert_flow_within(
        &self,
        state_hash: &Hash32,
        flow: FlowRecord,
        limits: &FlowLimits,
        now: UnixMillis,
    ) -> Result<FlowInsert, StoreError> {
        let state = *state_hash;
        let limits = *limits;
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            // One call of the migration's `insert_flow`: the limit checks and the insert run
            // under an advisory lock every node's inserts take, so they cannot interleave.
            let stmt = client
                .prepare_cached("SELECT insert_flow($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .await
                .map_err(db_error)?;
            let row = client
                .query_one(
                    &stmt,
                    &[
                        &&state.0[..],
                        &flow.realm.as_bytes(),
                        &&flow.caller.0[..],
                        &flow.expires_at,
                        &flow.sealed,
                        &now,
                        &limit_i64(limits.per_caller),
                        &limit_i64(limits.total),
                        &lock_key(&s.schema, "flows"),
                    ],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            match row.get::<_, &str>(0) {
                "inserted" => Ok(FlowInsert::Inserted),
                "state_in_use" => Ok(FlowInsert::StateInUse),
                "caller_full" => Ok(FlowInsert::CallerFull),
                "table_full" => Ok(FlowInsert::TableFull),
                other => Err(StoreError::Corrupt(format!(
                    "insert_flow answered {other:?}"
                ))),
            }
        })
        .await
    }

    async fn take_flow_if(
        &self,
        state_hash: &Hash32,
        now: UnixMillis,
        condition: &FlowCondition,
    ) -> Result<FlowTake, StoreError> {
        let state = *state_hash;
        let condition = condition.clone();
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let caller = condition.caller.as_ref().map(|c| &c.0[..]);
            // One statement: of concurrent takes on any node, one deletes the row.
            let taken = client
                .query_opt(
                    "DELETE FROM flows
                     WHERE state_hash = $1 AND expires_at > $2
                       AND ($3::bytea IS NULL OR caller = $3)
                       AND ($4::bytea IS NULL OR realm = $4)
                     RETURNING realm, caller, expires_at, sealed",
                    &[
                        &&state.0[..],
                        &now,
                        &caller,
                        &condition.realm.as_deref().map(str::as_bytes),
                    ],
                )
                .await
                .map_err(db_error)?;
            if let Some(row) = taken {
                s.saw(true);
                return Ok(FlowTake::Taken(flow_of(&row)?));
            }
            // Not taken: say why (for the log), removing it if it expired.
            let row = client
                .query_opt(
                    "SELECT realm, caller, expires_at, sealed FROM flows WHERE state_hash = $1",
                    &[&&state.0[..]],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            let Some(row) = row else {
                return Ok(FlowTake::NotFound);
            };
            let flow = flow_of(&row)?;
            if flow.expires_at <= now {
                client
                    .execute(
                        "DELETE FROM flows WHERE state_hash = $1 AND expires_at <= $2",
                        &[&&state.0[..], &now],
                    )
                    .await
                    .map_err(db_error)?;
                return Ok(FlowTake::NotFound);
            }
            if let Some(c) = &condition.caller {
                if !crate::secret::ct_eq(&c.0, &flow.caller.0) {
                    return Ok(FlowTake::OtherCaller(flow));
                }
            }
            if let Some(r) = &condition.realm {
                if *r != flow.realm {
                    return Ok(FlowTake::OtherRealm(flow));
                }
            }
            // It matches now, but was not there (or not matching) at the delete: a flow
            // inserted in between. Nothing was taken.
            Ok(FlowTake::NotFound)
        })
        .await
    }

    async fn sweep_expired(&self, now: UnixMillis, limit: usize) -> Result<usize, StoreError> {
        let limit = limit_i64(limit);
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let tokens = client
                .execute(
                    "DELETE FROM tokens WHERE access_hash IN
                       (SELECT access_hash FROM tokens WHERE expires_at <= $1 LIMIT $2)",
                    &[&now, &limit],
                )
                .await
                .map_err(db_error)?;
            let rest = limit.saturating_sub(tokens as i64);
            let flows = client
                .execute(
                    "DELETE FROM flows WHERE state_hash IN
                       (SELECT state_hash FROM flows WHERE expires_at <= $1 LIMIT $2)",
                    &[&now, &rest],
                )
                .await
                .map_err(db_error)?;
            let rest = rest.saturating_sub(flows as i64);
            let once = client
                .execute(
                    "DELETE FROM once_records WHERE (kind, key) IN
                       (SELECT kind, key FROM once_records WHERE expires_at <= $1 LIMIT $2)",
                    &[&now, &rest],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            Ok((tokens + flows + once) as usize)
        })
        .await
    }

    async fn put_role_mapping(&self, name: &str, json: Vec<u8>) -> Result<bool, StoreError> {
        match self
            .write(Write::PutRoleMapping(name.to_string(), json))
            .await?
        {
            Done::Bool(b) => Ok(b),
            d => Err(unexpected("put_role_mapping", d)),
        }
    }

    async fn get_role_mappings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.call(|s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let rows = client
                .query("SELECT name, body FROM role_mappings ORDER BY name", &[])
                .await
                .map_err(db_error)?;
            s.saw(true);
            rows.iter()
                .map(|r| Ok((text(r.get(0), "role mapping name")?, r.get(1))))
                .collect()
        })
        .await
    }

    async fn delete_role_mapping(&self, name: &str) -> Result<bool, StoreError> {
        match self
            .write(Write::DeleteRoleMapping(name.to_string()))
            .await?
        {
            Done::Bool(b) => Ok(b),
            d => Err(unexpected("delete_role_mapping", d)),
        }
    }

    async fn get_record(&self, kind: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let row = client
                .query_opt(
                    "SELECT version, value FROM records WHERE kind = $1 AND key = $2",
                    &[&kind.as_bytes(), &key.as_bytes()],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            Ok(row.map(|r| StoredRecord {
                version: r.get::<_, i64>(0) as u64,
                value: r.get(1),
            }))
        })
        .await
    }

    async fn list_records(
        &self,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        let (kind, prefix) = (kind.to_string(), prefix.to_string());
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            // The keys are UTF-8, which has no byte 0xff: every key starting with `prefix`
            // lies in [prefix, prefix || 0xff), a range of the primary key's index.
            let rows = client
                .query(
                    "SELECT key, version, value FROM records
                     WHERE kind = $1 AND key >= $2 AND key < $2 || '\\xff'::bytea
                       AND substr(key, 1, octet_length($2::bytea)) = $2
                     ORDER BY key",
                    &[&kind.as_bytes(), &prefix.as_bytes()],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            rows.iter()
                .map(|r| {
                    Ok((
                        text(r.get(0), "record key")?,
                        StoredRecord {
                            version: r.get::<_, i64>(1) as u64,
                            value: r.get(2),
                        },
                    ))
                })
                .collect()
        })
        .await
    }

    async fn put_record(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        match self
            .write(Write::PutRecord {
                kind: kind.to_string(),
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            Done::SeqNo(n) => Ok(n),
            d => Err(unexpected("put_record", d)),
        }
    }

    async fn delete_record(
        &self,
        kind: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        match self
            .write(Write::DeleteRecord {
                kind: kind.to_string(),
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Done::Bool(b) => Ok(b),
            d => Err(unexpected("delete_record", d)),
        }
    }

    async fn put_once(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            // One statement: a live record under the key stays (no row returned: Conflict),
            // an expired one is replaced.
            let row = client
                .query_opt(
                    "INSERT INTO once_records (kind, key, expires_at, value)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, key) DO UPDATE
                       SET expires_at = excluded.expires_at, value = excluded.value
                       WHERE once_records.expires_at <= $5
                     RETURNING 1",
                    &[&kind.as_bytes(), &key.as_bytes(), &expires_at, &value, &now],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            match row {
                Some(_) => Ok(()),
                None => Err(StoreError::Conflict),
            }
        })
        .await
    }

    async fn take_once(
        &self,
        kind: &str,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            // One statement: of concurrent takes on any node, one deletes the row. An expired
            // record is removed too, and not returned.
            let row = client
                .query_opt(
                    "DELETE FROM once_records WHERE kind = $1 AND key = $2
                     RETURNING expires_at, value",
                    &[&kind.as_bytes(), &key.as_bytes()],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            Ok(row.and_then(|r| (r.get::<_, i64>(0) > now).then(|| r.get(1))))
        })
        .await
    }

    async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
        let uid = uid.to_string();
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let row = client
                .query_opt(
                    "SELECT seq_no, body FROM profiles WHERE uid = $1",
                    &[&uid.as_bytes()],
                )
                .await
                .map_err(db_error)?;
            s.saw(true);
            Ok(row.map(|r| StoredProfile {
                seq_no: r.get::<_, i64>(0) as u64,
                json: r.get(1),
            }))
        })
        .await
    }

    async fn put_profile(
        &self,
        uid: &str,
        json: Vec<u8>,
        expected_seq_no: Option<u64>,
    ) -> Result<u64, StoreError> {
        match self
            .write(Write::PutProfile {
                uid: uid.to_string(),
                json,
                expected_seq_no,
            })
            .await?
        {
            Done::SeqNo(n) => Ok(n),
            d => Err(unexpected("put_profile", d)),
        }
    }
}

#[async_trait]
impl crate::store::StoreTransfer for PgStore {
    async fn tokens_after(
        &self,
        after: Option<Hash32>,
        limit: usize,
    ) -> Result<Vec<TokenDoc>, StoreError> {
        let limit = limit_i64(limit);
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let after = after.map(|a| a.0.to_vec());
            let rows = client
                .query(
                    "SELECT doc FROM tokens WHERE ($1::bytea IS NULL OR access_hash > $1)
                     ORDER BY access_hash LIMIT $2",
                    &[&after, &limit],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(|r| decode(r.get::<_, &[u8]>(0))).collect()
        })
        .await
    }

    async fn profiles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, StoredProfile)>, StoreError> {
        let limit = limit_i64(limit);
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let after = after.map(String::into_bytes);
            let rows = client
                .query(
                    "SELECT uid, seq_no, body FROM profiles WHERE ($1::bytea IS NULL OR uid > $1)
                     ORDER BY uid LIMIT $2",
                    &[&after, &limit],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        text(r.get(0), "profile uid")?,
                        StoredProfile {
                            seq_no: r.get::<_, i64>(1) as u64,
                            json: r.get(2),
                        },
                    ))
                })
                .collect()
        })
        .await
    }

    async fn restore_profile(&self, uid: &str, profile: StoredProfile) -> Result<(), StoreError> {
        match self
            .write(Write::RestoreProfile {
                uid: uid.to_string(),
                profile,
            })
            .await?
        {
            Done::Unit => Ok(()),
            d => Err(unexpected("restore_profile", d)),
        }
    }

    async fn records_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, StoredRecord)>, StoreError> {
        let limit = limit_i64(limit);
        self.call(move |s: Arc<Shared>| async move {
            let client = s.pool.get().await.map_err(db_error)?;
            let (kind, key) = match &after {
                Some((kind, key)) => (Some(kind.as_bytes()), Some(key.as_bytes())),
                None => (None, None),
            };
            let rows = client
                .query(
                    "SELECT kind, key, version, value FROM records
                     WHERE $1::bytea IS NULL OR (kind, key) > ($1, $2::bytea)
                     ORDER BY kind, key LIMIT $3",
                    &[&kind, &key, &limit],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        text(r.get(0), "record kind")?,
                        text(r.get(1), "record key")?,
                        StoredRecord {
                            version: r.get::<_, i64>(2) as u64,
                            value: r.get(3),
                        },
                    ))
                })
                .collect()
        })
        .await
    }

    async fn restore_record(
        &self,
        kind: &str,
        key: &str,
        record: StoredRecord,
    ) -> Result<(), StoreError> {
        match self
            .write(Write::RestoreRecord {
                kind: kind.to_string(),
                key: key.to_string(),
                record,
            })
            .await?
        {
            Done::Unit => Ok(()),
            d => Err(unexpected("restore_record", d)),
        }
    }
}
