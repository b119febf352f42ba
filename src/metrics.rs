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
    reloads_ok: Counter,
    reloads_failed: Counter,
    jwks_keys: Family<RealmLabels, Gauge>,
    jwks_age: Family<RealmLabels, Gauge<f64, AtomicU64>>,
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
        Self {
            registry,
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
