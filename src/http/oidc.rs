//! `POST /_security/oidc/prepare`, `/authenticate` and `/logout` (spec §2).

use super::{EsJson, Parser};
use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::{user_json, Action, AuthenticationType};
use crate::error::ApiError;
use crate::realm::{AuthenticateParams, PrepareParams};
use crate::secret::Secret;
use crate::service::login::RealmBy;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// Body of `prepare`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    realm: Option<String>,
    iss: Option<String>,
    login_hint: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
}

impl Parser for PrepareRequest {
    const NAME: &'static str = "oidc_prepare_authentication";
}

/// Body of `authenticate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    redirect_uri: Option<String>,
    state: Option<Secret<String>>,
    nonce: Option<Secret<String>>,
    realm: Option<String>,
}

impl Parser for AuthenticateRequest {
    const NAME: &'static str = "oidc_authn";
}

/// Body of `logout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    token: Option<Secret<String>>,
    refresh_token: Option<Secret<String>>,
}

impl Parser for LogoutRequest {
    const NAME: &'static str = "oidc_logout";
}

/// `POST /_security/oidc/prepare`.
pub async fn prepare(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<PrepareRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    // Elasticsearch validates a request before it authorizes it (then 400 before 403).
    let by = match (&req.realm, &req.iss) {
        (None, None) => {
            return Err(ApiError::validation(&[
                "one of [realm, issuer] must be provided",
            ]))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(&[
                "only one of [realm, issuer] can be provided in the same request",
            ]))
        }
        (Some(name), None) => RealmBy::Name(name),
        (None, Some(iss)) => RealmBy::Issuer(iss),
    };
    let caller = caller.require(Action::OidcPrepare)?;
    let params = PrepareParams {
        state: req.state,
        nonce: req.nonce,
        login_hint: req.login_hint,
    };
    let rt = state.runtime();
    let resp = state.login(&rt).prepare(&caller, by, params).await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// `POST /_security/oidc/authenticate`.
pub async fn authenticate(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<AuthenticateRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let mut missing = Vec::new();
    if req
        .state
        .as_ref()
        .is_none_or(|s| s.expose_secret().is_empty())
    {
        missing.push("state parameter is missing");
    }
    if req
        .nonce
        .as_ref()
        .is_none_or(|s| s.expose_secret().is_empty())
    {
        missing.push("nonce parameter is missing");
    }
    if req.redirect_uri.as_deref().is_none_or(str::is_empty) {
        missing.push("redirect_uri parameter is missing");
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(&missing));
    }
    let caller = caller.require(Action::OidcAuthenticate)?;
    let rt = state.runtime();
    let login = state.login(&rt);
    let params = AuthenticateParams {
        redirect_uri: req.redirect_uri.unwrap_or_default(),
        state: req.state.unwrap_or_default(),
        nonce: req.nonce.unwrap_or_default(),
        realm: req.realm,
    };
    let outcome = login.authenticate(&caller, params).await?;
    let expires_in = login.expires_in();
    let mut body = super::token::token_response(
        &outcome.pair,
        expires_in,
        user_json(&outcome.user, AuthenticationType::Realm),
    );
    body["username"] = json!(outcome.user.username);
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /_security/oidc/logout`.
pub async fn logout(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let Some(token) = req.token.filter(|t| !t.expose_secret().is_empty()) else {
        return Err(ApiError::validation(&["token is missing"]));
    };
    let caller = caller.require(Action::OidcLogout)?;
    let refresh = req
        .refresh_token
        .as_ref()
        .map(|r| r.expose_secret().as_str())
        .filter(|r| !r.is_empty());
    let rt = state.runtime();
    let redirect = state
        .login(&rt)
        .logout(&caller, token.expose_secret(), refresh)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "redirect": redirect })))
}
