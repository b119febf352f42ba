//! `GET /` and `GET /_security/_authenticate`.

use crate::app::{AppState, Caller};
use crate::auth::Action;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// Name, version and the loaded realms. Never a secret; no authentication needed.
pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    let rt = state.runtime();
    let realms: Vec<_> = rt
        .settings
        .realms
        .iter()
        .map(|r| json!({ "name": r.name, "type": "oidc", "order": r.order, "enabled": r.enabled }))
        .collect();
    HttpResponse::Ok().json(json!({
        "name": "oidc-realm",
        "version": env!("CARGO_PKG_VERSION"),
        "tagline": "OpenID Connect realm server, speaking Elasticsearch's _security API",
        "config_generation": rt.generation,
        "realms": realms,
    }))
}

/// Liveness: answers as long as the server serves. Also the trivial baseline of benchmarks.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// The caller, in Elasticsearch's shape.
pub async fn authenticate(caller: Caller) -> Result<HttpResponse, ApiError> {
    let auth = caller.require(Action::Authenticate)?;
    Ok(HttpResponse::Ok().json(crate::auth::AuthenticationView::new(&auth.user, auth.kind)))
}
