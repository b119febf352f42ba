//! The [`Store`] trait over the redb backend: reads on the caller's thread, writes through
//! the writer, flows in memory.

use super::error::{table_error, unavailable, OpError};
use super::keys::encode_profile;
use super::schema::{Bytes, PROFILES, ROLE_MAPPINGS, TOKENS, TOKEN_REFRESH};
use super::tables::{get_bearer, get_doc, get_profile, get_refresh};
use super::RedbStore;
use crate::clock::UnixMillis;
use crate::model::{Hash32, Refreshed, TokenDoc};
use crate::store::{
    next_profile_seq_no, BearerRecord, FlowCondition, FlowInsert, FlowLimits, FlowRecord, FlowTake,
    Invalidation, InvalidationCounts, RefreshOutcome, Store, StoreError, StoredProfile,
    StoredRecord,
};
use ::redb::{ReadableDatabase, ReadableTable, TableDefinition};
use async_trait::async_trait;

impl RedbStore {
    fn read<T>(
        &self,
        f: impl FnOnce(&::redb::ReadTransaction) -> Result<T, OpError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        f(&txn).map_err(op_error)
    }
}

impl RedbStore {
    /// Read the `tokens` table as of the last commit: through the writer's snapshot (see
    /// `WriterShared::tokens`), or a read transaction of its own when there is none.
    fn read_tokens<T>(
        &self,
        f: impl FnOnce(&::redb::ReadOnlyTable<Bytes, Bytes>) -> Result<T, OpError>,
    ) -> Result<T, StoreError> {
        match &*self.shared.tokens() {
            Some(tokens) => f(tokens).map_err(op_error),
            None => self.read(|txn| f(&open_read(txn, TOKENS)?)),
        }
    }
}

fn op_error(e: OpError) -> StoreError {
    match e {
        OpError::Op(e) => e,
        OpError::Txn(why) => StoreError::Unavailable(why),
    }
}

pub(super) fn open_read(
    txn: &::redb::ReadTransaction,
    def: TableDefinition<Bytes, Bytes>,
) -> Result<::redb::ReadOnlyTable<Bytes, Bytes>, OpError> {
    txn.open_table(def).map_err(|e| OpError::Op(table_error(e)))
}

#[async_trait]
impl Store for RedbStore {
    fn observe_commits(&self, observer: std::sync::Arc<dyn crate::store::CommitObserver>) {
        RedbStore::observe_commits(self, observer);
    }

    fn health(&self) -> crate::store::StoreHealth {
        RedbStore::health(self)
    }

    async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError> {
        self.submit(move |t| t.insert_token(doc)).await
    }

    async fn get_by_access(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.read_tokens(|tokens| get_doc(tokens, hash))
    }

    async fn get_bearer(&self, hash: &Hash32) -> Result<Option<BearerRecord>, StoreError> {
        self.read_tokens(|tokens| get_bearer(tokens, hash, &self.users))
    }

    async fn get_by_refresh(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.read(
            |txn| match get_refresh(&open_read(txn, TOKEN_REFRESH)?, hash)? {
                Some(access) => get_doc(&open_read(txn, TOKENS)?, &access),
                None => Ok(None),
            },
        )
    }

    async fn refresh(
        &self,
        hash: &Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    ) -> Result<RefreshOutcome, StoreError> {
        let hash = *hash;
        self.submit(move |t| t.refresh(&hash, refreshed, new_doc))
            .await
    }

    async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, StoreError> {
        self.submit(move |t| t.invalidate(what)).await
    }

    async fn insert_flow_within(
        &self,
        state_hash: &Hash32,
        flow: FlowRecord,
        limits: &FlowLimits,
        now: UnixMillis,
    ) -> Result<FlowInsert, StoreError> {
        Ok(self.flows.insert(state_hash, flow, limits, now))
    }

    async fn take_flow_if(
        &self,
        state_hash: &Hash32,
        now: UnixMillis,
        condition: &FlowCondition,
    ) -> Result<FlowTake, StoreError> {
        Ok(self.flows.take_if(state_hash, now, condition))
    }

    async fn sweep_expired(&self, now: UnixMillis, limit: usize) -> Result<usize, StoreError> {
        let tokens = self.submit(move |t| t.sweep_expired(now, limit)).await?;
        let flows = self.flows.sweep(now, limit - tokens);
        Ok(tokens + flows + self.once.sweep(now, limit - tokens - flows))
    }

    async fn put_role_mapping(&self, name: &str, json: Vec<u8>) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.submit(move |t| {
            let previous = t
                .role_mappings
                .insert(name.as_str(), json.as_slice())?
                .is_some();
            Ok(!previous)
        })
        .await
    }

    async fn get_role_mappings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(ROLE_MAPPINGS)
                .map_err(|e| OpError::Op(table_error(e)))?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    async fn delete_role_mapping(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.submit(move |t| Ok(t.role_mappings.remove(name.as_str())?.is_some()))
            .await
    }

    async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(PROFILES)
                .map_err(|e| OpError::Op(table_error(e)))?;
            get_profile(&table, uid)
        })
    }

    async fn put_profile(
        &self,
        uid: &str,
        json: Vec<u8>,
        expected_seq_no: Option<u64>,
    ) -> Result<u64, StoreError> {
        let uid = uid.to_string();
        self.submit(move |t| {
            // Checked on the writer, so nothing writes between the check and the write.
            let current = get_profile(&t.profiles, &uid)?.map(|p| p.seq_no);
            let seq_no = next_profile_seq_no(current, expected_seq_no)?;
            t.profiles
                .insert(uid.as_str(), encode_profile(seq_no, &json).as_slice())?;
            Ok(seq_no)
        })
        .await
    }

    async fn get_record(&self, kind: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(super::records::RECORDS)
                .map_err(super::records::open_error)?;
            super::records::get(&table, kind, key)
        })
    }

    async fn list_records(
        &self,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(super::records::RECORDS)
                .map_err(super::records::open_error)?;
            super::records::list(&table, kind, prefix)
        })
    }

    async fn put_record(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.submit(move |t| {
            // Checked on the writer, so nothing writes between the check and the write.
            let current = super::records::get(&t.records, &kind, &key)?.map(|r| r.version);
            let version = next_profile_seq_no(current, expected)?;
            t.records.insert(
                super::records::record_key(&kind, &key).as_slice(),
                super::records::encode(version, &value).as_slice(),
            )?;
            Ok(version)
        })
        .await
    }

    async fn delete_record(
        &self,
        kind: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.submit(
            move |t| match (super::records::get(&t.records, &kind, &key)?, expected) {
                (None, _) => Ok(false),
                (Some(r), Some(e)) if r.version != e => Err(StoreError::Conflict.into()),
                _ => Ok(t
                    .records
                    .remove(super::records::record_key(&kind, &key).as_slice())?
                    .is_some()),
            },
        )
        .await
    }

    async fn put_once(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.once.put(kind, key, value, expires_at, now)
    }

    async fn take_once(
        &self,
        kind: &str,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.once.take(kind, key, now))
    }
}

#[async_trait]
impl crate::store::StoreTransfer for RedbStore {
    async fn tokens_after(
        &self,
        after: Option<Hash32>,
        limit: usize,
    ) -> Result<Vec<TokenDoc>, StoreError> {
        self.read(|txn| {
            let table = open_read(txn, TOKENS)?;
            let mut out = Vec::new();
            let range = match &after {
                Some(a) => table.range::<&[u8]>(&a.0[..]..)?,
                None => table.range::<&[u8]>(..)?,
            };
            for entry in range {
                if out.len() == limit {
                    break;
                }
                let (k, v) = entry?;
                let key = super::keys::hash_value(k.value())?;
                if after == Some(key) {
                    continue;
                }
                out.push(super::keys::decode_doc(&key, v.value())?);
            }
            Ok(out)
        })
    }

    async fn profiles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, StoredProfile)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(PROFILES)
                .map_err(|e| OpError::Op(table_error(e)))?;
            let mut out = Vec::new();
            let range = match &after {
                Some(a) => table.range::<&str>(a.as_str()..)?,
                None => table.range::<&str>(..)?,
            };
            for entry in range {
                if out.len() == limit {
                    break;
                }
                let (k, v) = entry?;
                let uid = k.value().to_string();
                if after.as_deref() == Some(uid.as_str()) {
                    continue;
                }
                let profile = super::keys::decode_profile(&uid, v.value())?;
                out.push((uid, profile));
            }
            Ok(out)
        })
    }

    async fn restore_profile(&self, uid: &str, profile: StoredProfile) -> Result<(), StoreError> {
        let uid = uid.to_string();
        self.submit(move |t| {
            t.profiles.insert(
                uid.as_str(),
                encode_profile(profile.seq_no, &profile.json).as_slice(),
            )?;
            Ok(())
        })
        .await
    }

    async fn records_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, crate::store::StoredRecord)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(super::records::RECORDS)
                .map_err(super::records::open_error)?;
            super::records::after(&table, after.as_ref(), limit)
        })
    }

    async fn restore_record(
        &self,
        kind: &str,
        key: &str,
        record: crate::store::StoredRecord,
    ) -> Result<(), StoreError> {
        let k = super::records::record_key(kind, key);
        self.submit(move |t| {
            t.records.insert(
                k.as_slice(),
                super::records::encode(record.version, &record.value).as_slice(),
            )?;
            Ok(())
        })
        .await
    }
}
