//! Fill a store file with N token pairs (for `bench/run.sh` with `PREFILL=N`): the server is
//! then measured with that many records stored.
//!
//! ```text
//! cargo bench --bench prefill -- <file.redb> <N>
//! ```

use oidc_realm::clock::{Clock, SystemClock};
use oidc_realm::store::conformance::{family, token};
use oidc_realm::store::{RedbStore, Store};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(n)) = (
        args.iter().find(|a| a.ends_with(".redb")),
        args.iter().rev().find_map(|a| a.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: cargo bench --bench prefill -- <file.redb> <N>");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(RedbStore::open(std::path::Path::new(path)).expect("open store"));
    let now = SystemClock.now_millis();
    let started = Instant::now();
    rt.block_on(async {
        let tasks = 64u32;
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut i = t;
                while i < n {
                    let mut doc = token(i, true, family(i), "oidc1", &format!("user{}", i % 5000));
                    doc.created_at = now;
                    doc.access_expires_at = now + 3_600_000;
                    doc.refresh_expires_at = Some(now + 86_400_000);
                    store.insert_token(doc).await.expect("insert");
                    i += tasks;
                }
            }));
        }
        for h in handles {
            h.await.expect("task");
        }
    });
    drop(store);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "stored {n} pairs in {:.1?} ({:.0}/s); file {:.1} MiB",
        started.elapsed(),
        f64::from(n) / started.elapsed().as_secs_f64(),
        size as f64 / 1_048_576.0
    );
}
