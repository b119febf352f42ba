//! Back-Channel Logout (OpenID Connect Back-Channel Logout 1.0) for a realm with
//! `rp.backchannel_logout: true`: the logout token validated with the realm's keys (fetched
//! again once, rate-limited, for an unknown `kid` or a failing signature, as for ID tokens),
//! and its `jti` checked against the `jti`s this node has seen.
//!
//! **Replay set: per node, in memory.** A logout token is accepted only within
//! [`MAX_LOGOUT_TOKEN_AGE_SECS`] (plus the clock skew) of its `iat`, so a `jti` need only be
//! remembered that long: entries expire then, and at most [`MAX_SEEN_JTIS`] are held per
//! realm (when full of live entries, new logout tokens are refused until some expire). It is
//! kept across configuration reloads. Not in the store: a replay can at worst repeat a logout
//! that already happened (the invalidation is idempotent and selects by the same `sid`/`sub`),
//! so sharing the set between nodes or keeping it across restarts would buy nothing worth a
//! store write per logout.

use super::Realm;
use crate::clock::UnixMillis;
use crate::oidc::id_token::IdTokenPolicy;
use crate::oidc::logout_token::{
    validate_logout_token, LogoutClaims, LogoutTokenError, MAX_LOGOUT_TOKEN_AGE_SECS,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// The most `jti`s remembered per realm.
pub const MAX_SEEN_JTIS: usize = 10_000;

/// The `jti`s of accepted logout tokens, each until it can no longer be replayed.
#[derive(Debug, Default)]
pub struct SeenJtis {
    inner: Mutex<HashMap<String, i64>>,
}

/// Why a logout token could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("{0}")]
    Token(#[from] LogoutTokenError),
    #[error("the realm's signing keys are not available")]
    NoKeys,
    #[error("too many recent logout tokens to remember; retry later")]
    Busy,
}

impl BackchannelError {
    pub fn code(&self) -> &'static str {
        match self {
            BackchannelError::Token(e) => e.code(),
            BackchannelError::NoKeys => "jwks_unavailable",
            BackchannelError::Busy => "logout_token_jti_set_full",
        }
    }
}

impl SeenJtis {
    /// Record `jti` until `until_secs`; `Err(Replayed)` if it is live already, `Err(Busy)`
    /// when full of live entries.
    fn insert(&self, jti: &str, until_secs: i64, now_secs: i64) -> Result<(), BackchannelError> {
        let mut seen = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(jti).is_some_and(|&until| until >= now_secs) {
            return Err(LogoutTokenError::Replayed.into());
        }
        if seen.len() >= MAX_SEEN_JTIS {
            seen.retain(|_, until| *until >= now_secs);
            if seen.len() >= MAX_SEEN_JTIS {
                return Err(BackchannelError::Busy);
            }
        }
        seen.insert(jti.to_string(), until_secs);
        Ok(())
    }
}

/// Validate `raw` for `realm` at `now` and record its `jti`.
pub async fn accept_logout_token(
    realm: &Realm,
    raw: &str,
    now: UnixMillis,
) -> Result<LogoutClaims, BackchannelError> {
    let policy = IdTokenPolicy::for_realm(&realm.config);
    let now_secs = now.div_euclid(1000);
    let min = realm.config.op.jwkset_min_refetch_interval;
    let keys = realm
        .keys
        .current(&realm.op, now, min)
        .await
        .ok_or(BackchannelError::NoKeys)?;
    let claims = match validate_logout_token(raw, &policy, &keys, now_secs) {
        Ok(c) => c,
        Err(LogoutTokenError::Token(e))
            if e.may_need_new_keys() && realm.keys.refetch(&realm.op, now, min).await =>
        {
            let keys = realm
                .keys
                .current(&realm.op, now, min)
                .await
                .ok_or(BackchannelError::NoKeys)?;
            validate_logout_token(raw, &policy, &keys, now_secs)?
        }
        Err(e) => return Err(e.into()),
    };
    let skew = i64::try_from(policy.clock_skew.as_secs()).unwrap_or(i64::MAX);
    let until = claims
        .iat
        .saturating_add(MAX_LOGOUT_TOKEN_AGE_SECS)
        .saturating_add(skew);
    realm.seen_jtis.insert(&claims.jti, until, now_secs)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jtis_are_refused_while_live_and_forgotten_after() {
        let seen = SeenJtis::default();
        seen.insert("a", 100, 0).unwrap();
        assert!(matches!(
            seen.insert("a", 100, 50),
            Err(BackchannelError::Token(LogoutTokenError::Replayed))
        ));
        seen.insert("a", 300, 101).unwrap();
    }

    #[test]
    fn a_full_set_drops_expired_entries_or_refuses() {
        let seen = SeenJtis::default();
        for i in 0..MAX_SEEN_JTIS {
            seen.insert(&i.to_string(), 10, 0).unwrap();
        }
        assert!(matches!(
            seen.insert("x", 10, 5),
            Err(BackchannelError::Busy)
        ));
        seen.insert("x", 100, 11).unwrap();
    }
}
