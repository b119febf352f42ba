//! An in-memory [`Store`] for tests. Same semantics as the durable backends, no durability.

use super::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Inner {
    docs: HashMap<Hash32, TokenDoc>,
    by_refresh: HashMap<Hash32, Hash32>,
    role_mappings: std::collections::BTreeMap<String, Vec<u8>>,
    profiles: HashMap<String, StoredProfile>,
}

/// Pending login flows in memory: single-use, expiring, limited per caller and in total
/// ([`FlowLimits`]). Used by [`MemoryStore`] and by the embedded redb backend, whose flows need
/// not survive a restart (a user whose login was in flight logs in again) and are kept out of
/// the database for speed.
///
/// Besides the flows by state hash, it keeps them ordered by expiry and a count per caller:
/// expired flows are removed from the front of the expiry order before every insert (each
/// flow is removed once, so this costs O(log n) per flow over time), and so never count
/// toward a limit; the limits are then O(1) checks.
#[derive(Debug, Default)]
pub(crate) struct FlowTable {
    inner: Mutex<FlowMaps>,
}

#[derive(Debug, Default)]
struct FlowMaps {
    by_state: HashMap<Hash32, FlowRecord>,
    /// `(expires_at, state hash)` of every flow in `by_state`.
    by_expiry: BTreeSet<(UnixMillis, Hash32)>,
    /// Flows in `by_state` per caller hash; no zero entries.
    per_caller: HashMap<Hash32, usize>,
}

impl FlowMaps {
    /// Remove the flow under `state_hash` from every map.
    fn remove(&mut self, state_hash: &Hash32) -> Option<FlowRecord> {
        let flow = self.by_state.remove(state_hash)?;
        self.by_expiry.remove(&(flow.expires_at, *state_hash));
        if let Some(n) = self.per_caller.get_mut(&flow.caller) {
            *n -= 1;
            if *n == 0 {
                self.per_caller.remove(&flow.caller);
            }
        }
        Some(flow)
    }

    /// Remove up to `limit` flows expired at `now` (`expires_at <= now`); returns how many.
    fn purge(&mut self, now: UnixMillis, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            let Some(&(expires_at, state_hash)) = self.by_expiry.first() else {
                break;
            };
            if expires_at > now {
                break;
            }
            if self.remove(&state_hash).is_none() {
                // Cannot happen (the maps change together); never loop on it.
                self.by_expiry.remove(&(expires_at, state_hash));
            }
            removed += 1;
        }
        removed
    }
}

impl FlowTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, FlowMaps> {
        // Every operation checks before it mutates, and the maps change together within one
        // lock: a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(
        &self,
        state_hash: &Hash32,
        flow: FlowRecord,
        limits: &FlowLimits,
        now: UnixMillis,
    ) -> FlowInsert {
        let mut maps = self.lock();
        maps.purge(now, usize::MAX);
        if maps.by_state.contains_key(state_hash) {
            return FlowInsert::StateInUse;
        }
        if maps.per_caller.get(&flow.caller).copied().unwrap_or(0) >= limits.per_caller {
            return FlowInsert::CallerFull;
        }
        if maps.by_state.len() >= limits.total {
            return FlowInsert::TableFull;
        }
        maps.by_expiry.insert((flow.expires_at, *state_hash));
        *maps.per_caller.entry(flow.caller).or_insert(0) += 1;
        maps.by_state.insert(*state_hash, flow);
        FlowInsert::Inserted
    }

    pub(crate) fn take_if(
        &self,
        state_hash: &Hash32,
        now: UnixMillis,
        condition: &FlowCondition,
    ) -> FlowTake {
        let mut maps = self.lock();
        let Some(flow) = maps.by_state.get(state_hash) else {
            return FlowTake::NotFound;
        };
        if flow.expires_at <= now {
            maps.remove(state_hash);
            return FlowTake::NotFound;
        }
        if let Some(caller) = &condition.caller {
            if !crate::secret::ct_eq(&caller.0, &flow.caller.0) {
                return FlowTake::OtherCaller(flow.clone());
            }
        }
        if let Some(realm) = &condition.realm {
            if *realm != flow.realm {
                return FlowTake::OtherRealm(flow.clone());
            }
        }
        match maps.remove(state_hash) {
            Some(flow) => FlowTake::Taken(flow),
            None => FlowTake::NotFound,
        }
    }

    /// Remove up to `limit` expired flows; returns how many.
    pub(crate) fn sweep(&self, now: UnixMillis, limit: usize) -> usize {
        self.lock().purge(now, limit)
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    flows: FlowTable,
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

/// Invalidate one doc's tokens according to `access`/`refresh` flags, counting.
pub(crate) fn invalidate_doc(
    doc: &mut TokenDoc,
    access: bool,
    refresh: bool,
    counts: &mut InvalidationCounts,
) {
    if access {
        if doc.access_invalidated {
            counts.previously_invalidated += 1;
        } else {
            doc.access_invalidated = true;
            counts.invalidated += 1;
            counts.access_hashes.push(doc.access_hash);
        }
    }
    if refresh && doc.refresh_hash.is_some() {
        if doc.refresh_invalidated {
            counts.previously_invalidated += 1;
        } else {
            doc.refresh_invalidated = true;
            counts.invalidated += 1;
        }
    }
}

/// Whether `doc` is selected by an owner invalidation. A selector naming neither a realm nor a
/// user selects nothing (an empty filter must never mean "every token").
pub(crate) fn owner_matches(doc: &TokenDoc, realm: Option<&str>, username: Option<&str>) -> bool {
    (realm.is_some() || username.is_some())
        && realm.is_none_or(|r| doc.user.realm.name == r)
        && username.is_none_or(|u| doc.user.username == u)
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
        Ok(expired.len() + flows)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Hash32 {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&n.to_be_bytes());
        Hash32(h)
    }

    fn flow(caller: u8, expires_at: UnixMillis) -> FlowRecord {
        FlowRecord {
            realm: "oidc1".into(),
            caller: Hash32([caller; 32]),
            expires_at,
            sealed: Vec::new(),
        }
    }

    const LIMITS: FlowLimits = FlowLimits {
        per_caller: 3,
        total: 5,
    };

    /// Checks the maps agree with each other.
    fn consistent(table: &FlowTable) -> usize {
        let maps = table.lock();
        assert_eq!(maps.by_state.len(), maps.by_expiry.len());
        for (e, k) in &maps.by_expiry {
            assert_eq!(maps.by_state[k].expires_at, *e);
        }
        let mut counts: HashMap<Hash32, usize> = HashMap::new();
        for f in maps.by_state.values() {
            *counts.entry(f.caller).or_default() += 1;
        }
        assert_eq!(counts, maps.per_caller);
        maps.by_state.len()
    }

    #[test]
    fn each_caller_has_its_quota_and_the_table_a_cap() {
        let t = FlowTable::default();
        for n in 0..3 {
            assert_eq!(
                t.insert(&key(n), flow(1, 100), &LIMITS, 0),
                FlowInsert::Inserted
            );
        }
        assert_eq!(
            t.insert(&key(3), flow(1, 100), &LIMITS, 0),
            FlowInsert::CallerFull
        );
        // Another caller is not affected by caller 1's quota...
        assert_eq!(
            t.insert(&key(3), flow(2, 100), &LIMITS, 0),
            FlowInsert::Inserted
        );
        assert_eq!(
            t.insert(&key(4), flow(2, 100), &LIMITS, 0),
            FlowInsert::Inserted
        );
        // ...but all together stop at the cap.
        assert_eq!(
            t.insert(&key(5), flow(3, 100), &LIMITS, 0),
            FlowInsert::TableFull
        );
        assert_eq!(
            t.insert(&key(0), flow(3, 100), &LIMITS, 0),
            FlowInsert::StateInUse
        );
        assert_eq!(consistent(&t), 5);
        // Taking one frees a slot for its caller.
        let any = FlowCondition {
            caller: None,
            realm: None,
        };
        assert!(matches!(t.take_if(&key(0), 0, &any), FlowTake::Taken(_)));
        assert_eq!(
            t.insert(&key(6), flow(1, 100), &LIMITS, 0),
            FlowInsert::Inserted
        );
        assert_eq!(consistent(&t), 5);
    }

    #[test]
    fn expired_flows_never_count() {
        let t = FlowTable::default();
        for n in 0..3 {
            assert_eq!(
                t.insert(&key(n), flow(1, 10), &LIMITS, 0),
                FlowInsert::Inserted
            );
        }
        assert_eq!(
            t.insert(&key(9), flow(1, 20), &LIMITS, 9),
            FlowInsert::CallerFull
        );
        // At 10 the three have expired (inclusive), unswept: the caller has its quota again,
        // and an expired flow's state is free.
        assert_eq!(
            t.insert(&key(0), flow(1, 20), &LIMITS, 10),
            FlowInsert::Inserted
        );
        assert_eq!(
            t.insert(&key(1), flow(1, 20), &LIMITS, 10),
            FlowInsert::Inserted
        );
        assert_eq!(
            t.insert(&key(2), flow(1, 20), &LIMITS, 10),
            FlowInsert::Inserted
        );
        assert_eq!(consistent(&t), 3);
        // The cap too.
        let t = FlowTable::default();
        for n in 0..5 {
            assert_eq!(
                t.insert(&key(n), flow(n as u8, 10), &LIMITS, 0),
                FlowInsert::Inserted
            );
        }
        assert_eq!(
            t.insert(&key(5), flow(9, 20), &LIMITS, 9),
            FlowInsert::TableFull
        );
        assert_eq!(
            t.insert(&key(5), flow(9, 20), &LIMITS, 10),
            FlowInsert::Inserted
        );
        assert_eq!(consistent(&t), 1);
        assert_eq!(t.sweep(i64::MAX, usize::MAX), 1);
        assert_eq!(consistent(&t), 0);
    }

    #[test]
    fn a_mismatched_take_leaves_the_flow() {
        let t = FlowTable::default();
        assert_eq!(
            t.insert(&key(1), flow(1, 100), &LIMITS, 0),
            FlowInsert::Inserted
        );
        let by = |caller: u8, realm: Option<&str>| FlowCondition {
            caller: Some(Hash32([caller; 32])),
            realm: realm.map(str::to_string),
        };
        assert_eq!(
            t.take_if(&key(1), 0, &by(2, Some("oidc1"))),
            FlowTake::OtherCaller(flow(1, 100))
        );
        // The caller is checked first: another caller learns nothing about the realm.
        assert_eq!(
            t.take_if(&key(1), 0, &by(2, Some("oidc2"))),
            FlowTake::OtherCaller(flow(1, 100))
        );
        assert_eq!(
            t.take_if(&key(1), 0, &by(1, Some("oidc2"))),
            FlowTake::OtherRealm(flow(1, 100))
        );
        assert_eq!(consistent(&t), 1);
        assert_eq!(
            t.take_if(&key(1), 0, &by(1, Some("oidc1"))),
            FlowTake::Taken(flow(1, 100))
        );
        assert_eq!(t.take_if(&key(1), 0, &by(1, None)), FlowTake::NotFound);
        assert_eq!(consistent(&t), 0);
    }
}
