//! `POST /_security/oauth2/token` (get and refresh) and `DELETE /_security/oauth2/token`
//! (invalidate), with Elasticsearch's bodies, messages and status codes (spec §3.2, §3.4).

use super::{EsJson, Parser};
use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::{user_json, Action, AuthenticationType};
use crate::error::ApiError;
use crate::secret::Secret;
use crate::service::grants::InvalidateTarget;
use crate::store::InvalidationCounts;
use crate::tokens::IssuedPair;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Body of `POST /_security/oauth2/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetTokenRequest {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<Secret<String>>,
    kerberos_ticket: Option<Secret<String>>,
    refresh_token: Option<Secret<String>>,
    /// Accepted and ignored, as in Elasticsearch.
    #[allow(dead_code)]
    scope: Option<String>,
}

impl Parser for GetTokenRequest {
    const NAME: &'static str = "token_request";
}

const GRANTS: &str =
    "grant_type only supports the values: [password, _kerberos, refresh_token, client_credentials]";

/// The token response: `access_token`, `type`, `expires_in`, `refresh_token` (when issued),
/// `authentication`.
pub fn token_response(pair: &IssuedPair, expires_in: u64, authentication: Value) -> Value {
    let mut v = json!({
        "access_token": pair.access_token,
        "type": "Bearer",
        "expires_in": expires_in,
    });
    if let Some(r) = &pair.refresh_token {
        v["refresh_token"] = json!(r);
    }
    v["authentication"] = authentication;
    v
}

impl GetTokenRequest {
    /// Elasticsearch's per-grant field rules, every violation collected.
    fn validate(&self, grant: &str) -> Vec<String> {
        let present = [
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("kerberos_ticket", self.kerberos_ticket.is_some()),
            ("refresh_token", self.refresh_token.is_some()),
        ];
        let (required, forbidden): (&[&str], &[&str]) = match grant {
            "password" => (
                &["username", "password"],
                &["kerberos_ticket", "refresh_token"],
            ),
            "refresh_token" => (
                &["refresh_token"],
                &["username", "password", "kerberos_ticket"],
            ),
            "client_credentials" => (
                &[],
                &["username", "password", "kerberos_ticket", "refresh_token"],
            ),
            _ => (
                &["kerberos_ticket"],
                &["username", "password", "refresh_token"],
            ),
        };
        let mut errors = Vec::new();
        for (name, is) in present {
            if required.contains(&name) && !is {
                errors.push(format!("{name} is missing"));
            }
            if forbidden.contains(&name) && is {
                errors.push(format!(
                    "{name} is not supported with the {grant} grant_type"
                ));
            }
        }
        errors
    }
}

fn oauth_validation(error: &'static str, messages: &[String]) -> ApiError {
    let mut reason = String::from("Validation Failed: ");
    for (i, m) in messages.iter().enumerate() {
        reason.push_str(&format!("{}: {};", i + 1, m));
    }
    ApiError::oauth(error, reason)
}

/// `POST /_security/oauth2/token`.
pub async fn create(
    req_head: actix_web::HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<GetTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let grant = match req.grant_type.as_deref() {
        Some(g @ ("password" | "refresh_token" | "client_credentials" | "_kerberos")) => g,
        _ => {
            return Err(oauth_validation(
                "unsupported_grant_type",
                &[GRANTS.to_string()],
            ))
        }
    };
    let action = if grant == "refresh_token" {
        Action::TokenRefresh
    } else {
        Action::TokenCreate
    };
    // Elasticsearch validates the request before it authorizes the action.
    let errors = req.validate(grant);
    if !errors.is_empty() {
        return Err(oauth_validation("invalid_request", &errors));
    }
    let caller = caller.require(action)?;
    // A bearer token must not mint tokens that outlive it: otherwise a stolen token could
    // renew itself forever. Refresh stays allowed (it is bounded by the refresh token).
    if caller.kind == AuthenticationType::Token && grant != "refresh_token" {
        return Err(ApiError::illegal_argument(
            "token_cannot_create_token",
            format!("the {grant} grant_type cannot be used by a caller authenticated with an access token; authenticate with a password"),
        ));
    }
    // A service account may get tokens for users (password grant) and refresh them, but
    // not tokens for itself: its own token never expires, so there is nothing to gain and
    // a second credential to lose.
    if caller.kind == AuthenticationType::ServiceAccount && grant == "client_credentials" {
        return Err(ApiError::illegal_argument(
            "service_account_cannot_create_token",
            "the client_credentials grant_type cannot be used by a service account; use its service token directly",
        ));
    }
    let rt = state.runtime();
    let grants = state.grants(&rt);
    let granted = match grant {
        "password" => {
            let username = req.username.unwrap_or_default();
            let password = req.password.unwrap_or_default();
            let client = req_head.peer_addr().map(|a| a.ip());
            grants
                .password(&caller, &username, password.expose_secret(), client)
                .await
        }
        "client_credentials" => grants.client_credentials(&caller).await,
        "refresh_token" => {
            let token = req.refresh_token.unwrap_or_default();
            grants.refresh(&caller, token.expose_secret()).await
        }
        _ => {
            return Err(ApiError::oauth(
                "unsupported_grant_type",
                "the _kerberos grant_type is not supported by oidc-realm",
            ))
        }
    }
    .map_err(|e| super::errors::grant_refused(e, action))?;
    Ok(HttpResponse::Ok().json(token_response(
        &granted.pair,
        granted.expires_in,
        user_json(&granted.user, granted.kind),
    )))
}

/// Body of `DELETE /_security/oauth2/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateTokenRequest {
    token: Option<Secret<String>>,
    refresh_token: Option<Secret<String>>,
    realm_name: Option<String>,
    username: Option<String>,
}

impl Parser for InvalidateTokenRequest {
    const NAME: &'static str = "invalidate_token_request";
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|v| !v.is_empty())
}

fn counts_body(c: &InvalidationCounts) -> Value {
    json!({
        "invalidated_tokens": c.invalidated,
        "previously_invalidated_tokens": c.previously_invalidated,
        "error_count": 0,
    })
}

/// `DELETE /_security/oauth2/token`.
pub async fn invalidate(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<InvalidateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let token = req
        .token
        .as_ref()
        .map(|s| s.expose_secret().as_str())
        .filter(|s| !s.is_empty());
    let refresh = req
        .refresh_token
        .as_ref()
        .map(|s| s.expose_secret().as_str())
        .filter(|s| !s.is_empty());
    let realm = non_empty(&req.realm_name);
    let username = non_empty(&req.username);
    let mut errors = Vec::new();
    if token.is_some() && refresh.is_some() {
        errors.push("only one of [token, refresh_token] may be sent per request");
    }
    if (realm.is_some() || username.is_some()) && (token.is_some() || refresh.is_some()) {
        errors.push("token string must not be provided when realm name or username is specified");
    }
    if realm.is_none() && username.is_none() && token.is_none() && refresh.is_none() {
        errors.push("token string must be provided when not specifying a realm name or a username");
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(&errors));
    }
    let caller = caller.require(Action::TokenInvalidate)?;
    let target = match (token, refresh) {
        (Some(t), _) => InvalidateTarget::AccessToken(t),
        (_, Some(r)) => InvalidateTarget::RefreshToken(r),
        (None, None) => InvalidateTarget::Owner { realm, username },
    };
    let rt = state.runtime();
    let counts = state.grants(&rt).invalidate(&caller, target).await?;
    let body = counts_body(&counts);
    // An unknown `token`/`refresh_token` is 404; invalidating by realm or user answers 200
    // even when nothing matched (Elasticsearch's TokenService does the same).
    if target.is_single() && counts.invalidated == 0 && counts.previously_invalidated == 0 {
        return Ok(HttpResponse::NotFound().json(body));
    }
    Ok(HttpResponse::Ok().json(body))
}
