//! The one map from the services' typed errors to HTTP answers: status, Elasticsearch's error
//! type and message, the reason code, and what goes to the log only (`detail`). Handlers use
//! `?` on service results; nothing outside this file decides how a domain error looks on the
//! wire.

use crate::auth::caller::{CallerRefused, Denied, PasswordRefused, Refusal};
use crate::auth::limits::RateLimited;
use crate::auth::Forbidden;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::tokens::{BearerError, TokenError};

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// A refused password: 401 for wrong credentials, 503 when overloaded, 429 when this address
/// used its allowance. `reason` is Elasticsearch's message for the request at hand.
pub fn password_refused(refused: PasswordRefused, reason: String) -> ApiError {
    match refused {
        PasswordRefused::Wrong => ApiError::unauthenticated("credentials_invalid", reason)
            .with_detail("unknown user or wrong password"),
        PasswordRefused::Busy => {
            ApiError::busy("too many password verifications are running; retry shortly")
        }
        PasswordRefused::Throttled(secs) => ApiError::too_many_requests(
            "password_checks_throttled",
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
            format!("too many requests from this {}; retry in {secs} seconds", e.what),
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
            TokenError::Seal(what) => {
                ApiError::internal(format!("sealed data did not open: {what}"))
            }
        }
    }
}
