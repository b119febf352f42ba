//! Endpoints the OpenID Provider calls (no caller credentials): the realm's public keys for
//! `private_key_jwt` (`GET /oidc/{realm}/jwks`).

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
    );
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
                crate::text::Cap {
                    max_chars: 100,
                    control: Some('?'),
                    ellipsis: true
                }
                .apply(&name)
            ))
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(json!({ "keys": keys })))
}
