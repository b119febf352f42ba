//! An in-memory [`Store`] for tests. Same semantics as the durable backends, no durability.

use super::flow_table::FlowTable;
use super::logic::{invalidate_doc, owner_matches, session_matches};
use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Inner {
    docs: HashMap<Hash32, TokenDoc>,
    by_refresh: HashMap<Hash32, Hash32>,
    role_mappings: std::collections::BTreeMap<String, Vec<u8>>,
    profiles: HashMap<String, StoredProfile>,
    records: std::collections::BTreeMap<(String, String), StoredRecord>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    flows: FlowTable,
    once: super::once_table::OnceTable,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: every
        // operation below mutates only after its checks. So a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn insert_doc(inner: &mut Inner, doc: TokenDoc) -> Result<(), StoreError> {
    if inner.docs.contains_key(&doc.access_hash)
        || doc
            .refresh_hash
            .is_some_and(|r| inner.by_refresh.contains_key(&r))
    {
        return Err(StoreError::Conflict);
    }
    if let Some(r) = doc.refresh_hash {
        inner.by_refresh.insert(r, doc.access_hash);
    }
    inner.docs.insert(doc.access_hash, doc);
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError> {
        insert_doc(&mut self.lock(), doc)
    }

    async fn get_by_access(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        Ok(self.lock().docs.get(hash).cloned())
    }

    async fn get_by_refresh(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .by_refresh
            .get(hash)
            .and_then(|a| inner.docs.get(a))
            .cloned())
    }

    async fn refresh(
        &self,
        hash: &Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut inner = self.lock();
        let Some(access) = inner.by_refresh.get(hash).copied() else {
            return Ok(RefreshOutcome::NotFound);
        };
        let Some(doc) = inner.docs.get(&access) else {
            return Ok(RefreshOutcome::NotFound);
        };
        if doc.refreshed.is_some() {
            return Ok(RefreshOutcome::AlreadyRefreshed(Box::new(doc.clone())));
        }
        if doc.refresh_invalidated {
            return Ok(RefreshOutcome::NotFound);
        }
        insert_doc(&mut inner, new_doc)?;
        if let Some(doc) = inner.docs.get_mut(&access) {
            doc.refreshed = Some(refreshed);
        }
        Ok(RefreshOutcome::Applied)
    }

    async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, StoreError> {
        let mut inner = self.lock();
        let mut counts = InvalidationCounts::default();
        match what {
            Invalidation::Access(h) => {
                if let Some(doc) = inner.docs.get_mut(&h) {
                    invalidate_doc(doc, true, false, &mut counts);
                }
            }
            Invalidation::Refresh(h) => {
                if let Some(a) = inner.by_refresh.get(&h).copied() {
                    if let Some(doc) = inner.docs.get_mut(&a) {
                        invalidate_doc(doc, false, true, &mut counts);
                    }
                }
            }
            Invalidation::Family(f) => {
                for doc in inner.docs.values_mut().filter(|d| d.family == f) {
                    invalidate_doc(doc, true, true, &mut counts);
                }
            }
            Invalidation::Owner { realm, username } => {
                for doc in inner
                    .docs
                    .values_mut()
                    .filter(|d| owner_matches(d, realm.as_deref(), username.as_deref()))
                {
                    invalidate_doc(doc, true, true, &mut counts);
                }
            }
            Invalidation::OidcSession { realm, sub, sid } => {
                for doc in inner
                    .docs
                    .values_mut()
                    .filter(|d| session_matches(d, &realm, sub.as_deref(), sid.as_deref()))
                {
                    invalidate_doc(doc, true, true, &mut counts);
                }
            }
        }
        Ok(counts)
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
        let mut inner = self.lock();
        let expired: Vec<Hash32> = inner
            .docs
            .values()
            .filter(|d| d.expires_at() <= now)
            .map(|d| d.access_hash)
            .take(limit)
            .collect();
        for h in &expired {
            if let Some(doc) = inner.docs.remove(h) {
                if let Some(r) = doc.refresh_hash {
                    inner.by_refresh.remove(&r);
                }
            }
        }
        let flows = self.flows.sweep(now, limit - expired.len());
        let once = self.once.sweep(now, limit - expired.len() - flows);
        Ok(expired.len() + flows + once)
    }

    async fn put_role_mapping(&self, name: &str, json: Vec<u8>) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .role_mappings
            .insert(name.to_string(), json)
            .is_none())
    }

    async fn get_role_mappings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .role_mappings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn delete_role_mapping(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lock().role_mappings.remove(name).is_some())
    }

    async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
        Ok(self.lock().profiles.get(uid).cloned())
    }

    async fn put_profile(
        &self,
        uid: &str,
        json: Vec<u8>,
        expected_seq_no: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let current = inner.profiles.get(uid).map(|p| p.seq_no);
        let seq_no = next_profile_seq_no(current, expected_seq_no)?;
        inner
            .profiles
            .insert(uid.to_string(), StoredProfile { seq_no, json });
        Ok(seq_no)
    }

    async fn get_record(&self, kind: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self
            .lock()
            .records
            .get(&(kind.to_string(), key.to_string()))
            .cloned())
    }

    async fn list_records(
        &self,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        Ok(self
            .lock()
            .records
            .range((kind.to_string(), prefix.to_string())..)
            .take_while(|((k, key), _)| k == kind && key.starts_with(prefix))
            .map(|((_, key), r)| (key.clone(), r.clone()))
            .collect())
    }

    async fn put_record(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let k = (kind.to_string(), key.to_string());
        let current = inner.records.get(&k).map(|r| r.version);
        let version = next_profile_seq_no(current, expected)?;
        inner.records.insert(k, StoredRecord { version, value });
        Ok(version)
    }

    async fn delete_record(
        &self,
        kind: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let k = (kind.to_string(), key.to_string());
        match (inner.records.get(&k).map(|r| r.version), expected) {
            (None, _) => Ok(false),
            (Some(v), Some(e)) if v != e => Err(StoreError::Conflict),
            _ => Ok(inner.records.remove(&k).is_some()),
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
impl StoreTransfer for MemoryStore {
    async fn tokens_after(
        &self,
        after: Option<Hash32>,
        limit: usize,
    ) -> Result<Vec<TokenDoc>, StoreError> {
        let inner = self.lock();
        let mut docs: Vec<&TokenDoc> = inner
            .docs
            .values()
            .filter(|d| after.is_none_or(|a| d.access_hash > a))
            .collect();
        docs.sort_by_key(|d| d.access_hash);
        Ok(docs.into_iter().take(limit).cloned().collect())
    }

    async fn profiles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, StoredProfile)>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<(String, StoredProfile)> = inner
            .profiles
            .iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|a| k.as_bytes() > a.as_bytes()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        out.truncate(limit);
        Ok(out)
    }

    async fn restore_profile(&self, uid: &str, profile: StoredProfile) -> Result<(), StoreError> {
        self.lock().profiles.insert(uid.to_string(), profile);
        Ok(())
    }

    async fn records_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, StoredRecord)>, StoreError> {
        use std::ops::Bound;
        let inner = self.lock();
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        Ok(inner
            .records
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|((kind, key), r)| (kind.clone(), key.clone(), r.clone()))
            .collect())
    }

    async fn restore_record(
        &self,
        kind: &str,
        key: &str,
        record: StoredRecord,
    ) -> Result<(), StoreError> {
        self.lock()
            .records
            .insert((kind.to_string(), key.to_string()), record);
        Ok(())
    }
}
