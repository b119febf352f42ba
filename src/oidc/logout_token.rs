//! Back-Channel Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, validated as §2.6
//! says). The JOSE part (size, JWS only, `alg` in the realm's list, refused header
//! parameters, signature with the realm's JWKS or client secret) is the ID token's
//! ([`verify_signed`]); `typ` may also be `logout+jwt`. Then:
//!
//! - `iss` equals `op.issuer`; `aud` contains `rp.client_id` (with several audiences, `azp`
//!   is not required: logout tokens have none);
//! - `iat` present, not in the future beyond the skew, and not older than
//!   [`MAX_LOGOUT_TOKEN_AGE_SECS`] (which bounds how long a `jti` must be remembered); `exp`,
//!   when present, not passed;
//! - `jti` present (its replay check is the caller's);
//! - `events` an object with the member `http://schemas.openid.net/event/backchannel-logout`
//!   whose value is a JSON object;
//! - `sid` and/or `sub` (strings, non-empty);
//! - no `nonce` (§2.4: forbidden, so an ID token cannot pass as a logout token).
//!
//! Pure: no I/O, no clock.

use super::id_token::{
    audiences, optional_int, optional_str, required_int, required_str, verify_signed, IdTokenError,
    IdTokenPolicy, TokenType,
};
use super::jwks::KeySet;
use serde_json::Value;

/// The event member a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Oldest logout token accepted (by `iat`), in seconds: a provider sends it at once.
pub const MAX_LOGOUT_TOKEN_AGE_SECS: i64 = 300;

/// Longest `jti`, `sid` or `sub` accepted, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// A validated logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub jti: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// `iat`, seconds.
    pub iat: i64,
}

/// Why a logout token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    /// A JOSE or common-claim failure (signature, `alg`, `iss`, `aud`, dates...).
    #[error("{0}")]
    Token(#[from] IdTokenError),
    #[error("logout token carries a nonce, which is forbidden")]
    Nonce,
    #[error("logout token has no backchannel-logout event")]
    NoEvent,
    #[error("logout token has neither sid nor sub")]
    NoSubject,
    #[error("logout token was issued more than {MAX_LOGOUT_TOKEN_AGE_SECS} seconds ago")]
    TooOld,
    #[error("logout token jti was seen before")]
    Replayed,
    #[error("logout token {claim} is not a non-empty string of at most {MAX_ID_LEN} bytes")]
    BadId { claim: &'static str },
}

impl LogoutTokenError {
    /// A stable snake_case code (logs, metrics, the `error_description`).
    pub fn code(&self) -> &'static str {
        match self {
            LogoutTokenError::Token(e) => e.code(),
            LogoutTokenError::Nonce => "logout_token_nonce",
            LogoutTokenError::NoEvent => "logout_token_no_event",
            LogoutTokenError::NoSubject => "logout_token_no_sid_or_sub",
            LogoutTokenError::TooOld => "logout_token_too_old",
            LogoutTokenError::Replayed => "logout_token_replayed",
            LogoutTokenError::BadId { .. } => "logout_token_bad_id",
        }
    }
}

fn id(
    claims: &serde_json::Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, LogoutTokenError> {
    match optional_str(claims, claim)? {
        None => Ok(None),
        Some(s) if s.is_empty() || s.len() > MAX_ID_LEN => Err(LogoutTokenError::BadId { claim }),
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// Validate a logout token under the realm's `policy` (issuer, client id, algorithms, client
/// secret, clock skew; `expected_nonce` is ignored) and keys, at `now_secs`.
pub fn validate_logout_token(
    raw: &str,
    policy: &IdTokenPolicy,
    keys: &KeySet,
    now_secs: i64,
) -> Result<LogoutClaims, LogoutTokenError> {
    let (_, claims) = verify_signed(raw, policy, keys, TokenType::Logout)?;
    let iss = required_str(&claims, "iss")?;
    if iss != policy.issuer {
        return Err(IdTokenError::IssuerMismatch {
            expected: policy.issuer.clone(),
            found: super::jwks::truncate(iss, 256),
        }
        .into());
    }
    if !audiences(&claims)?.iter().any(|a| *a == policy.client_id) {
        return Err(IdTokenError::AudienceMismatch {
            client_id: policy.client_id.clone(),
        }
        .into());
    }
    let skew = i64::try_from(policy.clock_skew.as_secs()).unwrap_or(i64::MAX);
    let iat = required_int(&claims, "iat")?;
    if iat.saturating_sub(skew) > now_secs {
        return Err(IdTokenError::IssuedInFuture {
            iat,
            now: now_secs,
            skew,
        }
        .into());
    }
    if iat.saturating_add(MAX_LOGOUT_TOKEN_AGE_SECS + skew) < now_secs {
        return Err(LogoutTokenError::TooOld);
    }
    if let Some(exp) = optional_int(&claims, "exp")? {
        if exp.saturating_add(skew) <= now_secs {
            return Err(IdTokenError::Expired {
                exp,
                now: now_secs,
                skew,
            }
            .into());
        }
    }
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::Nonce);
    }
    let event_ok = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !event_ok {
        return Err(LogoutTokenError::NoEvent);
    }
    let jti = id(&claims, "jti")?.ok_or(IdTokenError::MissingClaim { claim: "jti" })?;
    let sub = id(&claims, "sub")?;
    let sid = id(&claims, "sid")?;
    if sub.is_none() && sid.is_none() {
        return Err(LogoutTokenError::NoSubject);
    }
    Ok(LogoutClaims { jti, sub, sid, iat })
}
