//! The behaviour every [`Store`] backend must show, as one async suite.
//!
//! A backend's test calls [`run_all`] with a function that makes a fresh, empty store:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn memory_store_conforms() {
//!     conformance::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
//! }
//! ```
//!
//! Run it on a multi-threaded runtime: the concurrency cases spawn tasks that must really race.
//! Every case is also `pub`, to run one alone while debugging a backend.

use super::*;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

/// A point in time the cases are built around.
pub const NOW: UnixMillis = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// Run every case, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    insert_and_get(make().await).await;
    bearer_lookups(make().await).await;
    insert_conflicts(make().await).await;
    concurrent_inserts(make().await).await;
    refresh_applied_then_already_refreshed(make().await).await;
    refresh_not_found_and_conflict(make().await).await;
    concurrent_refreshes(make().await).await;
    refresh_after_invalidation(make().await).await;
    refresh_racing_invalidation(make().await).await;
    invalidate_access(make().await).await;
    invalidate_refresh(make().await).await;
    invalidate_family(make().await).await;
    invalidate_owner(make().await).await;
    invalidate_oidc_session(make().await).await;
    flows_are_single_use(make().await).await;
    concurrent_flow_takes(make().await).await;
    flow_limits_count_live_flows_per_caller(make().await).await;
    conditional_takes_leave_mismatched_flows(make().await).await;
    concurrent_conditional_takes(make().await).await;
    concurrent_inserts_respect_the_quota(make().await).await;
    sweep_removes_only_expired(make().await).await;
    sweep_then_reuse_keys(make().await).await;
    role_mappings_put_get_delete(make().await).await;
    concurrent_role_mapping_puts(make().await).await;
    profiles_create_get_update(make().await).await;
    concurrent_profile_writes(make().await).await;
    records_create_get_list_update_delete(make().await).await;
    concurrent_record_writes(make().await).await;
    once_records_are_single_use_and_expire(make().await).await;
    concurrent_once_takes(make().await).await;
}

// ---------------------------------------------------------------------------------------------
// Builders

/// A hash that differs for each `(tag, n)`.
pub fn hash(tag: u8, n: u32) -> Hash32 {
    let mut h = [0u8; 32];
    h[0] = tag;
    h[1..5].copy_from_slice(&n.to_be_bytes());
    h[31] = 0x5a;
    Hash32(h)
}

/// An id that differs for each `n`.
pub fn family(n: u32) -> Id16 {
    let mut f = [0u8; 16];
    f[..4].copy_from_slice(&n.to_be_bytes());
    f[15] = 0xa5;
    Id16(f)
}

/// A pair for `username` in `realm`, valid for an hour (refresh: a day) from [`NOW`]. Access
/// hash `hash(b'a', n)`, refresh hash `hash(b'r', n)` if `with_refresh`.
pub fn token(n: u32, with_refresh: bool, fam: Id16, realm: &str, username: &str) -> TokenDoc {
    let mut metadata = serde_json::Map::new();
    metadata.insert("n".into(), n.into());
    metadata.insert(
        "groups".into(),
        serde_json::json!(["ops", {"nested": [1, 2.5, null, true]}]),
    );
    TokenDoc {
        access_hash: hash(b'a', n),
        refresh_hash: with_refresh.then(|| hash(b'r', n)),
        family: fam,
        user: UserRecord {
            username: username.to_owned(),
            roles: vec!["kibana_user".into(), format!("role-{n}")],
            full_name: Some("Ünïcødé Üser".into()),
            email: None,
            metadata,
            realm: RealmRef {
                name: realm.to_owned(),
                kind: "oidc".into(),
            },
        },
        client: ClientRef {
            username: "kibana_system".into(),
            realm: "reserved".into(),
        },
        created_at: NOW,
        access_expires_at: NOW + HOUR,
        refresh_expires_at: with_refresh.then_some(NOW + 24 * HOUR),
        access_invalidated: false,
        refresh_invalidated: false,
        refreshed: None,
        sealed: Some(vec![0, 1, 2, 255, n as u8]),
        oidc_session: None,
    }
}

/// A pending flow of caller `caller(0)` expiring at `expires_at`.
pub fn flow(realm: &str, expires_at: UnixMillis) -> FlowRecord {
    flow_of(realm, caller(0), expires_at)
}

/// A pending flow of `caller` expiring at `expires_at`.
pub fn flow_of(realm: &str, caller: Hash32, expires_at: UnixMillis) -> FlowRecord {
    FlowRecord {
        realm: realm.to_owned(),
        caller,
        expires_at,
        sealed: vec![9, 8, 7, 0, 255],
    }
}

/// A caller hash that differs for each `n`.
pub fn caller(n: u32) -> Hash32 {
    hash(b'c', n)
}

/// The condition "started by `caller(n)`, for `realm` if given".
pub fn by(n: u32, realm: Option<&str>) -> FlowCondition {
    FlowCondition {
        caller: Some(caller(n)),
        realm: realm.map(str::to_owned),
    }
}

fn limits(per_caller: usize, total: usize) -> FlowLimits {
    FlowLimits { per_caller, total }
}

fn counts(inv: u64, prev: u64) -> (u64, u64) {
    (inv, prev)
}

fn pair(c: &InvalidationCounts) -> (u64, u64) {
    (c.invalidated, c.previously_invalidated)
}

fn set(hashes: &[Hash32]) -> HashSet<Hash32> {
    hashes.iter().copied().collect()
}

async fn get(store: &Arc<dyn Store>, access: Hash32) -> TokenDoc {
    store
        .get_by_access(&access)
        .await
        .expect("get_by_access")
        .unwrap_or_else(|| panic!("no doc under {access:?}"))
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A stored pair comes back whole, by access and by refresh hash; unknown hashes find nothing.
pub async fn insert_and_get(store: Arc<dyn Store>) {
    let with = token(1, true, family(1), "oidc1", "alice");
    let mut without = token(2, false, family(2), "oidc\0weird", "böb\0x");
    without.sealed = None;
    without.created_at = -5;
    store.insert_token(with.clone()).await.unwrap();
    store.insert_token(without.clone()).await.unwrap();

    assert_eq!(
        store.get_by_access(&with.access_hash).await.unwrap(),
        Some(with.clone())
    );
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 1)).await.unwrap(),
        Some(with.clone())
    );
    assert_eq!(
        store.get_by_access(&without.access_hash).await.unwrap(),
        Some(without)
    );
    assert_eq!(store.get_by_refresh(&hash(b'r', 2)).await.unwrap(), None);
    assert_eq!(store.get_by_access(&hash(b'a', 3)).await.unwrap(), None);
    assert_eq!(
        store.get_by_refresh(&hash(b'a', 1)).await.unwrap(),
        None,
        "refresh lookup by access hash"
    );
    assert_eq!(
        store.get_by_access(&hash(b'r', 1)).await.unwrap(),
        None,
        "access lookup by refresh hash"
    );
}

/// `get_bearer`: what a bearer check reads, before and after an invalidation; unknown and
/// refresh hashes are not found; two pairs of one user give equal users.
pub async fn bearer_lookups(store: Arc<dyn Store>) {
    let first = token(1, true, family(1), "oidc1", "alice");
    let mut second = token(2, false, family(2), "oidc1", "alice");
    second.user = first.user.clone();
    second.access_expires_at = first.access_expires_at + 1;
    let other = token(3, true, family(3), "oidc1", "bob");
    for doc in [&first, &second, &other] {
        store.insert_token(doc.clone()).await.unwrap();
    }
    let read = |h: Hash32| {
        let store = store.clone();
        async move { store.get_bearer(&h).await.unwrap() }
    };
    for doc in [&first, &second, &other] {
        let got = read(doc.access_hash).await.expect("stored pair");
        assert_eq!(got.expires_at, doc.access_expires_at);
        assert!(!got.invalidated);
        assert_eq!(*got.user, doc.user);
    }
    // Read again: a backend that shares decoded users still hands out the right one.
    assert_eq!(*read(first.access_hash).await.unwrap().user, first.user);
    assert_eq!(*read(other.access_hash).await.unwrap().user, other.user);
    assert_eq!(read(hash(b'a', 9)).await, None);
    assert_eq!(read(hash(b'r', 1)).await, None, "a refresh hash");
    store
        .invalidate(Invalidation::Access(first.access_hash))
        .await
        .unwrap();
    assert!(read(first.access_hash).await.unwrap().invalidated);
    assert!(!read(second.access_hash).await.unwrap().invalidated);
}

/// An access or refresh hash that exists already → `Conflict`, and the stored pair is kept.
pub async fn insert_conflicts(store: Arc<dyn Store>) {
    let first = token(1, true, family(1), "oidc1", "alice");
    store.insert_token(first.clone()).await.unwrap();

    let mut same_access = token(1, false, family(9), "oidc1", "mallory");
    same_access.refresh_hash = Some(hash(b'r', 99));
    assert!(matches!(
        store.insert_token(same_access).await,
        Err(StoreError::Conflict)
    ));
    let mut same_refresh = token(2, true, family(9), "oidc1", "mallory");
    same_refresh.refresh_hash = first.refresh_hash;
    assert!(matches!(
        store.insert_token(same_refresh).await,
        Err(StoreError::Conflict)
    ));

    assert_eq!(get(&store, first.access_hash).await, first);
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 1)).await.unwrap(),
        Some(first)
    );
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 99)).await.unwrap(),
        None,
        "a refused pair left its refresh hash"
    );
    assert_eq!(
        store.get_by_access(&hash(b'a', 2)).await.unwrap(),
        None,
        "a refused pair left its access hash"
    );
    // Two pairs without refresh tokens do not conflict with each other.
    store
        .insert_token(token(3, false, family(3), "oidc1", "a"))
        .await
        .unwrap();
    store
        .insert_token(token(4, false, family(3), "oidc1", "a"))
        .await
        .unwrap();
}

/// Many tasks insert at once: every distinct pair is stored; of several inserting the same
/// pair, exactly one succeeds and the others get `Conflict` without failing anyone else.
pub async fn concurrent_inserts(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for n in 0..64u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_token(token(
                    n,
                    n % 3 != 0,
                    family(n % 5),
                    "oidc1",
                    &format!("u{}", n % 7),
                ))
                .await
        }));
    }
    for n in 0..16u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut doc = token(1000, true, family(1000), "oidc1", "dup");
            doc.created_at += i64::from(n);
            store.insert_token(doc).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    for (n, r) in results[..64].iter().enumerate() {
        assert!(r.is_ok(), "insert {n}: {r:?}");
    }
    let dup_ok = results[64..].iter().filter(|r| r.is_ok()).count();
    let dup_conflict = results[64..]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict)))
        .count();
    assert_eq!((dup_ok, dup_conflict), (1, 15));
    for n in 0..64u32 {
        let doc = get(&store, hash(b'a', n)).await;
        assert_eq!(doc.user.username, format!("u{}", n % 7));
        if n % 3 != 0 {
            assert_eq!(
                store.get_by_refresh(&hash(b'r', n)).await.unwrap(),
                Some(doc)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh

fn refreshed(n: u8) -> Refreshed {
    Refreshed {
        at: NOW + i64::from(n),
        superseding: vec![n; 40],
    }
}

/// The first refresh marks the pair and stores the new one; a second finds it refreshed,
/// gets the pair as it is now, and stores nothing.
pub async fn refresh_applied_then_already_refreshed(store: Arc<dyn Store>) {
    let old = token(1, true, family(1), "oidc1", "alice");
    store.insert_token(old.clone()).await.unwrap();
    let new = token(2, true, family(1), "oidc1", "alice");

    let outcome = store
        .refresh(&hash(b'r', 1), refreshed(1), new.clone())
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Applied);
    let mut marked = old.clone();
    marked.refreshed = Some(refreshed(1));
    assert_eq!(get(&store, old.access_hash).await, marked);
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 1)).await.unwrap(),
        Some(marked.clone())
    );
    assert_eq!(get(&store, new.access_hash).await, new);
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 2)).await.unwrap(),
        Some(new.clone())
    );

    let again = token(3, true, family(1), "oidc1", "alice");
    let outcome = store
        .refresh(&hash(b'r', 1), refreshed(2), again)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RefreshOutcome::AlreadyRefreshed(Box::new(marked.clone()))
    );
    assert_eq!(store.get_by_access(&hash(b'a', 3)).await.unwrap(), None);
    assert_eq!(store.get_by_refresh(&hash(b'r', 3)).await.unwrap(), None);
    assert_eq!(
        get(&store, old.access_hash).await,
        marked,
        "a repeat changed the pair"
    );

    // The new pair refreshes in its turn.
    let third = token(4, true, family(1), "oidc1", "alice");
    assert_eq!(
        store
            .refresh(&hash(b'r', 2), refreshed(3), third)
            .await
            .unwrap(),
        RefreshOutcome::Applied
    );
}

/// Unknown refresh hash → `NotFound`; a new pair that conflicts → `Conflict` and the old pair
/// is left unrefreshed.
pub async fn refresh_not_found_and_conflict(store: Arc<dyn Store>) {
    let new = token(2, true, family(1), "oidc1", "alice");
    assert_eq!(
        store
            .refresh(&hash(b'r', 1), refreshed(1), new.clone())
            .await
            .unwrap(),
        RefreshOutcome::NotFound
    );
    assert_eq!(store.get_by_access(&new.access_hash).await.unwrap(), None);
    // An access hash is not a refresh hash.
    let old = token(1, true, family(1), "oidc1", "alice");
    store.insert_token(old.clone()).await.unwrap();
    assert_eq!(
        store
            .refresh(&hash(b'a', 1), refreshed(1), new.clone())
            .await
            .unwrap(),
        RefreshOutcome::NotFound
    );

    let existing = token(5, true, family(5), "oidc1", "bob");
    store.insert_token(existing.clone()).await.unwrap();
    let mut clash = token(6, true, family(1), "oidc1", "alice");
    clash.access_hash = existing.access_hash;
    assert!(matches!(
        store.refresh(&hash(b'r', 1), refreshed(1), clash).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        get(&store, old.access_hash).await,
        old,
        "a failed refresh marked the pair"
    );
    assert_eq!(get(&store, existing.access_hash).await, existing);
    assert_eq!(store.get_by_refresh(&hash(b'r', 6)).await.unwrap(), None);
    // It can still be refreshed properly.
    assert_eq!(
        store
            .refresh(&hash(b'r', 1), refreshed(2), new)
            .await
            .unwrap(),
        RefreshOutcome::Applied
    );
}

/// Many concurrent refreshes of one pair: exactly one `Applied`, the rest `AlreadyRefreshed`
/// carrying the winner's `Refreshed`, and only the winner's new pair stored.
pub async fn concurrent_refreshes(store: Arc<dyn Store>) {
    let old = token(0, true, family(1), "oidc1", "alice");
    store.insert_token(old.clone()).await.unwrap();
    let mut tasks = Vec::new();
    for n in 1..=32u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let new = token(u32::from(n), true, family(1), "oidc1", "alice");
            (n, store.refresh(&hash(b'r', 0), refreshed(n), new).await)
        }));
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for t in tasks {
        let (n, outcome) = t.await.expect("task");
        match outcome.unwrap() {
            RefreshOutcome::Applied => winners.push(n),
            RefreshOutcome::AlreadyRefreshed(doc) => seen.push(doc.refreshed.clone()),
            RefreshOutcome::NotFound => panic!("refresh {n}: NotFound"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let w = winners[0];
    assert_eq!(seen.len(), 31);
    assert!(
        seen.iter().all(|r| *r == Some(refreshed(w))),
        "losers saw {seen:?}"
    );
    assert_eq!(
        get(&store, old.access_hash).await.refreshed,
        Some(refreshed(w))
    );
    for n in 1..=32u8 {
        let stored = store
            .get_by_access(&hash(b'a', u32::from(n)))
            .await
            .unwrap();
        assert_eq!(stored.is_some(), n == w, "new pair {n}");
    }
}

/// A pair whose refresh token was invalidated before any refresh cannot be refreshed
/// (`NotFound`, nothing stored); one refreshed first still answers `AlreadyRefreshed`, flags
/// and all; an invalidated access token alone does not stop a refresh.
pub async fn refresh_after_invalidation(store: Arc<dyn Store>) {
    let logged_out = token(1, true, family(1), "oidc1", "alice");
    store.insert_token(logged_out.clone()).await.unwrap();
    store
        .invalidate(Invalidation::Refresh(hash(b'r', 1)))
        .await
        .unwrap();
    let new = token(2, true, family(1), "oidc1", "alice");
    assert_eq!(
        store
            .refresh(&hash(b'r', 1), refreshed(1), new.clone())
            .await
            .unwrap(),
        RefreshOutcome::NotFound
    );
    assert_eq!(store.get_by_access(&new.access_hash).await.unwrap(), None);
    assert_eq!(get(&store, logged_out.access_hash).await.refreshed, None);

    let old = token(3, true, family(3), "oidc1", "bob");
    store.insert_token(old.clone()).await.unwrap();
    let next = token(4, true, family(3), "oidc1", "bob");
    assert_eq!(
        store
            .refresh(&hash(b'r', 3), refreshed(3), next)
            .await
            .unwrap(),
        RefreshOutcome::Applied
    );
    store
        .invalidate(Invalidation::Family(family(3)))
        .await
        .unwrap();
    match store
        .refresh(
            &hash(b'r', 3),
            refreshed(4),
            token(5, true, family(3), "oidc1", "bob"),
        )
        .await
        .unwrap()
    {
        RefreshOutcome::AlreadyRefreshed(doc) => {
            assert!(doc.refresh_invalidated && doc.access_invalidated);
            assert_eq!(doc.refreshed, Some(refreshed(3)));
        }
        other => panic!("expected AlreadyRefreshed, got {other:?}"),
    }

    let access_gone = token(6, true, family(6), "oidc1", "carol");
    store.insert_token(access_gone).await.unwrap();
    store
        .invalidate(Invalidation::Access(hash(b'a', 6)))
        .await
        .unwrap();
    assert_eq!(
        store
            .refresh(
                &hash(b'r', 6),
                refreshed(6),
                token(7, true, family(6), "oidc1", "carol")
            )
            .await
            .unwrap(),
        RefreshOutcome::Applied
    );
}

/// A refresh racing a family invalidation: either the refresh comes first (and the new pair,
/// same family, is invalidated too) or the invalidation does (and nothing is stored). Never a
/// valid pair after the invalidation returned.
pub async fn refresh_racing_invalidation(store: Arc<dyn Store>) {
    for round in 0..16u32 {
        let (old_n, new_n) = (round * 2, round * 2 + 1);
        let fam = family(1000 + round);
        store
            .insert_token(token(old_n, true, fam, "oidc1", "alice"))
            .await
            .unwrap();
        let refresher = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .refresh(
                        &hash(b'r', old_n),
                        refreshed(1),
                        token(new_n, true, fam, "oidc1", "alice"),
                    )
                    .await
            })
        };
        let invalidator = {
            let store = store.clone();
            tokio::spawn(async move { store.invalidate(Invalidation::Family(fam)).await })
        };
        let outcome = refresher.await.expect("task").unwrap();
        invalidator.await.expect("task").unwrap();
        match outcome {
            RefreshOutcome::Applied => {
                let new = get(&store, hash(b'a', new_n)).await;
                assert!(
                    new.access_invalidated && new.refresh_invalidated,
                    "round {round}"
                );
            }
            RefreshOutcome::NotFound => {
                assert_eq!(store.get_by_access(&hash(b'a', new_n)).await.unwrap(), None);
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Invalidation

/// One access token: its refresh token stays valid; a repeat counts as previously invalidated.
pub async fn invalidate_access(store: Arc<dyn Store>) {
    let doc = token(1, true, family(1), "oidc1", "alice");
    store.insert_token(doc.clone()).await.unwrap();
    let c = store
        .invalidate(Invalidation::Access(doc.access_hash))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(1, 0));
    assert_eq!(c.access_hashes, vec![doc.access_hash]);
    let now = get(&store, doc.access_hash).await;
    assert!(now.access_invalidated && !now.refresh_invalidated);

    let c = store
        .invalidate(Invalidation::Access(doc.access_hash))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(0, 1));
    assert!(c.access_hashes.is_empty());

    let c = store
        .invalidate(Invalidation::Access(hash(b'a', 9)))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
    let c = store
        .invalidate(Invalidation::Access(hash(b'r', 1)))
        .await
        .unwrap();
    assert_eq!(
        c,
        InvalidationCounts::default(),
        "a refresh hash is not an access hash"
    );
}

/// One refresh token: its access token stays valid and is not reported.
pub async fn invalidate_refresh(store: Arc<dyn Store>) {
    let doc = token(1, true, family(1), "oidc1", "alice");
    store.insert_token(doc.clone()).await.unwrap();
    let c = store
        .invalidate(Invalidation::Refresh(hash(b'r', 1)))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(1, 0));
    assert!(c.access_hashes.is_empty());
    let now = get(&store, doc.access_hash).await;
    assert!(!now.access_invalidated && now.refresh_invalidated);
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 1)).await.unwrap(),
        Some(now)
    );

    let c = store
        .invalidate(Invalidation::Refresh(hash(b'r', 1)))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(0, 1));
    let c = store
        .invalidate(Invalidation::Refresh(hash(b'a', 1)))
        .await
        .unwrap();
    assert_eq!(
        c,
        InvalidationCounts::default(),
        "an access hash is not a refresh hash"
    );
    let c = store
        .invalidate(Invalidation::Refresh(hash(b'r', 9)))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
}

/// A family: every access and refresh token of it, each counted once; other families untouched.
pub async fn invalidate_family(store: Arc<dyn Store>) {
    let f = family(7);
    let both = token(1, true, f, "oidc1", "alice");
    let access_only = token(2, false, f, "oidc1", "alice");
    let mut half_done = token(3, true, f, "oidc1", "alice");
    half_done.access_invalidated = true;
    // Family ids that share a prefix with `f` must not be caught.
    let mut near = family(7);
    near.0[15] = 0xa6;
    let other = token(4, true, near, "oidc1", "alice");
    for d in [&both, &access_only, &half_done, &other] {
        store.insert_token(d.clone()).await.unwrap();
    }

    let c = store.invalidate(Invalidation::Family(f)).await.unwrap();
    // both: 2; access_only: 1; half_done: refresh 1 + access previously 1.
    assert_eq!(pair(&c), counts(4, 1));
    assert_eq!(
        set(&c.access_hashes),
        set(&[both.access_hash, access_only.access_hash])
    );
    assert_eq!(c.access_hashes.len(), 2);
    for d in [&both, &access_only, &half_done] {
        let now = get(&store, d.access_hash).await;
        assert!(now.access_invalidated);
        assert_eq!(now.refresh_invalidated, d.refresh_hash.is_some());
    }
    let untouched = get(&store, other.access_hash).await;
    assert_eq!(untouched, other);

    let c = store.invalidate(Invalidation::Family(f)).await.unwrap();
    assert_eq!(pair(&c), counts(0, 5));
    assert!(c.access_hashes.is_empty());
    let c = store
        .invalidate(Invalidation::Family(family(99)))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
}

/// By realm, by username across realms, by both; names that are prefixes of others are not
/// caught; a selector with neither selects nothing.
pub async fn invalidate_owner(store: Arc<dyn Store>) {
    let docs = [
        token(1, true, family(1), "oidc1", "alice"),
        token(2, false, family(2), "oidc1", "bob"),
        token(3, true, family(3), "oidc2", "alice"),
        token(4, true, family(4), "oidc2", "carol"),
        token(5, true, family(5), "oidc", "alice"),
        token(6, true, family(6), "oidc1", "ali"),
        token(7, true, family(7), "oidc11", "alice"),
        token(8, true, family(8), "oidc3", "alicea"),
    ];
    for d in &docs {
        store.insert_token(d.clone()).await.unwrap();
    }
    let a = |n: u32| hash(b'a', n);
    let owner = |realm: Option<&str>, username: Option<&str>| Invalidation::Owner {
        realm: realm.map(str::to_owned),
        username: username.map(str::to_owned),
    };

    let c = store.invalidate(owner(None, None)).await.unwrap();
    assert_eq!(
        c,
        InvalidationCounts::default(),
        "an empty owner selector selects nothing"
    );

    let c = store.invalidate(owner(Some("oidc1"), None)).await.unwrap();
    // 1: 2 tokens, 2: 1, 6: 2.
    assert_eq!(pair(&c), counts(5, 0));
    assert_eq!(set(&c.access_hashes), set(&[a(1), a(2), a(6)]));

    let c = store.invalidate(owner(None, Some("alice"))).await.unwrap();
    // 1: previously 2; 3, 5, 7: 2 each.
    assert_eq!(pair(&c), counts(6, 2));
    assert_eq!(set(&c.access_hashes), set(&[a(3), a(5), a(7)]));

    let c = store
        .invalidate(owner(Some("oidc2"), Some("carol")))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(2, 0));
    assert_eq!(c.access_hashes, vec![a(4)]);

    let c = store
        .invalidate(owner(Some("oidc2"), Some("nobody")))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
    let c = store
        .invalidate(owner(Some("nowhere"), None))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());

    let still_valid = get(&store, a(8)).await;
    assert!(!still_valid.access_invalidated && !still_valid.refresh_invalidated);
    for n in 1..=7 {
        let d = get(&store, a(n)).await;
        assert!(d.access_invalidated, "doc {n}");
        assert_eq!(d.refresh_invalidated, d.refresh_hash.is_some(), "doc {n}");
    }
}

/// Back-Channel Logout: the tokens of the logins of a realm with a provider session `sid`
/// and/or `sub`; nothing without either, nothing in another realm, nothing without a session.
pub async fn invalidate_oidc_session(store: Arc<dyn Store>) {
    let session = |sub: &str, sid: Option<&str>| {
        Some(crate::model::OidcSession {
            sub: sub.into(),
            sid: sid.map(str::to_owned),
        })
    };
    let mut docs = [
        token(1, true, family(1), "oidc1", "alice"),
        token(2, true, family(2), "oidc1", "alice"),
        token(3, false, family(3), "oidc1", "bob"),
        token(4, true, family(4), "oidc2", "alice"),
        token(5, true, family(5), "oidc1", "alice"),
        token(6, true, family(6), "oidc1", "carol"),
    ];
    docs[0].oidc_session = session("sub-a", Some("sid-1"));
    docs[1].oidc_session = session("sub-a", Some("sid-2"));
    docs[2].oidc_session = session("sub-b", Some("sid-1"));
    docs[3].oidc_session = session("sub-a", Some("sid-1"));
    docs[4].oidc_session = None;
    docs[5].oidc_session = session("sub-c", None);
    for d in &docs {
        store.insert_token(d.clone()).await.unwrap();
        assert_eq!(
            get(&store, d.access_hash).await.oidc_session,
            d.oidc_session
        );
    }
    let a = |n: u32| hash(b'a', n);
    let by = |realm: &str, sub: Option<&str>, sid: Option<&str>| Invalidation::OidcSession {
        realm: realm.into(),
        sub: sub.map(str::to_owned),
        sid: sid.map(str::to_owned),
    };
    assert_eq!(
        store.invalidate(by("oidc1", None, None)).await.unwrap(),
        InvalidationCounts::default(),
        "neither sub nor sid selects nothing"
    );
    // sid and sub together: both must match.
    let c = store
        .invalidate(by("oidc1", Some("sub-b"), Some("sid-2")))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
    // sid alone: doc 1 (2 tokens) and doc 3 (1); not doc 4 (another realm).
    let c = store
        .invalidate(by("oidc1", None, Some("sid-1")))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(3, 0));
    assert_eq!(set(&c.access_hashes), set(&[a(1), a(3)]));
    // sub alone: every session of the user in the realm (doc 2; doc 1 again).
    let c = store
        .invalidate(by("oidc1", Some("sub-a"), None))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(2, 2));
    assert_eq!(c.access_hashes, vec![a(2)]);
    // A session without sid is found by its sub.
    let c = store
        .invalidate(by("oidc1", Some("sub-c"), None))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(2, 0));
    for n in [4, 5] {
        let d = get(&store, a(n)).await;
        assert!(!d.access_invalidated && !d.refresh_invalidated, "doc {n}");
    }
    for n in [1, 2, 3, 6] {
        let d = get(&store, a(n)).await;
        assert!(d.access_invalidated, "doc {n}");
        assert_eq!(d.refresh_invalidated, d.refresh_hash.is_some(), "doc {n}");
    }
}

// ---------------------------------------------------------------------------------------------
// Flows

/// A flow is taken once; a second take, an unknown state, and an expired flow give `None`
/// (the expired one is removed); a state in use → `Conflict`.
pub async fn flows_are_single_use(store: Arc<dyn Store>) {
    let s1 = hash(b's', 1);
    let f1 = flow("oidc1", NOW + 600_000);
    store.insert_flow(&s1, f1.clone()).await.unwrap();
    assert!(matches!(
        store.insert_flow(&s1, flow("oidc2", NOW + 1)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.take_flow(&s1, NOW).await.unwrap(), Some(f1.clone()));
    assert_eq!(store.take_flow(&s1, NOW).await.unwrap(), None);
    assert_eq!(store.take_flow(&hash(b's', 9), NOW).await.unwrap(), None);
    // Taken, the state may be used again.
    store.insert_flow(&s1, f1.clone()).await.unwrap();
    assert_eq!(store.take_flow(&s1, NOW).await.unwrap(), Some(f1));

    // Expiry is inclusive: `expires_at <= now` is expired.
    let s2 = hash(b's', 2);
    store.insert_flow(&s2, flow("oidc1", NOW)).await.unwrap();
    assert_eq!(store.take_flow(&s2, NOW).await.unwrap(), None);
    assert_eq!(
        store.take_flow(&s2, NOW - 1_000).await.unwrap(),
        None,
        "an expired flow stayed"
    );
    let s3 = hash(b's', 3);
    let f3 = flow("oidc1", NOW + 1);
    store.insert_flow(&s3, f3.clone()).await.unwrap();
    assert_eq!(store.take_flow(&s3, NOW).await.unwrap(), Some(f3));
}

/// Of many concurrent takes of one flow, exactly one gets it.
pub async fn concurrent_flow_takes(store: Arc<dyn Store>) {
    for round in 0..4u32 {
        let s = hash(b's', round);
        store
            .insert_flow(&s, flow("oidc1", NOW + 600_000))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.take_flow(&s, NOW).await }));
        }
        let mut got = 0;
        for t in tasks {
            if t.await.expect("task").unwrap().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, 1, "round {round}");
    }
}

/// Each caller has its own quota and all callers together a cap; a state in use is refused
/// first; nothing is stored when refused; expired flows (`expires_at <= now`) never count,
/// swept or not, and do not hold their state.
pub async fn flow_limits_count_live_flows_per_caller(store: Arc<dyn Store>) {
    let lim = limits(3, 5);
    let insert = |n: u32, c: u32, expires_at: UnixMillis, now: UnixMillis| {
        let store = store.clone();
        async move {
            store
                .insert_flow_within(
                    &hash(b's', n),
                    flow_of("oidc1", caller(c), expires_at),
                    &lim,
                    now,
                )
                .await
                .unwrap()
        }
    };
    for n in 0..3 {
        assert_eq!(insert(n, 1, NOW + 100, NOW).await, FlowInsert::Inserted);
    }
    assert_eq!(insert(3, 1, NOW + 100, NOW).await, FlowInsert::CallerFull);
    assert_eq!(insert(0, 2, NOW + 100, NOW).await, FlowInsert::StateInUse);
    // Caller 2 is not held back by caller 1...
    assert_eq!(insert(3, 2, NOW + 100, NOW).await, FlowInsert::Inserted);
    assert_eq!(insert(4, 2, NOW + 50, NOW).await, FlowInsert::Inserted);
    // ...until all callers together reach the cap.
    assert_eq!(insert(5, 3, NOW + 100, NOW).await, FlowInsert::TableFull);
    // Refused inserts stored nothing.
    assert_eq!(
        store
            .take_flow_if(&hash(b's', 5), NOW, &by(3, None))
            .await
            .unwrap(),
        FlowTake::NotFound
    );
    // Taking a flow frees its caller's slot.
    assert!(matches!(
        store
            .take_flow_if(&hash(b's', 0), NOW, &by(1, None))
            .await
            .unwrap(),
        FlowTake::Taken(_)
    ));
    assert_eq!(insert(6, 1, NOW + 100, NOW).await, FlowInsert::Inserted);
    assert_eq!(insert(7, 1, NOW + 100, NOW).await, FlowInsert::CallerFull);
    // At NOW + 50 flow 4 has expired (inclusive), unswept: it counts toward no limit and its
    // state is free again.
    assert_eq!(
        insert(4, 3, NOW + 200, NOW + 50).await,
        FlowInsert::Inserted
    );
    assert_eq!(
        insert(8, 3, NOW + 200, NOW + 50).await,
        FlowInsert::TableFull
    );
    // At NOW + 100 every flow of callers 1 and 2 has expired.
    for n in 10..13 {
        assert_eq!(
            insert(n, 1, NOW + 300, NOW + 100).await,
            FlowInsert::Inserted
        );
    }
    assert_eq!(
        insert(13, 1, NOW + 300, NOW + 100).await,
        FlowInsert::CallerFull
    );
    assert_eq!(
        insert(14, 2, NOW + 300, NOW + 100).await,
        FlowInsert::Inserted
    );
    assert_eq!(
        insert(15, 2, NOW + 300, NOW + 100).await,
        FlowInsert::TableFull
    );
    for n in [1u32, 2, 3, 6] {
        assert_eq!(
            store
                .take_flow_if(
                    &hash(b's', n),
                    NOW + 100,
                    &FlowCondition {
                        caller: None,
                        realm: None
                    }
                )
                .await
                .unwrap(),
            FlowTake::NotFound,
            "flow {n} expired"
        );
    }
    assert!(matches!(
        store.take_flow_if(&hash(b's', 4), NOW + 100, &by(3, Some("oidc1"))).await.unwrap(),
        FlowTake::Taken(f) if f.expires_at == NOW + 200
    ));
}

/// A take by another caller, or for another realm, leaves the flow in place for the right
/// one; the caller is checked before the realm (another caller learns nothing about it).
pub async fn conditional_takes_leave_mismatched_flows(store: Arc<dyn Store>) {
    let s = hash(b's', 1);
    let f = flow_of("oidc1", caller(1), NOW + 600_000);
    assert_eq!(
        store
            .insert_flow_within(&s, f.clone(), &limits(10, 10), NOW)
            .await
            .unwrap(),
        FlowInsert::Inserted
    );
    for cond in [by(2, Some("oidc1")), by(2, Some("oidc2")), by(2, None)] {
        assert_eq!(
            store.take_flow_if(&s, NOW, &cond).await.unwrap(),
            FlowTake::OtherCaller(f.clone()),
            "{cond:?}"
        );
    }
    assert_eq!(
        store
            .take_flow_if(&s, NOW, &by(1, Some("oidc2")))
            .await
            .unwrap(),
        FlowTake::OtherRealm(f.clone())
    );
    assert_eq!(
        store
            .take_flow_if(
                &s,
                NOW,
                &FlowCondition {
                    caller: None,
                    realm: Some("oidc2".into())
                }
            )
            .await
            .unwrap(),
        FlowTake::OtherRealm(f.clone())
    );
    // Still pending: the state is in use...
    assert_eq!(
        store
            .insert_flow_within(
                &s,
                flow_of("oidc1", caller(2), NOW + 1),
                &limits(10, 10),
                NOW
            )
            .await
            .unwrap(),
        FlowInsert::StateInUse
    );
    // ...and the right caller takes it, once.
    assert_eq!(
        store
            .take_flow_if(&s, NOW, &by(1, Some("oidc1")))
            .await
            .unwrap(),
        FlowTake::Taken(f.clone())
    );
    assert_eq!(
        store
            .take_flow_if(&s, NOW, &by(1, Some("oidc1")))
            .await
            .unwrap(),
        FlowTake::NotFound
    );
    assert_eq!(
        store.take_flow_if(&s, NOW, &by(2, None)).await.unwrap(),
        FlowTake::NotFound
    );
    // The realm alone may be omitted.
    assert_eq!(
        store
            .insert_flow_within(&s, f.clone(), &limits(10, 10), NOW)
            .await
            .unwrap(),
        FlowInsert::Inserted
    );
    assert_eq!(
        store.take_flow_if(&s, NOW, &by(1, None)).await.unwrap(),
        FlowTake::Taken(f.clone())
    );
    // An expired flow is not found, whoever asks, and is gone.
    assert_eq!(
        store
            .insert_flow_within(
                &s,
                flow_of("oidc1", caller(1), NOW),
                &limits(10, 10),
                NOW - 1
            )
            .await
            .unwrap(),
        FlowInsert::Inserted
    );
    assert_eq!(
        store.take_flow_if(&s, NOW, &by(2, None)).await.unwrap(),
        FlowTake::NotFound
    );
    assert_eq!(
        store.take_flow_if(&s, NOW - 1, &by(1, None)).await.unwrap(),
        FlowTake::NotFound,
        "an expired flow stayed"
    );
}

/// Of many concurrent takes of one flow by its caller and by others, exactly one succeeds,
/// always its caller's; the others get `OtherCaller` (while it is there) or `NotFound`.
pub async fn concurrent_conditional_takes(store: Arc<dyn Store>) {
    for round in 0..8u32 {
        let s = hash(b's', round);
        let f = flow_of("oidc1", caller(1), NOW + 600_000);
        assert_eq!(
            store
                .insert_flow_within(&s, f, &limits(100, 100), NOW)
                .await
                .unwrap(),
            FlowInsert::Inserted
        );
        let mut tasks = Vec::new();
        for i in 0..32u32 {
            let store = store.clone();
            let who = if i % 2 == 0 { 1 } else { 2 };
            tasks.push(tokio::spawn(async move {
                (
                    who,
                    store.take_flow_if(&s, NOW, &by(who, Some("oidc1"))).await,
                )
            }));
        }
        let mut taken = 0;
        for t in tasks {
            let (who, got) = t.await.expect("task");
            match got.unwrap() {
                FlowTake::Taken(_) => {
                    assert_eq!(who, 1, "round {round}: taken by another caller");
                    taken += 1;
                }
                FlowTake::OtherCaller(_) => assert_eq!(who, 2, "round {round}"),
                FlowTake::NotFound => {}
                FlowTake::OtherRealm(_) => panic!("round {round}: realm mismatch"),
            }
        }
        assert_eq!(taken, 1, "round {round}");
    }
}

/// Concurrent inserts by one caller stop exactly at its quota.
pub async fn concurrent_inserts_respect_the_quota(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for n in 0..64u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_flow_within(
                    &hash(b's', n),
                    flow_of("oidc1", caller(1), NOW + 600_000),
                    &limits(10, 1_000),
                    NOW,
                )
                .await
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        match t.await.expect("task").unwrap() {
            FlowInsert::Inserted => inserted += 1,
            FlowInsert::CallerFull => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(inserted, 10);
}

// ---------------------------------------------------------------------------------------------
// Sweeping

/// Only records that expired at or before `now` go, at most `limit` per call; repeated calls
/// drain them; everything else stays.
pub async fn sweep_removes_only_expired(store: Arc<dyn Store>) {
    let mut expired = Vec::new();
    let mut alive = Vec::new();
    for n in 0..7u32 {
        // Access expired; the refresh token (if any) expired too, at `NOW` exactly for some.
        let mut d = token(n, n % 2 == 0, family(n), "oidc1", "alice");
        d.access_expires_at = NOW - HOUR + i64::from(n);
        if d.refresh_hash.is_some() {
            d.refresh_expires_at = Some(if n == 0 { NOW } else { NOW - 1 });
        }
        expired.push(d);
    }
    // Access expired but refresh still valid: kept.
    let mut refreshable = token(100, true, family(100), "oidc1", "alice");
    refreshable.access_expires_at = NOW - HOUR;
    refreshable.refresh_expires_at = Some(NOW + 1);
    alive.push(refreshable);
    alive.push(token(101, false, family(101), "oidc1", "bob"));
    alive.push(token(102, true, family(0), "oidc1", "alice"));
    for d in expired.iter().chain(&alive) {
        store.insert_token(d.clone()).await.unwrap();
    }
    for n in 0..5u32 {
        store
            .insert_flow(&hash(b's', n), flow("oidc1", NOW - i64::from(n)))
            .await
            .unwrap();
    }
    let live_flow = flow("oidc1", NOW + 1);
    store
        .insert_flow(&hash(b's', 50), live_flow.clone())
        .await
        .unwrap();

    assert_eq!(store.sweep_expired(NOW, 0).await.unwrap(), 0);
    let mut total = 0;
    let mut calls = 0;
    loop {
        let n = store.sweep_expired(NOW, 3).await.unwrap();
        assert!(n <= 3, "swept {n} with limit 3");
        total += n;
        calls += 1;
        if n == 0 {
            break;
        }
        assert!(calls < 20, "sweep does not drain");
    }
    assert_eq!(total, 7 + 5);
    assert!(calls >= 5, "limit ignored: {calls} calls");

    for d in &expired {
        assert_eq!(store.get_by_access(&d.access_hash).await.unwrap(), None);
        if let Some(r) = d.refresh_hash {
            assert_eq!(store.get_by_refresh(&r).await.unwrap(), None);
        }
    }
    for d in &alive {
        assert_eq!(
            store.get_by_access(&d.access_hash).await.unwrap().as_ref(),
            Some(d)
        );
    }
    for n in 0..5u32 {
        assert_eq!(
            store.take_flow(&hash(b's', n), NOW - 1_000).await.unwrap(),
            None
        );
    }
    assert_eq!(
        store.take_flow(&hash(b's', 50), NOW).await.unwrap(),
        Some(live_flow)
    );

    // Swept pairs are gone from every selection too.
    let c = store
        .invalidate(Invalidation::Family(family(0)))
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(2, 0));
    assert_eq!(c.access_hashes, vec![hash(b'a', 102)]);
    let c = store
        .invalidate(Invalidation::Owner {
            realm: Some("oidc1".into()),
            username: Some("alice".into()),
        })
        .await
        .unwrap();
    assert_eq!(pair(&c), counts(2, 2));
    assert_eq!(c.access_hashes, vec![hash(b'a', 100)]);
}

/// After a sweep, the hashes of swept pairs and flows are free again.
pub async fn sweep_then_reuse_keys(store: Arc<dyn Store>) {
    let mut d = token(1, true, family(1), "oidc1", "alice");
    d.access_expires_at = NOW - 10;
    d.refresh_expires_at = Some(NOW - 5);
    store.insert_token(d.clone()).await.unwrap();
    store
        .insert_flow(&hash(b's', 1), flow("oidc1", NOW - 1))
        .await
        .unwrap();
    assert_eq!(store.sweep_expired(NOW, 100).await.unwrap(), 2);
    assert_eq!(store.sweep_expired(NOW, 100).await.unwrap(), 0);

    let again = token(1, true, family(2), "oidc2", "bob");
    store.insert_token(again.clone()).await.unwrap();
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 1)).await.unwrap(),
        Some(again)
    );
    store
        .insert_flow(&hash(b's', 1), flow("oidc1", NOW + 1))
        .await
        .unwrap();
    // The new pair has other owner and family: the old index entries must not count.
    let c = store
        .invalidate(Invalidation::Family(family(1)))
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
    let c = store
        .invalidate(Invalidation::Owner {
            realm: None,
            username: Some("alice".into()),
        })
        .await
        .unwrap();
    assert_eq!(c, InvalidationCounts::default());
}

// ---------------------------------------------------------------------------------------------
// Role mappings

/// Put creates then replaces, get lists in name order, delete reports whether it existed;
/// tokens and role mappings do not interfere.
pub async fn role_mappings_put_get_delete(store: Arc<dyn Store>) {
    assert!(store.get_role_mappings().await.unwrap().is_empty());
    let body = |n: u32| {
        format!(r#"{{"enabled":true,"roles":["r{n}"],"rules":{{"field":{{"username":"*"}}}}}}"#)
            .into_bytes()
    };
    assert!(store.put_role_mapping("b", body(1)).await.unwrap());
    assert!(store.put_role_mapping("a.x", body(2)).await.unwrap());
    assert!(store.put_role_mapping("ü ñ", body(3)).await.unwrap());
    assert!(!store.put_role_mapping("b", body(4)).await.unwrap());
    store
        .insert_token(token(1, true, family(1), "oidc1", "u"))
        .await
        .unwrap();
    assert_eq!(
        store.get_role_mappings().await.unwrap(),
        vec![
            ("a.x".to_string(), body(2)),
            ("b".to_string(), body(4)),
            ("ü ñ".to_string(), body(3)),
        ]
    );
    assert!(store.delete_role_mapping("b").await.unwrap());
    assert!(!store.delete_role_mapping("b").await.unwrap());
    assert!(!store.delete_role_mapping("never").await.unwrap());
    let names: Vec<String> = store
        .get_role_mappings()
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["a.x", "ü ñ"]);
    assert!(store.get_by_access(&hash(b'a', 1)).await.unwrap().is_some());
    // Re-creating after a delete counts as created.
    assert!(store.put_role_mapping("b", body(5)).await.unwrap());
}

/// Concurrent puts of distinct names all land; of the same name, exactly one creates.
pub async fn concurrent_role_mapping_puts(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for n in 0..64u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("m{}", n % 32);
            store
                .put_role_mapping(&name, n.to_string().into_bytes())
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 32);
    assert_eq!(store.get_role_mappings().await.unwrap().len(), 32);
}

// ---------------------------------------------------------------------------------------------
// User profiles

/// A profile record as the store sees it: any bytes (here JSON, as the profile service writes).
pub fn profile_json(uid: &str, n: u32) -> Vec<u8> {
    serde_json::json!({"uid": uid, "n": n, "user": {"username": "Ünïcødé \u{0}"}})
        .to_string()
        .into_bytes()
}

/// Create is create-if-absent, replace is compare-and-set on the version; a refused write
/// writes nothing; profiles, tokens and role mappings do not interfere.
pub async fn profiles_create_get_update(store: Arc<dyn Store>) {
    let uid = "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA_0";
    let other = "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA_1";
    assert_eq!(store.get_profile(uid).await.unwrap(), None);
    // Replacing what does not exist is a conflict, not a create.
    assert!(matches!(
        store.put_profile(uid, profile_json(uid, 0), Some(0)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_profile(uid).await.unwrap(), None);

    assert_eq!(
        store
            .put_profile(uid, profile_json(uid, 1), None)
            .await
            .unwrap(),
        0
    );
    let stored = |seq_no: u64, n: u32| StoredProfile {
        seq_no,
        json: profile_json(uid, n),
    };
    assert_eq!(store.get_profile(uid).await.unwrap(), Some(stored(0, 1)));
    // Creating again is a conflict and changes nothing.
    assert!(matches!(
        store.put_profile(uid, profile_json(uid, 2), None).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_profile(uid).await.unwrap(), Some(stored(0, 1)));

    assert_eq!(
        store
            .put_profile(uid, profile_json(uid, 3), Some(0))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .put_profile(uid, profile_json(uid, 4), Some(1))
            .await
            .unwrap(),
        2
    );
    // A stale or future version is a conflict and changes nothing.
    for stale in [0, 1, 3, u64::MAX] {
        assert!(matches!(
            store
                .put_profile(uid, profile_json(uid, 5), Some(stale))
                .await,
            Err(StoreError::Conflict)
        ));
    }
    assert_eq!(store.get_profile(uid).await.unwrap(), Some(stored(2, 4)));

    // Another uid is another record; an empty record is a record.
    assert_eq!(store.get_profile(other).await.unwrap(), None);
    assert_eq!(store.put_profile(other, Vec::new(), None).await.unwrap(), 0);
    assert_eq!(
        store.get_profile(other).await.unwrap(),
        Some(StoredProfile {
            seq_no: 0,
            json: Vec::new()
        })
    );
    assert_eq!(store.get_profile(uid).await.unwrap(), Some(stored(2, 4)));
    assert_eq!(store.get_profile("").await.unwrap(), None);

    store
        .insert_token(token(1, true, family(1), "oidc1", "u"))
        .await
        .unwrap();
    assert!(store.put_role_mapping(uid, b"{}".to_vec()).await.unwrap());
    assert_eq!(store.get_profile(uid).await.unwrap(), Some(stored(2, 4)));
    assert_eq!(store.sweep_expired(i64::MAX, usize::MAX).await.unwrap(), 1);
    assert_eq!(store.get_profile(uid).await.unwrap(), Some(stored(2, 4)));
}

/// Of concurrent creates of one uid exactly one wins; of concurrent replaces from one version
/// exactly one wins; the stored record is the winner's.
pub async fn concurrent_profile_writes(store: Arc<dyn Store>) {
    let uid = "u_race_0";
    let mut tasks = Vec::new();
    for n in 0..32u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = store.put_profile(uid, profile_json(uid, n), None).await;
            (n, r)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (n, Ok(seq_no)) => {
                assert_eq!(seq_no, 0);
                winners.push(n);
            }
            (_, Err(StoreError::Conflict)) => {}
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = store.get_profile(uid).await.unwrap().unwrap();
    assert_eq!(stored.json, profile_json(uid, winners[0]));

    let mut tasks = Vec::new();
    for n in 100..132u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = store.put_profile(uid, profile_json(uid, n), Some(0)).await;
            (n, r)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (n, Ok(seq_no)) => {
                assert_eq!(seq_no, 1);
                winners.push(n);
            }
            (_, Err(StoreError::Conflict)) => {}
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.get_profile(uid).await.unwrap(),
        Some(StoredProfile {
            seq_no: 1,
            json: profile_json(uid, winners[0])
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Generic records and single-use records (connections, grants, pending authorizations)

pub async fn records_create_get_list_update_delete(store: Arc<dyn Store>) {
    assert_eq!(store.get_record("grant", "a/u1").await.unwrap(), None);
    assert_eq!(
        store
            .put_record("grant", "a/u1", b"one".to_vec(), None)
            .await
            .unwrap(),
        0
    );
    // Create over an existing record: Conflict.
    assert!(matches!(
        store.put_record("grant", "a/u1", b"x".to_vec(), None).await,
        Err(StoreError::Conflict)
    ));
    // Replace with a stale version: Conflict, nothing written.
    assert!(matches!(
        store
            .put_record("grant", "a/u1", b"x".to_vec(), Some(7))
            .await,
        Err(StoreError::Conflict)
    ));
    // Replace a missing one: Conflict.
    assert!(matches!(
        store
            .put_record("grant", "zz", b"x".to_vec(), Some(0))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store
            .put_record("grant", "a/u1", b"two".to_vec(), Some(0))
            .await
            .unwrap(),
        1
    );
    let r = store.get_record("grant", "a/u1").await.unwrap().unwrap();
    assert_eq!((r.version, r.value.as_slice()), (1, b"two".as_slice()));
    store
        .put_record("grant", "a/u2", b"u2".to_vec(), None)
        .await
        .unwrap();
    store
        .put_record("grant", "ab/u1", b"ab".to_vec(), None)
        .await
        .unwrap();
    store
        .put_record("grant", "b/u1", b"b".to_vec(), None)
        .await
        .unwrap();
    // Same key, other kind: another record.
    store
        .put_record("connection", "a/u1", b"c".to_vec(), None)
        .await
        .unwrap();
    let keys = |l: Vec<(String, StoredRecord)>| l.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list_records("grant", "a/").await.unwrap()),
        ["a/u1", "a/u2"]
    );
    assert_eq!(
        keys(store.list_records("grant", "").await.unwrap()),
        ["a/u1", "a/u2", "ab/u1", "b/u1"]
    );
    assert_eq!(
        keys(store.list_records("connection", "").await.unwrap()),
        ["a/u1"]
    );
    assert!(store.list_records("nothing", "").await.unwrap().is_empty());
    // Delete with a stale version: Conflict, still there.
    assert!(matches!(
        store.delete_record("grant", "a/u1", Some(0)).await,
        Err(StoreError::Conflict)
    ));
    assert!(store.delete_record("grant", "a/u1", Some(1)).await.unwrap());
    assert!(!store.delete_record("grant", "a/u1", None).await.unwrap());
    assert!(store.delete_record("grant", "a/u2", None).await.unwrap());
    assert_eq!(store.get_record("grant", "a/u1").await.unwrap(), None);
    assert_eq!(
        store
            .get_record("connection", "a/u1")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"c"
    );
    // Re-created after a delete: version 0 again.
    assert_eq!(
        store
            .put_record("grant", "a/u1", b"new".to_vec(), None)
            .await
            .unwrap(),
        0
    );
}

pub async fn concurrent_record_writes(store: Arc<dyn Store>) {
    store
        .put_record("grant", "k", b"0".to_vec(), None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_record("grant", "k", i.to_be_bytes().to_vec(), Some(0))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(1) => won += 1,
            Err(StoreError::Conflict) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one compare-and-set wins");
    assert_eq!(
        store
            .get_record("grant", "k")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

pub async fn once_records_are_single_use_and_expire(store: Arc<dyn Store>) {
    store
        .put_once("state", "s1", b"v1".to_vec(), NOW + HOUR, NOW)
        .await
        .unwrap();
    // A live record under the key: Conflict.
    assert!(matches!(
        store
            .put_once("state", "s1", b"x".to_vec(), NOW + HOUR, NOW)
            .await,
        Err(StoreError::Conflict)
    ));
    // Another kind is another key.
    assert_eq!(store.take_once("other", "s1", NOW).await.unwrap(), None);
    assert_eq!(
        store
            .take_once("state", "s1", NOW)
            .await
            .unwrap()
            .as_deref(),
        Some(b"v1".as_slice())
    );
    assert_eq!(store.take_once("state", "s1", NOW).await.unwrap(), None);
    // Expired: never returned, and its key can be used again.
    store
        .put_once("state", "s2", b"v2".to_vec(), NOW + 10, NOW)
        .await
        .unwrap();
    store
        .put_once("state", "s2", b"v3".to_vec(), NOW + HOUR, NOW + 10)
        .await
        .unwrap();
    assert_eq!(
        store
            .take_once("state", "s2", NOW + 20)
            .await
            .unwrap()
            .as_deref(),
        Some(b"v3".as_slice())
    );
    store
        .put_once("state", "s3", b"v".to_vec(), NOW + 10, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.take_once("state", "s3", NOW + 10).await.unwrap(),
        None
    );
    // The sweep removes expired ones and keeps live ones.
    store
        .put_once("state", "s4", b"v".to_vec(), NOW + 10, NOW)
        .await
        .unwrap();
    store
        .put_once("state", "s5", b"v".to_vec(), NOW + HOUR, NOW)
        .await
        .unwrap();
    assert_eq!(store.sweep_expired(NOW + 10, 100).await.unwrap(), 1);
    assert!(store
        .take_once("state", "s5", NOW + 10)
        .await
        .unwrap()
        .is_some());
}

pub async fn concurrent_once_takes(store: Arc<dyn Store>) {
    store
        .put_once("state", "race", b"v".to_vec(), NOW + HOUR, NOW)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.take_once("state", "race", NOW).await.unwrap()
        }));
    }
    let mut got = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            got += 1;
        }
    }
    assert_eq!(got, 1);
}
