//! The application state shared by every request: the configuration snapshot, the services
//! over the store, caller authentication, metrics and the reload log. The route table that
//! serves it is `crate::http::configure`.

mod changes;
mod reload_log;
mod sweeper;

pub use reload_log::{ReloadFailure, ReloadInfo, ReloadLog};
pub use sweeper::spawn_sweeper;

use crate::audit::{Audit, AuditOpenError};
use crate::auth::caller::{Authenticator, Caller, CallerRefused, PasswordRefused};
use crate::auth::Authentication;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::realm::flow::Flows;
use crate::realm::{RealmBuildErrors, Realms};
use crate::service::role_mappings::RoleMappings;
use crate::store::Store;
use crate::tokens::TokenService;
use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// One loaded configuration, with the realms built from it; swapped whole on reload.
#[derive(Debug)]
pub struct Runtime {
    /// Increases by one on every successful (re)load.
    pub generation: u64,
    pub settings: Arc<Settings>,
    pub realms: Arc<Realms>,
    pub warnings: Vec<String>,
    /// When this configuration was loaded (the injected clock).
    pub loaded_at: crate::clock::UnixMillis,
}

/// Everything a request may need. Shared by all workers.
#[derive(Debug)]
pub struct AppState {
    runtime: ArcSwap<Runtime>,
    pub tokens: TokenService,
    pub clock: SharedClock,
    flows: Flows,
    /// Caller authentication: passwords, service tokens, bearer tokens, request limits.
    pub callers: Authenticator,
    /// Role mappings: the configuration's and the API's.
    pub role_mappings: RoleMappings,
    /// Reload bookkeeping (config path, last error) for the reloader and the status API.
    reload: ReloadLog,
    /// Prometheus metrics of this state (served on `metrics.bind`, see [`crate::metrics`]).
    pub metrics: crate::metrics::Metrics,
    /// The audit trail (`audit.*`, opened at start; restart-only).
    pub audit: Audit,
    /// The store, for its health (the services hold their own handles).
    store: Arc<dyn Store>,
    /// Changes of a shared store followed so far (`changes`).
    store_changes: std::sync::atomic::AtomicU64,
    /// Connected accounts: per-user OAuth grants at third-party services.
    pub connections: crate::connections::Connections,
}

/// Why a state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateBuildError {
    /// Realms could not be built from their settings.
    #[error("{0}")]
    Realms(RealmBuildErrors),
    /// `audit.path` cannot be opened.
    #[error(transparent)]
    Audit(#[from] AuditOpenError),
}

impl StateBuildError {
    /// One line per problem, as startup reports them.
    pub fn messages(&self) -> Vec<String> {
        match self {
            StateBuildError::Realms(errors) => errors.clone().into(),
            StateBuildError::Audit(e) => vec![e.to_string()],
        }
    }
}

impl AppState {
    /// Build the state: realms (file JWKS are read now), the audit trail (its file is
    /// opened now) and the services over `store`. Every realm that cannot be built is
    /// reported. The store's commits are observed by this state's metrics from now on
    /// (replacing an earlier state's observer).
    pub fn try_new(
        settings: Settings,
        warnings: Vec<String>,
        store: Arc<dyn Store>,
        clock: SharedClock,
    ) -> Result<Arc<Self>, StateBuildError> {
        let now = clock.now_millis();
        let metrics = crate::metrics::Metrics::new();
        let realms = Realms::build_from(&settings, None, now, metrics.op_calls())
            .map_err(StateBuildError::Realms)?;
        let audit = Audit::open(&settings.audit, clock.clone())?;
        let connections =
            crate::connections::Connections::new(store.clone(), clock.clone(), audit.clone());
        store.observe_commits(Arc::new(metrics.commits()));
        let role_mappings =
            RoleMappings::new(store.clone(), settings.role_mappings.clone(), audit.clone());
        let callers = Authenticator::new(settings.limits, &metrics);
        // A store other nodes write too: cached bearer records get a TTL (the backstop behind
        // its change notifications, followed below).
        let shared_store = store.changes().is_some();
        let cache_bytes = settings.token.cache_size;
        let tokens = match (&settings.data.postgres, shared_store) {
            (Some(pg), true) => TokenService::with_cache_ttl(
                store.clone(),
                clock.clone(),
                cache_bytes,
                pg.cache_ttl,
            ),
            (None, true) => TokenService::with_cache_ttl(
                store.clone(),
                clock.clone(),
                cache_bytes,
                std::time::Duration::from_secs(5),
            ),
            (_, false) => TokenService::with_cache_bytes(store.clone(), clock.clone(), cache_bytes),
        };
        let state = Arc::new(Self {
            callers,
            metrics,
            audit,
            role_mappings,
            runtime: ArcSwap::from_pointee(Runtime {
                generation: 1,
                settings: Arc::new(settings),
                realms: Arc::new(realms),
                warnings,
                loaded_at: now,
            }),
            tokens,
            clock,
            flows: Flows::new(store.clone()),
            connections,
            store,
            reload: ReloadLog::default(),
            store_changes: std::sync::atomic::AtomicU64::new(0),
        });
        changes::follow_store(&state);
        Ok(state)
    }

    /// [`try_new`](Self::try_new) for tests and tools with settings known to be good.
    ///
    /// # Panics
    /// If a realm cannot be built.
    pub fn new(
        settings: Settings,
        warnings: Vec<String>,
        store: Arc<dyn Store>,
        clock: SharedClock,
    ) -> Arc<Self> {
        match Self::try_new(settings, warnings, store, clock) {
            Ok(s) => s,
            Err(errors) => panic!("the state could not be built: {errors}"),
        }
    }

    /// The configuration as it is now. Hold the `Arc` for the whole request so it sees one
    /// snapshot.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Replace the configuration and its realms (used by reload). On error the running
    /// configuration stays. Realms whose `op.jwkset_path` is unchanged keep their key set.
    /// Requests in flight finish on the snapshot they started with.
    pub fn swap_settings(
        &self,
        settings: Settings,
        warnings: Vec<String>,
    ) -> Result<u64, RealmBuildErrors> {
        let now = self.clock.now_millis();
        let old = self.runtime.load_full();
        let realms =
            Realms::build_from(&settings, Some(&old.realms), now, self.metrics.op_calls())?;
        let generation = old.generation + 1;
        self.role_mappings.set_file(settings.role_mappings.clone());
        self.callers.set_limits(settings.limits, &self.metrics);
        self.runtime.store(Arc::new(Runtime {
            generation,
            settings: Arc::new(settings),
            realms: Arc::new(realms),
            warnings,
            loaded_at: now,
        }));
        Ok(generation)
    }

    /// Whether responses carry `X-Elastic-Product` (`compatibility.product_header`), and the
    /// major of `compatibility.version` (the version a header without `compatible-with`
    /// stands for).
    pub fn compatibility_signals(&self) -> (bool, u8) {
        let rt = self.runtime.load();
        let c = &rt.settings.compatibility;
        let major = c.version.split('.').next().and_then(|m| m.parse().ok());
        (c.product_header, major.unwrap_or(8))
    }

    /// The caller of a request, authenticated as `auth` from `client`, with the request
    /// limits in force and this state's audit trail.
    pub fn caller(&self, auth: Authentication, client: Option<std::net::IpAddr>) -> Caller {
        self.callers.caller(auth, client, &self.audit)
    }

    /// Whether the store can serve writes (`GET /_health`).
    pub fn store_health(&self) -> crate::store::StoreHealth {
        self.store.health()
    }

    /// Reload bookkeeping (written by `crate::reload`).
    pub fn reload_log(&self) -> &ReloadLog {
        &self.reload
    }

    /// The roles a realm user gets from the role mappings (sorted, de-duplicated). Never
    /// touches the store: the mappings are loaded at startup ([`Self::load_role_mappings`]).
    pub fn roles_for(&self, user: &crate::roles::UserModel) -> Vec<String> {
        self.role_mappings.roles_for(user)
    }

    /// Load the stored role mappings (startup; after another node changed them). Returns
    /// messages about stored mappings that were skipped because they no longer compile.
    pub async fn load_role_mappings(&self) -> Result<Vec<String>, crate::store::StoreError> {
        self.role_mappings.reload().await
    }

    /// Check a configured user's password with the running configuration (see
    /// [`Authenticator::verify_password`]).
    pub async fn verify_password(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Authentication, PasswordRefused> {
        let rt = self.runtime();
        self.callers
            .verify_password(&rt.settings, &self.metrics, username, password, client)
            .await
    }

    /// Authenticate the caller of a `/_security/...` request with the running configuration
    /// (see [`Authenticator::authenticate`]).
    pub async fn authenticate_caller(
        &self,
        authorization: Option<&HeaderValue>,
        uri: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Authentication, CallerRefused> {
        let rt = self.runtime();
        self.callers
            .authenticate(
                &rt.settings,
                &self.tokens,
                &self.metrics,
                authorization,
                uri,
                client,
            )
            .await
    }

    /// How many full password verifications ran (remembered successes not counted).
    pub fn password_verifications(&self) -> u64 {
        self.callers.password_verifications()
    }

    /// Every metric with the values read now (what `GET /metrics` answers).
    pub fn render_metrics(&self) -> String {
        let rt = self.runtime();
        let now = self.clock.now_millis();
        let jwks = rt
            .realms
            .iter()
            .map(|realm| {
                let keys = realm.keys().snapshot().map_or(0, |s| s.len());
                let age = realm
                    .keys()
                    .status()
                    .fetched_at
                    .map(|at| now.saturating_sub(at).max(0) as f64 / 1000.0);
                (realm.name().to_string(), keys, age)
            })
            .collect();
        self.metrics.render(crate::metrics::ScrapeValues {
            generation: rt.generation,
            password_verifications: self.password_verifications(),
            bearer_cache: {
                let u = self.tokens.cache_usage();
                (u.entries, u.estimated_bytes)
            },
            jwks,
        })
    }

    /// The login service over the configuration snapshot `rt`.
    pub fn login<'a>(&'a self, rt: &'a Runtime) -> crate::service::login::Login<'a> {
        crate::service::login::Login {
            realms: &rt.realms,
            settings: &rt.settings,
            tokens: &self.tokens,
            flows: &self.flows,
            clock: self.clock.as_ref(),
            role_mappings: &self.role_mappings,
            metrics: &self.metrics,
            audit: &self.audit,
        }
    }

    /// The token-grant service over the configuration snapshot `rt`.
    pub fn grants<'a>(&'a self, rt: &'a Runtime) -> crate::service::grants::Grants<'a> {
        crate::service::grants::Grants {
            settings: &rt.settings,
            tokens: &self.tokens,
            callers: &self.callers,
            metrics: &self.metrics,
            audit: &self.audit,
        }
    }
}
