//! Request rate limits per caller and per client address (`limits.requests_per_caller`,
//! `limits.requests_per_address`), applied to the actions that do work for a caller: OIDC
//! prepare, authenticate and logout, the token API and profile activation. A caller or an
//! address over its limit gets 429 `es_rejected_execution_exception` with `Retry-After`
//! before any work is done, so one noisy client cannot take the capacity of the others.
//! Token buckets from the `governor` crate: the configured rate per second, bursts of twice
//! that.

use crate::auth::Action;
use crate::config::LimitSettings;
use crate::metrics::Limit;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// A token-bucket limiter per key (a caller, a client address).
pub type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A keyed limiter of `rate` per second with bursts of `burst`.
pub fn keyed<K: std::hash::Hash + Eq + Clone>(rate: NonZeroU32, burst: NonZeroU32) -> Keyed<K> {
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

/// Whole seconds (at least 1) until a refused key may try again: the `Retry-After` value.
pub fn retry_after_secs(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    not_until
        .wait_time_from(DefaultClock::default().now())
        .as_secs()
        + 1
}

/// Drop the state of keys not seen for a while (called by the sweeper).
pub fn forget_idle<K: std::hash::Hash + Eq + Clone>(l: &Keyed<K>) {
    l.retain_recent();
    l.shrink_to_fit();
}

/// Whom the per-caller limit counts: a user name within its realm (the same name in another
/// realm is another caller).
#[derive(Debug, Clone, Copy)]
pub struct CallerKey<'a> {
    pub username: &'a str,
    pub realm: &'a str,
}

/// A request over a request limit (429): `what` is over it ("client address" or "caller").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub what: &'static str,
    /// The limit that refused it (`requests_per_address` or `requests_per_caller`).
    pub limit: Limit,
    pub retry_after_secs: u64,
}

/// The limiters of one configuration (rebuilt when `limits.*` change).
pub struct RequestLimits {
    /// The settings these were built from.
    pub settings: LimitSettings,
    per_caller: Option<Keyed<String>>,
    per_address: Option<Keyed<IpAddr>>,
    /// 429s counted for `oidc_realm_rate_limited_total`.
    refused: crate::metrics::RateLimitCounters,
}

impl std::fmt::Debug for RequestLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<Keyed<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(keyed(rate, burst))
}

impl RequestLimits {
    /// Limiters whose refusals are counted nowhere (tools, unit tests).
    pub fn new(settings: LimitSettings) -> Self {
        Self::with_counters(settings, Default::default())
    }

    /// Limiters that count their refusals in `refused` (the state's metrics).
    pub fn with_counters(
        settings: LimitSettings,
        refused: crate::metrics::RateLimitCounters,
    ) -> Self {
        Self {
            settings,
            per_caller: limiter(settings.requests_per_caller),
            per_address: limiter(settings.requests_per_address),
            refused,
        }
    }

    /// Whether `action` counts against the limits.
    pub fn applies_to(action: Action) -> bool {
        matches!(
            action,
            Action::OidcPrepare
                | Action::OidcAuthenticate
                | Action::OidcLogout
                | Action::TokenCreate
                | Action::TokenRefresh
                | Action::TokenInvalidate
                | Action::ProfileActivate
                | Action::ConnectionUse
        )
    }

    /// Count one request of `caller` (user name and realm) from `client`; 429 when either
    /// is over its limit.
    pub fn admit(&self, caller: CallerKey<'_>, client: Option<IpAddr>) -> Result<(), RateLimited> {
        let refused = |limit: Limit, not_until: governor::NotUntil<_>| RateLimited {
            what: match limit {
                Limit::RequestsPerCaller => "caller",
                _ => "client address",
            },
            limit,
            retry_after_secs: retry_after_secs(&not_until),
        };
        if let (Some(l), Some(ip)) = (&self.per_address, client) {
            l.check_key(&ip).map_err(|n| {
                self.refused.inc(Limit::RequestsPerAddress);
                refused(Limit::RequestsPerAddress, n)
            })?;
        }
        if let Some(l) = &self.per_caller {
            let key = format!("{}\u{0}{}", caller.username, caller.realm);
            l.check_key(&key).map_err(|n| {
                self.refused.inc(Limit::RequestsPerCaller);
                refused(Limit::RequestsPerCaller, n)
            })?;
        }
        Ok(())
    }

    /// Forget keys not seen for a while (called by the sweeper).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_caller {
            forget_idle(l);
        }
        if let Some(l) = &self.per_address {
            forget_idle(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(username: &'a str, realm: &'a str) -> CallerKey<'a> {
        CallerKey { username, realm }
    }

    fn limits(per_caller: u32, per_address: u32) -> RequestLimits {
        RequestLimits::new(LimitSettings {
            requests_per_caller: per_caller,
            requests_per_address: per_address,
            ..LimitSettings::default()
        })
    }

    #[test]
    fn a_caller_over_its_burst_is_refused_others_are_not() {
        let l = limits(5, 0);
        for _ in 0..10 {
            l.admit(key("a", "default_file"), None).unwrap();
        }
        let e = l.admit(key("a", "default_file"), None).unwrap_err();
        assert_eq!(e.what, "caller");
        assert!(e.retry_after_secs >= 1);
        l.admit(key("b", "default_file"), None).unwrap();
        // The same name in another realm is another caller.
        l.admit(key("a", "oidc1"), None).unwrap();
    }

    #[test]
    fn an_address_over_its_burst_is_refused_whoever_calls() {
        let l = limits(0, 3);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for i in 0..6 {
            l.admit(key(&format!("u{i}"), "r"), Some(ip)).unwrap();
        }
        assert!(l.admit(key("u9", "r"), Some(ip)).is_err());
        l.admit(key("u9", "r"), Some("127.0.0.3".parse().unwrap()))
            .unwrap();
        l.admit(key("u9", "r"), None).unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        let l = limits(0, 0);
        for _ in 0..10_000 {
            l.admit(key("a", "r"), Some("127.0.0.1".parse().unwrap()))
                .unwrap();
        }
    }
}
