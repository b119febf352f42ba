//! OpenID Connect realms: prepare, authenticate and logout for each configured realm
//! (Elasticsearch's `_security/oidc/*`), with single-use server-side flow state.

pub mod backchannel;
mod build_error;
pub mod discovery;
pub mod flow;
pub mod keys;

pub use build_error::{RealmBuildError, RealmBuildErrors};

use crate::claims::{self, MappedUser};
use crate::clock::{Clock, UnixMillis};
use crate::config::{RealmConfig, ResponseType, Settings};
use crate::crypto::random_urlsafe;
use crate::metrics::OpCallMetrics;
use crate::model::{ClientRef, RealmRef, UserRecord};
use crate::oidc::client::{Endpoint, OpClient, OpError, TokenEndpointResponse};
use crate::oidc::id_token::{self, IdTokenError, IdTokenPolicy};
use crate::secret::{ct_eq, Secret};
use crate::store::FlowLimits;
use crate::tokens::format::TokenKind;
use crate::tokens::{IssuedPair, Lifetimes, TokenError, TokenService};
use flow::{FlowError, FlowSecrets, Flows, PendingLimit};
use keys::RealmKeys;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

/// Longest caller-chosen `state`, `nonce` or `login_hint` (generated ones are 43 bytes).
pub const MAX_PARAM_LEN: usize = 512;

/// The realm type Elasticsearch reports for OIDC realms.
pub const REALM_TYPE: &str = "oidc";

/// One configured realm, ready to serve logins.
#[derive(Debug)]
pub struct Realm {
    pub config: RealmConfig,
    op: Op,
    keys: Arc<RealmKeys>,
    /// `op.discovery` fetch times and errors (kept across reloads, like `keys`).
    discovery: Arc<discovery::DiscoveryState>,
    /// `jti`s of accepted back-channel logout tokens (kept across reloads).
    seen_jtis: Arc<backchannel::SeenJtis>,
}

/// A realm's calls to its OP: the [`OpClient`], each call timed and counted in the OP-call
/// metrics under the realm's name (where the call is made, so `oidc/` knows no metrics).
#[derive(Debug)]
pub struct Op {
    client: OpClient,
    realm: String,
    calls: OpCallMetrics,
}

impl Op {
    /// Run one call to `endpoint` and record its outcome and time.
    async fn timed<T>(
        &self,
        endpoint: Endpoint,
        call: impl std::future::Future<Output = Result<T, OpError>>,
    ) -> Result<T, OpError> {
        let started = std::time::Instant::now();
        let result = call.await;
        let outcome = result.as_ref().map_or_else(OpError::code, |_| "success");
        self.calls
            .record(&self.realm, endpoint, outcome, started.elapsed());
        result
    }

    /// [`OpClient::exchange_code`], recorded.
    pub async fn exchange_code(
        &self,
        realm: &RealmConfig,
        code: &str,
        pkce_verifier: Option<&str>,
        now_secs: i64,
    ) -> Result<TokenEndpointResponse, OpError> {
        self.timed(
            Endpoint::Token,
            self.client
                .exchange_code(realm, code, pkce_verifier, now_secs),
        )
        .await
    }

    /// [`OpClient::userinfo`], recorded.
    pub async fn userinfo(
        &self,
        endpoint: &Url,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OpError> {
        self.timed(
            Endpoint::UserInfo,
            self.client.userinfo(endpoint, access_token),
        )
        .await
    }

    /// A JWK set fetched and parsed: the call is recorded with `success`, its error code, or
    /// [`JWKS_INVALID`](crate::metrics::JWKS_INVALID) when the document is not a usable set.
    pub async fn fetch_jwks(
        &self,
        url: &Url,
    ) -> Result<(crate::oidc::jwks::KeySet, Vec<String>), String> {
        let started = std::time::Instant::now();
        let (outcome, result) = match self.client.get_jwks(url).await {
            Ok(bytes) => match crate::oidc::jwks::KeySet::parse(&bytes) {
                Ok(parsed) => ("success", Ok(parsed)),
                Err(e) => (crate::metrics::JWKS_INVALID, Err(e.to_string())),
            },
            Err(e) => (e.code(), Err(e.to_string())),
        };
        self.calls
            .record(&self.realm, Endpoint::Jwks, outcome, started.elapsed());
        result
    }

    /// The realm's name.
    pub fn realm(&self) -> &str {
        &self.realm
    }
}

impl Realm {
    /// A realm; `keys`: the key set of the previous realm of this name, when its
    /// `op.jwkset_path` is unchanged (kept across a reload); `calls`: where its OP calls are
    /// counted.
    fn build(
        config: RealmConfig,
        keys: Option<Arc<RealmKeys>>,
        discovery_state: Option<Arc<discovery::DiscoveryState>>,
        seen_jtis: Option<Arc<backchannel::SeenJtis>>,
        now: UnixMillis,
        calls: &OpCallMetrics,
    ) -> Result<Self, RealmBuildError> {
        // Placeholders stand where the metadata has not been applied: never serve them.
        if config.op.discovery.as_ref().is_some_and(|d| d.pending()) {
            return Err(RealmBuildError::Discovery {
                realm: config.name.clone(),
                code: "discovery_pending",
                detail: "the provider metadata has not been fetched for this op.issuer and op.discovery_url; it is fetched at start: restart the server to apply this change".into(),
            });
        }
        let discovery_state = match discovery_state {
            Some(d) => d,
            None => {
                let d = Arc::new(discovery::DiscoveryState::default());
                if config.op.discovery.is_some() {
                    d.fetched(now);
                }
                d
            }
        };
        let client = OpClient::new(&config).map_err(|error| RealmBuildError::HttpClient {
            realm: config.name.clone(),
            error,
        })?;
        let keys = match keys {
            Some(k) => k,
            None => Arc::new(RealmKeys::new(&config.op.jwkset, &config.name, now)?),
        };
        Ok(Self {
            op: Op {
                client,
                realm: config.name.clone(),
                calls: calls.clone(),
            },
            config,
            keys,
            discovery: discovery_state,
            seen_jtis: seen_jtis.unwrap_or_default(),
        })
    }

    /// `op.discovery`'s status (fetch times, last error).
    pub fn discovery_status(&self) -> discovery::DiscoveryStatus {
        self.discovery.status()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn keys(&self) -> &RealmKeys {
        &self.keys
    }
}

/// Every configured realm, in `order`.
#[derive(Debug, Default)]
pub struct Realms {
    ordered: Vec<Arc<Realm>>,
    by_name: BTreeMap<String, Arc<Realm>>,
}

impl Realms {
    /// Build every realm of `settings` (reads file JWKS); every failure is collected.
    /// Their OP calls are counted nowhere (`check-config`).
    pub fn build(settings: &Settings) -> Result<Self, RealmBuildErrors> {
        Self::build_from(
            settings,
            None,
            crate::clock::SystemClock.now_millis(),
            &OpCallMetrics::default(),
        )
    }

    /// [`build`](Self::build) for a reload: a realm of `previous` with the same name and the
    /// same `op.jwkset_path` keeps its key set (an URL is not fetched again; a file is read
    /// again, and if it no longer parses the last good keys stay, with the error recorded).
    /// Their calls to the OP are counted in `calls`.
    pub fn build_from(
        settings: &Settings,
        previous: Option<&Realms>,
        now: UnixMillis,
        calls: &OpCallMetrics,
    ) -> Result<Self, RealmBuildErrors> {
        let mut realms = Realms::default();
        let mut errors = Vec::new();
        for cfg in &settings.realms {
            let old_realm = previous.and_then(|p| p.by_name.get(&cfg.name));
            let mut cfg = cfg.clone();
            // Discovery: a realm whose op.issuer and op.discovery_url are unchanged keeps the
            // metadata it runs with (a reload does not fetch).
            let mut discovery_state = None;
            if let (Some(d), Some(old)) = (cfg.op.discovery.clone(), old_realm) {
                let same = old.config.op.issuer == cfg.op.issuer
                    && old
                        .config
                        .op
                        .discovery
                        .as_ref()
                        .is_some_and(|o| o.url == d.url);
                let known = old
                    .config
                    .op
                    .discovery
                    .as_ref()
                    .and_then(|o| o.discovered.clone());
                if let (true, Some(md)) = (same, known) {
                    if d.pending() {
                        match discovery::apply(&mut cfg, &md) {
                            Ok(warnings) => {
                                for w in warnings {
                                    tracing::warn!(realm = %cfg.name, "{w}");
                                }
                            }
                            Err(e) => {
                                errors.push(RealmBuildError::Discovery {
                                    realm: cfg.name.clone(),
                                    code: e.code(),
                                    detail: e.to_string(),
                                });
                                continue;
                            }
                        }
                    }
                    discovery_state = Some(old.discovery.clone());
                }
            }
            let kept = old_realm
                .filter(|old| old.keys.source() == &cfg.op.jwkset)
                .map(|old| {
                    // A failure is logged and recorded in the status; the last good keys stay.
                    let _ = old.keys.reload_file(&cfg.name, now);
                    old.keys.clone()
                });
            let name = cfg.name.clone();
            let seen_jtis = old_realm.map(|o| o.seen_jtis.clone());
            match Realm::build(cfg, kept, discovery_state, seen_jtis, now, calls) {
                Ok(r) => {
                    let r = Arc::new(r);
                    realms.by_name.insert(name, r.clone());
                    realms.ordered.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(realms)
        } else {
            Err(RealmBuildErrors(errors))
        }
    }

    /// An enabled realm by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Realm>> {
        self.by_name.get(name).filter(|r| r.config.enabled)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Realm>> {
        self.ordered.iter()
    }

    /// Fetch the provider metadata of every `op.discovery` realm whose
    /// `op.jwkset_reload_interval` has passed (with the JWKS refresh). Returns the realms
    /// whose metadata changed, with the new metadata (the caller swaps in a configuration
    /// built with it); a failure keeps the last good metadata and is recorded for `_status`.
    pub async fn refresh_discovery(&self, now: UnixMillis) -> Vec<(String, discovery::Metadata)> {
        let mut changed = Vec::new();
        for r in &self.ordered {
            let op = &r.config.op;
            let Some(d) = &op.discovery else { continue };
            if !r.discovery.due(
                now,
                op.jwkset_reload_interval,
                op.jwkset_min_refetch_interval,
            ) {
                continue;
            }
            let started = std::time::Instant::now();
            let result = discovery::fetch(&r.op.client, d, &op.issuer).await;
            let outcome = match &result {
                Ok(_) => "success",
                Err(discovery::DiscoveryError::Fetch { error, .. }) => error.code(),
                Err(e) => e.code(),
            };
            r.op.calls
                .record(&r.op.realm, Endpoint::Discovery, outcome, started.elapsed());
            match result {
                Ok(md) => {
                    r.discovery.fetched(now);
                    if d.discovered.as_ref() != Some(&md) {
                        tracing::info!(realm = %r.name(), "provider metadata changed; applying it");
                        changed.push((r.name().to_string(), md));
                    }
                }
                Err(e) => {
                    tracing::warn!(realm = %r.name(), code = e.code(), "provider metadata refresh failed; keeping the last good metadata: {e}");
                    r.discovery.failed(now, e.to_string());
                }
            }
        }
        changed
    }

    /// Fetch every URL key set whose `op.jwkset_reload_interval` has passed (the periodic
    /// refresh). Returns how many fetches were attempted.
    pub async fn refresh_jwks(&self, now: UnixMillis) -> usize {
        let mut n = 0;
        for r in &self.ordered {
            let op = &r.config.op;
            if r.keys
                .refresh_if_due(
                    &r.op,
                    now,
                    op.jwkset_reload_interval,
                    op.jwkset_min_refetch_interval,
                )
                .await
            {
                n += 1;
            }
        }
        n
    }
}

/// What a login needs besides the realm: the token service, time, and who is calling.
pub struct LoginContext<'a> {
    pub tokens: &'a TokenService,
    pub clock: &'a dyn Clock,
    pub lifetimes: Lifetimes,
    pub flows: &'a Flows,
    /// Bounds on pending logins (checked by `prepare`; `limits.pending_logins*`).
    pub flow_limits: FlowLimits,
    /// The facilitator making the call.
    pub caller: ClientRef,
    /// Roles from role mapping for a mapped user of a realm.
    pub roles: &'a (dyn Fn(&MappedUser, &str) -> Vec<String> + Sync),
}

// ---------------------------------------------------------------------------------------
// prepare

/// What `prepare` was asked. `Debug` shows no value.
#[derive(Default)]
pub struct PrepareParams {
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub login_hint: Option<String>,
}

/// What `prepare` answers. `Debug` shows only the realm.
#[derive(Serialize)]
pub struct PrepareResponse {
    pub redirect: String,
    pub state: String,
    pub nonce: String,
    pub realm: String,
}

/// Why `prepare` failed (client errors; nothing secret in them).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("the state is already used by a pending login")]
    StateInUse,
    /// Too many pending logins (of this caller, or of all): not a store outage.
    #[error("{0}")]
    TooManyPending(PendingLimit),
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// `POST /_security/oidc/prepare` for `realm`.
pub async fn prepare(
    realm: &Realm,
    params: PrepareParams,
    ctx: &LoginContext<'_>,
) -> Result<PrepareResponse, PrepareError> {
    let cfg = &realm.config;
    let state = params.state.unwrap_or_else(|| random_urlsafe(32));
    let nonce = params.nonce.unwrap_or_else(|| random_urlsafe(32));
    if state.is_empty() || nonce.is_empty() {
        return Err(PrepareError::Invalid("state and nonce must not be empty"));
    }
    if state.len() > MAX_PARAM_LEN
        || nonce.len() > MAX_PARAM_LEN
        || params
            .login_hint
            .as_ref()
            .is_some_and(|h| h.len() > MAX_PARAM_LEN)
    {
        return Err(PrepareError::Invalid(
            "state, nonce and login_hint must be at most 512 bytes",
        ));
    }
    let pkce_verifier =
        (cfg.rp.pkce && cfg.rp.response_type == ResponseType::Code).then(|| random_urlsafe(32));

    let mut url = cfg.op.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", cfg.rp.response_type.as_str())
            .append_pair("client_id", &cfg.rp.client_id)
            .append_pair("redirect_uri", &cfg.rp.redirect_uri_exact)
            .append_pair("scope", &cfg.rp.requested_scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce);
        if let Some(hint) = &params.login_hint {
            q.append_pair("login_hint", hint);
        }
        if let Some(v) = &pkce_verifier {
            q.append_pair("code_challenge", &flow::pkce_challenge(v))
                .append_pair("code_challenge_method", "S256");
        }
    }
    let secrets = FlowSecrets {
        nonce: nonce.clone(),
        pkce_verifier,
        caller: ctx.caller.clone(),
    };
    match ctx
        .flows
        .start(
            &cfg.name,
            flow::LoginState(&state),
            &secrets,
            &ctx.flow_limits,
            ctx.clock.now_millis(),
        )
        .await
    {
        Ok(()) => {}
        Err(FlowError::InUse) => return Err(PrepareError::StateInUse),
        Err(FlowError::TooMany(limit)) => return Err(PrepareError::TooManyPending(limit)),
        Err(e) => return Err(e.into()),
    }
    Ok(PrepareResponse {
        redirect: url.into(),
        state,
        nonce,
        realm: cfg.name.clone(),
    })
}

// ---------------------------------------------------------------------------------------
// authenticate

/// What `authenticate` was given (already checked for presence). `Debug` shows no value: the
/// redirect carries the authorization code or tokens.
pub struct AuthenticateParams {
    pub redirect_uri: String,
    pub state: Secret<String>,
    pub nonce: Secret<String>,
    pub realm: Option<String>,
}

macro_rules! redacted_debug {
    ($t:ty, $name:literal) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct($name).finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(PrepareParams, "PrepareParams");
redacted_debug!(PrepareResponse, "PrepareResponse");
redacted_debug!(AuthenticateParams, "AuthenticateParams");

/// A successful login.
#[derive(Debug)]
pub struct LoginOutcome {
    pub pair: IssuedPair,
    pub user: UserRecord,
}

/// Why a login failed. Every variant answers 401 with the same generic body; the `Display`
/// is the precise cause for the log (it never contains a token, code, nonce or secret).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("realm [{0}] is not an enabled OpenID Connect realm")]
    UnknownRealm(String),
    #[error("the redirect_uri is neither an absolute URL nor a plain path starting with `/` (no `//`, `\\`, `.` or `..` segments, `:` or `%` in the path)")]
    RedirectUnparseable,
    #[error(
        "the redirect_uri [{got}] does not match rp.redirect_uri [{expected}] of realm {realm}"
    )]
    RedirectMismatch {
        realm: String,
        expected: String,
        got: String,
    },
    #[error("OpenID Connect Provider response indicates authentication failure: error={error}, description={description}")]
    OpError { error: String, description: String },
    #[error("the response did not contain a state parameter")]
    StateMissing,
    #[error("the redirect carries the parameter {0:?} more than once")]
    DuplicateParam(String),
    #[error("the state in the redirect differs from the state in the request")]
    StateMismatch,
    #[error("no pending login for this state (unknown, expired or already used)")]
    FlowUnknown,
    /// The pending login's sealed record does not open with the state that found it: storage
    /// corruption or tampering, not a stale or replayed state. It is consumed all the same.
    #[error("the pending login found for this state has a sealed record that does not open (corrupt or tampered storage)")]
    FlowCorrupt,
    #[error("the state belongs to a login of realm {flow_realm}, not {realm}")]
    FlowOtherRealm { flow_realm: String, realm: String },
    #[error("the state was prepared by caller [{prepared_by}], not [{caller}]; the login stays pending for its caller")]
    FlowOtherCaller { prepared_by: String, caller: String },
    #[error("the nonce in the request differs from the nonce of the pending login")]
    NonceMismatch,
    #[error("unexpected response type [{got}], while [{configured}] is configured")]
    ResponseType { got: String, configured: String },
    #[error("the redirect carries no {0}")]
    MissingParam(&'static str),
    /// `id_token token`: the fragment's `token_type` is missing or not `Bearer`
    /// (RFC 6749 §4.2.2 requires it; only bearer tokens are supported).
    #[error("{}", match .0 {
        Some(t) => format!("the redirect's token_type is [{t}]; only [Bearer] is supported"),
        None => "the redirect has an access_token but no token_type; only [Bearer] is supported".to_string(),
    })]
    ImplicitTokenType(Option<String>),
    #[error("{0}")]
    Op(#[from] OpError),
    #[error("no signing keys are available for realm {0} (JWKS not loaded)")]
    NoKeys(String),
    #[error("ID token rejected: {0}")]
    IdToken(IdTokenError),
    #[error("userinfo response is for subject [{userinfo}] while the ID token was for subject [{id_token}]")]
    UserinfoSubject { userinfo: String, id_token: String },
    #[error("{0}")]
    Claims(#[from] claims::ClaimsError),
    #[error("{0}")]
    Token(#[from] TokenError),
}

impl LoginError {
    /// Stable reason code, for logs and the error body.
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::UnknownRealm(_) => "realm_unknown",
            LoginError::RedirectUnparseable => "redirect_uri_invalid",
            LoginError::RedirectMismatch { .. } => "redirect_uri_mismatch",
            LoginError::OpError { .. } => "op_error_response",
            LoginError::StateMissing => "state_missing",
            LoginError::DuplicateParam(_) => "redirect_param_duplicate",
            LoginError::StateMismatch => "state_mismatch",
            LoginError::FlowUnknown => "flow_unknown",
            LoginError::FlowCorrupt => "flow_corrupt",
            LoginError::FlowOtherRealm { .. } => "flow_other_realm",
            LoginError::FlowOtherCaller { .. } => "flow_other_caller",
            LoginError::NonceMismatch => "nonce_mismatch",
            LoginError::ResponseType { .. } => "response_type_mismatch",
            LoginError::MissingParam(_) => "redirect_param_missing",
            LoginError::ImplicitTokenType(_) => "unsupported_token_type",
            LoginError::Op(e) => e.code(),
            LoginError::NoKeys(_) => "jwks_unavailable",
            LoginError::IdToken(e) => e.code(),
            LoginError::UserinfoSubject { .. } => "userinfo_subject_mismatch",
            LoginError::Claims(e) => e.code(),
            LoginError::Token(_) => "token_issue_failed",
        }
    }
}

/// The data sealed under an OIDC access token for logout. (No `Debug`: it holds the ID token.)
#[derive(Serialize, Deserialize)]
struct LogoutData {
    realm: String,
    id_token: String,
}

/// The parameters of one part (query or fragment) of the OP's redirect. A parameter given
/// twice is refused: two parsers could each take a different one.
fn part_params(part: Option<&str>) -> Result<BTreeMap<String, String>, LoginError> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(part.unwrap_or("").as_bytes()).into_owned() {
        if out.contains_key(&k) {
            return Err(LoginError::DuplicateParam(k));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// At most `max` characters of a value from a redirect, control characters replaced, for a
/// log message.
fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Where path-only redirects are parsed before their realm is known; replaced by the origin
/// of the realm's `rp.redirect_uri` before any comparison.
const PATH_ONLY_BASE: &str = "http://path-only.invalid";

/// The redirect as the facilitator sent it: an absolute URL, or (as Kibana sends it, since
/// Elasticsearch never compares it) only the path and query of the callback.
#[derive(Debug)]
enum Redirect {
    Absolute(Url),
    /// Parsed against [`PATH_ONLY_BASE`]; the raw text is resolved against the realm's
    /// `rp.redirect_uri` later.
    Path {
        parsed: Url,
        raw: String,
    },
}

impl Redirect {
    fn parse(raw: &str) -> Result<Self, LoginError> {
        if !raw.starts_with('/') {
            return Url::parse(raw)
                .map(Redirect::Absolute)
                .map_err(|_| LoginError::RedirectUnparseable);
        }
        // A path only. Refuse whatever a URL parser could turn into another origin or
        // another path: `//host`, backslashes, dot segments, anything percent-encoded in the
        // path (encoded dots, slashes, backslashes, schemes), colons, whitespace and control
        // characters. A callback path needs none of them.
        let path = raw.split(['?', '#']).next().unwrap_or("");
        let bad = raw.starts_with("//")
            || raw.contains('\\')
            || raw.chars().any(|c| c.is_control() || c.is_whitespace())
            || path.contains([':', '%'])
            || path.split('/').any(|seg| seg == "." || seg == "..");
        if bad {
            return Err(LoginError::RedirectUnparseable);
        }
        let base = Url::parse(PATH_ONLY_BASE).map_err(|_| LoginError::RedirectUnparseable)?;
        let parsed = base
            .join(raw)
            .map_err(|_| LoginError::RedirectUnparseable)?;
        // The parser must not have changed the path (no normalisation happened).
        if parsed.host_str() != base.host_str() || parsed.path() != path {
            return Err(LoginError::RedirectUnparseable);
        }
        Ok(Redirect::Path {
            parsed,
            raw: raw.to_string(),
        })
    }

    /// The query and fragment carrier (the origin may still be the placeholder).
    fn url(&self) -> &Url {
        match self {
            Redirect::Absolute(u) | Redirect::Path { parsed: u, .. } => u,
        }
    }

    /// The full redirect: a path resolved against the origin of `configured`.
    fn resolve(&self, configured: &Url) -> Result<Url, LoginError> {
        match self {
            Redirect::Absolute(u) => Ok(u.clone()),
            Redirect::Path { raw, .. } => {
                let u = configured
                    .join(raw)
                    .map_err(|_| LoginError::RedirectUnparseable)?;
                if u.origin() != configured.origin() {
                    return Err(LoginError::RedirectUnparseable);
                }
                Ok(u)
            }
        }
    }
}

/// The redirect's base (scheme, host, port, path) equals the configured redirect URI's.
fn same_base(got: &Url, expected: &Url) -> bool {
    got.scheme() == expected.scheme()
        && got.host_str() == expected.host_str()
        && got.port_or_known_default() == expected.port_or_known_default()
        && got.path() == expected.path()
}

/// `POST /_security/oidc/authenticate`.
pub async fn authenticate(
    realms: &Realms,
    params: AuthenticateParams,
    ctx: &LoginContext<'_>,
) -> Result<LoginOutcome, LoginError> {
    // 1. The redirect, parsed: a realm's flow is found through its state.
    let redirect = RedirectParts::parse(&params.redirect_uri)?;
    // 2. The pending login, consumed; the redirect is for its realm and carries its state.
    let (realm, secrets, redirect_state) = consume_flow(realms, &params, &redirect, ctx).await?;
    let cfg = &realm.config;
    check_redirect_target(cfg, &redirect.given)?;
    let p = response_params(cfg, &redirect, &redirect_state)?;
    // 3. An error response from the OP, and 4. the response type.
    check_response(cfg, p)?;
    // 5. The ID token (and OP access token): from the token endpoint or the fragment.
    let tokens = obtain_tokens(&realm, p, &secrets, ctx).await?;
    // 6. Validate the ID token (OpenID Connect Core 3.1.3.7, in `oidc::id_token`).
    let claims = validate_id_token(&realm, &tokens, &secrets, ctx).await?;
    // 7. UserInfo, merged into the claims.
    let all_claims = userinfo_claims(&realm, &claims, tokens.op_access_token.as_ref()).await?;
    // 8. The user, its roles, and a token pair bound to the realm and the facilitator.
    let user = map_user(cfg, &all_claims, ctx)?;
    // The provider's session, for Back-Channel Logout (`sid` only when a bounded string).
    let session = crate::model::OidcSession {
        sub: claims.sub().to_string(),
        sid: claims
            .get("sid")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= crate::oidc::logout_token::MAX_ID_LEN)
            .map(str::to_string),
    };
    let pair = issue_tokens(cfg, &user, tokens.id_token, session, ctx).await?;
    Ok(LoginOutcome { pair, user })
}

/// The OP's redirect: parsed, with the parameters of its query and of its fragment.
struct RedirectParts {
    given: Redirect,
    query: BTreeMap<String, String>,
    fragment: BTreeMap<String, String>,
}

impl RedirectParts {
    /// Step 1: parse the redirect; a parameter given twice in one part, or a state in both
    /// parts, is refused.
    fn parse(redirect_uri: &str) -> Result<Self, LoginError> {
        let given = Redirect::parse(redirect_uri)?;
        let query = part_params(given.url().query())?;
        let fragment = part_params(given.url().fragment())?;
        if query.contains_key("state") && fragment.contains_key("state") {
            return Err(LoginError::DuplicateParam("state".into()));
        }
        Ok(Self {
            given,
            query,
            fragment,
        })
    }
}

/// For the fuzz targets and their corpus tests (`test-util` only, see `crate::fuzzing`):
/// step 1 of [`authenticate`] and the target check of [`check_redirect_target`] against
/// `configured` in the role of a realm's `rp.redirect_uri`; no realm, store or OP. Returns the
/// resolved redirect and the parameters of its query and of its fragment.
#[cfg(any(test, feature = "test-util"))]
#[allow(clippy::type_complexity)]
pub(crate) fn redirect_for_fuzzing(
    redirect_uri: &str,
    configured: &Url,
) -> Result<(Url, BTreeMap<String, String>, BTreeMap<String, String>), LoginError> {
    let parts = RedirectParts::parse(redirect_uri)?;
    let resolved = parts.given.resolve(configured)?;
    if !same_base(&resolved, configured) {
        return Err(LoginError::RedirectMismatch {
            realm: "fuzz".into(),
            expected: configured.to_string(),
            got: resolved.to_string(),
        });
    }
    Ok((resolved, parts.query, parts.fragment))
}

/// Step 2: the state in the redirect equals the state in the request, and names a pending flow
/// of this caller (and of the requested realm), which is consumed now, in one atomic step:
/// whatever happens next, it cannot be used again. A flow of another caller or realm is left
/// pending, so a facilitator that learnt a state cannot burn the login. Then the nonce of the
/// request must be the flow's. Returns the flow's realm, its secrets and the redirect's state.
async fn consume_flow(
    realms: &Realms,
    params: &AuthenticateParams,
    redirect: &RedirectParts,
    ctx: &LoginContext<'_>,
) -> Result<(Arc<Realm>, FlowSecrets, String), LoginError> {
    let (query, fragment) = (&redirect.query, &redirect.fragment);
    let Some(redirect_state) = query.get("state").or_else(|| fragment.get("state")) else {
        let either = |k: &str| query.get(k).or_else(|| fragment.get(k)).cloned();
        if let Some(error) = either("error") {
            return Err(LoginError::OpError {
                error,
                description: either("error_description").unwrap_or_default(),
            });
        }
        return Err(LoginError::StateMissing);
    };
    if !ct_eq(
        redirect_state.as_bytes(),
        params.state.expose_secret().as_bytes(),
    ) {
        return Err(LoginError::StateMismatch);
    }
    let now = ctx.clock.now_millis();
    let (flow_realm, secrets) = ctx
        .flows
        .take(
            flow::LoginState(params.state.expose_secret()),
            &ctx.caller,
            params.realm.as_deref(),
            now,
        )
        .await
        .map_err(|e| match e {
            FlowError::Unknown | FlowError::InUse => LoginError::FlowUnknown,
            FlowError::Corrupt => LoginError::FlowCorrupt,
            FlowError::OtherCaller { prepared_by } => LoginError::FlowOtherCaller {
                prepared_by: prepared_by.map_or_else(|| "?".to_string(), |c| c.username),
                caller: ctx.caller.username.clone(),
            },
            FlowError::OtherRealm { flow_realm } => LoginError::FlowOtherRealm {
                flow_realm,
                realm: params.realm.clone().unwrap_or_default(),
            },
            FlowError::Store(s) => LoginError::Token(TokenError::Store(s)),
            // Not an outcome of a take.
            FlowError::TooMany(_) => LoginError::FlowUnknown,
        })?;
    let realm = realms
        .get(&flow_realm)
        .ok_or_else(|| LoginError::UnknownRealm(flow_realm.clone()))?
        .clone();
    if !ct_eq(
        secrets.nonce.as_bytes(),
        params.nonce.expose_secret().as_bytes(),
    ) {
        return Err(LoginError::NonceMismatch);
    }
    Ok((realm, secrets, redirect_state.clone()))
}

/// The redirect goes to the realm's `rp.redirect_uri` (scheme, host, port and path).
fn check_redirect_target(cfg: &RealmConfig, given: &Redirect) -> Result<(), LoginError> {
    let redirect = given.resolve(&cfg.rp.redirect_uri)?;
    if !same_base(&redirect, &cfg.rp.redirect_uri) {
        return Err(LoginError::RedirectMismatch {
            realm: cfg.name.clone(),
            expected: cfg.rp.redirect_uri.to_string(),
            got: format!(
                "{}://{}{}",
                redirect.scheme(),
                redirect.host_str().unwrap_or(""),
                redirect.path()
            ),
        });
    }
    Ok(())
}

/// The response parameters: the query for the code flow, the fragment for the implicit flows
/// (an OP error may come in the query for those too). The state must be among them.
fn response_params<'r>(
    cfg: &RealmConfig,
    redirect: &'r RedirectParts,
    redirect_state: &str,
) -> Result<&'r BTreeMap<String, String>, LoginError> {
    let p = match cfg.rp.response_type {
        ResponseType::Code => &redirect.query,
        _ if redirect.fragment.is_empty() => &redirect.query,
        _ => &redirect.fragment,
    };
    // (Both sides come from the redirect, but every state comparison goes through ct_eq.)
    if !p
        .get("state")
        .is_some_and(|s| ct_eq(s.as_bytes(), redirect_state.as_bytes()))
    {
        return Err(LoginError::StateMismatch);
    }
    Ok(p)
}

/// Steps 3 and 4: an error response from the OP fails the login; otherwise the response type
/// the parameters imply must be the configured one.
fn check_response(cfg: &RealmConfig, p: &BTreeMap<String, String>) -> Result<(), LoginError> {
    if let Some(error) = p.get("error") {
        return Err(LoginError::OpError {
            error: error.clone(),
            description: p.get("error_description").cloned().unwrap_or_default(),
        });
    }
    let implied = if p.contains_key("code") {
        ResponseType::Code
    } else if p.contains_key("access_token") {
        ResponseType::IdTokenToken
    } else if p.contains_key("id_token") {
        ResponseType::IdToken
    } else {
        return Err(LoginError::MissingParam("code or id_token"));
    };
    if implied != cfg.rp.response_type {
        return Err(LoginError::ResponseType {
            got: implied.as_str().to_string(),
            configured: cfg.rp.response_type.as_str().to_string(),
        });
    }
    Ok(())
}

/// What the OP handed over for this login. (No `Debug`: it holds the tokens.)
struct OpTokens {
    id_token: String,
    op_access_token: Option<Secret<String>>,
    /// The authorization code (code flow), for the `c_hash` check.
    code: Option<String>,
}

/// Step 5: the code flow exchanges the code at the token endpoint; the implicit flows take the
/// tokens from the fragment (`id_token token`: only a Bearer `token_type`).
async fn obtain_tokens(
    realm: &Realm,
    p: &BTreeMap<String, String>,
    secrets: &FlowSecrets,
    ctx: &LoginContext<'_>,
) -> Result<OpTokens, LoginError> {
    let cfg = &realm.config;
    let (id_token, op_access_token, code) = match cfg.rp.response_type {
        ResponseType::Code => {
            let code = p.get("code").cloned().unwrap_or_default();
            let resp = realm
                .op
                .exchange_code(
                    cfg,
                    &code,
                    secrets.pkce_verifier.as_deref(),
                    ctx.clock.now_secs(),
                )
                .await?;
            (resp.id_token, resp.access_token, Some(code))
        }
        ResponseType::IdToken => (p.get("id_token").cloned().unwrap_or_default(), None, None),
        ResponseType::IdTokenToken => {
            // RFC 6749 §4.2.2: token_type is required; as in the code flow, only Bearer.
            match p.get("token_type") {
                Some(t) if t.eq_ignore_ascii_case("bearer") => {}
                other => {
                    return Err(LoginError::ImplicitTokenType(
                        other.map(|t| printable(t, 64)),
                    ))
                }
            }
            (
                p.get("id_token").cloned().unwrap_or_default(),
                p.get("access_token").cloned().map(Secret::new),
                None,
            )
        }
    };
    Ok(OpTokens {
        id_token,
        op_access_token,
        code,
    })
}

/// Step 6: the ID token, validated under the realm's policy with the flow's nonce; at_hash is
/// required for `id_token token`, checked when present otherwise; c_hash too.
async fn validate_id_token(
    realm: &Realm,
    tokens: &OpTokens,
    secrets: &FlowSecrets,
    ctx: &LoginContext<'_>,
) -> Result<id_token::IdTokenClaims, LoginError> {
    let cfg = &realm.config;
    let policy = IdTokenPolicy::for_realm(cfg).with_nonce(secrets.nonce.clone());
    let claims = validate_with_refetch(realm, &tokens.id_token, &policy, ctx).await?;
    if let Some(at) = &tokens.op_access_token {
        id_token::check_at_hash(
            &claims,
            at.expose_secret(),
            cfg.rp.response_type == ResponseType::IdTokenToken,
        )
        .map_err(LoginError::IdToken)?;
    }
    if let Some(code) = &tokens.code {
        id_token::check_c_hash(&claims, code, false).map_err(LoginError::IdToken)?;
    }
    Ok(claims)
}

/// Step 7: the ID token's claims, with UserInfo merged in when the realm has a UserInfo
/// endpoint and the OP gave an access token (its `sub` must be the ID token's).
async fn userinfo_claims(
    realm: &Realm,
    claims: &id_token::IdTokenClaims,
    op_access_token: Option<&Secret<String>>,
) -> Result<serde_json::Map<String, serde_json::Value>, LoginError> {
    let cfg = &realm.config;
    let mut all_claims = claims.claims().clone();
    if let (Some(endpoint), Some(at)) = (&cfg.op.userinfo_endpoint, op_access_token) {
        let info = realm.op.userinfo(endpoint, at.expose_secret()).await?;
        let info_sub = info.get("sub").and_then(|v| v.as_str()).unwrap_or("");
        if info_sub != claims.sub() {
            return Err(LoginError::UserinfoSubject {
                userinfo: info_sub.to_string(),
                id_token: claims.sub().to_string(),
            });
        }
        all_claims = claims::merge_userinfo(&all_claims, info)?;
    }
    Ok(all_claims)
}

/// Step 8a: the claims mapped to a user of the realm, with its roles from role mapping.
fn map_user(
    cfg: &RealmConfig,
    all_claims: &serde_json::Map<String, serde_json::Value>,
    ctx: &LoginContext<'_>,
) -> Result<UserRecord, LoginError> {
    let mapped = claims::map_claims(all_claims, &cfg.claims, cfg.populate_user_metadata)?;
    let mut roles = (ctx.roles)(&mapped, &cfg.name);
    roles.sort();
    roles.dedup();
    let realm_ref = RealmRef {
        name: cfg.name.clone(),
        kind: REALM_TYPE.to_string(),
    };
    Ok(UserRecord {
        username: mapped.principal.clone(),
        roles,
        full_name: mapped.name.clone(),
        email: mapped.mail.clone(),
        metadata: mapped.metadata.clone(),
        realm: realm_ref,
    })
}

/// Step 8b: a token pair for the user, bound to the facilitator, with the ID token sealed
/// under it for logout; the login is audited.
async fn issue_tokens(
    cfg: &RealmConfig,
    user: &UserRecord,
    id_token: String,
    session: crate::model::OidcSession,
    ctx: &LoginContext<'_>,
) -> Result<IssuedPair, LoginError> {
    let logout = serde_json::to_vec(&LogoutData {
        realm: cfg.name.clone(),
        id_token,
    })
    .map_err(|_| LoginError::Token(TokenError::Seal(crate::tokens::SealError::EncodeLogout)))?;
    let pair = ctx
        .tokens
        .issue_for_session(
            user.clone(),
            ctx.caller.clone(),
            ctx.lifetimes,
            true,
            Some(&logout),
            Some(session),
        )
        .await?;
    tracing::info!(
        target: "audit",
        event = "oidc_login",
        realm = %cfg.name,
        username = ?user.username,
        roles = ?user.roles,
        facilitator = ?ctx.caller.username,
        "login succeeded"
    );
    Ok(pair)
}

/// Validate, and when the key is unknown or the signature fails, fetch an URL JWKS again
/// (rate-limited) and validate once more.
async fn validate_with_refetch(
    realm: &Realm,
    raw: &str,
    policy: &IdTokenPolicy,
    ctx: &LoginContext<'_>,
) -> Result<id_token::IdTokenClaims, LoginError> {
    let now = ctx.clock.now_millis();
    let now_secs = ctx.clock.now_secs();
    let min = realm.config.op.jwkset_min_refetch_interval;
    let Some(keys) = realm.keys.current(&realm.op, now, min).await else {
        return Err(LoginError::NoKeys(realm.name().to_string()));
    };
    match id_token::validate(raw, policy, &keys, now_secs) {
        Ok(c) => Ok(c),
        Err(e) if e.may_need_new_keys() && realm.keys.refetch(&realm.op, now, min).await => {
            let keys = realm
                .keys
                .current(&realm.op, now, min)
                .await
                .ok_or_else(|| LoginError::NoKeys(realm.name().to_string()))?;
            id_token::validate(raw, policy, &keys, now_secs).map_err(LoginError::IdToken)
        }
        Err(e) => Err(LoginError::IdToken(e)),
    }
}

// ---------------------------------------------------------------------------------------
// logout

/// Why a logout failed.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("the access token is unknown, expired or invalidated")]
    TokenInvalid,
    #[error("Access token is not valid for an OpenID Connect realm")]
    NotOidc,
    #[error("{0}")]
    Token(#[from] TokenError),
}

/// What a logout did: the OP's end-session URL (when the realm has one), whose tokens were
/// invalidated, and how many.
#[derive(Debug)]
pub struct LoggedOut {
    pub redirect: Option<String>,
    pub user: UserRecord,
    pub counts: crate::store::InvalidationCounts,
}

/// `POST /_security/oidc/logout`: invalidate the tokens, and build the OP's end-session URL.
pub async fn logout(
    realms: &Realms,
    access_token: &str,
    refresh_token: Option<&str>,
    tokens: &TokenService,
) -> Result<LoggedOut, LogoutError> {
    let mut counts = crate::store::InvalidationCounts::default();
    let mut add = |c: crate::store::InvalidationCounts| {
        counts.invalidated += c.invalidated;
        counts.previously_invalidated += c.previously_invalidated;
    };
    // 1. The refresh token first; errors abort.
    if let Some(r) = refresh_token {
        if let Some(c) = tokens.invalidate_token(TokenKind::Refresh, r).await? {
            add(c);
        }
    }
    // 2. The access token must be valid and of an OIDC realm.
    let doc = tokens
        .authenticate(access_token)
        .await
        .map_err(|e| match e {
            TokenError::Bearer(_) => LogoutError::TokenInvalid,
            other => LogoutError::Token(other),
        })?;
    if doc.user.realm.kind != REALM_TYPE {
        return Err(LogoutError::NotOidc);
    }
    let data = tokens
        .open_sealed(access_token)
        .await
        .map_err(LogoutError::Token)?
        .and_then(|b| serde_json::from_slice::<LogoutData>(&b).ok());
    // 3. Invalidate the access token (it parsed in step 2).
    if let Some(c) = tokens
        .invalidate_token(TokenKind::Access, access_token)
        .await?
    {
        add(c);
    }
    tracing::info!(
        target: "audit",
        event = "oidc_logout",
        realm = %doc.user.realm.name,
        username = ?doc.user.username,
        "logout"
    );
    // 4. The end-session redirect, when the realm has an endsession endpoint.
    Ok(LoggedOut {
        redirect: data.and_then(|d| end_session_url(realms, &d)),
        user: (*doc.user).clone(),
        counts,
    })
}

/// The OP's end-session URL for a logout of `data`'s login, when its realm has one.
fn end_session_url(realms: &Realms, data: &LogoutData) -> Option<String> {
    let realm = realms.get(&data.realm)?;
    let end = realm.config.op.endsession_endpoint.as_ref()?;
    let mut url = end.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("id_token_hint", &data.id_token);
        if let Some(post) = &realm.config.rp.post_logout_redirect_uri {
            q.append_pair("post_logout_redirect_uri", post.as_str());
        }
        q.append_pair("state", &random_urlsafe(32));
    }
    Some(url.into())
}

/// The realm whose `op.issuer` equals `iss` exactly (third-party-initiated login).
pub fn realm_for_issuer<'a>(realms: &'a Realms, iss: &str) -> Result<&'a Arc<Realm>, usize> {
    let found: Vec<&Arc<Realm>> = realms
        .iter()
        .filter(|r| r.config.enabled && r.config.op.issuer == iss)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        other => Err(other.len()),
    }
}
