//! Caller authentication: who is calling a `/_security/...` request. HTTP Basic against the
//! configured users (argon2/bcrypt, remembered successes, a bound on verifications running at
//! once and a per-address allowance of full verifications), service account tokens, and
//! bearer access tokens from the token service; then the request limits per caller and
//! address. Errors are typed here and mapped to HTTP in one place (`http::errors`).

use super::limits::{self, CallerKey, Keyed, RateLimited, RequestLimits};
use super::{basic_verify, hash_password, BasicVerifier};
use super::{service_tokens, Action, Authentication, AuthenticationType, CallerUser, Forbidden};
use crate::audit::{Audit, AuditEvent, Who};
use crate::config::{LimitSettings, PasswordHash, Settings};
use crate::metrics::{BearerOutcome, Limit, Metrics};
use crate::secret::Secret;
use crate::tokens::{BearerError, TokenError, TokenService};
use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Longest password verified; longer ones are refused without hashing.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How long a password check waits for a free verification slot before the request is
/// answered 503.
pub const HASHING_WAIT: Duration = Duration::from_secs(5);
/// The same for an unknown user name: shed first when slots are scarce.
pub const UNKNOWN_USER_HASHING_WAIT: Duration = Duration::from_millis(250);
/// Full password verifications allowed per client address by default
/// (`limits.password_checks_per_second`, `limits.password_checks_burst`): a sustained rate
/// and a burst. A facilitator needs one per (user, password) every 5 minutes; a person typing
/// passwords a handful per minute.
pub const PASSWORD_CHECKS_PER_SECOND: NonZeroU32 =
    NonZeroU32::new(crate::config::DEFAULT_PASSWORD_CHECKS_PER_SECOND).unwrap();
pub const PASSWORD_CHECKS_BURST: NonZeroU32 =
    NonZeroU32::new(crate::config::DEFAULT_PASSWORD_CHECKS_BURST).unwrap();

/// The per-address allowance of full password verifications of one configuration (rebuilt
/// when `limits.password_checks_*` change).
struct VerificationAllowance {
    /// `(per_second, burst)` it was built from.
    settings: (u32, u32),
    /// `None`: `limits.password_checks_per_second: 0`, no limit.
    per_address: Option<Keyed<IpAddr>>,
}

impl VerificationAllowance {
    fn new(limits: &LimitSettings) -> Self {
        let settings = (
            limits.password_checks_per_second,
            limits.password_checks_burst,
        );
        let per_address = NonZeroU32::new(settings.0).map(|rate| {
            // The configuration refuses a burst of 0; a rate alone is then its own burst.
            let burst = NonZeroU32::new(settings.1).unwrap_or(rate);
            limits::keyed(rate, burst)
        });
        Self {
            settings,
            per_address,
        }
    }
}

impl std::fmt::Debug for VerificationAllowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationAllowance")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The request limits' part of `limits.*` (a change rebuilds them).
fn request_fields(l: &LimitSettings) -> (u32, u32) {
    (l.requests_per_caller, l.requests_per_address)
}

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

/// Why the caller of a request is not authenticated. `uri` is the request path, which
/// Elasticsearch's messages name.
#[derive(Debug)]
pub struct CallerRefused {
    pub uri: String,
    pub why: Refusal,
}

/// What was wrong with the caller's credentials.
#[derive(Debug)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// A header that is not visible ASCII, or Basic credentials that do not decode.
    Malformed,
    /// A scheme other than Basic and Bearer.
    Unsupported,
    /// Basic credentials refused.
    Password {
        username: String,
        refused: PasswordRefused,
    },
    /// A service account token refused: malformed, unknown, or a wrong secret (one answer;
    /// the detail, for the log, says which).
    ServiceToken { detail: String },
    /// A bearer access token refused.
    Bearer(BearerError),
    /// The token service failed (store outage, sealed data).
    Token(TokenError),
}

impl PasswordRefused {
    /// The reason code of the answer (`http::errors::password_refused` sends it).
    pub fn code(self) -> &'static str {
        match self {
            PasswordRefused::Wrong => "credentials_invalid",
            PasswordRefused::Busy => "overloaded",
            PasswordRefused::Throttled(_) => "password_checks_throttled",
        }
    }
}

/// Why an authenticated caller may not do what it asked.
#[derive(Debug)]
pub enum Denied {
    Forbidden(Forbidden),
    RateLimited(RateLimited),
}

/// Authenticates callers; one per [`AppState`](crate::app::AppState).
#[derive(Debug)]
pub struct Authenticator {
    basic: BasicVerifier,
    /// Bounds the password verifications running at once (argon2 costs ~19 MiB and a core
    /// each): failed logins cannot exhaust memory or CPU.
    hashing: tokio::sync::Semaphore,
    /// Full password verifications per client address (a remembered success costs none): a
    /// flood of bad credentials from some addresses is answered 429 without hashing, so the
    /// verification slots stay free for everyone else. Rebuilt on a reload that changes
    /// `limits.password_checks_*`.
    verification_allowance: ArcSwap<VerificationAllowance>,
    /// Full password verifications done.
    verifications: AtomicU64,
    /// Request rate limits per caller and address (`limits.requests_*`), rebuilt on a reload
    /// that changes them.
    request_limits: ArcSwap<RequestLimits>,
}

impl Authenticator {
    pub fn new(limits: LimitSettings, metrics: &Metrics) -> Self {
        Self {
            basic: BasicVerifier::new(),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            ),
            verification_allowance: ArcSwap::from_pointee(VerificationAllowance::new(&limits)),
            verifications: AtomicU64::new(0),
            request_limits: ArcSwap::from_pointee(RequestLimits::with_counters(
                limits,
                metrics.rate_limit_counters(),
            )),
        }
    }

    /// Apply new request and password-check limits (reload); the allowances so far are kept
    /// when their settings did not change.
    pub fn set_limits(&self, limits: LimitSettings, metrics: &Metrics) {
        let allowance = (
            limits.password_checks_per_second,
            limits.password_checks_burst,
        );
        if self.verification_allowance.load().settings != allowance {
            self.verification_allowance
                .store(Arc::new(VerificationAllowance::new(&limits)));
        }
        if request_fields(&self.request_limits.load().settings) != request_fields(&limits) {
            self.request_limits
                .store(Arc::new(RequestLimits::with_counters(
                    limits,
                    metrics.rate_limit_counters(),
                )));
        }
    }

    /// How many full password verifications ran (remembered successes not counted).
    pub fn password_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Forget the allowance of addresses and callers not seen for a while (called by the
    /// sweeper).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.verification_allowance.load().per_address {
            limits::forget_idle(l);
        }
        self.request_limits.load().forget_idle();
    }

    /// An authenticated caller, with the request limits in force now; its refusals are
    /// recorded on `audit`.
    pub fn caller(&self, auth: Authentication, client: Option<IpAddr>, audit: &Audit) -> Caller {
        Caller {
            auth,
            client,
            limits: self.request_limits.load_full(),
            audit: audit.clone(),
        }
    }

    /// Check a configured user's password (argon2/bcrypt, remembered on success). `client`
    /// is the caller's address: full verifications are limited per address.
    pub async fn verify_password(
        &self,
        settings: &Settings,
        metrics: &Metrics,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Authentication, PasswordRefused> {
        let entry = settings.users.get(username);
        if let Some(e) = entry {
            if self.basic.remembered(username, &e.password_hash, password) {
                return Authentication::for_file_user(settings, username)
                    .ok_or(PasswordRefused::Wrong);
            }
        }
        // No real password is this long; refuse without hashing it.
        if password.len() > MAX_PASSWORD_LEN {
            return Err(PasswordRefused::Wrong);
        }
        // A full verification: within this address's allowance only.
        if let (Some(l), Some(ip)) = (&self.verification_allowance.load().per_address, client) {
            if let Err(not_until) = l.check_key(&ip) {
                metrics.rate_limited(Limit::PasswordChecks);
                return Err(PasswordRefused::Throttled(limits::retry_after_secs(
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
            metrics.password_busy();
            return Err(PasswordRefused::Busy);
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let pw = Secret::new(password.to_string());
        let check = hash.clone();
        let ok = tokio::task::spawn_blocking(move || basic_verify(&check, pw.expose_secret()))
            .await
            .unwrap_or(false);
        if !ok || entry.is_none() {
            return Err(PasswordRefused::Wrong);
        }
        self.basic.remember(username, &hash, password);
        Authentication::for_file_user(settings, username).ok_or(PasswordRefused::Wrong)
    }

    /// Authenticate the caller of a `/_security/...` request from its `Authorization`
    /// header.
    pub async fn authenticate(
        &self,
        settings: &Settings,
        tokens: &TokenService,
        metrics: &Metrics,
        authorization: Option<&HeaderValue>,
        uri: &str,
        client: Option<IpAddr>,
    ) -> Result<Authentication, CallerRefused> {
        let refused = |why| CallerRefused {
            uri: uri.to_string(),
            why,
        };
        let Some(value) = authorization else {
            return Err(refused(Refusal::Missing));
        };
        let Ok(value) = value.to_str() else {
            return Err(refused(Refusal::Malformed));
        };
        if let Some(b64) = strip_scheme(value, "Basic") {
            let Some((username, password)) = decode_basic(b64) else {
                return Err(refused(Refusal::Malformed));
            };
            return self
                .verify_password(
                    settings,
                    metrics,
                    &username,
                    password.expose_secret(),
                    client,
                )
                .await
                .map_err(|r| {
                    refused(Refusal::Password {
                        username,
                        refused: r,
                    })
                });
        }
        if let Some(token) = strip_scheme(value, "Bearer") {
            let token = token.trim();
            if service_tokens::looks_like(token) {
                return authenticate_service_token(settings, token).map_err(refused);
            }
            let started = std::time::Instant::now();
            let checked = tokens.authenticate(token).await;
            let outcome = match &checked {
                Ok(_) => BearerOutcome::Success,
                Err(TokenError::Bearer(e)) => BearerOutcome::of(*e),
                Err(_) => BearerOutcome::Error,
            };
            metrics.bearer_check(outcome, started.elapsed());
            return match checked {
                Ok(doc) => Ok(Authentication {
                    privileges: Authentication::privileges_of(settings, &doc.user),
                    user: CallerUser::Token(doc.user),
                    kind: AuthenticationType::Token,
                    service_token: None,
                }),
                Err(TokenError::Bearer(e)) => Err(refused(Refusal::Bearer(e))),
                Err(e) => Err(refused(Refusal::Token(e))),
            };
        }
        Err(refused(Refusal::Unsupported))
    }
}

/// A service account token (`Authorization: Bearer AAEAAQ...`). A malformed token, an
/// unknown name and a wrong secret all get the same refusal (the detail says which).
fn authenticate_service_token(settings: &Settings, token: &str) -> Result<Authentication, Refusal> {
    let refused = |detail: String| Refusal::ServiceToken { detail };
    let Some(presented) = service_tokens::parse_bearer(token) else {
        return Err(refused("malformed service account token".into()));
    };
    match service_tokens::verify(&settings.service_tokens, &presented) {
        Some(entry) => Ok(Authentication::for_service_token(&presented, entry)),
        // The name passed `check_name` (letters, digits, `-`, `_`, `/`): safe to log.
        None => Err(refused(format!(
            "unknown service account token or wrong secret for [{}]",
            presented.name
        ))),
    }
}

pub(crate) fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

pub(crate) fn decode_basic(b64: &str) -> Option<(String, Secret<String>)> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), Secret::new(p.to_string())))
}

fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let h = hash_password("oidc-realm timing equaliser")
            .unwrap_or_else(|_| String::from("$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        PasswordHash::Argon2id(h)
    })
}

/// The authenticated caller of a request, with its client address, the request limits in
/// force and the audit trail (the HTTP extractor is `http::caller`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub auth: Authentication,
    pub client: Option<IpAddr>,
    limits: Arc<RequestLimits>,
    audit: Audit,
}

impl Caller {
    /// Refuse unless the caller may perform `action`, then if the action counts against the
    /// request limits and the caller or its address is over them. Every handler calls this,
    /// so the refusals are audited here (`access_denied`, `rate_limited`), once, with the
    /// caller known.
    pub fn require(self, action: Action) -> Result<Authentication, Denied> {
        self.check(action).inspect_err(|denied| {
            let event = match denied {
                Denied::Forbidden(f) => AuditEvent::AccessDenied {
                    action: f.action.name(),
                    granted_by: f.action.granted_by().iter().map(|p| p.as_str()).collect(),
                },
                Denied::RateLimited(r) => AuditEvent::RateLimited {
                    limit: r.limit.as_str(),
                    retry_after_secs: r.retry_after_secs,
                },
            };
            self.audit.emit(Some(Who::of(&self.auth.user)), event);
        })?;
        Ok(self.auth)
    }

    fn check(&self, action: Action) -> Result<(), Denied> {
        self.auth.require(action).map_err(Denied::Forbidden)?;
        if RequestLimits::applies_to(action) {
            self.limits
                .admit(
                    CallerKey {
                        username: &self.auth.user.username,
                        realm: &self.auth.user.realm.name,
                    },
                    self.client,
                )
                .map_err(Denied::RateLimited)?;
        }
        Ok(())
    }
}
