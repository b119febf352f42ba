//! The in-memory cache of recently seen access tokens, so a bearer check is a hash and a
//! map lookup. Only valid (not invalidated) records are cached; expiry is checked on every
//! use against the injected clock. An invalidation bumps the epoch before and after it
//! writes, and a lookup caches what it read only if no invalidation started meanwhile, so a
//! stale record cannot be cached after an invalidation answered.

use crate::store::{Hash32, TokenDoc};
use quick_cache::sync::Cache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct BearerCache {
    entries: Cache<Hash32, Arc<TokenDoc>>,
    epoch: AtomicU64,
}

impl BearerCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, h: &Hash32) -> Option<Arc<TokenDoc>> {
        self.entries.get(h)
    }

    /// The epoch to pass to [`insert`](Self::insert), read before the store lookup.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Cache `doc` unless an invalidation began since `epoch` was read.
    pub fn insert(&self, h: Hash32, doc: Arc<TokenDoc>, epoch: u64) {
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.entries.insert(h, doc);
            // Re-check: an invalidation may have started between the check and the insert.
            if self.epoch.load(Ordering::SeqCst) != epoch {
                self.entries.remove(&h);
            }
        }
    }

    pub fn begin_invalidation(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn remove(&self, h: &Hash32) {
        self.entries.remove(h);
    }
}
