//! The in-memory cache of recently seen access tokens, so a bearer check is a hash and a
//! map lookup. Only valid (not invalidated) records are cached, and only what a bearer check
//! needs (the sealed logout data and a refresh's superseding pair are dropped); expiry is
//! checked on every use against the injected clock. The cache is bounded in bytes (an
//! estimate of each record's size: a user with 1 MiB of claims weighs 1 MiB), not in entries.
//! An invalidation bumps the epoch before and after it writes, and a lookup caches what it
//! read only if no invalidation started meanwhile, so a stale record cannot be cached after
//! an invalidation answered.

use crate::model::{Hash32, TokenDoc};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Default byte bound of the bearer cache.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;
/// What a cached record costs beyond its variable parts (the struct, hashes, map overhead).
const FIXED_COST: u64 = 512;

/// The estimated size of a cached record, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocWeighter;

fn value_size(v: &Value) -> u64 {
    match v {
        Value::String(s) => 24 + s.len() as u64,
        Value::Array(a) => 24 + a.iter().map(value_size).sum::<u64>(),
        Value::Object(m) => {
            48 + m
                .iter()
                .map(|(k, v)| 24 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        _ => 16,
    }
}

/// The estimated size of a record (what [`DocWeighter`] charges).
pub fn doc_size(doc: &TokenDoc) -> u64 {
    let u = &doc.user;
    let text = u.username.len()
        + u.full_name.as_deref().map_or(0, str::len)
        + u.email.as_deref().map_or(0, str::len)
        + u.roles.iter().map(|r| 24 + r.len()).sum::<usize>()
        + u.realm.name.len()
        + u.realm.kind.len()
        + doc.client.username.len()
        + doc.client.realm.len()
        + doc.sealed.as_ref().map_or(0, Vec::len);
    let metadata: u64 = u
        .metadata
        .iter()
        .map(|(k, v)| 24 + k.len() as u64 + value_size(v))
        .sum();
    FIXED_COST + text as u64 + metadata
}

impl Weighter<Hash32, Arc<TokenDoc>> for DocWeighter {
    fn weight(&self, _key: &Hash32, doc: &Arc<TokenDoc>) -> u64 {
        doc_size(doc)
    }
}

#[derive(Debug)]
pub struct BearerCache {
    entries: Cache<Hash32, Arc<TokenDoc>, DocWeighter>,
    epoch: AtomicU64,
}

impl BearerCache {
    /// A cache of at most `max_bytes` (estimated).
    pub fn new(max_bytes: u64) -> Self {
        let estimated_items = (max_bytes / (FIXED_COST * 2)).max(16) as usize;
        Self {
            entries: Cache::with_weighter(estimated_items, max_bytes, DocWeighter),
            epoch: AtomicU64::new(0),
        }
    }

    /// What the cache holds now, in estimated bytes.
    #[cfg(test)]
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }

    /// Only what a bearer check needs: the record without its sealed data.
    pub fn slim(doc: &TokenDoc) -> TokenDoc {
        TokenDoc {
            sealed: None,
            refreshed: None,
            ..doc.clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientRef, Id16, RealmRef, UserRecord};

    fn doc(n: u8, claims: usize) -> TokenDoc {
        let mut metadata = serde_json::Map::new();
        metadata.insert("oidc(big)".into(), Value::String("x".repeat(claims)));
        TokenDoc {
            access_hash: Hash32([n; 32]),
            refresh_hash: None,
            family: Id16([n; 16]),
            user: UserRecord {
                username: format!("u{n}"),
                roles: vec!["r".into()],
                full_name: None,
                email: None,
                metadata,
                realm: RealmRef {
                    name: "oidc1".into(),
                    kind: "oidc".into(),
                },
            },
            client: ClientRef {
                username: "facilitator".into(),
                realm: "default_file".into(),
            },
            created_at: 0,
            access_expires_at: 1,
            refresh_expires_at: None,
            access_invalidated: false,
            refresh_invalidated: false,
            refreshed: None,
            sealed: Some(vec![0; 4096]),
        }
    }

    #[test]
    fn records_weigh_what_they_carry() {
        let small = doc_size(&doc(1, 10));
        let big = doc_size(&doc(1, 1 << 20));
        assert!(small < 5_000, "{small}");
        assert!(big > 1 << 20, "{big}");
        // Slimmed: no sealed data.
        let slim = BearerCache::slim(&doc(1, 10));
        assert!(slim.sealed.is_none());
        assert!(doc_size(&slim) + 4096 <= small);
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let cache = BearerCache::new(4 << 20);
        // 40 records of ~1 MiB of claims each: the cache keeps at most ~4 MiB of them.
        for n in 0..40u8 {
            let d = Arc::new(BearerCache::slim(&doc(n, 1 << 20)));
            cache.insert(Hash32([n; 32]), d, cache.epoch());
        }
        assert!(cache.weight() <= 4 << 20, "{}", cache.weight());
        // Small records are cached by the thousand in the same bound.
        let cache = BearerCache::new(4 << 20);
        for n in 0..2000u32 {
            let mut d = BearerCache::slim(&doc(0, 10));
            d.access_hash = Hash32([0; 32]);
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&n.to_be_bytes());
            cache.insert(Hash32(h), Arc::new(d), cache.epoch());
        }
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&1999u32.to_be_bytes());
        assert!(cache.get(&Hash32(h)).is_some());
    }
}
