//! The in-memory cache of recently seen access tokens, so a bearer check is a hash and a
//! map lookup. Only valid (not invalidated) records are cached, and only what a bearer check
//! needs ([`Bearer`]: the user and the expiry, not the hashes, client or sealed data); expiry is
//! checked on every use against the injected clock. The cache is bounded in bytes (an
//! estimate of each record's size: a user with 1 MiB of claims weighs 1 MiB), not in entries.
//! An invalidation bumps the epoch before and after it writes, and a lookup caches what it
//! read only if no invalidation started meanwhile, so a stale record cannot be cached after
//! an invalidation answered.
//!
//! With a store shared by several nodes, invalidations made on other nodes arrive as store
//! changes (`crate::app` applies them: [`BearerCache::remove`], [`BearerCache::clear`]), and
//! entries carry a TTL ([`BearerCache::with_ttl`]) as the backstop.

use crate::clock::{SharedClock, UnixMillis};
use crate::model::{Hash32, UserRecord};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a valid bearer token stands for: its user, and when it expires. This is all a bearer
/// check needs, so it is all the cache keeps of a record (not its hashes, client, refresh
/// state or sealed data). The user may be shared with other tokens of the same user (the
/// store hands out one decoded user for equal records: [`crate::store::BearerRecord`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Bearer {
    pub user: Arc<UserRecord>,
    /// When the access token expires (checked on every use).
    pub expires_at: UnixMillis,
}

/// What an entry costs besides its user's heap data: the user record and its `Arc` counts
/// (counted for every entry, although the entries of one user may share one record: the bound
/// is an upper bound), and the cache's own slot (key, [`Entry`] with its [`Bearer`], hotness
/// and table overhead, which grows in steps as the table does). Checked against a counting
/// allocator by `cargo bench --bench cache_memory`: the heap per entry is 0.85-1.0 of this
/// estimate, depending on the table's fill (see docs/operations.md, "Memory").
const ENTRY_COST: u64 = (2 * size_of::<usize>() + size_of::<UserRecord>()) as u64 + 150;

/// The estimated memory of a cached entry, in bytes: what the cache's bound counts.
pub fn bearer_size(b: &Bearer) -> u64 {
    ENTRY_COST + b.user.estimated_heap()
}

/// Weighs entries by [`bearer_size`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerWeighter;

impl Weighter<Hash32, Entry> for BearerWeighter {
    fn weight(&self, _key: &Hash32, entry: &Entry) -> u64 {
        bearer_size(&entry.bearer)
    }
}

/// A cached bearer and when it was cached (the injected clock; only read with a TTL).
#[derive(Debug, Clone)]
pub struct Entry {
    bearer: Bearer,
    cached_at: UnixMillis,
}

/// How long an entry is trusted, and the clock that says so: for a store shared by several
/// nodes, the backstop behind change notifications (a notification that never arrives can
/// keep a stale entry at most this long).
#[derive(Debug, Clone)]
struct Ttl {
    millis: i64,
    clock: SharedClock,
}

#[derive(Debug)]
pub struct BearerCache {
    entries: Cache<Hash32, Entry, BearerWeighter>,
    epoch: AtomicU64,
    ttl: Option<Ttl>,
}

impl BearerCache {
    /// A cache of at most `max_bytes` (estimated).
    pub fn new(max_bytes: u64) -> Self {
        let estimated_items = (max_bytes / (ENTRY_COST * 2)).max(16) as usize;
        Self {
            entries: Cache::with_weighter(estimated_items, max_bytes, BearerWeighter),
            epoch: AtomicU64::new(0),
            ttl: None,
        }
    }

    /// [`new`](Self::new), whose entries are trusted for `ttl` after they were cached (by
    /// `clock`), then read from the store again.
    pub fn with_ttl(max_bytes: u64, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            ttl: Some(Ttl {
                millis: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
                clock,
            }),
            ..Self::new(max_bytes)
        }
    }

    fn now(&self) -> UnixMillis {
        self.ttl.as_ref().map_or(0, |t| t.clock.now_millis())
    }

    /// Drop every entry (changes may have been missed), so that no lookup that read the store
    /// before caches what it read.
    pub fn clear(&self) {
        self.begin_invalidation();
        self.entries.clear();
        self.begin_invalidation();
    }

    /// What the cache holds now, in estimated bytes.
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }

    /// How many entries the cache holds now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bound on [`weight`](Self::weight).
    pub fn capacity(&self) -> u64 {
        self.entries.capacity()
    }

    pub fn get(&self, h: &Hash32) -> Option<Bearer> {
        let entry = self.entries.get(h)?;
        if let Some(ttl) = &self.ttl {
            if entry.cached_at.saturating_add(ttl.millis) <= ttl.clock.now_millis() {
                self.entries.remove(h);
                return None;
            }
        }
        Some(entry.bearer)
    }

    /// The epoch to pass to [`insert`](Self::insert), read before the store lookup.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Cache `doc` unless an invalidation began since `epoch` was read.
    pub fn insert(&self, h: Hash32, bearer: Bearer, epoch: u64) {
        if self.epoch.load(Ordering::SeqCst) == epoch {
            let cached_at = self.now();
            self.entries.insert(h, Entry { bearer, cached_at });
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
    use crate::model::{ClientRef, Id16, RealmRef, TokenDoc, UserRecord};
    use serde_json::Value;

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
            oidc_session: None,
        }
    }

    /// The bearer view of a stored pair.
    fn bearer_of(doc: TokenDoc) -> Bearer {
        Bearer {
            expires_at: doc.access_expires_at,
            user: Arc::new(doc.user),
        }
    }

    fn bearer(n: u8, claims: usize) -> Bearer {
        bearer_of(doc(n, claims))
    }

    #[test]
    fn entries_weigh_what_they_carry() {
        let small = bearer_size(&bearer(1, 10));
        let big = bearer_size(&bearer(1, 1 << 20));
        assert!(small < 1_000, "{small}");
        assert!(big > 1 << 20, "{big}");
        // The sealed data (4 KiB in `doc`) is not kept.
        let b = bearer_of(doc(1, 10));
        assert_eq!(b.user.username, "u1");
        assert_eq!(b.expires_at, 1);
        // Every string of the user counts.
        let mut longer = bearer_of(doc(1, 10));
        let user = Arc::make_mut(&mut longer.user);
        user.roles.push("x".repeat(100));
        user.full_name = Some("y".repeat(100));
        assert!(
            bearer_size(&longer) >= small + 24 + 2 * 100,
            "{}",
            bearer_size(&longer)
        );
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let cache = BearerCache::new(4 << 20);
        // 40 records of ~1 MiB of claims each: the cache keeps at most ~4 MiB of them.
        for n in 0..40u8 {
            cache.insert(Hash32([n; 32]), bearer(n, 1 << 20), cache.epoch());
        }
        assert!(cache.weight() <= 4 << 20, "{}", cache.weight());
        // Small records are cached by the thousand in the same bound.
        let cache = BearerCache::new(4 << 20);
        let small = bearer(0, 10);
        for n in 0..2000u32 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&n.to_be_bytes());
            cache.insert(Hash32(h), small.clone(), cache.epoch());
        }
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&1999u32.to_be_bytes());
        assert!(cache.get(&Hash32(h)).is_some());
    }

    #[test]
    fn entries_expire_after_the_ttl_and_clear_drops_all() {
        let clock = crate::clock::ManualClock::at(1_000_000);
        let cache = BearerCache::with_ttl(1 << 20, Duration::from_secs(5), clock.clone());
        let d = bearer(1, 10);
        cache.insert(Hash32([1; 32]), d.clone(), cache.epoch());
        clock.advance(Duration::from_millis(4_999));
        assert!(cache.get(&Hash32([1; 32])).is_some());
        clock.advance(Duration::from_millis(1));
        assert!(
            cache.get(&Hash32([1; 32])).is_none(),
            "trusted past its TTL"
        );
        // Without a TTL an entry stays (expiry of the token itself is checked by the caller).
        let plain = BearerCache::new(1 << 20);
        plain.insert(Hash32([1; 32]), d.clone(), plain.epoch());
        cache.insert(Hash32([2; 32]), d.clone(), cache.epoch());
        let read_at = cache.epoch();
        cache.clear();
        plain.clear();
        assert!(cache.get(&Hash32([2; 32])).is_none());
        assert!(plain.get(&Hash32([1; 32])).is_none());
        // A lookup that read before the clear does not cache afterwards.
        cache.insert(Hash32([3; 32]), d, read_at);
        assert!(cache.get(&Hash32([3; 32])).is_none());
    }

    #[test]
    fn an_insert_under_an_epoch_older_than_an_invalidation_is_dropped() {
        let cache = BearerCache::new(1 << 20);
        let d = bearer(1, 10);
        let read_at = cache.epoch();
        cache.begin_invalidation();
        cache.insert(Hash32([1; 32]), d.clone(), read_at);
        assert!(cache.get(&Hash32([1; 32])).is_none());
        // Under the current epoch it is cached (the insert path works at all).
        cache.insert(Hash32([1; 32]), d, cache.epoch());
        assert!(cache.get(&Hash32([1; 32])).is_some());
    }

    // ---------------------------------------------------------------------------------------
    // The race the epoch exists for, through the token service: a store that can hold a
    // lookup between its read and its return (that is, between the store read and the cache
    // insert), and an invalidation before its write.

    use crate::clock::ManualClock;
    use crate::store::{
        Invalidation, InvalidationCounts, MemoryStore, RefreshOutcome, Store, StoreError,
    };
    use crate::tokens::format::{TokenKind, TokenSecret};
    use crate::tokens::{BearerError, Lifetimes, TokenError, TokenService};
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    /// A point where the store stops: it says it got there, then waits to be released.
    struct Gate {
        reached: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    }

    /// The test's side of a [`Gate`].
    struct Handle {
        reached: oneshot::Receiver<()>,
        release: oneshot::Sender<()>,
    }

    fn gate() -> (Gate, Handle) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        (
            Gate {
                reached: reached_tx,
                release: release_rx,
            },
            Handle {
                reached: reached_rx,
                release: release_tx,
            },
        )
    }

    impl Gate {
        async fn pass(self) {
            self.reached.send(()).unwrap();
            self.release.await.unwrap();
        }
    }

    #[derive(Debug, Default)]
    struct Gated {
        inner: MemoryStore,
        /// Held by the next `get_by_access`, after it has read the record.
        after_read: Mutex<Option<Gate>>,
        /// Held by the next `invalidate`, before it writes.
        before_invalidate: Mutex<Option<Gate>>,
    }

    impl std::fmt::Debug for Gate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Gate")
        }
    }

    impl Gated {
        fn hold_next_read(&self) -> Handle {
            let (g, h) = gate();
            *self.after_read.lock().unwrap() = Some(g);
            h
        }

        fn hold_next_invalidation(&self) -> Handle {
            let (g, h) = gate();
            *self.before_invalidate.lock().unwrap() = Some(g);
            h
        }
    }

    #[async_trait::async_trait]
    impl Store for Gated {
        async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError> {
            self.inner.insert_token(doc).await
        }
        async fn get_by_access(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
            let read = self.inner.get_by_access(hash).await;
            let held = self.after_read.lock().unwrap().take();
            if let Some(g) = held {
                g.pass().await;
            }
            read
        }
        async fn get_by_refresh(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
            self.inner.get_by_refresh(hash).await
        }
        async fn refresh(
            &self,
            hash: &Hash32,
            refreshed: crate::model::Refreshed,
            new_doc: TokenDoc,
        ) -> Result<RefreshOutcome, StoreError> {
            self.inner.refresh(hash, refreshed, new_doc).await
        }
        async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, StoreError> {
            let held = self.before_invalidate.lock().unwrap().take();
            if let Some(g) = held {
                g.pass().await;
            }
            self.inner.invalidate(what).await
        }
        async fn sweep_expired(
            &self,
            now: crate::clock::UnixMillis,
            limit: usize,
        ) -> Result<usize, StoreError> {
            self.inner.sweep_expired(now, limit).await
        }
    }

    /// A service over a gated store, one issued access token and its lookup hash.
    async fn service_with_token() -> (Arc<Gated>, TokenService, String, Hash32) {
        let store = Arc::new(Gated::default());
        let svc = TokenService::new(store.clone(), ManualClock::at(1_000_000));
        let d = doc(1, 10);
        let pair = svc
            .issue(
                d.user,
                d.client,
                Lifetimes {
                    access: std::time::Duration::from_secs(600),
                    refresh: std::time::Duration::from_secs(3600),
                },
                true,
                None,
            )
            .await
            .unwrap();
        let hash = TokenSecret::parse(TokenKind::Access, &pair.access_token)
            .unwrap()
            .lookup_hash();
        assert!(svc.cache.get(&hash).is_none(), "issuing does not cache");
        (store, svc, pair.access_token, hash)
    }

    fn spawn_authenticate(
        svc: &TokenService,
        token: &str,
    ) -> tokio::task::JoinHandle<Result<Bearer, TokenError>> {
        let (svc, token) = (svc.clone(), token.to_string());
        tokio::spawn(async move { svc.authenticate(&token).await })
    }

    async fn assert_invalidated(svc: &TokenService, token: &str, hash: &Hash32) {
        assert!(svc.cache.get(hash).is_none(), "the stale record is cached");
        assert!(matches!(
            svc.authenticate(token).await,
            Err(TokenError::Bearer(BearerError::Invalidated))
        ));
    }

    /// The control: a held lookup with no invalidation meanwhile does cache what it read (so
    /// the tests below see the insert being refused, not a path that never inserts).
    #[tokio::test]
    async fn a_held_lookup_without_an_invalidation_caches_its_record() {
        let (store, svc, token, hash) = service_with_token().await;
        let read = store.hold_next_read();
        let lookup = spawn_authenticate(&svc, &token);
        read.reached.await.unwrap();
        assert!(svc.cache.get(&hash).is_none());
        read.release.send(()).unwrap();
        assert!(lookup.await.unwrap().is_ok());
        assert!(svc.cache.get(&hash).is_some());
    }

    /// Lookup reads the epoch and the record; the whole invalidation runs (both bumps, its
    /// write, its cache removal, which finds nothing); then the lookup inserts.
    #[tokio::test]
    async fn an_invalidation_between_the_store_read_and_the_cache_insert_leaves_nothing_cached() {
        let (store, svc, token, hash) = service_with_token().await;
        let read = store.hold_next_read();
        let lookup = spawn_authenticate(&svc, &token);
        read.reached.await.unwrap();
        let counts = svc.invalidate(Invalidation::Access(hash)).await.unwrap();
        assert_eq!(counts.invalidated, 1);
        read.release.send(()).unwrap();
        // The lookup read before the invalidation wrote: it answers what it read...
        assert!(lookup.await.unwrap().is_ok());
        // ...but does not cache it, so every later check sees the invalidation.
        assert_invalidated(&svc, &token, &hash).await;
    }

    /// The invalidation bumps the epoch and stops before its write; the lookup reads the
    /// (bumped) epoch and the not yet invalidated record; the invalidation writes, bumps again
    /// and removes from the cache (nothing there yet); then the lookup inserts. The second
    /// bump is what refuses it.
    #[tokio::test]
    async fn a_lookup_starting_inside_an_invalidation_does_not_cache_the_stale_record() {
        let (store, svc, token, hash) = service_with_token().await;
        let write = store.hold_next_invalidation();
        let invalidation = {
            let svc = svc.clone();
            tokio::spawn(async move { svc.invalidate(Invalidation::Access(hash)).await })
        };
        write.reached.await.unwrap();
        let read = store.hold_next_read();
        let lookup = spawn_authenticate(&svc, &token);
        read.reached.await.unwrap();
        write.release.send(()).unwrap();
        assert_eq!(invalidation.await.unwrap().unwrap().invalidated, 1);
        read.release.send(()).unwrap();
        assert!(lookup.await.unwrap().is_ok());
        assert_invalidated(&svc, &token, &hash).await;
    }

    /// Owner invalidations (by user or realm) take the same path.
    #[tokio::test]
    async fn an_owner_invalidation_racing_a_lookup_leaves_nothing_cached() {
        let (store, svc, token, hash) = service_with_token().await;
        let read = store.hold_next_read();
        let lookup = spawn_authenticate(&svc, &token);
        read.reached.await.unwrap();
        let counts = svc
            .invalidate(Invalidation::Owner {
                realm: None,
                username: Some("u1".into()),
            })
            .await
            .unwrap();
        assert_eq!(counts.invalidated, 2); // access and refresh
        read.release.send(()).unwrap();
        assert!(lookup.await.unwrap().is_ok());
        assert_invalidated(&svc, &token, &hash).await;
    }
}
