//! Application state and the one route table, used by the binary and by every test.

use crate::auth::{self, Authentication, AuthenticationType, BasicVerifier};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::error::{ApiError, CORRELATION_HEADER, CORRELATION_ID};
use crate::realm::flow::Flows;
use crate::realm::Realms;
use crate::store::Store;
use crate::tokens::{BearerError, Lifetimes, TokenError, TokenService};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, HttpRequest};
use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::Instrument;

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
    basic: BasicVerifier,
    /// Bounds the password verifications running at once (argon2 costs ~19 MiB and a core
    /// each): failed logins cannot exhaust memory or CPU.
    hashing: tokio::sync::Semaphore,
    /// Full password verifications per client address (a remembered success costs none): a
    /// flood of bad credentials from some addresses is answered 429 without hashing, so the
    /// verification slots stay free for everyone else.
    per_address: auth::limits::Keyed<std::net::IpAddr>,
    /// Full password verifications done (for tests and, later, metrics).
    verifications: std::sync::atomic::AtomicU64,
    /// Request rate limits per caller and address (`limits.requests_*`), rebuilt on a reload
    /// that changes them.
    request_limits: ArcSwap<auth::limits::RequestLimits>,
    /// Role mappings: the configuration's and the API's (see `roles::live`).
    pub role_mappings: crate::roles::live::LiveMappings,
    /// Reload bookkeeping (config path, last error) for the reloader and the status API.
    reload: crate::reload::ReloadLog,
    /// Prometheus metrics of this state (served on `metrics.bind`, see [`crate::metrics`]).
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    /// Build the state: realms (file JWKS are read now) and the services over `store`.
    /// Every realm that cannot be built is reported.
    pub fn try_new(
        settings: Settings,
        warnings: Vec<String>,
        store: Arc<dyn Store>,
        clock: SharedClock,
    ) -> Result<Arc<Self>, Vec<String>> {
        let now = clock.now_millis();
        let realms = Realms::build_from(&settings, None, now)?;
        let role_mappings = crate::roles::live::LiveMappings::new(settings.role_mappings.clone());
        let metrics = crate::metrics::Metrics::new();
        let request_limits = ArcSwap::from_pointee(auth::limits::RequestLimits::with_counters(
            settings.limits,
            metrics.rate_limit_counters(),
        ));
        Ok(Arc::new(Self {
            metrics,
            request_limits,
            role_mappings,
            runtime: ArcSwap::from_pointee(Runtime {
                generation: 1,
                settings: Arc::new(settings),
                realms: Arc::new(realms),
                warnings,
                loaded_at: now,
            }),
            tokens: TokenService::new(store.clone(), clock.clone()),
            clock,
            flows: Flows::new(store),
            basic: BasicVerifier::new(),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            ),
            per_address: auth::limits::keyed(PASSWORD_CHECKS_PER_SECOND, PASSWORD_CHECKS_BURST),
            verifications: std::sync::atomic::AtomicU64::new(0),
            reload: crate::reload::ReloadLog::default(),
        }))
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
            Err(errors) => panic!("realms could not be built: {}", errors.join("; ")),
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
    ) -> Result<u64, Vec<String>> {
        let now = self.clock.now_millis();
        let old = self.runtime.load_full();
        let realms = Realms::build_from(&settings, Some(&old.realms), now)?;
        let generation = old.generation + 1;
        self.role_mappings.set_file(settings.role_mappings.clone());
        if self.request_limits.load().settings != settings.limits {
            self.request_limits
                .store(Arc::new(auth::limits::RequestLimits::with_counters(
                    settings.limits,
                    self.metrics.rate_limit_counters(),
                )));
        }
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

    /// Reload bookkeeping (see [`crate::reload`]).
    pub fn reload_log(&self) -> &crate::reload::ReloadLog {
        &self.reload
    }

    /// Pending logins.
    pub fn flows(&self) -> &Flows {
        &self.flows
    }

    /// The roles a realm user gets from the role mappings (sorted, de-duplicated). Never
    /// touches the store: the mappings are loaded at startup ([`Self::load_role_mappings`]).
    pub fn roles_for(&self, user: &crate::roles::UserModel) -> Vec<String> {
        self.role_mappings.roles_for(user)
    }

    /// Load the stored role mappings (startup; after another node changed them). Returns
    /// messages about stored mappings that were skipped because they no longer compile.
    pub async fn load_role_mappings(&self) -> Result<Vec<String>, crate::store::StoreError> {
        self.role_mappings.reload(&**self.tokens.store()).await
    }

    /// Token lifetimes from the current configuration.
    pub fn lifetimes(&self) -> Lifetimes {
        let rt = self.runtime.load();
        Lifetimes {
            access: rt.settings.token.timeout,
            refresh: rt.settings.token.refresh_timeout,
        }
    }

    /// Check a configured user's password (argon2/bcrypt, remembered on success). `client`
    /// is the caller's address: full verifications are limited per address.
    pub async fn verify_password(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Authentication, PasswordRefused> {
        let rt = self.runtime();
        let entry = rt.settings.users.get(username);
        if let Some(e) = entry {
            if self.basic.remembered(username, &e.password_hash, password) {
                return Authentication::for_file_user(&rt.settings, username)
                    .ok_or(PasswordRefused::Wrong);
            }
        }
        // No real password is this long; refuse without hashing it.
        if password.len() > MAX_PASSWORD_LEN {
            return Err(PasswordRefused::Wrong);
        }
        // A full verification: within this address's allowance only.
        if let Some(ip) = client {
            if let Err(not_until) = self.per_address.check_key(&ip) {
                self.metrics
                    .rate_limited(crate::metrics::Limit::PasswordChecks);
                return Err(PasswordRefused::Throttled(auth::limits::retry_after_secs(
                    &not_until,
                )));
            }
        }
        // Unknown users cost one verification too, so timing does not reveal which names
        // exist; but when verification slots are scarce they are shed first.
        let (hash, wait) = match entry {
            Some(e) => (e.password_hash.clone(), HASHING_WAIT),
            None => (dummy_hash().clone(), UNKNOWN_USER_HASHING_WAIT),
        };
        let Ok(Ok(_permit)) = tokio::time::timeout(wait, self.hashing.acquire()).await else {
            self.metrics.password_busy();
            return Err(PasswordRefused::Busy);
        };
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pw = crate::secret::Secret::new(password.to_string());
        let check = hash.clone();
        let ok = web::block(move || auth::basic_verify(&check, pw.expose_secret()))
            .await
            .unwrap_or(false);
        if !ok || entry.is_none() {
            return Err(PasswordRefused::Wrong);
        }
        self.basic.remember(username, &hash, password);
        Authentication::for_file_user(&rt.settings, username).ok_or(PasswordRefused::Wrong)
    }

    /// How many full password verifications ran (remembered successes not counted).
    pub fn password_verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forget the allowance of addresses and callers not seen for a while (called by the
    /// sweeper).
    pub fn forget_idle_addresses(&self) {
        auth::limits::forget_idle(&self.per_address);
        self.request_limits.load().forget_idle();
    }

    /// Authenticate the caller of a `/_security/...` request.
    pub async fn authenticate_caller(
        &self,
        authorization: Option<&HeaderValue>,
        uri: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Authentication, ApiError> {
        let Some(value) = authorization else {
            return Err(ApiError::unauthenticated(
                "credentials_missing",
                format!("missing authentication credentials for REST request [{uri}]"),
            ));
        };
        let Ok(value) = value.to_str() else {
            return Err(ApiError::unauthenticated(
                "credentials_malformed",
                format!("malformed authentication credentials for REST request [{uri}]"),
            ));
        };
        if let Some(b64) = strip_scheme(value, "Basic") {
            let Some((username, password)) = decode_basic(b64) else {
                return Err(ApiError::unauthenticated(
                    "credentials_malformed",
                    format!("malformed authentication credentials for REST request [{uri}]"),
                ));
            };
            return self
                .verify_password(&username, password.expose_secret(), client)
                .await
                .map_err(|r| {
                    r.into_error(format!(
                        "unable to authenticate user [{username}] for REST request [{uri}]"
                    ))
                });
        }
        if let Some(token) = strip_scheme(value, "Bearer") {
            let token = token.trim();
            if auth::service_tokens::looks_like(token) {
                return self.authenticate_service_token(token, uri);
            }
            let started = std::time::Instant::now();
            let checked = self.tokens.authenticate(token).await;
            let outcome = match &checked {
                Ok(_) => crate::metrics::BearerOutcome::Success,
                Err(TokenError::Bearer(e)) => crate::metrics::BearerOutcome::of(*e),
                Err(_) => crate::metrics::BearerOutcome::Error,
            };
            self.metrics.bearer_check(outcome, started.elapsed());
            return match checked {
                Ok(doc) => {
                    let rt = self.runtime();
                    Ok(Authentication {
                        privileges: Authentication::privileges_of(&rt.settings, &doc.user),
                        user: crate::auth::CallerUser::Token(doc),
                        kind: AuthenticationType::Token,
                        service_token: None,
                    })
                }
                Err(TokenError::Bearer(e)) => Err(bearer_error(e)),
                Err(e) => Err(token_error(e)),
            };
        }
        Err(ApiError::unauthenticated(
            "credentials_unsupported",
            format!("unsupported authentication scheme for REST request [{uri}]"),
        ))
    }
}

impl AppState {
    /// A service account token (`Authorization: Bearer AAEAAQ...`). A malformed token, an
    /// unknown name and a wrong secret all get the same 401 (the log says which).
    fn authenticate_service_token(
        &self,
        token: &str,
        uri: &str,
    ) -> Result<Authentication, ApiError> {
        let refused = |detail: &str| {
            ApiError::unauthenticated(
                "credentials_invalid",
                format!("unable to authenticate with provided credentials and anonymous access is not allowed for this request [{uri}]"),
            )
            .with_detail(detail.to_string())
        };
        let Some(presented) = auth::service_tokens::parse_bearer(token) else {
            return Err(refused("malformed service account token"));
        };
        let rt = self.runtime();
        match auth::service_tokens::verify(&rt.settings.service_tokens, &presented) {
            Some(entry) => Ok(Authentication::for_service_token(&presented, entry)),
            // The name passed `check_name` (letters, digits, `-`, `_`, `/`): safe to log.
            None => Err(refused(&format!(
                "unknown service account token or wrong secret for [{}]",
                presented.name
            ))),
        }
    }
}

/// Longest password verified; longer ones are refused without hashing.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How long a password check waits for a free verification slot before the request is
/// answered 503.
pub const HASHING_WAIT: Duration = Duration::from_secs(5);
/// The same for an unknown user name: shed first when slots are scarce.
pub const UNKNOWN_USER_HASHING_WAIT: Duration = Duration::from_millis(250);
/// Full password verifications allowed per client address: a sustained rate and a burst.
/// A facilitator needs one per (user, password) every 5 minutes; a person typing passwords a
/// handful per minute.
pub const PASSWORD_CHECKS_PER_SECOND: std::num::NonZeroU32 = std::num::NonZeroU32::new(2).unwrap();
pub const PASSWORD_CHECKS_BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(20).unwrap();

/// Why a password was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRefused {
    /// Unknown user or wrong password.
    Wrong,
    /// Too many password checks are running; try again.
    Busy,
    /// This client address used its allowance of password verifications; retry after this
    /// many seconds.
    Throttled(u64),
}

impl PasswordRefused {
    /// The client error: 401 for wrong credentials, 503 when overloaded.
    pub fn into_error(self, reason: String) -> ApiError {
        match self {
            PasswordRefused::Wrong => ApiError::unauthenticated("credentials_invalid", reason)
                .with_detail("unknown user or wrong password"),
            PasswordRefused::Busy => {
                ApiError::busy("too many password verifications are running; retry shortly")
            }
            PasswordRefused::Throttled(secs) => ApiError::too_many_requests(
                "password_checks_throttled",
                format!(
                    "too many password verifications from this address; retry in {secs} seconds"
                ),
                secs,
            ),
        }
    }
}

/// 401 for a refused bearer token, with Elasticsearch's descriptions: unknown, invalidated
/// and expired tokens all read "expired" (as in Elasticsearch); the log says which.
pub fn bearer_error(e: BearerError) -> ApiError {
    let description = match e {
        BearerError::Malformed => "The access token is malformed",
        _ => "The access token expired",
    };
    // One code for all three, as one description: an unauthenticated holder of an old token
    // does not learn whether it was revoked or merely expired.
    let code = match e {
        BearerError::Malformed => "token_malformed",
        _ => "token_expired",
    };
    ApiError::invalid_token(code, description).with_detail(e.to_string())
}

/// Map a token-service failure that is not a client error.
pub fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Store(s) => s.into(),
        TokenError::Bearer(b) => bearer_error(b),
        TokenError::Refresh(r) => ApiError::oauth("invalid_grant", r.to_string()),
        TokenError::Seal(what) => ApiError::internal(format!("sealed data did not open: {what}")),
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn decode_basic(b64: &str) -> Option<(String, crate::secret::Secret<String>)> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), crate::secret::Secret::new(p.to_string())))
}

fn dummy_hash() -> &'static crate::config::PasswordHash {
    static DUMMY: OnceLock<crate::config::PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let h = auth::hash_password("oidc-realm timing equaliser")
            .unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        crate::config::PasswordHash::Argon2id(h)
    })
}

/// The authenticated caller of a request, as an extractor, with the client address and the
/// request limits in force.
#[derive(Debug, Clone)]
pub struct Caller {
    pub auth: Authentication,
    pub client: Option<std::net::IpAddr>,
    limits: Arc<auth::limits::RequestLimits>,
}

impl Caller {
    /// Refuse with 403 unless the caller may perform `action`, then with 429 if the action
    /// counts against the request limits and the caller or its address is over them.
    pub fn require(self, action: auth::Action) -> Result<Authentication, ApiError> {
        self.auth.require(action)?;
        if auth::limits::RequestLimits::applies_to(action) {
            self.limits.admit(
                &self.auth.user.username,
                &self.auth.user.realm.name,
                self.client,
            )?;
        }
        Ok(self.auth)
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req.headers().get(AUTHORIZATION).cloned();
        let uri = req.uri().path().to_string();
        let client = req.peer_addr().map(|a| a.ip());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState not registered"))?;
            let auth = state
                .authenticate_caller(header.as_ref(), &uri, client)
                .await?;
            Ok(Caller {
                auth,
                client,
                limits: state.request_limits.load_full(),
            })
        })
    }
}

/// Give every request a correlation id: in the task-local that errors read, in the log span,
/// and in the `x-correlation-id` response header.
async fn correlation(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = crate::crypto::random_urlsafe(12);
    let span = tracing::info_span!("request", correlation_id = %id, method = %req.method(), path = %req.path());
    let mut res = CORRELATION_ID
        .scope(id.clone(), next.call(req).instrument(span))
        .await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(CORRELATION_HEADER), v);
    }
    Ok(res)
}

/// Register state, limits and every route. The binary and the tests call exactly this.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let max_body = state.runtime().settings.http.max_body;
        cfg.app_data(web::Data::from(state))
            .app_data(web::PayloadConfig::new(max_body))
            .service(
                web::scope("")
                    .wrap(from_fn(crate::http::compat::compat))
                    .wrap(from_fn(correlation))
                    .configure(crate::http::routes)
                    .default_service(web::to(crate::http::no_handler)),
            );
    }
}

/// Run the background sweeper: every `every`, delete expired tokens and flows in batches.
pub fn spawn_sweeper(state: Arc<AppState>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            state.forget_idle_addresses();
            match state.tokens.sweep(1_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept expired tokens and flows"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired records failed"),
            }
        }
    })
}
