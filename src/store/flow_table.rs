//! Pending login flows in memory ([`FlowTable`]), shared by both store backends: the in-memory
//! one and the embedded redb one, which keeps its flows out of the file.

use super::{FlowCondition, FlowInsert, FlowLimits, FlowRecord, FlowTake};
use crate::clock::UnixMillis;
use crate::model::Hash32;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Pending login flows in memory: single-use, expiring, limited per caller and in total
/// ([`FlowLimits`]). Used by [`MemoryStore`](super::MemoryStore) and by the embedded redb
/// backend, whose flows need not survive a restart (a user whose login was in flight logs in
/// again) and are kept out of the database for speed.
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
