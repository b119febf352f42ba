//! Outbound calls to the OpenID Provider: the code exchange at the token endpoint (with the
//! three client-authentication methods), UserInfo, and JWKS fetches.
//!
//! One [`OpClient`] per realm, built from the realm's `http.*` and `ssl.*` settings:
//!
//! - TLS is rustls with the aws-lc-rs provider (never a process-default provider), trusting the
//!   system roots plus every PEM in `ssl.certificate_authorities`. `ssl.verification_mode:
//!   certificate` checks the chain but not the host name; `full` checks both; `none` is refused.
//! - Redirects are never followed (a 3xx is an error), bodies are read in chunks and capped at
//!   [`MAX_RESPONSE_BYTES`], and the system proxy settings (`HTTP_PROXY`, `NO_PROXY`, ...) are
//!   ignored: only `http.proxy.*` sends requests through a proxy.
//! - Only `https` URLs, or plain `http` to a loopback host, are called.
//!
//! Errors ([`OpError`]) are for logs: their `Display` never contains the authorization code, a
//! token, or the client secret; what the OP says (`error`, `error_description`) is kept,
//! cleaned of control characters and truncated.
//!
//! One file per concern: `calls` (the outbound calls), `auth` (client authentication),
//! `response` (parsing what the OP answers), `error` ([`OpError`]), `transport` (the
//! HTTP client and its plumbing) and `tls` (the rustls configuration).

mod auth;
mod calls;
mod error;
mod form;
mod response;
mod tls;
mod transport;

pub use error::{ClientBuildError, Endpoint, OpError};
pub use response::TokenEndpointResponse;

use crate::config::RealmConfig;
use std::fmt;
use tls::tls_config;
use transport::http_client;

/// Largest response body accepted from the OP (token, UserInfo, JWKS): 1 MiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// HTTP client for one realm's OP.
#[derive(Clone)]
pub struct OpClient {
    http: reqwest::Client,
}

impl fmt::Debug for OpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpClient").finish_non_exhaustive()
    }
}

impl OpClient {
    /// Build the client from the realm's `http.*` and `ssl.*` settings. Fails (with a message
    /// naming the setting) if a PEM file cannot be read or the TLS settings are unusable.
    pub fn new(realm: &RealmConfig) -> Result<OpClient, ClientBuildError> {
        let prefix = format!("xpack.security.authc.realms.oidc.{}.", realm.name);
        let tls = tls_config(&realm.ssl, &prefix).map_err(ClientBuildError::Tls)?;
        let http = http_client(&realm.http, tls)
            .map_err(|e| ClientBuildError::Http(crate::text::error_chain_text(&e)))?;
        Ok(OpClient { http })
    }
}

#[cfg(test)]
mod tests;
