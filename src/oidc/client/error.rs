//! Why a call to the OP failed: [`OpError`] (with its stable codes and its log-safe
//! `Display`) and the [`Endpoint`] a call went to; and why a client could not be built
//! ([`ClientBuildError`]).

use super::MAX_RESPONSE_BYTES;
use std::fmt;

/// Which OP endpoint a call went to (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    UserInfo,
    Jwks,
    /// The provider metadata (`op.discovery`).
    Discovery,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Token,
        Endpoint::UserInfo,
        Endpoint::Jwks,
        Endpoint::Discovery,
    ];

    /// A stable snake_case name for metrics (`token`, `userinfo`, `jwks`).
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::UserInfo => "userinfo",
            Endpoint::Jwks => "jwks",
            Endpoint::Discovery => "discovery",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Token => "token endpoint",
            Endpoint::UserInfo => "UserInfo endpoint",
            Endpoint::Jwks => "JWKS endpoint",
            Endpoint::Discovery => "discovery document",
        })
    }
}

/// Why a call to the OP failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The URL is neither `https` nor `http` to a loopback host.
    InsecureUrl { endpoint: Endpoint },
    /// The realm has no `op.token_endpoint`.
    NoTokenEndpoint,
    /// TCP connect or TLS handshake failed (detail: the transport's reason, no URL).
    Connect { endpoint: Endpoint, detail: String },
    /// Connect, read or overall timeout.
    Timeout { endpoint: Endpoint },
    /// Any other transport failure while sending or reading.
    Transport { endpoint: Endpoint, detail: String },
    /// The OP answered with a redirect, which is never followed.
    Redirect { endpoint: Endpoint, status: u16 },
    /// The response body is larger than [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge { endpoint: Endpoint },
    /// The token endpoint answered with an OAuth error (`error`, `error_description`).
    TokenEndpointRejected {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The token endpoint answered with a non-200 status and no OAuth error body.
    TokenEndpointStatus(u16),
    /// The token endpoint's answer is not a JSON object.
    TokenResponseNotJson,
    /// The token response has no (non-empty string) `id_token`.
    NoIdToken,
    /// An access token was returned with a `token_type` other than `Bearer` (or none).
    UnsupportedTokenType(Option<String>),
    /// The token response has an `access_token` or `token_type` that is not a string.
    MalformedTokenResponse(&'static str),
    /// The client authentication (Basic header or `client_secret_jwt` assertion) could not
    /// be built (detail names the reason, never the secret).
    ClientAuth(String),
    /// UserInfo answered with a non-200 status; `error`/`description` from `WWW-Authenticate`.
    UserInfoStatus {
        status: u16,
        error: Option<String>,
        description: Option<String>,
    },
    /// UserInfo answered `application/jwt` (signed or encrypted UserInfo), which is not supported.
    UserInfoJwtUnsupported,
    /// UserInfo answered with a content type other than `application/json`.
    UserInfoContentType(Option<String>),
    /// The UserInfo body is not a JSON object (detail: the parser's reason, no input).
    UserInfoNotJson(String),
    /// The JWKS endpoint answered with a non-200 status.
    JwksStatus(u16),
    /// The discovery document was answered with a non-200 status.
    DiscoveryStatus(u16),
}

impl OpError {
    /// A stable snake_case code for metrics and structured logs.
    pub fn code(&self) -> &'static str {
        match self {
            OpError::InsecureUrl { .. } => "insecure_url",
            OpError::NoTokenEndpoint => "no_token_endpoint",
            OpError::Connect { .. } => "connect_failed",
            OpError::Timeout { .. } => "timeout",
            OpError::Transport { .. } => "transport_failed",
            OpError::Redirect { .. } => "redirect_not_followed",
            OpError::ResponseTooLarge { .. } => "response_too_large",
            OpError::TokenEndpointRejected { .. } => "token_endpoint_rejected",
            OpError::TokenEndpointStatus(_) => "token_endpoint_status",
            OpError::TokenResponseNotJson => "token_response_not_json",
            OpError::NoIdToken => "no_id_token",
            OpError::UnsupportedTokenType(_) => "unsupported_token_type",
            OpError::MalformedTokenResponse(_) => "malformed_token_response",
            OpError::ClientAuth(_) => "client_auth_failed",
            OpError::UserInfoStatus { .. } => "userinfo_status",
            OpError::UserInfoJwtUnsupported => "userinfo_jwt_unsupported",
            OpError::UserInfoContentType(_) => "userinfo_content_type",
            OpError::UserInfoNotJson(_) => "userinfo_not_json",
            OpError::JwksStatus(_) => "jwks_status",
            OpError::DiscoveryStatus(_) => "discovery_status",
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::InsecureUrl { endpoint } => write!(
                f,
                "refusing to call the {endpoint}: only https, or http to a loopback host, is allowed"
            ),
            OpError::NoTokenEndpoint => {
                f.write_str("op.token_endpoint is not configured; cannot exchange the code")
            }
            OpError::Connect { endpoint, detail } => {
                write!(f, "could not connect to the {endpoint}: {detail}")
            }
            OpError::Timeout { endpoint } => write!(f, "the {endpoint} did not answer in time"),
            OpError::Transport { endpoint, detail } => {
                write!(f, "call to the {endpoint} failed: {detail}")
            }
            OpError::Redirect { endpoint, status } => write!(
                f,
                "the {endpoint} answered with redirect status {status}; redirects are not followed"
            ),
            OpError::ResponseTooLarge { endpoint } => write!(
                f,
                "the {endpoint}'s response is larger than {MAX_RESPONSE_BYTES} bytes"
            ),
            OpError::TokenEndpointRejected {
                status,
                error,
                description,
            } => write!(
                f,
                "Failed to exchange code for Id Token. Code=[{error}], Description=[{}] (status {status})",
                description.as_deref().unwrap_or("")
            ),
            OpError::TokenEndpointStatus(status) => write!(
                f,
                "Failed to exchange code for Id Token: token endpoint answered status {status}"
            ),
            OpError::TokenResponseNotJson => {
                f.write_str("Failed to exchange code for Id Token: the token response is not a JSON object")
            }
            OpError::NoIdToken => f.write_str(
                "Token Response did not contain an ID Token or parsing of the JWT failed.",
            ),
            OpError::UnsupportedTokenType(Some(t)) => write!(
                f,
                "the token response's token_type is [{t}]; only [Bearer] is supported"
            ),
            OpError::UnsupportedTokenType(None) => f.write_str(
                "the token response has an access_token but no token_type; only [Bearer] is supported",
            ),
            OpError::MalformedTokenResponse(field) => {
                write!(f, "the token response's [{field}] is not a string")
            }
            OpError::ClientAuth(detail) => {
                write!(f, "could not build the client authentication: {detail}")
            }
            OpError::UserInfoStatus {
                status,
                error,
                description,
            } => write!(
                f,
                "Failed to get user information from the UserInfo endpoint. Code=[{}], Description=[{}] (status {status})",
                error.as_deref().unwrap_or(""),
                description.as_deref().unwrap_or("")
            ),
            OpError::UserInfoJwtUnsupported => f.write_str(
                "the UserInfo endpoint answered application/jwt (signed or encrypted UserInfo), which is not supported",
            ),
            OpError::UserInfoContentType(ct) => write!(
                f,
                "the UserInfo endpoint answered content type [{}]; expected application/json",
                ct.as_deref().unwrap_or("")
            ),
            OpError::UserInfoNotJson(detail) => {
                write!(f, "the UserInfo response is not a JSON object: {detail}")
            }
            OpError::JwksStatus(status) => {
                write!(f, "the JWKS endpoint answered status {status}; expected 200")
            }
            OpError::DiscoveryStatus(status) => {
                write!(f, "the discovery document answered status {status}; expected 200")
            }
        }
    }
}

impl std::error::Error for OpError {}

/// Why [`OpClient::new`](super::OpClient::new) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    /// A TLS setting or PEM file is unusable (the message names the setting and the file).
    #[error("{0}")]
    Tls(String),
    /// The HTTP client itself could not be built (detail: the error chain).
    #[error("could not build the HTTP client: {0}")]
    Http(String),
}
