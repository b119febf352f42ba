//! The calls to a connection's service: code exchange, refresh, revocation (RFC 6749 §4.1.3,
//! §6, RFC 7009), over the one outbound transport (`crate::oidc::client`).

use super::records::GrantDoc;
use super::Endpoints;
use crate::clock::UnixMillis;
use crate::config::{ConnectionClientAuth, ConnectionDef};
use crate::oidc::client::{OpClient, OpError};
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// Why a call to the service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// The service answered with an OAuth error (`invalid_grant`, ...): the grant or code is
    /// refused. `error` is cleaned and capped.
    Refused { status: u16, error: String },
    /// The call failed or the answer is unusable (for the log).
    Failed(String),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Refused { status, error } => {
                write!(f, "the service refused the request ({status} {error})")
            }
            ServiceError::Failed(why) => write!(f, "the call to the service failed: {why}"),
        }
    }
}

fn cap(s: &str) -> String {
    crate::text::Cap {
        max_chars: 100,
        control: Some(' '),
        ellipsis: true,
    }
    .apply(s)
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The form with client authentication, and the `Authorization` header if Basic.
fn authenticated(
    def: &ConnectionDef,
    mut form: url::form_urlencoded::Serializer<'_, String>,
) -> (Secret<String>, Option<Secret<String>>) {
    match def.client_auth {
        ConnectionClientAuth::ClientSecretBasic => {
            // RFC 6749 §2.3.1: both form-encoded before Basic.
            let pair = format!(
                "{}:{}",
                form_encode(&def.client_id),
                form_encode(def.client_secret.expose_secret())
            );
            let header = format!("Basic {}", STANDARD.encode(pair));
            (Secret::new(form.finish()), Some(Secret::new(header)))
        }
        ConnectionClientAuth::ClientSecretPost => {
            form.append_pair("client_id", &def.client_id)
                .append_pair("client_secret", def.client_secret.expose_secret());
            (Secret::new(form.finish()), None)
        }
    }
}

async fn post(
    client: &OpClient,
    url: &url::Url,
    def: &ConnectionDef,
    form: url::form_urlencoded::Serializer<'_, String>,
) -> Result<(u16, Vec<u8>), ServiceError> {
    let (body, auth) = authenticated(def, form);
    client
        .post_form(url, body, auth)
        .await
        .map_err(|e: OpError| ServiceError::Failed(e.to_string()))
}

/// Parse a token response into a grant (keeping `previous`'s refresh token when the service
/// does not rotate it).
fn token_response(
    status: u16,
    bytes: &[u8],
    now: UnixMillis,
    previous: Option<&GrantDoc>,
) -> Result<GrantDoc, ServiceError> {
    let json = crate::json::parse_strict(bytes, 32).ok();
    if status != 200 {
        if let Some(Value::Object(o)) = &json {
            if let Some(Value::String(e)) = o.get("error") {
                return Err(ServiceError::Refused {
                    status,
                    error: cap(e),
                });
            }
        }
        return Err(ServiceError::Failed(format!(
            "the token endpoint answered {status}"
        )));
    }
    let Some(Value::Object(o)) = json else {
        return Err(ServiceError::Failed(
            "the token response is not a JSON object".into(),
        ));
    };
    let access_token = match o.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(ServiceError::Failed(
                "the token response has no access_token".into(),
            ))
        }
    };
    let token_type = match o.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
        Some(Value::String(t)) => {
            return Err(ServiceError::Failed(format!(
                "unsupported token_type [{}]",
                cap(t)
            )))
        }
        _ => {
            return Err(ServiceError::Failed(
                "the token response has no token_type".into(),
            ))
        }
    };
    let expires_at = match o.get("expires_in") {
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|s| *s >= 0)
            .map(|s| now.saturating_add(s.saturating_mul(1000))),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .map(|s| now.saturating_add(s.saturating_mul(1000))),
        _ => None,
    };
    let refresh_token = match o.get("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => previous.and_then(|p| p.refresh_token.clone()),
    };
    let scope = match o.get("scope") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => previous.and_then(|p| p.scope.clone()),
    };
    Ok(GrantDoc {
        access_token,
        token_type,
        refresh_token,
        expires_at,
        scope,
        created_at: previous.map_or(now, |p| p.created_at),
        refreshed_at: previous.map(|_| now),
    })
}

/// Exchange an authorization code.
pub async fn exchange_code(
    client: &OpClient,
    def: &ConnectionDef,
    endpoints: &Endpoints,
    code: &str,
    verifier: Option<&str>,
    now: UnixMillis,
) -> Result<GrantDoc, ServiceError> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", def.redirect_uri.as_str());
    if let Some(v) = verifier {
        form.append_pair("code_verifier", v);
    }
    let (status, bytes) = post(client, &endpoints.token, def, form).await?;
    token_response(status, &bytes, now, None)
}

/// Refresh a grant.
pub async fn refresh(
    client: &OpClient,
    def: &ConnectionDef,
    endpoints: &Endpoints,
    grant: &GrantDoc,
    refresh_token: &str,
    now: UnixMillis,
) -> Result<GrantDoc, ServiceError> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token);
    let (status, bytes) = post(client, &endpoints.token, def, form).await?;
    token_response(status, &bytes, now, Some(grant))
}

/// Revoke a grant at the service (its refresh token, else its access token). `Ok(true)`:
/// the service confirmed (200).
pub async fn revoke(
    client: &OpClient,
    def: &ConnectionDef,
    endpoints: &Endpoints,
    grant: &GrantDoc,
) -> Result<bool, ServiceError> {
    let Some(endpoint) = &endpoints.revocation else {
        return Ok(false);
    };
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match &grant.refresh_token {
        Some(r) => form
            .append_pair("token", r)
            .append_pair("token_type_hint", "refresh_token"),
        None => form
            .append_pair("token", &grant.access_token)
            .append_pair("token_type_hint", "access_token"),
    };
    let (status, _) = post(client, endpoint, def, form).await?;
    if status == 200 {
        Ok(true)
    } else {
        Err(ServiceError::Failed(format!(
            "the revocation endpoint answered {status}"
        )))
    }
}

/// What a service's metadata gives: authorization, token and revocation endpoints.
pub type Discovered = (Option<url::Url>, Option<url::Url>, Option<url::Url>);

/// The metadata URLs of `issuer`: RFC 8414 §3.1 (`/.well-known/oauth-authorization-server`
/// inserted before the issuer's path), then OpenID Connect Discovery 1.0 §4 (appended).
pub fn metadata_urls(issuer: &url::Url) -> Vec<url::Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    vec![rfc8414, oidc]
}

/// Read a metadata document: its `issuer` must be the configured one (RFC 8414 §3.3) and its
/// endpoints must be URLs oidc-realm calls (`https`, or `http` to a loopback host).
pub fn parse_metadata(issuer: &url::Url, bytes: &[u8]) -> Result<Discovered, ServiceError> {
    let Ok(Value::Object(o)) = crate::json::parse_strict(bytes, 32) else {
        return Err(ServiceError::Failed(
            "the metadata document is not a JSON object".into(),
        ));
    };
    let same = |a: &str| a.trim_end_matches('/') == issuer.as_str().trim_end_matches('/');
    match o.get("issuer") {
        Some(Value::String(i)) if same(i) => {}
        _ => {
            return Err(ServiceError::Failed(
                "the metadata document is for another issuer".into(),
            ))
        }
    }
    let url = |k: &str| -> Result<Option<url::Url>, ServiceError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => crate::config::check_endpoint(s)
                .map(Some)
                .map_err(|e| ServiceError::Failed(format!("metadata [{k}]: {e}"))),
            Some(_) => Err(ServiceError::Failed(format!(
                "metadata [{k}] is not a string"
            ))),
        }
    };
    Ok((
        url("authorization_endpoint")?,
        url("token_endpoint")?,
        url("revocation_endpoint")?,
    ))
}

/// Fetch the metadata of `issuer` (the first URL of [`metadata_urls`] that answers 200).
pub async fn discover(client: &OpClient, issuer: &url::Url) -> Result<Discovered, ServiceError> {
    let mut last = String::new();
    for url in metadata_urls(issuer) {
        match client.get_json(&url).await {
            Ok((200, bytes)) => return parse_metadata(issuer, &bytes),
            Ok((status, _)) => last = format!("{url} answered {status}"),
            Err(e) => last = e.to_string(),
        }
    }
    Err(ServiceError::Failed(format!("discovery failed: {last}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_and_documents() {
        let with_path = url::Url::parse("https://as.example.com/tenant1").unwrap();
        let urls: Vec<String> = metadata_urls(&with_path)
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://as.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        let root = url::Url::parse("https://as.example.com").unwrap();
        assert_eq!(
            metadata_urls(&root)[0].as_str(),
            "https://as.example.com/.well-known/oauth-authorization-server"
        );
        let doc = br#"{"issuer":"https://as.example.com","authorization_endpoint":"https://as.example.com/a","token_endpoint":"https://as.example.com/t"}"#;
        let (a, t, r) = parse_metadata(&root, doc).unwrap();
        assert_eq!(a.unwrap().as_str(), "https://as.example.com/a");
        assert_eq!(t.unwrap().as_str(), "https://as.example.com/t");
        assert!(r.is_none());
        let other =
            br#"{"issuer":"https://evil.example.com","token_endpoint":"https://as.example.com/t"}"#;
        assert!(parse_metadata(&root, other).is_err());
        let insecure =
            br#"{"issuer":"https://as.example.com","token_endpoint":"http://as.example.com/t"}"#;
        assert!(parse_metadata(&root, insecure).is_err());
    }

    #[test]
    fn token_responses() {
        let g = token_response(
            200,
            br#"{"access_token":"a","token_type":"bearer","expires_in":60,"refresh_token":"r","scope":"x y"}"#,
            1000,
            None,
        )
        .unwrap();
        assert_eq!(g.expires_at, Some(61_000));
        assert_eq!(g.refresh_token.as_deref(), Some("r"));
        assert!(!format!("{g:?}").contains("\"a\""));
        // A refresh that does not rotate keeps the refresh token.
        let g2 = token_response(
            200,
            br#"{"access_token":"b","token_type":"Bearer"}"#,
            2000,
            Some(&g),
        )
        .unwrap();
        assert_eq!(g2.refresh_token.as_deref(), Some("r"));
        assert_eq!(g2.refreshed_at, Some(2000));
        assert_eq!(
            token_response(400, br#"{"error":"invalid_grant"}"#, 0, None).unwrap_err(),
            ServiceError::Refused {
                status: 400,
                error: "invalid_grant".into()
            }
        );
        assert!(matches!(
            token_response(500, b"oops", 0, None),
            Err(ServiceError::Failed(_))
        ));
        assert!(matches!(
            token_response(200, br#"{"access_token":"a","token_type":"mac"}"#, 0, None),
            Err(ServiceError::Failed(_))
        ));
        assert!(matches!(
            token_response(200, br#"{"token_type":"bearer"}"#, 0, None),
            Err(ServiceError::Failed(_))
        ));
    }
}
