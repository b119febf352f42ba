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

use crate::config::{
    ClientAuthMethod, ProxyScheme, RealmConfig, RealmHttpSettings, RealmSslSettings,
    SignatureAlgorithm, VerificationMode,
};
use crate::secret::Secret;
use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Largest response body accepted from the OP (token, UserInfo, JWKS): 1 MiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Upper bound of the overall per-request timeout (connect + socket timeouts, capped here).
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Lifetime of a `client_secret_jwt` assertion.
const CLIENT_ASSERTION_LIFETIME_SECS: i64 = 60;

/// JSON nesting accepted in OP responses.
const MAX_RESPONSE_JSON_DEPTH: usize = 32;

/// Longest OP-supplied text (error code, description, content type) kept for logs.
const MAX_OP_TEXT: usize = 200;

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Which OP endpoint a call went to (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    UserInfo,
    Jwks,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Token => "token endpoint",
            Endpoint::UserInfo => "UserInfo endpoint",
            Endpoint::Jwks => "JWKS endpoint",
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
        }
    }
}

impl std::error::Error for OpError {}

/// The parts of a successful token response that the realm uses.
pub struct TokenEndpointResponse {
    /// The raw ID token (a JWT; validate it with [`crate::oidc::validate`]).
    pub id_token: String,
    pub access_token: Option<Secret<String>>,
    pub token_type: Option<String>,
}

impl fmt::Debug for TokenEndpointResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointResponse")
            .field("id_token", &"[redacted]")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .finish()
    }
}

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
    pub fn new(realm: &RealmConfig) -> Result<OpClient, String> {
        let prefix = format!("xpack.security.authc.realms.oidc.{}.", realm.name);
        let tls = tls_config(&realm.ssl, &prefix)?;
        let http = http_client(&realm.http, tls)
            .map_err(|e| format!("could not build the HTTP client: {}", error_chain(&e)))?;
        Ok(OpClient { http })
    }

    /// Exchange an authorization code at `op.token_endpoint` (OIDC Core §3.1.3.1), with the
    /// realm's `rp.client_auth_method`. `now_secs` is used for a `client_secret_jwt` assertion.
    pub async fn exchange_code(
        &self,
        realm: &RealmConfig,
        code: &str,
        pkce_verifier: Option<&str>,
        now_secs: i64,
    ) -> Result<TokenEndpointResponse, OpError> {
        let endpoint = realm
            .op
            .token_endpoint
            .as_ref()
            .ok_or(OpError::NoTokenEndpoint)?;
        check_url(endpoint, Endpoint::Token)?;

        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &realm.rp.redirect_uri_exact);
        if let Some(v) = pkce_verifier {
            form.append_pair("code_verifier", v);
        }
        let client_id = realm.rp.client_id.as_str();
        let secret = realm.rp.client_secret.expose_secret().as_str();
        let mut request = self.http.post(endpoint.clone());
        match realm.rp.client_auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    basic_authorization(client_id, secret)?,
                );
            }
            ClientAuthMethod::ClientSecretPost => {
                form.append_pair("client_id", client_id)
                    .append_pair("client_secret", secret);
            }
            ClientAuthMethod::ClientSecretJwt => {
                let assertion = client_assertion(
                    client_id,
                    secret,
                    endpoint,
                    realm.rp.client_auth_jwt_signature_algorithm,
                    now_secs,
                )?;
                form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
                    .append_pair("client_assertion", &assertion);
            }
        }
        let body = form.finish();
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Token, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Token)?;
        let bytes = read_capped(response, Endpoint::Token).await?;
        parse_token_response(status, &bytes)
    }

    /// Call the UserInfo endpoint with the OP's access token; returns its JSON object.
    pub async fn userinfo(
        &self,
        endpoint: &Url,
        access_token: &str,
    ) -> Result<Map<String, Value>, OpError> {
        check_url(endpoint, Endpoint::UserInfo)?;
        let response = self
            .http
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::UserInfo, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::UserInfo)?;
        if status != 200 {
            let (mut error, mut description) = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_www_authenticate)
                .unwrap_or_default();
            if error.is_none() {
                // Some OPs put the OAuth error in a JSON body instead (best effort).
                if let Ok(bytes) = read_capped(response, Endpoint::UserInfo).await {
                    if let Some((e, d)) = oauth_error_body(&bytes) {
                        error = Some(e);
                        description = d;
                    }
                }
            }
            return Err(OpError::UserInfoStatus {
                status,
                error,
                description,
            });
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        match mime.as_deref() {
            Some("application/json") => {}
            Some("application/jwt") => return Err(OpError::UserInfoJwtUnsupported),
            other => return Err(OpError::UserInfoContentType(other.map(clean))),
        }
        let bytes = read_capped(response, Endpoint::UserInfo).await?;
        match crate::json::parse_strict(&bytes, MAX_RESPONSE_JSON_DEPTH) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(OpError::UserInfoNotJson("not an object".into())),
            Err(e) => Err(OpError::UserInfoNotJson(e)),
        }
    }

    /// Fetch a JWK set document: 200 required, body capped at [`MAX_RESPONSE_BYTES`].
    pub async fn get_jwks(&self, url: &Url) -> Result<Vec<u8>, OpError> {
        check_url(url, Endpoint::Jwks)?;
        let response = self
            .http
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Jwks, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Jwks)?;
        if status != 200 {
            return Err(OpError::JwksStatus(status));
        }
        read_capped(response, Endpoint::Jwks).await
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and responses

/// `Authorization: Basic` per RFC 6749 §2.3.1: id and secret are form-urlencoded first.
/// The header value is marked sensitive (kept out of HTTP debug logs).
fn basic_authorization(
    client_id: &str,
    secret: &str,
) -> Result<reqwest::header::HeaderValue, OpError> {
    let mut raw = zeroize::Zeroizing::new(String::new());
    raw.extend(url::form_urlencoded::byte_serialize(client_id.as_bytes()));
    raw.push(':');
    raw.extend(url::form_urlencoded::byte_serialize(secret.as_bytes()));
    let mut value = reqwest::header::HeaderValue::try_from(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    ))
    .map_err(|_| OpError::ClientAuth("the Basic header is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A `client_secret_jwt` assertion (RFC 7523 §3, OIDC Core §9): HMAC with the client secret.
fn client_assertion(
    client_id: &str,
    secret: &str,
    token_endpoint: &Url,
    alg: SignatureAlgorithm,
    now_secs: i64,
) -> Result<String, OpError> {
    let jwt_alg = match alg {
        SignatureAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        SignatureAlgorithm::HS384 => jsonwebtoken::Algorithm::HS384,
        SignatureAlgorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        other => {
            return Err(OpError::ClientAuth(format!(
                "client_secret_jwt: rp.client_auth_jwt_signature_algorithm [{}] is not an HMAC algorithm",
                other.as_str()
            )))
        }
    };
    let mut jti = [0u8; 32];
    crate::crypto::fill_random(&mut jti);
    let claims = AssertionClaims {
        iss: client_id,
        sub: client_id,
        aud: token_endpoint.as_str(),
        iat: now_secs,
        exp: now_secs + CLIENT_ASSERTION_LIFETIME_SECS,
        jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
    };
    let mut header = jsonwebtoken::Header::new(jwt_alg);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| OpError::ClientAuth(format!("client_secret_jwt: signing failed: {:?}", e.kind())))
}

/// `error` and `error_description` of an OAuth error JSON body (RFC 6749 §5.2), cleaned.
fn oauth_error_body(bytes: &[u8]) -> Option<(String, Option<String>)> {
    let Ok(Value::Object(obj)) = crate::json::parse_strict(bytes, MAX_RESPONSE_JSON_DEPTH) else {
        return None;
    };
    let Some(Value::String(error)) = obj.get("error") else {
        return None;
    };
    let description = match obj.get("error_description") {
        Some(Value::String(d)) => Some(clean(d)),
        _ => None,
    };
    Some((clean(error), description))
}

fn parse_token_response(status: u16, bytes: &[u8]) -> Result<TokenEndpointResponse, OpError> {
    if status != 200 {
        // RFC 6749 §5.2: 400 (or 401 for invalid_client) with an OAuth error object.
        if matches!(status, 400 | 401) {
            if let Some((error, description)) = oauth_error_body(bytes) {
                return Err(OpError::TokenEndpointRejected {
                    status,
                    error,
                    description,
                });
            }
        }
        return Err(OpError::TokenEndpointStatus(status));
    }
    let json = crate::json::parse_strict(bytes, MAX_RESPONSE_JSON_DEPTH).ok();
    let Some(Value::Object(mut obj)) = json else {
        return Err(OpError::TokenResponseNotJson);
    };
    let id_token = match obj.remove("id_token") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(OpError::NoIdToken),
    };
    let access_token = match obj.remove("access_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Secret::new(s)),
        Some(_) => return Err(OpError::MalformedTokenResponse("access_token")),
    };
    let token_type = match obj.get("token_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(OpError::MalformedTokenResponse("token_type")),
    };
    if access_token.is_some() {
        match &token_type {
            Some(t) if t.eq_ignore_ascii_case("bearer") => {}
            other => return Err(OpError::UnsupportedTokenType(other.as_deref().map(clean))),
        }
    }
    Ok(TokenEndpointResponse {
        id_token,
        access_token,
        token_type,
    })
}

/// `error` and `error_description` of a `WWW-Authenticate: Bearer ...` challenge (RFC 6750 §3).
fn parse_www_authenticate(header: &str) -> (Option<String>, Option<String>) {
    let mut error = None;
    let mut description = None;
    let s = header.trim_start();
    // Skip the scheme token.
    let rest = match s.find(char::is_whitespace) {
        Some(i) => &s[i..],
        None => return (None, None),
    };
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        match name.to_ascii_lowercase().as_str() {
            "error" => error = Some(clean(&value)),
            "error_description" => description = Some(clean(&value)),
            _ => {}
        }
    }
    (error, description)
}

/// OP-supplied text made safe for a log line: control characters replaced, length capped.
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_OP_TEXT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX_OP_TEXT {
        out.push('…');
    }
    out
}

fn check_redirect(status: u16, endpoint: Endpoint) -> Result<(), OpError> {
    if (300..400).contains(&status) {
        return Err(OpError::Redirect { endpoint, status });
    }
    Ok(())
}

async fn read_capped(
    mut response: reqwest::Response,
    endpoint: Endpoint,
) -> Result<Vec<u8>, OpError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(OpError::ResponseTooLarge { endpoint });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(endpoint, &e))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(OpError::ResponseTooLarge { endpoint });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a URL may be called: `https`, or `http` to a loopback host.
fn check_url(url: &Url, endpoint: Endpoint) -> Result<(), OpError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(OpError::InsecureUrl { endpoint }),
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn transport_error(endpoint: Endpoint, e: &reqwest::Error) -> OpError {
    if e.is_timeout() {
        return OpError::Timeout { endpoint };
    }
    // Sources only: the top-level message repeats the URL.
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if detail.is_empty() {
        detail = if e.is_body() {
            "error reading the response body"
        } else if e.is_request() {
            "error sending the request"
        } else {
            "HTTP error"
        }
        .to_string();
    }
    let detail = clean_long(&detail);
    if e.is_connect() {
        OpError::Connect { endpoint, detail }
    } else {
        OpError::Transport { endpoint, detail }
    }
}

fn clean_long(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(500)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > 500 {
        out.push('…');
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Client construction

fn http_client(
    settings: &RealmHttpSettings,
    tls: rustls::ClientConfig,
) -> reqwest::Result<reqwest::Client> {
    let overall = (settings.connect_timeout + settings.socket_timeout).min(MAX_REQUEST_TIMEOUT);
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.socket_timeout)
        .timeout(overall)
        .pool_max_idle_per_host(settings.max_endpoint_connections as usize)
        .tcp_keepalive(settings.tcp_keep_alive.then_some(Duration::from_secs(60)))
        .user_agent(concat!("oidc-realm/", env!("CARGO_PKG_VERSION")))
        // Never pick up HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment.
        .no_proxy();
    if let Some(ttl) = settings.connection_pool_ttl {
        builder = builder.pool_idle_timeout(ttl);
    }
    if let Some(proxy) = &settings.proxy {
        let scheme = match proxy.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        };
        let host = if proxy.host.contains(':') && !proxy.host.starts_with('[') {
            format!("[{}]", proxy.host)
        } else {
            proxy.host.clone()
        };
        builder = builder.proxy(reqwest::Proxy::all(format!(
            "{scheme}://{host}:{}",
            proxy.port
        ))?);
    }
    builder.build()
}

fn tls_config(ssl: &RealmSslSettings, prefix: &str) -> Result<rustls::ClientConfig, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !ssl.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|s| {
            let name = iana_suite_name(s.suite());
            ssl.cipher_suites.iter().any(|c| c == &name)
        });
        if provider.cipher_suites.is_empty() {
            return Err(format!(
                "[{prefix}ssl.cipher_suites] leaves no cipher suite this build supports"
            ));
        }
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if ssl.supported_protocols.is_empty() {
        versions.extend_from_slice(rustls::DEFAULT_VERSIONS);
    } else {
        for p in &ssl.supported_protocols {
            match p.as_str() {
                "TLSv1.3" => versions.push(&rustls::version::TLS13),
                "TLSv1.2" => versions.push(&rustls::version::TLS12),
                other => {
                    return Err(format!(
                        "[{prefix}ssl.supported_protocols]: unsupported protocol [{other}]"
                    ))
                }
            }
        }
    }
    let provider = Arc::new(provider);

    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(
            errors = native.errors.len(),
            "some system CA certificates could not be loaded"
        );
    }
    roots.add_parsable_certificates(native.certs);
    for path in &ssl.certificate_authorities {
        let shown = path.display();
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
            format!("[{prefix}ssl.certificate_authorities]: cannot read [{shown}]: {e}")
        })?;
        let mut n = 0;
        for cert in iter {
            let cert = cert.map_err(|e| {
                format!("[{prefix}ssl.certificate_authorities]: bad PEM in [{shown}]: {e}")
            })?;
            roots.add(cert).map_err(|e| {
                format!("[{prefix}ssl.certificate_authorities]: unusable CA in [{shown}]: {e}")
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(format!(
                "[{prefix}ssl.certificate_authorities]: no certificate in [{shown}]"
            ));
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "no trusted CA: the system has none and [{prefix}ssl.certificate_authorities] is not set"
        ));
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the TLS verifier: {e}"))?;

    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            format!("[{prefix}ssl.supported_protocols] / [{prefix}ssl.cipher_suites]: {e}")
        })?;
    let builder = match ssl.verification_mode {
        VerificationMode::Full => builder.with_webpki_verifier(webpki),
        VerificationMode::Certificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner: webpki })),
        VerificationMode::None => {
            return Err(format!(
                "[{prefix}ssl.verification_mode] none is not supported"
            ))
        }
    };
    let mut config = match &ssl.client_certificate {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let certs = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| {
                    format!(
                        "[{prefix}ssl.certificate]: cannot read [{}]: {e}",
                        cert_path.display()
                    )
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    format!(
                        "[{prefix}ssl.certificate]: bad PEM in [{}]: {e}",
                        cert_path.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "[{prefix}ssl.certificate]: no certificate in [{}]",
                    cert_path.display()
                ));
            }
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                format!(
                    "[{prefix}ssl.key]: cannot read a private key from [{}]: {e}",
                    key_path.display()
                )
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("[{prefix}ssl.certificate] / [{prefix}ssl.key]: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// IANA name of a suite (`TLS_AES_128_GCM_SHA256`; rustls spells TLS 1.3 ones `TLS13_...`).
fn iana_suite_name(suite: rustls::CipherSuite) -> String {
    let name = suite
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{suite:?}"));
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// `ssl.verification_mode: certificate`: the chain (and everything else webpki checks) is
/// verified; only a host-name mismatch is ignored.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the chain before the name: this error means the chain was good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
