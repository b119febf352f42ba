//! Endpoints the OpenID Provider calls (no caller credentials): the realm's public keys for
//! `private_key_jwt` (`GET /oidc/{realm}/jwks`) and Back-Channel Logout
//! (`POST /oidc/{realm}/backchannel-logout`).

use crate::app::AppState;
use crate::config::ClientAuthMethod;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The routes of this file (registered by `configure()`).
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oidc/{realm}/jwks")
            .route(web::get().to(jwks))
            .route(web::head().to(jwks))
            .default_service(web::to(super::wrong_method)),
    )
    .service(
        web::resource("/oidc/{realm}/backchannel-logout")
            .route(web::post().to(backchannel_logout))
            .default_service(web::to(super::wrong_method)),
    );
}

/// Longest `logout_token` accepted, in bytes (an ID token's limit).
const MAX_LOGOUT_TOKEN_LEN: usize = 64 * 1024;

/// `POST /oidc/{realm}/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0 §2.5):
/// a form with one `logout_token`. Valid → every token of the matching logins invalidated
/// (access and refresh, at once), `200` with `Cache-Control: no-store`. Refused → `400`
/// `{"error": "invalid_request", "error_description": …}`. A realm that is unknown, disabled
/// or without `rp.backchannel_logout: true` → 404.
pub async fn backchannel_logout(
    state: web::Data<AppState>,
    realm: web::Path<String>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let rt = state.runtime();
    let name = realm.into_inner();
    let Some(realm) = rt
        .realms
        .get(&name)
        .filter(|r| r.config.rp.backchannel_logout)
    else {
        return Err(ApiError::not_found(format!(
            "no realm [{}] with back-channel logout",
            shown(&name)
        )));
    };
    let form_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let bad = |d: &str| ApiError::oauth("invalid_request", d.to_string());
    if !form_type {
        return Err(bad(
            "the body must be application/x-www-form-urlencoded with a logout_token",
        ));
    }
    let mut token = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "logout_token" {
            if token.is_some() {
                return Err(bad("logout_token is given more than once"));
            }
            token = Some(v.into_owned());
        }
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no logout_token"))?;
    if token.len() > MAX_LOGOUT_TOKEN_LEN {
        return Err(bad("logout_token is too long"));
    }
    let now = state.clock.now_millis();
    let claims = crate::realm::backchannel::accept_logout_token(realm, &token, now).await?;
    let counts = state
        .grants(&rt)
        .invalidate_oidc_session(realm.name(), claims.sub.as_deref(), claims.sid.as_deref())
        .await?;
    tracing::info!(
        realm = %realm.name(),
        invalidated = counts.invalidated,
        "back-channel logout accepted"
    );
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}

fn shown(name: &str) -> String {
    crate::text::Cap {
        max_chars: 100,
        control: Some('?'),
        ellipsis: true,
    }
    .apply(name)
}

/// `GET /oidc/{realm}/jwks`: the public JWKs of the realm's `rp.client_auth_key` and
/// `rp.client_auth_key_2` (never a private member), for providers that fetch client keys
/// (`jwks_uri` client registration). 404 for an unknown or disabled realm, and for a realm
/// that does not use `private_key_jwt`.
pub async fn jwks(
    state: web::Data<AppState>,
    realm: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rt = state.runtime();
    let name = realm.into_inner();
    let keys = rt
        .realms
        .get(&name)
        .filter(|r| r.config.rp.client_auth_method == ClientAuthMethod::PrivateKeyJwt)
        .map(|r| {
            r.config
                .rp
                .client_auth_keys
                .iter()
                .map(|k| k.public_jwk.clone())
                .collect::<Vec<_>>()
        })
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no realm [{}] with private_key_jwt client keys",
                shown(&name)
            ))
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(json!({ "keys": keys })))
}
