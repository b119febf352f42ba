//! The one map from the services' typed errors to HTTP answers: status, Elasticsearch's error
//! type and message, the reason code, and what goes to the log only (`detail`). Handlers use
//! `?` on service results; nothing outside this file decides how a domain error looks on the
//! wire.

use crate::auth::caller::{CallerRefused, Denied, PasswordRefused, Refusal};
use crate::auth::limits::RateLimited;
use crate::auth::Action;
use crate::auth::Forbidden;
use crate::error::ApiError;
use crate::profiles::ProfileError;
use crate::realm::flow::{FlowError, PendingLimit, TOO_MANY_PENDING_RETRY_AFTER};
use crate::realm::{LoginError, LogoutError, PrepareError};
use crate::roles::MappingError;
use crate::service::grants::GrantError;
use crate::service::login::{PrepareFailed, RealmLookupError};
use crate::service::role_mappings::WriteError;
use crate::store::StoreError;
use crate::tokens::{BearerError, TokenError};

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(e.to_string()),
            StoreError::Full(what) => ApiError::busy(format!("{what}; retry later")),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// A refused password: 401 for wrong credentials, 503 when overloaded, 429 when this address
/// used its allowance. `reason` is Elasticsearch's message for the request at hand.
pub fn password_refused(refused: PasswordRefused, reason: String) -> ApiError {
    match refused {
        PasswordRefused::Wrong => ApiError::unauthenticated(refused.code(), reason)
            .with_detail("unknown user or wrong password"),
        PasswordRefused::Busy => {
            ApiError::busy("too many password verifications are running; retry shortly")
        }
        PasswordRefused::Throttled(secs) => ApiError::too_many_requests(
            refused.code(),
            format!("too many password verifications from this address; retry in {secs} seconds"),
            secs,
        ),
    }
}

impl From<CallerRefused> for ApiError {
    fn from(e: CallerRefused) -> Self {
        let uri = e.uri;
        match e.why {
            Refusal::Missing => ApiError::unauthenticated(
                "credentials_missing",
                format!("missing authentication credentials for REST request [{uri}]"),
            ),
            Refusal::Malformed => ApiError::unauthenticated(
                "credentials_malformed",
                format!("malformed authentication credentials for REST request [{uri}]"),
            ),
            Refusal::Unsupported => ApiError::unauthenticated(
                "credentials_unsupported",
                format!("unsupported authentication scheme for REST request [{uri}]"),
            ),
            Refusal::Password { username, refused } => password_refused(
                refused,
                format!("unable to authenticate user [{username}] for REST request [{uri}]"),
            ),
            Refusal::ServiceToken { detail } => ApiError::unauthenticated(
                "credentials_invalid",
                format!("unable to authenticate with provided credentials and anonymous access is not allowed for this request [{uri}]"),
            )
            .with_detail(detail),
            Refusal::Bearer(b) => b.into(),
            Refusal::Token(t) => t.into(),
        }
    }
}

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        ApiError::forbidden(e.to_string())
    }
}

impl From<RateLimited> for ApiError {
    fn from(e: RateLimited) -> Self {
        let secs = e.retry_after_secs;
        ApiError::too_many_requests(
            "rate_limited",
            format!(
                "too many requests from this {}; retry in {secs} seconds",
                e.what
            ),
            secs,
        )
    }
}

impl From<Denied> for ApiError {
    fn from(e: Denied) -> Self {
        match e {
            Denied::Forbidden(f) => f.into(),
            Denied::RateLimited(r) => r.into(),
        }
    }
}

/// 401 for a refused bearer token, with Elasticsearch's descriptions: unknown, invalidated
/// and expired tokens all read "expired" (as in Elasticsearch); the log says which.
impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        let description = match e {
            BearerError::Malformed => "The access token is malformed",
            _ => "The access token expired",
        };
        // One code for all three, as one description: an unauthenticated holder of an old
        // token does not learn whether it was revoked or merely expired.
        let code = match e {
            BearerError::Malformed => "token_malformed",
            _ => "token_expired",
        };
        ApiError::invalid_token(code, description).with_detail(e.to_string())
    }
}

/// A token-service failure.
impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Store(s) => s.into(),
            TokenError::Bearer(b) => b.into(),
            TokenError::Refresh(r) => ApiError::oauth("invalid_grant", r.to_string()),
            TokenError::Seal(what) => ApiError::internal(what.to_string()),
        }
    }
}

/// Elasticsearch's message for every refused login (the cause goes to the log).
const AUTHN_FAILED: &str =
    "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]";

/// The `reason_code` of a prepare refused for too many pending logins.
pub const TOO_MANY_PENDING_CODE: &str = "too_many_pending_logins";

/// 429 `es_rejected_execution_exception` (Elasticsearch's type for rejected work) with
/// `Retry-After`: the caller (or, past the global cap, every caller) has too many logins
/// pending. Not a store outage: that stays a 503.
impl From<PendingLimit> for ApiError {
    fn from(limit: PendingLimit) -> Self {
        ApiError::too_many_requests(
            TOO_MANY_PENDING_CODE,
            limit.to_string(),
            TOO_MANY_PENDING_RETRY_AFTER.as_secs(),
        )
    }
}

/// Elasticsearch answers 500 here; a missing realm is the caller's mistake, so 400 (a
/// documented deviation).
impl From<RealmLookupError> for ApiError {
    fn from(e: RealmLookupError) -> Self {
        ApiError::security_400("realm_not_found", e.to_string())
    }
}

impl From<PrepareFailed> for ApiError {
    fn from(e: PrepareFailed) -> Self {
        match e {
            PrepareFailed::Lookup(l) => l.into(),
            PrepareFailed::Prepare(p) => p.into(),
        }
    }
}

impl From<PrepareError> for ApiError {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::StateInUse => ApiError::illegal_argument(
                "state_in_use",
                "the state is already used by a pending login; let prepare generate one",
            ),
            PrepareError::Invalid(m) => ApiError::validation(&[m]),
            PrepareError::TooManyPending(limit) => limit.into(),
            // A store outage: 503 `store_unavailable`.
            PrepareError::Flow(FlowError::Store(s)) => s.into(),
            PrepareError::Flow(f) => ApiError::internal(f.to_string()),
        }
    }
}

/// A failed login: 401 with Elasticsearch's generic body; the cause goes to the log.
impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            // The login itself succeeded; minting its tokens failed: a server error (503 for
            // a store outage, 500 otherwise), not a refused login.
            LoginError::Token(t) => t.into(),
            other => {
                ApiError::unauthenticated(other.code(), AUTHN_FAILED).with_detail(other.to_string())
            }
        }
    }
}

impl From<LogoutError> for ApiError {
    fn from(e: LogoutError) -> Self {
        match e {
            LogoutError::TokenInvalid => BearerError::Expired.into(),
            LogoutError::NotOidc => ApiError::illegal_argument(
                "token_not_oidc",
                "Access token is not valid for an OpenID Connect realm",
            ),
            LogoutError::Token(t) => t.into(),
        }
    }
}

/// A role mapping defined in the configuration, written through the API.
pub fn role_mapping_read_only(name: &str) -> ApiError {
    ApiError::illegal_argument(
        "role_mapping_read_only",
        format!(
            "role mapping [{name}] is defined in the configuration (role_mappings or role_mapping_files) and is read-only through the API; change it there and reload the configuration"
        ),
    )
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::FileMapping(name) => role_mapping_read_only(&name),
            WriteError::Invalid(MappingError::Validation(messages)) => {
                ApiError::validation(&messages)
            }
            WriteError::Invalid(e @ MappingError::Parse { .. }) => {
                ApiError::parse_exception("role_mapping_invalid", e.to_string())
            }
            WriteError::Store(e) => e.into(),
        }
    }
}

/// A refused grant of `action` (`POST /_security/oauth2/token`).
pub fn grant_refused(e: GrantError, action: Action) -> ApiError {
    match e {
        GrantError::Password {
            ref username,
            refused,
        } => password_refused(
            refused,
            format!(
                "unable to authenticate user [{username}] for action [{}]",
                action.name()
            ),
        ),
        GrantError::Refresh { ref refused, .. } => {
            ApiError::oauth("invalid_grant", refused.to_string()).with_detail(e.to_string())
        }
        GrantError::Token(t) => t.into(),
    }
}

/// A profile failure: a concurrent write is a 409 that Kibana retries.
impl From<ProfileError> for ApiError {
    fn from(e: ProfileError) -> Self {
        match e {
        ProfileError::Store(e) => e.into(),
        e @ ProfileError::Exhausted(_) => ApiError::internal(e.to_string()),
        ProfileError::Conflict(uid) => ApiError::conflict(
            "version_conflict",
            format!("[profile_{uid}]: version conflict, the profile was written concurrently; retry the request"),
        ),
    }
    }
}

/// A refused back-channel logout token: 400 with `error: invalid_request` and the reason as
/// `error_description` (Back-Channel Logout 1.0 §2.8); keys the realm cannot get: 503 (the
/// provider retries).
impl From<crate::realm::backchannel::BackchannelError> for ApiError {
    fn from(e: crate::realm::backchannel::BackchannelError) -> Self {
        use crate::realm::backchannel::BackchannelError;
        match e {
            BackchannelError::NoKeys => ApiError::unavailable(
                "back-channel logout: the realm's signing keys are not available",
            ),
            other => ApiError::oauth("invalid_request", format!("{} ({})", other, other.code())),
        }
    }
}

/// A connections failure (see docs/connections.md and docs/errors.md).
impl From<crate::connections::ConnectionError> for ApiError {
    fn from(e: crate::connections::ConnectionError) -> Self {
        use crate::connections::ConnectionError as C;
        match e {
            C::NotEnabled => ApiError::illegal_argument(
                "connections_not_enabled",
                "connections are not enabled: set connection_encryption.key in the configuration",
            ),
            C::NotFound(name) => ApiError::not_found(format!("connection [{}] not found", crate::text::Cap { max_chars: 100, control: Some(' '), ellipsis: true }.apply(&name))),
            C::ReadOnly(name) => ApiError::illegal_argument(
                "connection_read_only",
                format!("connection [{name}] is defined in the configuration file and cannot be changed through the API"),
            ),
            C::Invalid(errors) => ApiError::validation(&errors),
            C::InUse { name, grants } => ApiError::conflict(
                "connection_in_use",
                format!("connection [{name}] still holds {grants} user grant(s); revoke them, or delete with ?force=true to revoke them first"),
            ),
            C::StateInvalid => ApiError::security_400(
                "connection_state_invalid",
                "the authorization state is unknown, was already used, or expired; start again with _authorize",
            ),
            C::StateMismatch(what) => ApiError::security_400(
                "connection_state_mismatch",
                format!("the authorization state was started by or for another {what}"),
            ),
            C::CallbackInvalid(why) => {
                ApiError::security_400("connection_callback_invalid", format!("invalid callback URL: {why}"))
            }
            C::Denied(error) => ApiError::security_400(
                "connection_authorization_denied",
                format!("the service did not authorize the connection (error [{error}])"),
            ),
            C::ExchangeRefused(e) => ApiError::security_400(
                "connection_code_exchange_failed",
                "the service refused the authorization code; start again with _authorize",
            )
            .with_detail(e.to_string()),
            C::AuthorizationRequired(why) => ApiError::unauthenticated(
                "authorization_required",
                "the user has no usable grant at this connection; start an authorization with _authorize",
            )
            .with_detail(why),
            C::Service(e) => ApiError::bad_gateway(
                "connection_service_failed",
                "the connection's service could not be reached or answered something unusable; retry later",
            )
            .with_detail(e.to_string()),
            C::WrongMode(why) => ApiError::illegal_argument("connection_wrong_mode", why),
            C::RateLimited(r) => r.0.into(),
            C::Store(StoreError::Conflict) => ApiError::conflict(
                "version_conflict",
                "the connection or grant was written concurrently; retry",
            ),
            C::Store(s) => s.into(),
        }
    }
}
