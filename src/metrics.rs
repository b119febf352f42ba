//! Prometheus metrics (`prometheus-client`), served by `GET /metrics` on a listener of its
//! own (`metrics.bind`, off unless set) and never on the API listener.
//!
//! [`Metrics`] owns its [`Registry`] (no global statics: every `AppState` has its own, so
//! tests do not share counters). Request paths only touch pre-created handles (an atomic add,
//! and for the bearer-check histogram one uncontended lock); label sets are built only for
//! logins and prepares (which cost an OP round trip anyway). Values that the running
//! configuration already knows (generation, JWKS keys and their age, password
//! verifications) are read at scrape time: [`Metrics::render`] takes them as [`ScrapeValues`]. Every metric is listed in
//! `docs/operations.md` ("Metrics").

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Every metric name starts with this (followed by `_`).
pub const PREFIX: &str = "oidc_realm";

/// The `Content-Type` of `GET /metrics` (OpenMetrics text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the bearer-check latency buckets: a cached check takes
/// microseconds, a store read on a miss up to milliseconds.
pub const BEARER_BUCKETS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];

/// Upper bounds (seconds) of the OP-call latency buckets: a provider on the same network
/// answers in milliseconds, a remote one in tens to hundreds, and `http.*` timeouts end a
/// call after seconds.
pub const OP_CALL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds (seconds) of the store-commit latency buckets: one durable commit is one or
/// two `fsync`s, from ~100 µs (NVMe with a write cache) to tens of milliseconds (a busy disk).
pub const COMMIT_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of the store-commit batch-size buckets (write tasks per commit, at most
/// [`crate::store::redb::MAX_BATCH`]).
pub const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The outcome label of a JWKS fetch whose HTTP call succeeded but whose document is not a
/// usable JWK set (not an [`OpError`](crate::oidc::client::OpError) code).
pub const JWKS_INVALID: &str = "jwks_invalid";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpCallLabels {
    realm: String,
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpEndpointLabels {
    realm: String,
    endpoint: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn op_call_histogram() -> Histogram {
    Histogram::new(OP_CALL_BUCKETS)
}

/// The OP-call metrics (`oidc_realm_op_calls_total`, `oidc_realm_op_call_seconds`), cheap to
/// clone into each realm when it is built (at start and on every reload). The default is
/// detached (counts nothing that is exported), for realms built outside an [`AppState`]
/// (`check-config`).
///
/// [`AppState`]: crate::app::AppState
#[derive(Clone)]
pub struct OpCallMetrics {
    calls: Family<OpCallLabels, Counter>,
    seconds: HistogramFamily<OpEndpointLabels>,
}

impl Default for OpCallMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            seconds: Family::new_with_constructor(op_call_histogram),
        }
    }
}

impl std::fmt::Debug for OpCallMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpCallMetrics").finish_non_exhaustive()
    }
}

impl OpCallMetrics {
    /// One call of realm `realm` (a configured realm) to `endpoint`, its outcome (`success`,
    /// an [`OpError::code`](crate::oidc::client::OpError::code) or [`JWKS_INVALID`]: a fixed
    /// set) and how long it took. Builds its label sets (two small allocations): a call to
    /// the OP costs a network round trip anyway.
    pub fn record(
        &self,
        realm: &str,
        endpoint: crate::oidc::client::Endpoint,
        outcome: &'static str,
        took: Duration,
    ) {
        let endpoint = endpoint.label();
        self.calls
            .get_or_create(&OpCallLabels {
                realm: realm.to_string(),
                endpoint,
                outcome,
            })
            .inc();
        self.seconds
            .get_or_create(&OpEndpointLabels {
                realm: realm.to_string(),
                endpoint,
            })
            .observe(took.as_secs_f64());
    }
}

/// The store-commit metrics (`oidc_realm_store_commit_seconds`,
/// `oidc_realm_store_commit_batch_size`, `oidc_realm_store_commit_failures_total`), handed to
/// the store by [`AppState`](crate::app::AppState) through
/// [`Store::observe_commits`](crate::store::Store::observe_commits); stores without commits
/// (the memory store) ignore it and the series stay at 0.
#[derive(Clone)]
pub struct CommitMetrics {
    seconds: Histogram,
    batch: Histogram,
    failures: Counter,
}

impl std::fmt::Debug for CommitMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitMetrics").finish_non_exhaustive()
    }
}

impl crate::store::CommitObserver for CommitMetrics {
    fn committed(&self, tasks: usize, took: Duration, ok: bool) {
        self.seconds.observe(took.as_secs_f64());
        self.batch.observe(tasks as f64);
        if !ok {
            self.failures.inc();
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    realm: String,
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RealmLabels {
    realm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

/// What happened to tokens (`oidc_realm_tokens_total{event}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEvent {
    /// A token pair (or a lone access token, `client_credentials`) was issued: OIDC login,
    /// `password` or `client_credentials` grant.
    Issued,
    /// A refresh token was exchanged for a new pair.
    Refreshed,
    /// A refresh token was used again after the reuse window and refused.
    RefreshReuse,
}

/// The result of checking a bearer access token (`oidc_realm_bearer_checks_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerOutcome {
    Success,
    Malformed,
    Unknown,
    Expired,
    Invalidated,
    /// The store or unsealing failed (5xx).
    Error,
}

impl BearerOutcome {
    const ALL: [BearerOutcome; 6] = [
        BearerOutcome::Success,
        BearerOutcome::Malformed,
        BearerOutcome::Unknown,
        BearerOutcome::Expired,
        BearerOutcome::Invalidated,
        BearerOutcome::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BearerOutcome::Success => "success",
            BearerOutcome::Malformed => "malformed",
            BearerOutcome::Unknown => "unknown",
            BearerOutcome::Expired => "expired",
            BearerOutcome::Invalidated => "invalidated",
            BearerOutcome::Error => "error",
        }
    }

    /// The outcome of a refused token.
    pub fn of(e: crate::tokens::BearerError) -> Self {
        use crate::tokens::BearerError as B;
        match e {
            B::Malformed => BearerOutcome::Malformed,
            B::Unknown => BearerOutcome::Unknown,
            B::Expired => BearerOutcome::Expired,
            B::Invalidated => BearerOutcome::Invalidated,
        }
    }
}

/// Which limit refused a request with 429 (`oidc_realm_rate_limited_total{limit}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.requests_per_caller`.
    RequestsPerCaller,
    /// `limits.requests_per_address`.
    RequestsPerAddress,
    /// Full password verifications per client address.
    PasswordChecks,
    /// `limits.pending_logins_per_caller` / `limits.pending_logins`.
    PendingLogins,
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::RequestsPerCaller,
        Limit::RequestsPerAddress,
        Limit::PasswordChecks,
        Limit::PendingLogins,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::RequestsPerCaller => "requests_per_caller",
            Limit::RequestsPerAddress => "requests_per_address",
            Limit::PasswordChecks => "password_checks",
            Limit::PendingLogins => "pending_logins",
        }
    }
}

/// The rate-limit rejection counters, cheap to clone into the request limiters
/// ([`crate::auth::limits::RequestLimits`]), which are rebuilt on reload. The default is
/// detached (counts nothing that is exported), for limiters built outside an [`AppState`].
#[derive(Debug, Clone, Default)]
pub struct RateLimitCounters {
    counters: [Counter; 4],
}

impl RateLimitCounters {
    /// Count one request refused by `limit`.
    pub fn inc(&self, limit: Limit) {
        self.counters[limit as usize].inc();
    }
}

/// See the module documentation.
pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    prepares: Family<RealmLabels, Counter>,
    /// Indexed by [`TokenEvent`] (`Issued`, `Refreshed`, `RefreshReuse`), then invalidated.
    tokens: [Counter; 3],
    invalidated: Counter,
    logouts: Counter,
    /// Indexed by [`BearerOutcome`].
    bearer_checks: [Counter; 6],
    bearer_seconds: Histogram,
    rate_limited: RateLimitCounters,
    password_busy: Counter,
    password_verifications: Counter,
    config_generation: Gauge,
    bearer_cache_entries: Gauge,
    bearer_cache_bytes: Gauge,
    reloads_ok: Counter,
    reloads_failed: Counter,
    jwks_keys: Family<RealmLabels, Gauge>,
    jwks_age: Family<RealmLabels, Gauge<f64, AtomicU64>>,
    op_calls: OpCallMetrics,
    commits: CommitMetrics,
    /// One scrape at a time: the scrape-time families are cleared and refilled.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered; labelled series with a fixed set of values
    /// exist from the start (at 0), so `rate()` sees their first increase.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "OpenID Connect logins (authenticate calls that reached a realm) by realm, outcome (success, failure) and reason code (ok on success; realm empty when the request named no configured realm and the login failed before one was known)",
            logins.clone(),
        );
        let prepares = Family::<RealmLabels, Counter>::default();
        registry.register(
            "prepares",
            "OpenID Connect logins prepared (authentication requests built), by realm",
            prepares.clone(),
        );
        let token_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "tokens",
            "Token service events: issued (pairs issued by logins and the password and client_credentials grants), refreshed, invalidated (tokens invalidated through the token API), refresh_reuse (refresh tokens used again after the reuse window, refused)",
            token_events.clone(),
        );
        let ev = |e: &'static str| token_events.get_or_create_owned(&EventLabels { event: e });
        let tokens = [ev("issued"), ev("refreshed"), ev("refresh_reuse")];
        let invalidated = ev("invalidated");
        let logouts = Counter::default();
        registry.register(
            "logouts",
            "OpenID Connect logouts that invalidated a login's tokens",
            logouts.clone(),
        );
        let checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "bearer_checks",
            "Bearer access tokens checked (every API call authenticated with an access token, e.g. GET /_security/_authenticate), by outcome",
            checks.clone(),
        );
        let bearer_checks = BearerOutcome::ALL.map(|o| {
            checks.get_or_create_owned(&OutcomeLabels {
                outcome: o.as_str(),
            })
        });
        let bearer_seconds = Histogram::new(BEARER_BUCKETS);
        registry.register_with_unit(
            "bearer_check",
            "Time to check a bearer access token (cache or store), whatever the outcome",
            Unit::Seconds,
            bearer_seconds.clone(),
        );
        let limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429, by the limit that refused them",
            limited.clone(),
        );
        let rate_limited = RateLimitCounters {
            counters: Limit::ALL
                .map(|l| limited.get_or_create_owned(&LimitLabels { limit: l.as_str() })),
        };
        let password_busy = Counter::default();
        registry.register(
            "password_checks_busy",
            "Password checks refused with 503 because every verification slot stayed busy",
            password_busy.clone(),
        );
        let password_verifications = Counter::default();
        registry.register(
            "password_verifications",
            "Full password verifications (argon2/bcrypt) run; remembered successes are not counted",
            password_verifications.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "Generation of the running configuration (1 at start, +1 on every successful reload)",
            config_generation.clone(),
        );
        let bearer_cache_entries = Gauge::default();
        registry.register(
            "bearer_cache_entries",
            "Access tokens held in the bearer cache",
            bearer_cache_entries.clone(),
        );
        let bearer_cache_bytes = Gauge::default();
        registry.register(
            "bearer_cache_bytes",
            "Estimated memory of the bearer cache's entries (bounded by token.cache_size)",
            bearer_cache_bytes.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by outcome (success, failure: the running configuration stayed)",
            reloads.clone(),
        );
        let reloads_ok = reloads.get_or_create_owned(&OutcomeLabels { outcome: "success" });
        let reloads_failed = reloads.get_or_create_owned(&OutcomeLabels { outcome: "failure" });
        let jwks_keys = Family::<RealmLabels, Gauge>::default();
        registry.register(
            "jwks_keys",
            "Usable signing keys in each realm's live JWKS",
            jwks_keys.clone(),
        );
        let jwks_age = Family::<RealmLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "jwks_age",
            "Time since each realm's live JWKS was fetched (URL) or read (file); absent before the first success",
            Unit::Seconds,
            jwks_age.clone(),
        );
        let op_calls = OpCallMetrics::default();
        registry.register(
            "op_calls",
            "Calls to each realm's OpenID Provider by endpoint (token, userinfo, jwks) and outcome (success, or the error code: connect_failed, timeout, token_endpoint_rejected, jwks_status, jwks_invalid, ...)",
            op_calls.calls.clone(),
        );
        registry.register_with_unit(
            "op_call",
            "Time of each call to the OpenID Provider by realm and endpoint, whatever the outcome",
            Unit::Seconds,
            op_calls.seconds.clone(),
        );
        let commits = CommitMetrics {
            seconds: Histogram::new(COMMIT_BUCKETS),
            batch: Histogram::new(BATCH_BUCKETS),
            failures: Counter::default(),
        };
        registry.register_with_unit(
            "store_commit",
            "Time of each durable store commit (one write transaction of the group-commit writer, fsync included), failed ones too; redb store only",
            Unit::Seconds,
            commits.seconds.clone(),
        );
        registry.register(
            "store_commit_batch_size",
            "Write tasks (token issues, refreshes, invalidations, role mapping and profile writes, sweeps) committed together in each store commit; redb store only",
            commits.batch.clone(),
        );
        registry.register(
            "store_commit_failures",
            "Store commits that failed (every write of the batch answered 503); redb store only",
            commits.failures.clone(),
        );
        Self {
            registry,
            op_calls,
            commits,
            logins,
            prepares,
            tokens,
            invalidated,
            logouts,
            bearer_checks,
            bearer_seconds,
            rate_limited,
            password_busy,
            password_verifications,
            config_generation,
            bearer_cache_entries,
            bearer_cache_bytes,
            reloads_ok,
            reloads_failed,
            jwks_keys,
            jwks_age,
            scrape: Mutex::new(()),
        }
    }

    /// A successful login in `realm`.
    pub fn login_succeeded(&self, realm: &str) {
        self.logins
            .get_or_create(&LoginLabels {
                realm: realm.to_string(),
                outcome: "success",
                reason: "ok",
            })
            .inc();
    }

    /// A failed login. `realm` must be a configured realm's name (or empty): label values
    /// never come from a request unchecked, so a caller cannot grow the series.
    pub fn login_failed(&self, realm: &str, reason: &'static str) {
        self.logins
            .get_or_create(&LoginLabels {
                realm: realm.to_string(),
                outcome: "failure",
                reason,
            })
            .inc();
    }

    /// A prepared login in `realm` (a configured realm).
    pub fn prepared(&self, realm: &str) {
        self.prepares
            .get_or_create(&RealmLabels {
                realm: realm.to_string(),
            })
            .inc();
    }

    /// One token event.
    pub fn token(&self, event: TokenEvent) {
        self.tokens[event as usize].inc();
    }

    /// `n` tokens invalidated through the token API.
    pub fn tokens_invalidated(&self, n: u64) {
        self.invalidated.inc_by(n);
    }

    /// A successful OIDC logout.
    pub fn logout(&self) {
        self.logouts.inc();
    }

    /// One bearer-token check and how long it took.
    pub fn bearer_check(&self, outcome: BearerOutcome, took: Duration) {
        self.bearer_checks[outcome as usize].inc();
        self.bearer_seconds.observe(took.as_secs_f64());
    }

    /// A request refused by `limit` (429).
    pub fn rate_limited(&self, limit: Limit) {
        self.rate_limited.inc(limit);
    }

    /// The OP-call metrics, for the realms.
    pub fn op_calls(&self) -> &OpCallMetrics {
        &self.op_calls
    }

    /// The store-commit metrics, for the store.
    pub fn commits(&self) -> CommitMetrics {
        self.commits.clone()
    }

    /// The rate-limit counters, for the request limiters.
    pub fn rate_limit_counters(&self) -> RateLimitCounters {
        self.rate_limited.clone()
    }

    /// A password check refused with 503 (no verification slot in time).
    pub fn password_busy(&self) {
        self.password_busy.inc();
    }

    /// A configuration reload attempt and whether it was applied.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.inc();
        } else {
            self.reloads_failed.inc();
        }
    }

    /// Encode the registry (OpenMetrics text, ending in `# EOF`).
    fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail; the encoder only fails on a failing writer.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The values read from the running state at scrape time.
#[derive(Debug, Clone, Default)]
pub struct ScrapeValues {
    pub generation: u64,
    pub password_verifications: u64,
    /// Entries in the bearer cache, and their estimated bytes.
    pub bearer_cache: (u64, u64),
    /// Per realm: its name, how many JWKS keys it holds, and how old they are (seconds) when
    /// known.
    pub jwks: Vec<(String, usize, Option<f64>)>,
}

impl Metrics {
    /// Every metric, with `now`'s scrape-time values: what `GET /metrics` answers.
    pub fn render(&self, now: ScrapeValues) -> String {
        let _one_scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.config_generation
            .set(i64::try_from(now.generation).unwrap_or(i64::MAX));
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.bearer_cache_entries.set(gauge(now.bearer_cache.0));
        self.bearer_cache_bytes.set(gauge(now.bearer_cache.1));
        self.password_verifications
            .inner()
            .store(now.password_verifications, Ordering::Relaxed);
        // Realms removed by a reload disappear from these.
        self.jwks_keys.clear();
        self.jwks_age.clear();
        for (realm, keys, age) in now.jwks {
            let labels = RealmLabels { realm };
            self.jwks_keys
                .get_or_create(&labels)
                .set(i64::try_from(keys).unwrap_or(i64::MAX));
            if let Some(age) = age {
                self.jwks_age.get_or_create(&labels).set(age);
            }
        }
        self.encode()
    }
}
