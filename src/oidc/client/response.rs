//! Reading what the OP answered: the token response, OAuth error bodies, the UserInfo
//! content type and body, `WWW-Authenticate` challenges, and OP text made safe for logs.

use super::error::OpError;
use crate::secret::Secret;
use serde_json::{Map, Value};
use std::fmt;

/// JSON nesting accepted in OP responses.
const MAX_RESPONSE_JSON_DEPTH: usize = 32;

/// Longest OP-supplied text (error code, description, content type) kept for logs.
pub(super) const MAX_OP_TEXT: usize = 200;

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

/// `error` and `error_description` of an OAuth error JSON body (RFC 6749 §5.2), cleaned.
pub(super) fn oauth_error_body(bytes: &[u8]) -> Option<(String, Option<String>)> {
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

pub(super) fn parse_token_response(
    status: u16,
    bytes: &[u8],
) -> Result<TokenEndpointResponse, OpError> {
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
pub(super) fn parse_www_authenticate(header: &str) -> (Option<String>, Option<String>) {
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
pub(super) fn clean(s: &str) -> String {
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

/// The UserInfo answer's content type must be `application/json` (parameters ignored);
/// `application/jwt` (signed or encrypted UserInfo) is not supported.
pub(super) fn userinfo_content_type(headers: &reqwest::header::HeaderMap) -> Result<(), OpError> {
    let mime = headers
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
        Some("application/json") => Ok(()),
        Some("application/jwt") => Err(OpError::UserInfoJwtUnsupported),
        other => Err(OpError::UserInfoContentType(other.map(clean))),
    }
}

/// A UserInfo body: a JSON object.
pub(super) fn parse_userinfo_body(bytes: &[u8]) -> Result<Map<String, Value>, OpError> {
    match crate::json::parse_strict(bytes, MAX_RESPONSE_JSON_DEPTH) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OpError::UserInfoNotJson("not an object".into())),
        Err(e) => Err(OpError::UserInfoNotJson(e)),
    }
}
