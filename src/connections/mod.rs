//! Connected accounts: per-user OAuth 2.0 grants at third-party services, kept sealed in the
//! store and refreshed on demand, so a facilitator can act for its users at those services
//! (see docs/connections.md).
//!
//! - Connections (the services and oidc-realm's client there) come from `connections.*` in
//!   the configuration (read-only) or from the API (stored, client secret sealed).
//! - `authorize` starts an authorization code flow with PKCE S256 for a user: the state and
//!   verifier are kept server-side, single use, 10 minutes ([`STATE_TTL_MS`]), sealed, and
//!   bound to (connection, user, facilitator).
//! - `callback` consumes the state, exchanges the code, and stores the grant sealed with the
//!   (connection, user) pair as associated data.
//! - `token` answers a valid access token, refreshing it when it expires within
//!   [`REFRESH_MARGIN_MS`]; refreshes of one (connection, user) are serialised by a keyed
//!   lock in this node ([`locks::KeyedLocks`]); other keys never wait.
//! - `revoke` removes a grant (at the service too, when it has a revocation endpoint).

pub mod locks;
pub mod oauth;
pub mod records;

use crate::audit::{Audit, AuditEvent, Capped, Who};
use crate::auth::limits::{keyed, retry_after_secs, Keyed, RateLimited};
use crate::clock::{SharedClock, UnixMillis};
use crate::config::{
    check_connection_name, check_endpoint, check_scope, ConnectionClientAuth, ConnectionDef,
    ConnectionMode, ConnectionSettings,
};
use crate::metrics::Limit;
use crate::oidc::client::OpClient;
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use locks::KeyedLocks;
use oauth::{Discovered, ServiceError};
use records::{
    ad, grant_key, grant_owner, GrantDoc, PendingAuthorization, StoredConnection, KIND_CONNECTION,
    KIND_GRANT, KIND_LEASE, KIND_STATE,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

/// How long a pending authorization lives: 10 minutes.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// An access token that expires within this is refreshed before it is handed out: 60 s.
pub const REFRESH_MARGIN_MS: i64 = 60 * 1000;
/// The user a shared connection's one grant belongs to.
pub const SHARED_USER: &str = "_shared";
/// `_authorize` + `_callback` per user: 1 per second, bursts of 20.
pub const PER_USER_RATE: (u32, u32) = (1, 20);
/// `_authorize` + `_callback` per facilitator: 20 per second, bursts of 100.
pub const PER_FACILITATOR_RATE: (u32, u32) = (20, 100);

/// A refresh lease lapses after this (a node that died while refreshing): 15 s, more than the
/// longest call to a service (5 s connect + 5 s read).
pub const LEASE_TTL_MS: i64 = 15_000;
/// How long a `_token` call waits for a refresh another node holds the lease for.
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(16);
/// How often a waiting call looks again.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// A held refresh lease; released (deleted) when dropped, also when the request is cancelled.
struct Lease {
    store: Arc<dyn Store>,
    key: String,
    version: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let store = self.store.clone();
        let key = std::mem::take(&mut self.key);
        let version = self.version;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.delete_record(KIND_LEASE, &key, Some(version)).await {
                    tracing::warn!(error = %e, "releasing a refresh lease failed (it lapses by itself)");
                }
            });
        }
    }
}

/// What waiting for the refresh lease gave.
enum LeaseOutcome {
    Held(Lease),
    /// Another node refreshed the grant meanwhile: here it is.
    RefreshedElsewhere(GrantDoc),
}

/// Discovered endpoints are fetched again after this: 1 hour.
pub const DISCOVERY_TTL_MS: i64 = 60 * 60 * 1000;

/// A connection's endpoints, as given or discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: url::Url,
    pub token: url::Url,
    pub revocation: Option<url::Url>,
}

/// The user a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub realm: String,
    pub username: String,
}

impl Subject {
    /// The owner of a shared connection's grant: realm `""` (no realm has an empty name) and
    /// user name `_shared`.
    pub fn shared() -> Self {
        Subject {
            realm: String::new(),
            username: SHARED_USER.to_string(),
        }
    }

    pub fn is_shared(&self) -> bool {
        self.realm.is_empty()
    }
}

/// Why a connection call failed (mapped to HTTP in `http::errors`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connections are not enabled: connection_encryption.key is not set")]
    NotEnabled,
    #[error("connection [{0}] not found")]
    NotFound(String),
    #[error(
        "connection [{0}] is defined in the configuration file and is read-only through the API"
    )]
    ReadOnly(String),
    #[error("invalid connection: {0:?}")]
    Invalid(Vec<String>),
    #[error("connection [{name}] holds {grants} user grant(s)")]
    InUse { name: String, grants: usize },
    /// Unknown, already used or expired state.
    #[error("the authorization state is unknown, used or expired")]
    StateInvalid,
    /// The state was started by another facilitator or for another user (it is consumed).
    #[error("the authorization state belongs to another {0}")]
    StateMismatch(&'static str),
    #[error("invalid callback: {0}")]
    CallbackInvalid(String),
    /// The service sent the browser back with an error (`access_denied`, ...).
    #[error("the service refused the authorization ({0})")]
    Denied(String),
    /// The code exchange was refused by the service.
    #[error("the code exchange was refused: {0}")]
    ExchangeRefused(ServiceError),
    /// No usable grant (none, refresh refused, record does not open): start `_authorize`.
    #[error("authorization required: {0}")]
    AuthorizationRequired(String),
    /// The service could not be reached or answered something unusable.
    #[error("{0}")]
    Service(ServiceError),
    #[error("the connection's mode does not allow this: {0}")]
    WrongMode(&'static str),
    #[error(transparent)]
    RateLimited(#[from] RateLimitedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A rate limit of the connection endpoints.
#[derive(Debug, thiserror::Error)]
#[error("rate limited")]
pub struct RateLimitedError(pub RateLimited);

/// `PUT /_oauth/connections/{name}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutConnection {
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub redirect_uri: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    pub client_auth_method: Option<String>,
    pub insecure_disable_pkce: Option<bool>,
    pub mode: Option<String>,
}

/// A connection's public view (never the client secret).
fn view(name: &str, def: &ConnectionDef, read_only: bool) -> Value {
    json!({
        "name": name,
        "issuer": def.issuer.as_ref().map(|u| u.as_str()),
        "authorization_endpoint": def.authorization_endpoint.as_ref().map(|u| u.as_str()),
        "token_endpoint": def.token_endpoint.as_ref().map(|u| u.as_str()),
        "revocation_endpoint": def.revocation_endpoint.as_ref().map(|u| u.as_str()),
        "redirect_uri": def.redirect_uri.as_str(),
        "scopes": def.scopes,
        "client_id": def.client_id,
        "client_auth_method": def.client_auth.as_str(),
        "insecure_disable_pkce": !def.pkce,
        "mode": def.mode.as_str(),
        "read_only": read_only,
    })
}

/// The connections service (one per process; configuration passed per call).
pub struct Connections {
    store: Arc<dyn Store>,
    clock: SharedClock,
    audit: Audit,
    client: OnceLock<Result<OpClient, String>>,
    locks: KeyedLocks,
    per_user: Keyed<String>,
    per_facilitator: Keyed<String>,
    /// issuer → (fetched at, what its metadata says).
    discovered: std::sync::Mutex<std::collections::HashMap<String, (UnixMillis, Discovered)>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn state_key(state: &str) -> String {
    let h = crate::crypto::labelled_hash(b"oidc-realm connection state\0", state.as_bytes());
    h.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn facilitator_id(who: Who<'_>) -> String {
    format!("{}/{}", who.realm, who.user)
}

impl Connections {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, audit: Audit) -> Self {
        Connections {
            store,
            clock,
            audit,
            client: OnceLock::new(),
            locks: KeyedLocks::default(),
            per_user: keyed(nz(PER_USER_RATE.0), nz(PER_USER_RATE.1)),
            per_facilitator: keyed(nz(PER_FACILITATOR_RATE.0), nz(PER_FACILITATOR_RATE.1)),
            discovered: Default::default(),
        }
    }

    fn client(&self) -> Result<&OpClient, ConnectionError> {
        self.client
            .get_or_init(|| OpClient::with_defaults("connections").map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ConnectionError::Service(ServiceError::Failed(e.clone())))
    }

    /// Forget idle rate-limit keys (the sweeper).
    pub fn forget_idle(&self) {
        crate::auth::limits::forget_idle(&self.per_user);
        crate::auth::limits::forget_idle(&self.per_facilitator);
    }

    /// Count one `_authorize` / `_callback` of `facilitator` for `subject`; 429 (audited as
    /// `rate_limited` with `limit` `connection_authorizations_per_facilitator` or
    /// `connection_authorizations_per_user`) when either is over its limit.
    fn admit(&self, facilitator: Who<'_>, subject: &Subject) -> Result<(), ConnectionError> {
        let refused = |label: &'static str, what: &'static str, n: governor::NotUntil<_>| {
            let secs = retry_after_secs(&n);
            self.audit.emit(
                Some(facilitator),
                AuditEvent::RateLimited {
                    limit: label,
                    retry_after_secs: secs,
                },
            );
            ConnectionError::RateLimited(RateLimitedError(RateLimited {
                what,
                limit: Limit::RequestsPerCaller,
                retry_after_secs: secs,
            }))
        };
        self.per_facilitator
            .check_key(&facilitator_id(facilitator))
            .map_err(|n| refused("connection_authorizations_per_facilitator", "caller", n))?;
        self.per_user
            .check_key(&format!("{}\0{}", subject.realm, subject.username))
            .map_err(|n| refused("connection_authorizations_per_user", "user", n))?;
        Ok(())
    }

    // --- Definitions ---------------------------------------------------------------------

    /// The endpoints of `def`: as given, completed from its issuer's metadata (fetched at most
    /// once per [`DISCOVERY_TTL_MS`] per issuer).
    pub async fn endpoints(&self, def: &ConnectionDef) -> Result<Endpoints, ConnectionError> {
        let mut found: Discovered = (None, None, None);
        if let Some(issuer) = &def.issuer {
            let complete = def.authorization_endpoint.is_some() && def.token_endpoint.is_some();
            if !complete || def.revocation_endpoint.is_none() {
                let now = self.clock.now_millis();
                let cached = self
                    .discovered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(issuer.as_str())
                    .filter(|(at, _)| now - *at < DISCOVERY_TTL_MS)
                    .map(|(_, d)| d.clone());
                found = match cached {
                    Some(d) => d,
                    None => match oauth::discover(self.client()?, issuer).await {
                        Ok(d) => {
                            self.discovered
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(issuer.to_string(), (now, d.clone()));
                            d
                        }
                        // Only the revocation endpoint was missing: do without it.
                        Err(e) if complete => {
                            tracing::warn!(issuer = %issuer, error = %e, "discovery failed");
                            (None, None, None)
                        }
                        Err(e) => return Err(ConnectionError::Service(e)),
                    },
                };
            }
        }
        let missing = |what: &str| {
            ConnectionError::Service(ServiceError::Failed(format!(
                "the service's metadata has no {what}"
            )))
        };
        Ok(Endpoints {
            authorization: def
                .authorization_endpoint
                .clone()
                .or(found.0)
                .ok_or_else(|| missing("authorization_endpoint"))?,
            token: def
                .token_endpoint
                .clone()
                .or(found.1)
                .ok_or_else(|| missing("token_endpoint"))?,
            revocation: def.revocation_endpoint.clone().or(found.2),
        })
    }

    /// The connection `name`: the configuration's, else the store's.
    pub async fn get_def(
        &self,
        settings: &ConnectionSettings,
        name: &str,
    ) -> Result<(ConnectionDef, bool), ConnectionError> {
        if let Some(d) = settings.defined.get(name) {
            return Ok((d.clone(), true));
        }
        if check_connection_name(name).is_err() {
            return Err(ConnectionError::NotFound(name.to_string()));
        }
        let Some(rec) = self.store.get_record(KIND_CONNECTION, name).await? else {
            return Err(ConnectionError::NotFound(name.to_string()));
        };
        let def = self.decode_def(settings, name, &rec.value)?;
        Ok((def, false))
    }

    fn decode_def(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        bytes: &[u8],
    ) -> Result<ConnectionDef, ConnectionError> {
        let corrupt = |why: &str| {
            ConnectionError::Store(StoreError::Corrupt(format!(
                "stored connection [{name}]: {why}"
            )))
        };
        let s: StoredConnection =
            serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string()))?;
        let sealed = URL_SAFE_NO_PAD
            .decode(&s.client_secret_sealed)
            .map_err(|_| corrupt("client secret is not base64url"))?;
        if settings.key.is_none() {
            return Err(ConnectionError::NotEnabled);
        }
        let (secret, _) = records::open(settings, &sealed, &ad(KIND_CONNECTION, name))
            .ok_or_else(|| corrupt("the client secret does not open with connection_encryption.key or previous_key"))?;
        let secret = String::from_utf8(secret).map_err(|_| corrupt("client secret not UTF-8"))?;
        let url = |u: &str| check_endpoint(u).map_err(|e| corrupt(&e));
        Ok(ConnectionDef {
            issuer: s.issuer.as_deref().map(url).transpose()?,
            authorization_endpoint: s.authorization_endpoint.as_deref().map(url).transpose()?,
            token_endpoint: s.token_endpoint.as_deref().map(url).transpose()?,
            revocation_endpoint: s.revocation_endpoint.as_deref().map(url).transpose()?,
            redirect_uri: url(&s.redirect_uri)?,
            scopes: s.scopes,
            client_id: s.client_id,
            client_secret: Secret::new(secret),
            client_auth: s.client_auth,
            pkce: s.pkce,
            mode: s.mode,
        })
    }

    /// Every connection (configuration first, then stored), or one.
    pub async fn list(
        &self,
        settings: &ConnectionSettings,
        name: Option<&str>,
    ) -> Result<Value, ConnectionError> {
        let mut out = serde_json::Map::new();
        if let Some(name) = name {
            let (def, ro) = self.get_def(settings, name).await?;
            out.insert(name.to_string(), view(name, &def, ro));
            return Ok(Value::Object(out));
        }
        for (n, d) in &settings.defined {
            out.insert(n.clone(), view(n, d, true));
        }
        for (n, rec) in self.store.list_records(KIND_CONNECTION, "").await? {
            if out.contains_key(&n) {
                continue;
            }
            match self.decode_def(settings, &n, &rec.value) {
                Ok(d) => {
                    out.insert(n.clone(), view(&n, &d, false));
                }
                Err(e) => tracing::error!(connection = %n, error = %e, "stored connection skipped"),
            }
        }
        Ok(Value::Object(out))
    }

    /// Define (or replace) a connection through the API; `true` if created.
    pub async fn put(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        body: PutConnection,
        by: Who<'_>,
    ) -> Result<bool, ConnectionError> {
        if settings.defined.contains_key(name) {
            return Err(ConnectionError::ReadOnly(name.to_string()));
        }
        let mut errors = Vec::new();
        if let Err(e) = check_connection_name(name) {
            errors.push(e);
        }
        if settings.key.is_none() {
            return Err(ConnectionError::NotEnabled);
        }
        let current = self.store.get_record(KIND_CONNECTION, name).await?;
        let previous = match &current {
            Some(r) => Some(self.decode_def(settings, name, &r.value)?),
            None => None,
        };
        let mut url = |field: &str, v: Option<&String>, required: bool| -> Option<String> {
            match v {
                None if required => {
                    errors.push(format!("[{field}] is required"));
                    None
                }
                None => None,
                Some(s) => match check_endpoint(s) {
                    Ok(u) => Some(u.to_string()),
                    Err(e) => {
                        errors.push(format!("[{field}] {e}"));
                        None
                    }
                },
            }
        };
        let issuer = url("issuer", body.issuer.as_ref(), false);
        let endpoints_required = body.issuer.is_none();
        let authorization_endpoint = url(
            "authorization_endpoint",
            body.authorization_endpoint.as_ref(),
            endpoints_required,
        );
        let token_endpoint = url(
            "token_endpoint",
            body.token_endpoint.as_ref(),
            endpoints_required,
        );
        let redirect_uri = url("redirect_uri", body.redirect_uri.as_ref(), true);
        let revocation_endpoint = url(
            "revocation_endpoint",
            body.revocation_endpoint.as_ref(),
            false,
        );
        let scopes = body.scopes.unwrap_or_default();
        for s in &scopes {
            if let Err(e) = check_scope(s) {
                errors.push(format!("[scopes] {e}"));
            }
        }
        let client_id = body.client_id.filter(|c| !c.is_empty());
        if client_id.is_none() {
            errors.push("[client_id] is required".into());
        }
        // Write-only: a replace without a secret keeps the stored one.
        let secret = match (&body.client_secret, &previous) {
            (Some(s), _) if !s.expose_secret().is_empty() => Some(s.expose_secret().clone()),
            (_, Some(p)) => Some(p.client_secret.expose_secret().clone()),
            _ => {
                errors.push("[client_secret] is required when a connection is created".into());
                None
            }
        };
        let client_auth = match body.client_auth_method.as_deref() {
            None => ConnectionClientAuth::ClientSecretBasic,
            Some(s) => ConnectionClientAuth::parse(s).unwrap_or_else(|e| {
                errors.push(format!("[client_auth_method] {e}"));
                ConnectionClientAuth::ClientSecretBasic
            }),
        };
        let mode = match body.mode.as_deref() {
            None => ConnectionMode::PerUser,
            Some(s) => ConnectionMode::parse(s).unwrap_or_else(|e| {
                errors.push(format!("[mode] {e}"));
                ConnectionMode::PerUser
            }),
        };
        let (true, Some(redirect_uri), Some(client_id), Some(secret)) =
            (errors.is_empty(), redirect_uri, client_id, secret)
        else {
            return Err(ConnectionError::Invalid(errors));
        };
        let parsed = |u: &Option<String>| u.as_deref().and_then(|u| check_endpoint(u).ok());
        if let Some(issuer) = parsed(&issuer) {
            // Discover now, so a wrong issuer is reported to whoever defines the connection.
            let probe = ConnectionDef {
                issuer: Some(issuer),
                authorization_endpoint: parsed(&authorization_endpoint),
                token_endpoint: parsed(&token_endpoint),
                revocation_endpoint: parsed(&revocation_endpoint),
                redirect_uri: check_endpoint(&redirect_uri)
                    .map_err(|e| ConnectionError::Invalid(vec![e]))?,
                scopes: Vec::new(),
                client_id: String::new(),
                client_secret: Secret::new(String::new()),
                client_auth,
                pkce: true,
                mode,
            };
            if let Err(e) = self.endpoints(&probe).await {
                return Err(ConnectionError::Invalid(vec![format!(
                    "[issuer] the service's metadata cannot be used: {e}"
                )]));
            }
        }
        let sealed = records::seal(settings, secret.as_bytes(), &ad(KIND_CONNECTION, name))
            .ok_or(ConnectionError::NotEnabled)?;
        let stored = StoredConnection {
            issuer,
            authorization_endpoint,
            token_endpoint,
            revocation_endpoint,
            redirect_uri,
            scopes,
            client_id,
            client_secret_sealed: URL_SAFE_NO_PAD.encode(sealed),
            client_auth,
            pkce: !body.insecure_disable_pkce.unwrap_or(false),
            mode,
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| ConnectionError::Store(StoreError::Corrupt(e.to_string())))?;
        let created = current.is_none();
        self.store
            .put_record(KIND_CONNECTION, name, bytes, current.map(|r| r.version))
            .await?;
        self.audit.emit(
            Some(by),
            AuditEvent::ConnectionChanged {
                operation: "put",
                name: Capped::new(name),
                created: Some(created),
                revoked_grants: None,
            },
        );
        Ok(created)
    }

    /// Delete a connection defined through the API. With grants: `InUse` unless `force`, which
    /// revokes them first. Returns how many grants were revoked.
    pub async fn delete(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        force: bool,
        by: Who<'_>,
    ) -> Result<usize, ConnectionError> {
        if settings.defined.contains_key(name) {
            return Err(ConnectionError::ReadOnly(name.to_string()));
        }
        let (def, _) = self.get_def(settings, name).await?;
        let grants = self
            .store
            .list_records(KIND_GRANT, &format!("{name}/"))
            .await?;
        if !grants.is_empty() && !force {
            return Err(ConnectionError::InUse {
                name: name.to_string(),
                grants: grants.len(),
            });
        }
        let mut revoked = 0;
        for (key, _) in &grants {
            if let Some((realm, username)) = grant_owner(key) {
                let subject = Subject { realm, username };
                if self
                    .revoke_with(settings, name, &def, &subject, by)
                    .await?
                    .is_some()
                {
                    revoked += 1;
                }
            }
        }
        self.store
            .delete_record(KIND_CONNECTION, name, None)
            .await?;
        self.audit.emit(
            Some(by),
            AuditEvent::ConnectionChanged {
                operation: "delete",
                name: Capped::new(name),
                created: None,
                revoked_grants: Some(revoked),
            },
        );
        Ok(revoked)
    }

    // --- Grants --------------------------------------------------------------------------

    /// Check the subject fits the connection's mode.
    fn check_mode(def: &ConnectionDef, subject: &Subject) -> Result<(), ConnectionError> {
        let shared = subject.is_shared();
        match (def.mode, shared) {
            (ConnectionMode::PerUser, true) => Err(ConnectionError::WrongMode(
                "this connection is per_user: name the user with access_token",
            )),
            (ConnectionMode::Shared, false) => Err(ConnectionError::WrongMode(
                "this connection is shared: its one grant is authorized by an administrator, without access_token",
            )),
            _ => Ok(()),
        }
    }

    /// Start an authorization for `subject`: the URL to send the browser to, and the state.
    pub async fn authorize(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        subject: &Subject,
        facilitator: Who<'_>,
    ) -> Result<(String, String), ConnectionError> {
        let (def, _) = self.get_def(settings, name).await?;
        Self::check_mode(&def, subject)?;
        if settings.key.is_none() {
            return Err(ConnectionError::NotEnabled);
        }
        let fac = facilitator_id(facilitator);
        self.admit(facilitator, subject)?;
        let endpoints = self.endpoints(&def).await?;
        let state = crate::crypto::random_urlsafe(32);
        let verifier = def.pkce.then(|| crate::crypto::random_urlsafe(48));
        let mut url = endpoints.authorization;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &def.client_id)
                .append_pair("redirect_uri", def.redirect_uri.as_str())
                .append_pair("state", &state);
            if !def.scopes.is_empty() {
                q.append_pair("scope", &def.scopes.join(" "));
            }
            if let Some(v) = &verifier {
                let challenge = URL_SAFE_NO_PAD.encode(crate::crypto::sha256(&[v.as_bytes()]));
                q.append_pair("code_challenge", &challenge)
                    .append_pair("code_challenge_method", "S256");
            }
        }
        let pending = PendingAuthorization {
            connection: name.to_string(),
            realm: subject.realm.clone(),
            username: subject.username.clone(),
            facilitator: fac,
            verifier,
            expires_at: self.clock.now_millis() + STATE_TTL_MS,
        };
        let key = state_key(&state);
        let plain = serde_json::to_vec(&pending)
            .map_err(|e| ConnectionError::Store(StoreError::Corrupt(e.to_string())))?;
        let sealed = records::seal(settings, &plain, &ad(KIND_STATE, &key))
            .ok_or(ConnectionError::NotEnabled)?;
        let now = self.clock.now_millis();
        self.store
            .put_once(KIND_STATE, &key, sealed, pending.expires_at, now)
            .await?;
        Ok((url.to_string(), state))
    }

    /// Finish an authorization: the URL the browser reached (with `code` and `state`, or an
    /// `error`). Returns the connection's name and the grant's scope and lifetime.
    pub async fn callback(
        &self,
        settings: &ConnectionSettings,
        callback_url: &str,
        subject: &Subject,
        facilitator: Who<'_>,
    ) -> Result<Value, ConnectionError> {
        let fac = facilitator_id(facilitator);
        self.admit(facilitator, subject)?;
        let url = url::Url::parse(callback_url)
            .map_err(|e| ConnectionError::CallbackInvalid(format!("not a URL: {e}")))?;
        let mut state = None;
        let mut code = None;
        let mut error = None;
        for (k, v) in url.query_pairs() {
            let slot = match k.as_ref() {
                "state" => &mut state,
                "code" => &mut code,
                "error" => &mut error,
                _ => continue,
            };
            if slot.is_some() {
                return Err(ConnectionError::CallbackInvalid(format!(
                    "parameter [{k}] is given twice"
                )));
            }
            *slot = Some(v.into_owned());
        }
        let state = state
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConnectionError::CallbackInvalid("no state parameter".into()))?;
        let key = state_key(&state);
        let now = self.clock.now_millis();
        let sealed = self
            .store
            .take_once(KIND_STATE, &key, now)
            .await?
            .ok_or(ConnectionError::StateInvalid)?;
        let pending: PendingAuthorization = records::open(settings, &sealed, &ad(KIND_STATE, &key))
            .and_then(|(p, _)| serde_json::from_slice(&p).ok())
            .ok_or(ConnectionError::StateInvalid)?;
        let mismatch = if !crate::secret::ct_eq(pending.facilitator.as_bytes(), fac.as_bytes()) {
            Some("facilitator")
        } else if pending.realm != subject.realm || pending.username != subject.username {
            Some("user")
        } else {
            None
        };
        if let Some(what) = mismatch {
            // Put it back for the right facilitator and user: whoever learns a state cannot
            // burn another user's authorization (a take by the right caller in this instant
            // fails, and the user starts again).
            if let Err(e) = self
                .store
                .put_once(KIND_STATE, &key, sealed, pending.expires_at, now)
                .await
            {
                tracing::warn!(error = %e, "a mismatched authorization state could not be put back");
            }
            return Err(ConnectionError::StateMismatch(what));
        }
        let name = pending.connection.clone();
        let (def, _) = self.get_def(settings, &name).await?;
        let reached = (
            url.scheme(),
            url.host_str(),
            url.port_or_known_default(),
            url.path(),
        );
        let expected = (
            def.redirect_uri.scheme(),
            def.redirect_uri.host_str(),
            def.redirect_uri.port_or_known_default(),
            def.redirect_uri.path(),
        );
        if reached != expected {
            return Err(ConnectionError::CallbackInvalid(
                "the URL is not the connection's redirect_uri".into(),
            ));
        }
        if let Some(e) = error {
            let shown = crate::text::Cap {
                max_chars: 100,
                control: Some(' '),
                ellipsis: true,
            }
            .apply(&e);
            return Err(ConnectionError::Denied(shown));
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectionError::CallbackInvalid("no code parameter".into()))?;
        let endpoints = self.endpoints(&def).await?;
        let grant = oauth::exchange_code(
            self.client()?,
            &def,
            &endpoints,
            &code,
            pending.verifier.as_deref(),
            now,
        )
        .await
        .map_err(|e| match e {
            ServiceError::Refused { .. } => ConnectionError::ExchangeRefused(e),
            e => ConnectionError::Service(e),
        })?;
        let gkey = grant_key(&name, &subject.realm, &subject.username);
        let current = self.store.get_record(KIND_GRANT, &gkey).await?;
        self.write_grant(settings, &gkey, &grant, current.map(|r| r.version))
            .await?;
        self.audit.emit(
            Some(facilitator),
            AuditEvent::ConnectionGrantCreated {
                connection: Capped::new(&name),
                realm: Capped::new(&subject.realm),
                principal: Capped::new(&subject.username),
            },
        );
        Ok(json!({
            "connection": name,
            "scope": grant.scope,
            "expires_in": grant.expires_at.map(|e| (e - now).max(0) / 1000),
        }))
    }

    async fn write_grant(
        &self,
        settings: &ConnectionSettings,
        gkey: &str,
        grant: &GrantDoc,
        expected: Option<u64>,
    ) -> Result<u64, ConnectionError> {
        let plain = serde_json::to_vec(grant)
            .map_err(|e| ConnectionError::Store(StoreError::Corrupt(e.to_string())))?;
        let sealed = records::seal(settings, &plain, &ad(KIND_GRANT, gkey))
            .ok_or(ConnectionError::NotEnabled)?;
        Ok(self
            .store
            .put_record(KIND_GRANT, gkey, sealed, expected)
            .await?)
    }

    /// The grant under `gkey` with its version; `AuthorizationRequired` if there is none or
    /// it does not open (a record moved from another user or connection).
    async fn read_grant(
        &self,
        settings: &ConnectionSettings,
        gkey: &str,
    ) -> Result<(GrantDoc, u64, bool), ConnectionError> {
        let rec = self
            .store
            .get_record(KIND_GRANT, gkey)
            .await?
            .ok_or_else(|| ConnectionError::AuthorizationRequired("no grant".into()))?;
        let (plain, previous) = records::open(settings, &rec.value, &ad(KIND_GRANT, gkey))
            .ok_or_else(|| {
                tracing::error!(
                    grant = %gkey,
                    "a stored connection grant does not open (another key, or a record moved from another user or connection)"
                );
                ConnectionError::AuthorizationRequired("the stored grant does not open".into())
            })?;
        let doc: GrantDoc = serde_json::from_slice(&plain).map_err(|_| {
            ConnectionError::AuthorizationRequired("the stored grant does not parse".into())
        })?;
        Ok((doc, rec.version, previous))
    }

    /// Whether the access token is good for a while: more than [`REFRESH_MARGIN_MS`] left, or
    /// for short-lived tokens more than half their lifetime (so a service with 30-second tokens
    /// is not asked for a refresh on every call).
    /// Take the refresh lease of `gkey` (a create-only record in the store, so one holder
    /// across every node sharing the store), or wait for its holder's refresh. A lapsed lease
    /// is taken over.
    async fn lease(
        &self,
        settings: &ConnectionSettings,
        gkey: &str,
    ) -> Result<LeaseOutcome, ConnectionError> {
        let deadline = std::time::Instant::now() + LEASE_WAIT;
        loop {
            let now = self.clock.now_millis();
            let value = json!({ "expires_at": now + LEASE_TTL_MS }).to_string();
            match self
                .store
                .put_record(KIND_LEASE, gkey, value.into_bytes(), None)
                .await
            {
                Ok(version) => {
                    return Ok(LeaseOutcome::Held(Lease {
                        store: self.store.clone(),
                        key: gkey.to_string(),
                        version,
                    }))
                }
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            if std::time::Instant::now() >= deadline {
                return Err(ConnectionError::Service(ServiceError::Failed(
                    "a refresh of this grant is in progress elsewhere and did not finish in time"
                        .into(),
                )));
            }
            if let Some(held) = self.store.get_record(KIND_LEASE, gkey).await? {
                let expires_at = serde_json::from_slice::<Value>(&held.value)
                    .ok()
                    .and_then(|v| v["expires_at"].as_i64())
                    .unwrap_or(0);
                if expires_at <= now {
                    // Lapsed: take it over (unless someone else just did).
                    match self
                        .store
                        .delete_record(KIND_LEASE, gkey, Some(held.version))
                        .await
                    {
                        Ok(_) | Err(StoreError::Conflict) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                tokio::time::sleep(LEASE_POLL).await;
                let (grant, _, _) = self.read_grant(settings, gkey).await?;
                if Self::fresh(&grant, self.clock.now_millis()) {
                    return Ok(LeaseOutcome::RefreshedElsewhere(grant));
                }
            }
        }
    }

    fn fresh(grant: &GrantDoc, now: UnixMillis) -> bool {
        let issued = grant.refreshed_at.unwrap_or(grant.created_at);
        grant.expires_at.is_none_or(|e| {
            let margin = REFRESH_MARGIN_MS.min((e - issued).max(0) / 2);
            e - now > margin
        })
    }

    fn token_view(grant: &GrantDoc, now: UnixMillis) -> Value {
        json!({
            "access_token": grant.access_token,
            "token_type": grant.token_type,
            "expires_in": grant.expires_at.map(|e| (e - now).max(0) / 1000),
            "scope": grant.scope,
        })
    }

    /// A valid access token of `subject` at `name`, refreshed if it is about to expire.
    pub async fn token(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        subject: &Subject,
        facilitator: Who<'_>,
    ) -> Result<Value, ConnectionError> {
        let (def, _) = self.get_def(settings, name).await?;
        Self::check_mode(&def, subject)?;
        let gkey = grant_key(name, &subject.realm, &subject.username);
        let (grant, _, previous) = self.read_grant(settings, &gkey).await?;
        let now = self.clock.now_millis();
        if Self::fresh(&grant, now) && !previous {
            return Ok(Self::token_view(&grant, now));
        }
        // One refresh per (connection, user) in this node; the others wait and re-read.
        let _guard = self.locks.lock(&gkey).await;
        let (grant, version, previous) = self.read_grant(settings, &gkey).await?;
        let now = self.clock.now_millis();
        if Self::fresh(&grant, now) {
            if previous {
                // Sealed with the previous key: seal again with the current one.
                if let Err(e) = self
                    .write_grant(settings, &gkey, &grant, Some(version))
                    .await
                {
                    tracing::warn!(error = %e, "re-sealing a grant after key rotation failed");
                }
            }
            return Ok(Self::token_view(&grant, now));
        }
        // One refresh per (connection, user) across nodes too: the lease in the store.
        let _lease = match self.lease(settings, &gkey).await? {
            LeaseOutcome::Held(lease) => lease,
            LeaseOutcome::RefreshedElsewhere(grant) => {
                return Ok(Self::token_view(&grant, self.clock.now_millis()))
            }
        };
        // Read again under the lease: another node may have refreshed just before.
        let (grant, version, _) = self.read_grant(settings, &gkey).await?;
        let now = self.clock.now_millis();
        if Self::fresh(&grant, now) {
            return Ok(Self::token_view(&grant, now));
        }
        let who = |reason: &str| AuditEvent::ConnectionRefreshFailed {
            connection: Capped::new(name),
            realm: Capped::new(&subject.realm),
            principal: Capped::new(&subject.username),
            reason: Capped::new(reason),
        };
        let Some(refresh_token) = grant.refresh_token.clone() else {
            self.store
                .delete_record(KIND_GRANT, &gkey, Some(version))
                .await?;
            self.audit.emit(Some(facilitator), who("no_refresh_token"));
            return Err(ConnectionError::AuthorizationRequired(
                "the access token expired and the grant has no refresh token".into(),
            ));
        };
        let endpoints = self.endpoints(&def).await?;
        match oauth::refresh(
            self.client()?,
            &def,
            &endpoints,
            &grant,
            &refresh_token,
            now,
        )
        .await
        {
            Ok(new) => {
                match self.write_grant(settings, &gkey, &new, Some(version)).await {
                    Ok(_) => {}
                    // Written meanwhile (another node, or a new authorization): that record
                    // stays; the token just obtained is valid all the same.
                    Err(ConnectionError::Store(StoreError::Conflict)) => {
                        tracing::warn!(connection = %name, "a refreshed grant was written concurrently; kept the other write");
                    }
                    Err(e) => return Err(e),
                }
                self.audit.emit(
                    Some(facilitator),
                    AuditEvent::ConnectionGrantRefreshed {
                        connection: Capped::new(name),
                        realm: Capped::new(&subject.realm),
                        principal: Capped::new(&subject.username),
                    },
                );
                Ok(Self::token_view(&new, now))
            }
            Err(ServiceError::Refused { error, .. }) => {
                self.store
                    .delete_record(KIND_GRANT, &gkey, Some(version))
                    .await?;
                self.audit.emit(Some(facilitator), who(&error));
                Err(ConnectionError::AuthorizationRequired(format!(
                    "the service refused the refresh ({error})"
                )))
            }
            Err(e) => Err(ConnectionError::Service(e)),
        }
    }

    /// Remove `subject`'s grant at `name` (revoking it at the service when possible).
    /// `None` if there was none; else whether the service confirmed the revocation.
    pub async fn revoke(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        subject: &Subject,
        by: Who<'_>,
    ) -> Result<Option<bool>, ConnectionError> {
        let (def, _) = self.get_def(settings, name).await?;
        self.revoke_with(settings, name, &def, subject, by).await
    }

    async fn revoke_with(
        &self,
        settings: &ConnectionSettings,
        name: &str,
        def: &ConnectionDef,
        subject: &Subject,
        by: Who<'_>,
    ) -> Result<Option<bool>, ConnectionError> {
        let gkey = grant_key(name, &subject.realm, &subject.username);
        let _guard = self.locks.lock(&gkey).await;
        let at_service = match self.read_grant(settings, &gkey).await {
            Ok((grant, _, _)) => {
                let revoked = match (self.client(), self.endpoints(def).await) {
                    (Ok(client), Ok(endpoints)) => oauth::revoke(client, def, &endpoints, &grant)
                        .await
                        .map_err(|e| e.to_string()),
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                };
                revoked.unwrap_or_else(|e| {
                    tracing::warn!(connection = %name, error = %e, "revocation at the service failed; the grant is removed here all the same");
                    false
                })
            }
            Err(ConnectionError::AuthorizationRequired(_)) => false,
            Err(e) => return Err(e),
        };
        let found = self.store.delete_record(KIND_GRANT, &gkey, None).await?;
        if found {
            self.audit.emit(
                Some(by),
                AuditEvent::ConnectionGrantRevoked {
                    connection: Capped::new(name),
                    realm: Capped::new(&subject.realm),
                    principal: Capped::new(&subject.username),
                    at_service,
                },
            );
        }
        Ok(found.then_some(at_service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(created_at: UnixMillis, expires_at: Option<UnixMillis>) -> GrantDoc {
        GrantDoc {
            access_token: "a".into(),
            token_type: "Bearer".into(),
            refresh_token: None,
            expires_at,
            scope: None,
            created_at,
            refreshed_at: None,
        }
    }

    #[test]
    fn freshness_margin() {
        // An hour-long token: refreshed in its last 60 s.
        let g = grant(0, Some(3_600_000));
        assert!(Connections::fresh(&g, 3_540_000 - 1));
        assert!(!Connections::fresh(&g, 3_540_000));
        // A 30 s token: refreshed in its second half only, not on every call.
        let g = grant(0, Some(30_000));
        assert!(Connections::fresh(&g, 14_999));
        assert!(!Connections::fresh(&g, 15_000));
        // No expiry given: always fresh; already expired: not.
        assert!(Connections::fresh(&grant(0, None), i64::MAX / 2));
        assert!(!Connections::fresh(&grant(0, Some(10)), 20));
    }

    #[test]
    fn the_shared_subject_is_no_realm_user() {
        assert!(Subject::shared().is_shared());
        assert!(!Subject {
            realm: "oidc1".into(),
            username: SHARED_USER.into()
        }
        .is_shared());
    }
}
