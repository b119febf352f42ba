//! `GET /` and `GET /_security/_authenticate`.

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::Action;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// Elasticsearch's `GET /` fields that clients read (`version.number` is the Elasticsearch
/// API level oidc-realm implements, `compatibility.version`), and oidc-realm's own name,
/// version and loaded realms under `oidc_realm`. Never a secret; no authentication needed.
pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    let rt = state.runtime();
    let realms: Vec<_> = rt
        .settings
        .realms
        .iter()
        .map(|r| json!({ "name": r.name, "type": "oidc", "order": r.order, "enabled": r.enabled }))
        .collect();
    let api = &rt.settings.compatibility.version;
    HttpResponse::Ok().json(json!({
        "name": "oidc-realm",
        "cluster_name": "oidc-realm",
        "cluster_uuid": "_na_",
        "version": {
            "number": api,
            "build_flavor": "default",
            "build_type": "oidc-realm",
            "build_hash": "unknown",
            "build_date": "unknown",
            "build_snapshot": false,
            "lucene_version": "none",
            "minimum_wire_compatibility_version": api,
            "minimum_index_compatibility_version": api,
        },
        "tagline": "You Know, for Search",
        "oidc_realm": {
            "name": "oidc-realm",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OpenID Connect realm server, speaking Elasticsearch's _security API; not Elasticsearch",
            "config_generation": rt.generation,
            "realms": realms,
        },
    }))
}

/// Health: `200 {"status":"ok"}` while the server serves and its store can write; `503
/// {"status":"unavailable","reason":...}` when the store reports that writes fail (see
/// [`crate::store::Store::health`]; the detail is in the log, not in this unauthenticated
/// answer). No store access: an atomic read. Also the trivial baseline of benchmarks.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.store_health() {
        crate::store::StoreHealth::Ok => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ok"}"#),
        crate::store::StoreHealth::Failing { reason } => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(format!(r#"{{"status":"unavailable","reason":"{reason}"}}"#)),
    }
}

/// The caller, in Elasticsearch's shape.
pub async fn authenticate(caller: Caller) -> Result<HttpResponse, ApiError> {
    let auth = caller.require(Action::Authenticate)?;
    Ok(HttpResponse::Ok().json(crate::auth::AuthenticationView::of(&auth)))
}
