//! Throughput of the redb store: durable `insert_token` with 1, 16 and 64 concurrent tasks
//! (group commit at work), and `get_by_access` on 100k (with `--large`: also 1M) stored pairs,
//! each read figure labelled:
//!
//! - **cold**: the store is closed and opened again after the fill, so redb's page cache
//!   (opened here with 1 GiB, larger than these files; the server's default `data.cache_size`
//!   is 8 MiB) starts empty, and every record is read once, in a scattered order. The
//!   operating system's page cache still holds the file (it was just written; dropping it
//!   needs root: `sync; echo 3 > /proc/sys/vm/drop_caches` between the fill and the reads,
//!   which this benchmark does not do), so this is redb's cold path over a warm file, not a
//!   disk read.
//! - **warm**: then 1,000,000 random lookups over the same records: after the cold pass every
//!   page is in redb's cache.
//! - **cold, server cache**: the store opened again with the server's default `data.cache_size`
//!   (8 MiB, smaller than the file), then random lookups: what a bearer check pays when it
//!   misses the bearer cache at this size (most leaf pages are not in redb's cache; the
//!   operating system's page cache holds the file, as above).
//!
//! ```text
//! cargo bench --bench store                 # 100k
//! cargo bench --bench store -- --large      # 100k and 1M
//! ```
//!
//! The files live in a temporary directory under `$TMPDIR` (make sure it is on a real disk, not
//! tmpfs, or the durable numbers mean nothing).

use oidc_realm::model::TokenDoc;
use oidc_realm::store::conformance::{family, hash, token};
use oidc_realm::store::{codec, RedbStore, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// redb's page cache in this benchmark: larger than every file it makes.
const CACHE: usize = 1 << 30;

fn main() {
    let large = std::env::args().any(|a| a == "--large");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    codecs();

    rt.block_on(async {
        for (tasks, total) in [(1usize, 2_000u32), (16, 20_000), (64, 50_000)] {
            let path = dir.path().join(format!("insert-{tasks}.redb"));
            let store = Arc::new(RedbStore::open_with_cache(&path, CACHE).expect("open"));
            let took = insert(&store, tasks, 0, total).await;
            drop(store);
            println!(
                "insert_token, durable, {tasks:>2} tasks: {:>8.0} inserts/s ({total} in {:.2?}), file {}",
                f64::from(total) / took.as_secs_f64(),
                took,
                size(&path)
            );
        }

        let mut sizes = vec![100_000u32];
        if large {
            sizes.push(1_000_000);
        }
        for n in sizes {
            let path = dir.path().join(format!("read-{n}.redb"));
            let store = Arc::new(RedbStore::open_with_cache(&path, CACHE).expect("open"));
            let took = insert(&store, 64, 0, n).await;
            println!(
                "fill {n}: {:.0} inserts/s (64 tasks), file {}",
                f64::from(n) / took.as_secs_f64(),
                size(&path)
            );
            // Close and reopen: redb's page cache is per open database.
            drop(store);
            let store = Arc::new(RedbStore::open_with_cache(&path, CACHE).expect("reopen"));
            let took = read_each_once(&store, 1, n).await;
            println!(
                "get_by_access on {n}, 1 task,  [cold] each record once after reopening: {:>9.0} gets/s",
                f64::from(n) / took.as_secs_f64()
            );
            for tasks in [1usize, 2] {
                let gets = 1_000_000u32;
                let took = read(&store, tasks, n, gets).await;
                println!(
                    "get_by_access on {n}, {tasks} task(s) [warm] random, all pages cached: {:>9.0} gets/s",
                    f64::from(gets) / took.as_secs_f64()
                );
            }
            drop(store);
            let store = Arc::new(
                RedbStore::open_with_cache(&path, oidc_realm::config::DEFAULT_DATA_CACHE_SIZE)
                    .expect("reopen"),
            );
            let gets = 500_000u32;
            for (name, bearer) in [("get_by_access", false), ("get_bearer", true)] {
                let took = read_as(&store, 1, n, gets, bearer).await;
                println!(
                    "{name:<13} on {n}, 1 task,  [cold] random, default 8 MiB cache: {:>9.0} gets/s ({:.2} us each)",
                    f64::from(gets) / took.as_secs_f64(),
                    took.as_secs_f64() * 1e6 / f64::from(gets)
                );
            }
        }
    });
}

/// Size and encode+decode cost of a token record, JSON vs the stored binary form.
fn codecs() {
    let doc = token(1, true, family(1), "oidc1", "alice");
    let rounds = 200_000u32;
    let json = serde_json::to_vec(&doc).expect("json");
    let start = Instant::now();
    for _ in 0..rounds {
        let bytes = serde_json::to_vec(std::hint::black_box(&doc)).expect("json");
        let back: TokenDoc = serde_json::from_slice(&bytes).expect("json");
        std::hint::black_box(back);
    }
    let json_ns = start.elapsed().as_nanos() / u128::from(rounds);
    let binary = codec::encode_token(&doc);
    let start = Instant::now();
    for _ in 0..rounds {
        let bytes = codec::encode_token(std::hint::black_box(&doc));
        std::hint::black_box(codec::decode_token(&bytes).expect("decode"));
    }
    let binary_ns = start.elapsed().as_nanos() / u128::from(rounds);
    println!(
        "token record: JSON {} bytes, {json_ns} ns encode+decode; binary {} bytes, {binary_ns} ns",
        json.len(),
        binary.len()
    );
}

/// Insert pairs `first..first + total`, spread over `tasks` concurrent tasks.
async fn insert(store: &Arc<RedbStore>, tasks: usize, first: u32, total: u32) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks as u32)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = first + t;
                while n < first + total {
                    let user = format!("user{}", n % 1000);
                    let doc = token(n, true, family(n / 4), "oidc1", &user);
                    store.insert_token(doc).await.expect("insert");
                    n += tasks as u32;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    start.elapsed()
}

/// One lookup of each of the `stored` access hashes, in a scattered order (a stride coprime
/// with `stored`, so that neighbouring keys are not read one after the other), spread over
/// `tasks` tasks.
async fn read_each_once(store: &Arc<RedbStore>, tasks: usize, stored: u32) -> Duration {
    const STRIDE: u64 = 1_000_003; // prime, larger than any `stored` here
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks as u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut i = t;
                while i < u64::from(stored) {
                    let n = (i * STRIDE % u64::from(stored)) as u32;
                    let doc = store.get_by_access(&hash(b'a', n)).await.expect("get");
                    assert!(doc.is_some(), "pair {n} missing");
                    i += tasks as u64;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    start.elapsed()
}

/// `total` lookups of random stored access hashes, spread over `tasks` tasks.
async fn read(store: &Arc<RedbStore>, tasks: usize, stored: u32, total: u32) -> Duration {
    read_as(store, tasks, stored, total, false).await
}

/// [`read`] with `get_by_access` (the whole record) or, with `bearer`, `get_bearer` (what a
/// bearer check reads: expiry, invalidation and a user shared with the user's other tokens).
async fn read_as(
    store: &Arc<RedbStore>,
    tasks: usize,
    stored: u32,
    total: u32,
    bearer: bool,
) -> Duration {
    let start = Instant::now();
    let per_task = total / tasks as u32;
    let handles: Vec<_> = (0..tasks as u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                // xorshift: cheap, reproducible, spread over the whole key range.
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                for _ in 0..per_task {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let n = (x % u64::from(stored)) as u32;
                    let found = if bearer {
                        store
                            .get_bearer(&hash(b'a', n))
                            .await
                            .expect("get")
                            .is_some()
                    } else {
                        store
                            .get_by_access(&hash(b'a', n))
                            .await
                            .expect("get")
                            .is_some()
                    };
                    assert!(found, "pair {n} missing");
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    start.elapsed()
}

fn size(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{:.1} MiB", m.len() as f64 / (1024.0 * 1024.0)),
        Err(e) => format!("? ({e})"),
    }
}
