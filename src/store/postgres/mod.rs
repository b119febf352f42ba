//! The shared backend: PostgreSQL, for several nodes on one database.
//!
//! # Layout
//!
//! One schema (`data.schema`, default `oidc_realm`) holds the tables of
//! `migrations/*.sql`: `tokens` (the record in the binary form of [`codec`](super::codec),
//! plus the columns it is looked up by, the OIDC session's `oidc_sub` / `oidc_sid` for
//! Back-Channel Logout among them), `flows` (pending logins, an `UNLOGGED` table, with
//! `flow_counts`: live counts per caller and in total, kept by a trigger, and the function
//! `insert_flow` that checks the limits and inserts in one call), `role_mappings`,
//! `profiles`, `records` (versioned records: connections, grants, refresh leases),
//! `once_records` (single-use expiring records, `UNLOGGED` like `flows`), and
//! `oidc_realm_migrations` (which migrations ran). The
//! migrations are embedded in the binary and run at start inside one transaction under an
//! advisory lock, so nodes starting together migrate once ([`migrate`]).
//!
//! # Runtime
//!
//! The store owns a small tokio runtime of its own: the connection pool, the writer and the
//! listener live there, and every call of the [`Store`](super::Store) trait is a task
//! spawned on it whose handle the caller awaits. Connections therefore never outlive the
//! runtime that drives them, whichever runtime the caller runs on (actix workers, tests).
//!
//! # Writes
//!
//! Durable writes (tokens, role mappings, profiles, records) go through one writer task per node
//! ([`writer`]): it takes the first queued write, drains up to [`MAX_BATCH`] more, runs
//! them in one transaction and commits, and only then answers each caller: group commit, as
//! the redb writer does. Rows are locked (`SELECT ... FOR UPDATE`) before they are changed,
//! so a refresh or an invalidation on another node at the same instant waits for this one
//! and then sees its result. A batch that fails on the database is retried write by write,
//! so one write cannot fail the others.
//!
//! Pending logins and single-use records are written directly (they need no group commit):
//! a login's insert checks the limits under a transaction-scoped advisory lock shared by every
//! node (reading the counters), a single-use record's insert is one `INSERT ... ON CONFLICT`
//! that replaces only an expired one, and a take of either is one `DELETE ... RETURNING`.
//!
//! # Changes
//!
//! Each write batch that invalidates tokens or changes role mappings or profiles sends a
//! `NOTIFY` inside its transaction (delivered on commit). A listener connection per node
//! turns them into [`StoreChange`](super::StoreChange)s; `crate::app` drops cache entries
//! and reloads role mappings. When the listener loses its connection it reconnects and
//! reports [`StoreChange::Resync`](super::StoreChange::Resync) (drop every cache).

mod listen;
mod migrate;
mod ops;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod writer;

pub use writer::MAX_BATCH;

use super::{StoreChange, StoreError, StoreHealth};
use crate::secret::Secret;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How long one call may take before it fails with `Unavailable` (a database that does not
/// answer must give a 503, not a request that hangs).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// A `postgres://` URL or a `key=value` connection string.
    pub url: Secret<String>,
    /// Overrides a password in the URL.
    pub password: Option<Secret<String>>,
    /// The schema holding the tables (created if missing).
    pub schema: String,
    /// Most connections of the pool (the listener has one more).
    pub pool_size: usize,
    /// PEM file of the CAs to trust for TLS to the database; `None`: the system's.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Whether `s` may name the schema: lower-case letters, digits and `_`, not starting with a
/// digit, at most 48 bytes (so the notification channel name fits PostgreSQL's 63).
pub fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parse a connection URL (without connecting), for the configuration check.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    tokio_postgres::Config::from_str(url).map_err(|e| format!("not a PostgreSQL URL: {e}"))
}

/// Whether every host of `cfg` is a loopback address or a Unix socket (where TLS adds
/// nothing).
pub fn only_local_hosts(cfg: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    cfg.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    })
}

/// What the store's tasks share.
pub(crate) struct Shared {
    pool: deadpool_postgres::Pool,
    schema: String,
    /// The `NOTIFY` channel of this schema.
    channel: String,
    changes: broadcast::Sender<StoreChange>,
    /// The last database call failed on the connection, and none has succeeded since.
    failing: AtomicBool,
}

impl Shared {
    fn saw(&self, ok: bool) {
        self.failing.store(!ok, Ordering::Release);
    }
}

/// A runtime that may be dropped anywhere (in async contexts too): it shuts down in the
/// background.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// See the module documentation.
pub struct PgStore {
    shared: Arc<Shared>,
    runtime: Mutex<OwnedRuntime>,
    handle: tokio::runtime::Handle,
    writes: mpsc::UnboundedSender<writer::WriteTask>,
    observer: Arc<Mutex<Option<Arc<dyn super::CommitObserver>>>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

fn tls_connector(
    ca_file: Option<&PathBuf>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(file) => {
            for cert in CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("data.tls_ca {}: {e}", file.display()))?
            {
                let cert = cert.map_err(|e| format!("data.tls_ca {}: {e}", file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("data.tls_ca {}: {e}", file.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS to the database: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgStore {
    /// Connect, create the schema if missing, run the migrations this build embeds (refusing a
    /// database migrated by a newer build), and start the writer and the listener. Fails
    /// with `Unavailable` if the database cannot be reached now.
    pub fn open(options: &PgOptions) -> Result<PgStore, StoreError> {
        if !valid_schema(&options.schema) {
            return Err(StoreError::Unavailable(format!(
                "data.schema {:?}: use lower-case letters, digits and _",
                options.schema
            )));
        }
        let mut cfg = parse_url(options.url.expose_secret()).map_err(StoreError::Unavailable)?;
        if let Some(p) = &options.password {
            cfg.password(p.expose_secret().as_bytes());
        }
        cfg.options(format!("-c search_path={}", options.schema));
        cfg.application_name("oidc-realm");
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        cfg.keepalives(true);
        let tls = tls_connector(options.ca_file.as_ref()).map_err(StoreError::Unavailable)?;
        let owned = OwnedRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("store-pg")
                .enable_all()
                .build()
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start the store runtime: {e}"))
                })?,
        ));
        let Some(runtime) = owned.0.as_ref() else {
            return Err(StoreError::Unavailable("no store runtime".into()));
        };
        let handle = runtime.handle().clone();
        let manager = deadpool_postgres::Manager::from_config(
            cfg.clone(),
            tls.clone(),
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _guard = runtime.enter();
            deadpool_postgres::Pool::builder(manager)
                .max_size(options.pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(5)))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("connection pool: {e}")))?
        };
        let (changes, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            pool,
            schema: options.schema.clone(),
            channel: format!("oidc_realm.{}", options.schema),
            changes,
            failing: AtomicBool::new(false),
        });
        // Migrate before anything else runs.
        // Not `block_on`: `open` may be called from within another runtime (the server's,
        // a test's). The caller's thread waits for the store's runtime instead.
        let s = Arc::clone(&shared);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = done_tx.send(migrate::run(&s).await);
        });
        done_rx
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Unavailable("migration task failed".into())))
            .map_err(|e| match e {
                StoreError::Unavailable(why) => {
                    StoreError::Unavailable(format!("PostgreSQL: {why}"))
                }
                e => e,
            })?;
        let observer: Arc<Mutex<Option<Arc<dyn super::CommitObserver>>>> =
            Arc::new(Mutex::new(None));
        let (writes, queue) = mpsc::unbounded_channel();
        runtime.spawn(writer::writer_loop(
            Arc::clone(&shared),
            queue,
            Arc::clone(&observer),
        ));
        // The listener is up before `open` returns: a change committed after it is seen.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        runtime.spawn(listen::listen_loop(Arc::clone(&shared), cfg, tls, ready_tx));
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        runtime.spawn(probe_loop(Arc::clone(&shared)));
        Ok(PgStore {
            shared,
            handle,
            runtime: Mutex::new(owned),
            writes,
            observer,
        })
    }

    /// Run `f` on the store's runtime and wait for it (at most [`CALL_TIMEOUT`]).
    pub(crate) async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let fut = f(Arc::clone(&shared));
        let task = self
            .handle
            .spawn(async move { tokio::time::timeout(CALL_TIMEOUT, fut).await });
        let result = match task.await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "the database did not answer in time".into(),
            )),
            Err(e) => Err(StoreError::Unavailable(format!("store task failed: {e}"))),
        };
        if let Err(StoreError::Unavailable(_)) = &result {
            shared.saw(false);
        }
        result
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// See [`Store::health`](super::Store::health).
    pub fn health(&self) -> StoreHealth {
        if self.shared.failing.load(Ordering::Acquire) {
            StoreHealth::Failing {
                reason: "store_unreachable",
            }
        } else {
            StoreHealth::Ok
        }
    }

    /// Stop the store's runtime (its connections close). Later calls fail with `Unavailable`.
    pub fn close(&self) {
        let rt = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .take();
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Keeps [`PgStore::health`] true without traffic: a `SELECT 1` every 5 s, every second
/// while failing (so a node that lost the database reports healthy again soon after it is
/// back, and one that lost it while idle reports it).
async fn probe_loop(shared: Arc<Shared>) {
    loop {
        let failing = shared.failing.load(Ordering::Acquire);
        tokio::time::sleep(Duration::from_secs(if failing { 1 } else { 5 })).await;
        let probe = async {
            let client = shared.pool.get().await.map_err(db_error)?;
            client.simple_query("SELECT 1").await.map_err(db_error)?;
            Ok::<(), StoreError>(())
        };
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(5), probe).await,
            Ok(Ok(()))
        );
        if ok == failing {
            if ok {
                tracing::info!("the database answers again");
            } else {
                tracing::error!("the database does not answer");
            }
        }
        shared.saw(ok);
    }
}

/// A database error as a store error, for the log: the server's code and message (never its
/// detail, which may quote values), or the client's error and its cause.
pub(crate) fn db_error(e: impl Into<DbFailure>) -> StoreError {
    StoreError::Unavailable(e.into().0)
}

/// The text of a failure talking to the database (see [`db_error`]).
pub(crate) struct DbFailure(pub(crate) String);

impl From<tokio_postgres::Error> for DbFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        DbFailure(pg_text(&e))
    }
}

impl From<deadpool_postgres::PoolError> for DbFailure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => DbFailure(pg_text(&e)),
            e => DbFailure(format!("connection pool: {e}")),
        }
    }
}

pub(crate) fn pg_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A stable 64-bit advisory lock key for `what` in `schema` (FNV-1a).
pub(crate) fn lock_key(schema: &str, what: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"oidc-realm:"
        .iter()
        .chain(schema.as_bytes())
        .chain(b":")
        .chain(what.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("oidc_realm"));
        assert!(valid_schema("t_1a2b"));
        for bad in ["", "1abc", "Abc", "a-b", "a;drop", "a b", &"x".repeat(49)] {
            assert!(!valid_schema(bad), "{bad:?}");
        }
    }

    #[test]
    fn local_hosts_are_told_apart() {
        assert!(only_local_hosts(
            &parse_url("postgres://u@127.0.0.1/db").unwrap()
        ));
        assert!(only_local_hosts(
            &parse_url("postgres://u@localhost:5433/db").unwrap()
        ));
        assert!(!only_local_hosts(
            &parse_url("postgres://u@db.example/db").unwrap()
        ));
        assert!(!only_local_hosts(
            &parse_url("postgres://u@127.0.0.1,10.0.0.2/db").unwrap()
        ));
        assert!(parse_url("mysql://x").is_err());
    }

    #[test]
    fn lock_keys_differ_by_schema_and_purpose() {
        assert_ne!(lock_key("a", "flows"), lock_key("b", "flows"));
        assert_ne!(lock_key("a", "flows"), lock_key("a", "migrate"));
        assert_eq!(lock_key("a", "flows"), lock_key("a", "flows"));
    }

    #[test]
    fn options_debug_shows_no_url() {
        let o = PgOptions {
            url: Secret::from("postgres://u:hunter2@h/db".to_string()),
            password: Some(Secret::from("pw-secret".to_string())),
            schema: "s".into(),
            pool_size: 4,
            ca_file: None,
        };
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw-secret"),
            "{shown}"
        );
    }
}

#[cfg(test)]
mod conformance_tests {
    use super::testing::TestSchema;
    use crate::store::{conformance, Store};
    use std::sync::{Arc, Mutex};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_store_conforms() {
        let schemas: Arc<Mutex<Vec<TestSchema>>> = Arc::default();
        let s = Arc::clone(&schemas);
        conformance::run_all(move || {
            let schema = TestSchema::new();
            let store = Arc::new(schema.open()) as Arc<dyn Store>;
            s.lock().unwrap().push(schema);
            async move { store }
        })
        .await;
    }
}
