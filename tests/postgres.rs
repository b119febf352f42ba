//! The PostgreSQL backend through HTTP: a node that loses its database answers 503 (with
//! Elasticsearch's error shape) and recovers by itself when the database is back, losing no
//! acknowledged token; a node whose change listener is cut resyncs.
//!
//! Needs the PostgreSQL of the development and CI machines (see
//! `oidc_realm::store::postgres::testing`); a missing database fails these tests.

mod common;

use actix_web::test::TestRequest;
use common::*;
use oidc_realm::store::postgres::testing::{test_url, TestSchema};
use oidc_realm::store::{PgStore, Store};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of the test database that can be cut (every connection closed, new
/// ones refused) and restored: the database "goes away" for one node only.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    break;
                };
                if !o.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let up = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(up).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy { port, open, conns }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// The test database's host and port, and its URL through `port` instead.
fn via(port: u16) -> ((String, u16), String) {
    use tokio_postgres::config::Host;
    let cfg: tokio_postgres::Config = test_url().parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let upstream_port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg.get_user().unwrap_or("postgres");
    let db = cfg.get_dbname().unwrap_or("test");
    (
        (host, upstream_port),
        format!("postgres://{user}@127.0.0.1:{port}/{db}?sslmode=disable"),
    )
}

/// Open a store on a blocking thread: `open` waits for the database, and the proxy runs on
/// this test's (single-threaded) runtime.
async fn open_off_thread(options: oidc_realm::store::postgres::PgOptions) -> PgStore {
    tokio::task::spawn_blocking(move || PgStore::open(&options).unwrap())
        .await
        .unwrap()
}

fn issue() -> TestRequest {
    post_json(
        "/_security/oauth2/token",
        json!({"grant_type": "client_credentials"}),
    )
    .insert_header(basic(FACILITATOR))
}

fn whoami(token: &str) -> TestRequest {
    TestRequest::get()
        .uri("/_security/_authenticate")
        .insert_header(bearer(token))
}

fn health() -> TestRequest {
    TestRequest::get().uri("/_health")
}

#[actix_web::test]
async fn a_node_that_loses_the_database_answers_503_and_recovers_by_itself() {
    let schema = TestSchema::new();
    // Migrate directly, then run the node through the proxy.
    drop(schema.open());
    let proxy = Proxy::start(via(0).0).await;
    let mut options = schema.options();
    options.url = oidc_realm::secret::Secret::new(via(proxy.port).1);
    let store: Arc<dyn Store> = Arc::new(open_off_thread(options).await);
    let t = TestApp::with_store(store);
    let app = t.service().await;

    let (s, _, before) = send(&app, issue()).await;
    assert_eq!(s, 200, "{before}");
    let kept = before["access_token"].as_str().unwrap().to_string();
    assert_eq!(send(&app, health()).await.0, 200);

    proxy.cut();
    // A write: 503, in Elasticsearch's shape.
    let (s, _, b) = send(&app, issue()).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["status"], 503, "{b}");
    assert!(b["error"]["type"].is_string(), "{b}");
    assert!(b["error"]["reason"].is_string(), "{b}");
    // Again: still 503 (never a 500), the node keeps answering.
    let (s, _, b) = send(&app, issue()).await;
    assert_eq!(s, 503, "{b}");
    let (s, _, h) = send(&app, health()).await;
    assert_eq!(s, 503, "{h}");
    assert_eq!(h["reason"], "store_unreachable");

    proxy.restore();
    // Back by itself: no restart, no call from outside.
    let started = Instant::now();
    loop {
        let (s, _, b) = send(&app, issue()).await;
        if s == 200 {
            break;
        }
        assert_eq!(s, 503, "{b}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(send(&app, health()).await.0, 200);
    // The token acknowledged before the outage is still there (from the store, not a cache:
    // the cache is dropped by the listener's resync when it reconnected).
    let (s, _, me) = send(&app, whoami(&kept)).await;
    assert_eq!(s, 200, "{me}");
}

#[actix_web::test]
async fn health_reports_an_idle_node_that_lost_the_database() {
    let schema = TestSchema::new();
    drop(schema.open());
    let proxy = Proxy::start(via(0).0).await;
    let mut options = schema.options();
    options.url = oidc_realm::secret::Secret::new(via(proxy.port).1);
    let store = open_off_thread(options).await;
    assert_eq!(store.health(), oidc_realm::store::StoreHealth::Ok);
    proxy.cut();
    // No request at all: the store's probe notices (every 5 s).
    let started = Instant::now();
    while store.health() == oidc_realm::store::StoreHealth::Ok {
        assert!(started.elapsed() < Duration::from_secs(15), "never noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();
    let started = Instant::now();
    while store.health() != oidc_realm::store::StoreHealth::Ok {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_database_at_an_unknown_migration_is_refused() {
    let schema = TestSchema::new();
    drop(schema.open());
    schema
        .execute(&format!(
            "INSERT INTO {}.oidc_realm_migrations (version, name) VALUES (999, 'future')",
            schema.name
        ))
        .unwrap();
    let e = PgStore::open(&schema.options()).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
    // A second node on an up-to-date schema opens without migrating again.
    let other = TestSchema::new();
    drop(other.open());
    drop(other.open());
}

#[actix_web::test]
async fn a_schema_at_migration_1_is_migrated_and_keeps_its_tokens() {
    use oidc_realm::store::conformance::{family, hash, token};
    use oidc_realm::store::{codec, Invalidation};
    let schema = TestSchema::new();
    // The schema as a build knowing only migration 1 left it, with one pair in it.
    let doc = token(1, true, family(1), "oidc1", "alice");
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    schema
        .execute(&format!(
            "CREATE SCHEMA {s}; SET search_path TO {s};
             {init}
             CREATE TABLE oidc_realm_migrations (
                 version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO oidc_realm_migrations (version, name) VALUES (1, 'init');
             INSERT INTO tokens (access_hash, refresh_hash, family, realm, username, expires_at, doc)
             VALUES ('\\x{a}', '\\x{r}', '\\x{f}', 'oidc1', 'alice', {e}, '\\x{d}');",
            s = schema.name,
            init = include_str!("../migrations/0001_init.sql"),
            a = hex(&doc.access_hash.0),
            r = hex(&doc.refresh_hash.unwrap().0),
            f = hex(&doc.family.0),
            e = doc.expires_at(),
            d = hex(&codec::encode_token(&doc)),
        ))
        .unwrap();
    let store = schema.open();
    assert_eq!(
        store.get_by_access(&hash(b'a', 1)).await.unwrap().as_ref(),
        Some(&doc)
    );
    // The new tables are there; the old pair has no session and is found by its owner.
    store
        .put_record("connection", "c1", b"x".to_vec(), None)
        .await
        .unwrap();
    let by_session = Invalidation::OidcSession {
        realm: "oidc1".into(),
        sub: Some("alice".into()),
        sid: None,
    };
    assert_eq!(store.invalidate(by_session).await.unwrap().invalidated, 0);
    let by_owner = Invalidation::Owner {
        realm: Some("oidc1".into()),
        username: Some("alice".into()),
    };
    assert_eq!(store.invalidate(by_owner).await.unwrap().invalidated, 2);
    drop(store);
    // Opened again: nothing left to migrate.
    drop(schema.open());
}

#[actix_web::test]
async fn an_unreachable_database_fails_the_start_with_a_clear_message() {
    let mut options = TestSchema::new().options();
    // A port nothing listens on.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = spare.local_addr().unwrap().port();
    drop(spare);
    options.url = oidc_realm::secret::Secret::new(format!(
        "postgres://postgres@127.0.0.1:{port}/test?sslmode=disable"
    ));
    let e = PgStore::open(&options).unwrap_err();
    assert!(
        matches!(e, oidc_realm::store::StoreError::Unavailable(_)),
        "{e}"
    );
}

#[actix_web::test]
async fn tokens_issued_on_postgres_survive_a_restart_of_the_node() {
    let schema = TestSchema::new();
    let token = {
        let t = TestApp::with_store(Arc::new(schema.open()));
        let app = t.service().await;
        let (s, _, b) = send(&app, issue()).await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_string()
    };
    let t = TestApp::with_store(Arc::new(schema.open()));
    let app = t.service().await;
    let (s, _, b): (u16, _, Value) = send(&app, whoami(&token)).await;
    assert_eq!(s, 200, "{b}");
}

/// The pending-login counters (kept by a trigger) agree with the rows after inserts, takes,
/// refused takes, expiry and sweeps, from several nodes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_login_counters_match_the_rows() {
    use oidc_realm::store::{conformance, FlowLimits};
    let schema = TestSchema::new();
    let nodes: Vec<Arc<dyn Store>> = (0..3)
        .map(|_| Arc::new(schema.open()) as Arc<dyn Store>)
        .collect();
    let limits = FlowLimits {
        per_caller: 50,
        total: 120,
    };
    let now = conformance::NOW;
    let mut tasks = Vec::new();
    for n in 0..300u32 {
        let store = nodes[n as usize % 3].clone();
        tasks.push(tokio::spawn(async move {
            let state = conformance::hash(b's', n);
            let expires = if n % 5 == 0 { now + 10 } else { now + 600_000 };
            let flow = conformance::flow_of("oidc1", conformance::caller(n % 4), expires);
            let _ = store
                .insert_flow_within(&state, flow, &limits, now)
                .await
                .unwrap();
            if n % 3 == 0 {
                let _ = store.take_flow(&state, now + 20).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    nodes[1].sweep_expired(now + 20, 7).await.unwrap();
    let check = format!(
        "DO $$ BEGIN
           IF (SELECT count(*) FROM {s}.flows) <>
              coalesce((SELECT n FROM {s}.flow_counts WHERE caller = '\\x'::bytea), 0) THEN
             RAISE EXCEPTION 'total counter differs from the rows';
           END IF;
           IF EXISTS (SELECT 1 FROM {s}.flow_counts c WHERE c.caller <> '\\x'::bytea AND
                      c.n <> (SELECT count(*) FROM {s}.flows f WHERE f.caller = c.caller)) THEN
             RAISE EXCEPTION 'a caller counter differs from the rows';
           END IF;
           IF (SELECT count(*) FROM {s}.flows WHERE expires_at > {now}) > 120 THEN
             RAISE EXCEPTION 'more live flows than the total limit';
           END IF;
         END $$",
        s = schema.name
    );
    schema.execute(&check).unwrap();
}
