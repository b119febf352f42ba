//! Every `Store` backend against the shared conformance suite, plus what only the redb backend
//! has to show: a file that outlives the process.

use oidc_realm::model::Refreshed;
use oidc_realm::store::codec;
use oidc_realm::store::conformance::{self, flow, hash, token, NOW};
use oidc_realm::store::{
    Invalidation, MemoryStore, RedbStore, RefreshOutcome, Store, StoreError, StoredProfile,
    SCHEMA_VERSION,
};
use redb::ReadableDatabase;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const META: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("meta");
const TOKENS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("tokens");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicU32::new(0);
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("store-{}.redb", n.fetch_add(1, Ordering::Relaxed)));
        async move { Arc::new(RedbStore::open(&path).unwrap()) as Arc<dyn Store> }
    })
    .await;
}

fn corrupt<T>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Corrupt(_)))
}

fn file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("dirs").join("tokens.redb")
}

fn set_schema_version(path: &Path, version: u32) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert("schema_version", version)
        .unwrap();
    txn.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_reopen_finds_everything_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let family = conformance::family(1);
    let refreshed = Refreshed {
        at: NOW + 5,
        superseding: vec![1, 2, 3],
    };
    let live_flow = flow("oidc1", NOW + 600_000);
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.path(), path);
        for n in 0..10 {
            store
                .insert_token(token(n, true, family, "oidc1", "alice"))
                .await
                .unwrap();
        }
        let new = token(100, true, family, "oidc1", "alice");
        assert_eq!(
            store
                .refresh(&hash(b'r', 0), refreshed.clone(), new)
                .await
                .unwrap(),
            RefreshOutcome::Applied
        );
        store
            .invalidate(Invalidation::Access(hash(b'a', 1)))
            .await
            .unwrap();
        store
            .invalidate(Invalidation::Refresh(hash(b'r', 2)))
            .await
            .unwrap();
        // The last commits before closing are flow-only (non-durable); a clean close keeps them.
        store
            .insert_flow(&hash(b's', 1), live_flow.clone())
            .await
            .unwrap();
        store
            .insert_flow(&hash(b's', 2), live_flow.clone())
            .await
            .unwrap();
        store.take_flow(&hash(b's', 2), NOW).await.unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    let old = store.get_by_access(&hash(b'a', 0)).await.unwrap().unwrap();
    assert_eq!(old.refreshed, Some(refreshed));
    assert_eq!(
        store.get_by_refresh(&hash(b'r', 100)).await.unwrap(),
        Some(token(100, true, family, "oidc1", "alice"))
    );
    let one = store.get_by_access(&hash(b'a', 1)).await.unwrap().unwrap();
    assert!(one.access_invalidated && !one.refresh_invalidated);
    let two = store.get_by_refresh(&hash(b'r', 2)).await.unwrap().unwrap();
    assert!(!two.access_invalidated && two.refresh_invalidated);
    for n in 3..10 {
        assert_eq!(
            store.get_by_access(&hash(b'a', n)).await.unwrap(),
            Some(token(n, true, family, "oidc1", "alice"))
        );
    }
    // Pending logins are kept in memory only: a restart forgets them (the user logs in again).
    let _ = live_flow;
    assert_eq!(store.take_flow(&hash(b's', 1), NOW).await.unwrap(), None);
    assert_eq!(store.take_flow(&hash(b's', 2), NOW).await.unwrap(), None);
    // Indexes came back too.
    let c = store
        .invalidate(Invalidation::Owner {
            realm: None,
            username: Some("alice".into()),
        })
        .await
        .unwrap();
    // 11 pairs of 2 tokens; one access and one refresh token were invalidated before.
    assert_eq!((c.invalidated, c.previously_invalidated), (20, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_concurrent_inserts_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    {
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let mut tasks = Vec::new();
        for n in 0..400u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .insert_token(token(n, n % 2 == 0, conformance::family(n), "oidc1", "u"))
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    let store = RedbStore::open(&path).unwrap();
    for n in 0..400u32 {
        let doc = token(n, n % 2 == 0, conformance::family(n), "oidc1", "u");
        assert_eq!(
            store.get_by_access(&hash(b'a', n)).await.unwrap(),
            Some(doc)
        );
    }
}

#[tokio::test]
async fn redb_writes_schema_version_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    drop(RedbStore::open(&path).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let v = meta.get("schema_version").unwrap().unwrap().value();
        assert_eq!(v, SCHEMA_VERSION);
    }
    // Reopening the same version is fine.
    drop(RedbStore::open(&path).unwrap());

    set_schema_version(&path, SCHEMA_VERSION + 1);
    let err = RedbStore::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("newer") && msg.contains(&(SCHEMA_VERSION + 1).to_string()),
        "{msg}"
    );

    set_schema_version(&path, 0);
    let msg = RedbStore::open(&path).unwrap_err().to_string();
    assert!(msg.contains("no migration from schema version 0"), "{msg}");
}

#[tokio::test]
async fn redb_refuses_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    // Not a redb file.
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![0x42u8; 10_000]).unwrap();
    assert!(RedbStore::open(&junk).is_err());
    // A redb file with tables but no schema version.
    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TOKENS)
            .unwrap()
            .insert(&b"k"[..], &b"v"[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let msg = RedbStore::open(&other).unwrap_err().to_string();
    assert!(msg.contains("no schema version"), "{msg}");
    // Opened twice at once.
    let path = file(&dir);
    let first = RedbStore::open(&path).unwrap();
    let msg = RedbStore::open(&path).unwrap_err().to_string();
    assert!(msg.contains("already open"), "{msg}");
    drop(first);
    drop(RedbStore::open(&path).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_corrupt_records_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let family = conformance::family(1);
    {
        let store = RedbStore::open(&path).unwrap();
        for n in 0..3 {
            store
                .insert_token(token(n, true, family, "oidc1", "alice"))
                .await
                .unwrap();
        }
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut tokens = txn.open_table(TOKENS).unwrap();
            tokens
                .insert(&hash(b'a', 0).0[..], &b"{not json"[..])
                .unwrap();
            // Valid JSON, but for another key.
            let other = codec::encode_token(&token(7, true, family, "oidc1", "alice"));
            tokens
                .insert(&hash(b'a', 1).0[..], other.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Arc::new(RedbStore::open(&path).unwrap());
    assert!(corrupt(store.get_by_access(&hash(b'a', 0)).await));
    assert!(corrupt(store.get_by_refresh(&hash(b'r', 0)).await));
    assert!(corrupt(store.get_by_access(&hash(b'a', 1)).await));
    assert!(corrupt(
        store.invalidate(Invalidation::Access(hash(b'a', 0))).await
    ));
    assert!(corrupt(
        store.invalidate(Invalidation::Family(family)).await
    ));
    let new = token(10, true, family, "oidc1", "alice");
    let refreshed = Refreshed {
        at: NOW,
        superseding: vec![],
    };
    // A corrupt record fails its own task only, not the others committed with it.
    let r0 = hash(b'r', 0);
    let (a, b) = tokio::join!(
        store.refresh(&r0, refreshed.clone(), new.clone()),
        store.insert_token(token(20, true, family, "oidc1", "bob")),
    );
    assert!(matches!(a, Err(StoreError::Corrupt(_))), "{a:?}");
    b.unwrap();
    assert_eq!(store.get_by_access(&new.access_hash).await.unwrap(), None);
    assert!(store
        .get_by_access(&hash(b'a', 20))
        .await
        .unwrap()
        .is_some());
    // The healthy record is untouched; sweeping removes the broken ones.
    assert!(store.get_by_access(&hash(b'a', 2)).await.unwrap().is_some());
    let later = NOW + 48 * 3_600_000;
    assert_eq!(store.sweep_expired(later, 100).await.unwrap(), 4);
    assert_eq!(store.get_by_access(&hash(b'a', 0)).await.unwrap(), None);
    assert_eq!(store.get_by_refresh(&hash(b'r', 0)).await.unwrap(), None);
}

#[tokio::test]
async fn redb_close_finishes_queued_writes_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let mut tasks = Vec::new();
    for n in 0..50u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_token(token(n, true, conformance::family(n), "oidc1", "u"))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    store.close();
    let late = store
        .insert_token(token(99, true, conformance::family(99), "oidc1", "u"))
        .await;
    assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    // Reads still work after close.
    assert!(store.get_by_access(&hash(b'a', 3)).await.unwrap().is_some());
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    for n in 0..50u32 {
        assert!(store.get_by_access(&hash(b'a', n)).await.unwrap().is_some());
    }
}

const CRASH_CHILD: &str = "OIDC_REALM_STORE_CRASH_CHILD";

/// Not a test on its own: run by `redb_survives_abort_mid_write` in a child process, which it
/// kills while writes are in flight. Without the variable it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_crash_child() {
    let Some(path) = std::env::var_os(CRASH_CHILD) else {
        return;
    };
    let store = Arc::new(RedbStore::open(Path::new(&path)).unwrap());
    for t in 0..32u32 {
        let store = store.clone();
        tokio::spawn(async move {
            let mut n = t;
            loop {
                let doc = token(n, true, conformance::family(n / 8), "oidc1", "crash");
                store.insert_token(doc).await.unwrap();
                // One line per acknowledged insert; stdout is line-buffered, so it is out
                // before the next insert starts.
                println!("acked {n}");
                n += 32;
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    std::process::abort();
}

#[tokio::test]
async fn redb_survives_abort_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "redb_crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, &path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child was meant to abort");
    let acked: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("acked ")?.parse().ok())
        .collect();
    assert!(
        acked.len() > 50,
        "only {} inserts before the abort",
        acked.len()
    );

    // redb recovers the uncleanly closed file on open.
    let store = RedbStore::open(&path).unwrap();
    for &n in &acked {
        let doc = store.get_by_access(&hash(b'a', n)).await.unwrap();
        assert!(doc.is_some(), "acknowledged insert {n} lost");
        assert_eq!(store.get_by_refresh(&hash(b'r', n)).await.unwrap(), doc);
    }
    // Whatever else made it in is whole: every index agrees with the docs.
    let c = store
        .invalidate(Invalidation::Owner {
            realm: Some("oidc1".into()),
            username: Some("crash".into()),
        })
        .await
        .unwrap();
    let stored = c.access_hashes.len();
    assert!(stored >= acked.len());
    for h in &c.access_hashes {
        let doc = store.get_by_access(h).await.unwrap().unwrap();
        assert_eq!(
            store
                .get_by_refresh(&doc.refresh_hash.unwrap())
                .await
                .unwrap(),
            Some(doc)
        );
    }
    assert_eq!(c.invalidated, 2 * stored as u64);
    assert_eq!(
        store
            .sweep_expired(NOW + 48 * 3_600_000, usize::MAX)
            .await
            .unwrap(),
        stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_role_mappings_survive_reopen_and_old_files_gain_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(store.put_role_mapping("a", b"{}".to_vec()).await.unwrap());
        assert!(store.put_role_mapping("b", b"[1]".to_vec()).await.unwrap());
        assert!(store.delete_role_mapping("a").await.unwrap());
    }
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store.get_role_mappings().await.unwrap(),
            vec![("b".to_string(), b"[1]".to_vec())]
        );
    }
    // A file written before role mappings existed (same schema version, no table) opens and
    // gets an empty table.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        const RM: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("role_mappings");
        assert!(txn.delete_table(RM).unwrap());
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert!(store.get_role_mappings().await.unwrap().is_empty());
    assert!(store.put_role_mapping("c", b"{}".to_vec()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_profiles_survive_reopen_and_old_files_gain_the_table() {
    const PROFILES: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("profiles");
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let json = conformance::profile_json;
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store
                .put_profile("u_a_0", json("u_a_0", 1), None)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .put_profile("u_a_0", json("u_a_0", 2), Some(0))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .put_profile("u_b_0", json("u_b_0", 3), None)
                .await
                .unwrap(),
            0
        );
    }
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store.get_profile("u_a_0").await.unwrap(),
            Some(StoredProfile {
                seq_no: 1,
                json: json("u_a_0", 2)
            })
        );
        // The version carried over: compare-and-set goes on from it.
        assert!(matches!(
            store.put_profile("u_a_0", json("u_a_0", 4), Some(0)).await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            store.put_profile("u_b_0", json("u_b_0", 4), None).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store
                .put_profile("u_a_0", json("u_a_0", 4), Some(1))
                .await
                .unwrap(),
            2
        );
    }
    // A value too short to hold its version is corrupt: an error, not a panic.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(PROFILES)
            .unwrap()
            .insert("u_c_0", &[1u8, 2, 3][..])
            .unwrap();
        txn.commit().unwrap();
    }
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(corrupt(store.get_profile("u_c_0").await));
        assert!(corrupt(
            store.put_profile("u_c_0", json("u_c_0", 1), Some(0)).await
        ));
        // The failed write was its own: others still commit.
        assert_eq!(
            store
                .put_profile("u_d_0", json("u_d_0", 1), None)
                .await
                .unwrap(),
            0
        );
    }
    // A file written before profiles existed (same schema version, no table) opens and gets
    // an empty table.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(PROFILES).unwrap());
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.get_profile("u_a_0").await.unwrap(), None);
    assert_eq!(
        store
            .put_profile("u_a_0", json("u_a_0", 5), None)
            .await
            .unwrap(),
        0
    );
}
