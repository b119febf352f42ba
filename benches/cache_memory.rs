//! What the bearer cache really costs per entry, next to what its bound counts: issue N
//! tokens (`client_credentials`-shaped, as `bench/scale.sh` issues them) into a memory store,
//! check each once through `TokenService::authenticate` so the cache fills to
//! `token.cache_size`, and compare the heap the process gained (a counting allocator over the
//! system one) with the cache's own estimate.
//!
//! ```text
//! cargo bench --bench cache_memory                 # 200,000 tokens, 48 MiB cache (the default)
//! cargo bench --bench cache_memory -- 400000 96    # N tokens, cache MiB
//! ```

use oidc_realm::clock::ManualClock;
use oidc_realm::model::{ClientRef, RealmRef, UserRecord};
use oidc_realm::store::{MemoryStore, Store};
use oidc_realm::tokens::{Lifetimes, TokenService};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = nums.first().copied().unwrap_or(200_000);
    let cache_mib = nums.get(1).copied().unwrap_or(48);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let svc = TokenService::with_cache_bytes(store, ManualClock::at(1_000_000), cache_mib << 20);
    let lifetimes = Lifetimes {
        access: Duration::from_secs(3600),
        refresh: Duration::from_secs(86_400),
    };
    let user = UserRecord {
        username: "bench".into(),
        roles: vec![],
        full_name: None,
        email: None,
        metadata: serde_json::Map::new(),
        realm: RealmRef {
            name: "default_file".into(),
            kind: "file".into(),
        },
    };
    let client = ClientRef {
        username: "bench".into(),
        realm: "default_file".into(),
    };
    let tokens: Vec<String> = rt.block_on(async {
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let pair = svc
                .issue(user.clone(), client.clone(), lifetimes, false, None)
                .await
                .expect("issue");
            out.push(pair.access_token);
        }
        out
    });
    let before = LIVE.load(Ordering::Relaxed);
    rt.block_on(async {
        for t in &tokens {
            svc.authenticate(t).await.expect("authenticate");
        }
    });
    let after = LIVE.load(Ordering::Relaxed);
    let usage = svc.cache_usage();
    let gained = after.saturating_sub(before) as f64;
    println!(
        "{n} tokens checked; cache holds {} entries, estimated {:.1} MiB of {:.0} MiB",
        usage.entries,
        usage.estimated_bytes as f64 / 1_048_576.0,
        usage.capacity_bytes as f64 / 1_048_576.0
    );
    println!(
        "heap gained {:.1} MiB = {:.0} bytes per entry; estimate {:.0} bytes per entry (real / estimate = {:.2})",
        gained / 1_048_576.0,
        gained / usage.entries.max(1) as f64,
        usage.estimated_bytes as f64 / usage.entries.max(1) as f64,
        gained / usage.estimated_bytes.max(1) as f64
    );
}
