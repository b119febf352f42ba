//! A store that refuses writes (a full disk, an I/O error) is reported honestly: the writes
//! get 503 `store_unavailable`, `GET /_health` answers 503 `store_write_failed` (the file stays
//! refused by redb until it is opened again), and the failed commit is counted. Over a real
//! `RedbStore` on a storage backend that fails writes on demand.

mod common;

use actix_web::test::TestRequest;
use common::*;
use oidc_realm::store::{RedbStore, Store, StoreHealth};
use redb::backends::InMemoryBackend;
use redb::StorageBackend;
use serde_json::json;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// redb's in-memory backend whose writes and syncs fail while `full` is set.
#[derive(Debug)]
struct FullDisk {
    inner: InMemoryBackend,
    full: Arc<AtomicBool>,
}

impl FullDisk {
    fn check(&self) -> Result<(), io::Error> {
        if self.full.load(Ordering::SeqCst) {
            Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FullDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

fn password_grant() -> TestRequest {
    post_json(
        "/_security/oauth2/token",
        json!({"grant_type": "password", "username": ARGON_USER.0, "password": ARGON_USER.1}),
    )
    .insert_header(basic(FACILITATOR))
}

#[actix_web::test]
async fn health_reports_a_store_that_cannot_write() {
    let full = Arc::new(AtomicBool::new(false));
    let store = RedbStore::open_backend(
        FullDisk {
            inner: InMemoryBackend::new(),
            full: full.clone(),
        },
        std::path::Path::new("full-disk.redb"),
    )
    .unwrap();
    let t = TestApp::with_store(Arc::new(store));
    let app = t.service().await;
    let health = || TestRequest::get().uri("/_health");

    let (s, _, b) = send(&app, health()).await;
    assert_eq!((s, b.clone()), (200, json!({"status": "ok"})));
    let (s, _, b) = send(&app, password_grant()).await;
    assert_eq!(s, 200, "{b}");
    let access = b["access_token"].as_str().unwrap().to_string();

    // The disk fills up: the write fails, and so does health.
    full.store(true, Ordering::SeqCst);
    let (s, _, b) = send(&app, password_grant()).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["reason_code"], "store_unavailable", "{b}");
    let (s, _, b) = send(&app, health()).await;
    assert_eq!(
        (s, b),
        (
            503,
            json!({"status": "unavailable", "reason": "store_write_failed"})
        )
    );
    // Reads keep working: the first token still authenticates.
    let (s, _, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(&access)),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    // Space is freed, but redb refuses writes on this file until it is opened again: still
    // failing, and health still says so (a restart is what fixes it).
    full.store(false, Ordering::SeqCst);
    let (s, _, b) = send(&app, password_grant()).await;
    assert_eq!(s, 503, "{b}");
    let (s, _, b) = send(&app, health()).await;
    assert_eq!((s, b["reason"].clone()), (503, json!("store_write_failed")));

    let m = t.state.render_metrics();
    assert!(
        m.contains("\noidc_realm_store_commit_failures_total 2\n"),
        "{m}"
    );
    assert!(
        m.contains("\noidc_realm_store_commit_seconds_count 3\n"),
        "{m}"
    );
}

#[test]
fn a_closed_redb_store_reports_its_writer_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("closed.redb")).unwrap();
    assert_eq!(Store::health(&store), StoreHealth::Ok);
    store.close();
    assert_eq!(
        Store::health(&store),
        StoreHealth::Failing {
            reason: "store_writer_stopped"
        }
    );
}

#[test]
fn the_memory_store_is_always_healthy() {
    assert_eq!(
        oidc_realm::store::MemoryStore::new().health(),
        StoreHealth::Ok
    );
}
