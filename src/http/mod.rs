//! The HTTP layer: the one route table ([`configure`], used by the binary and by every
//! test), the middleware around it (correlation ids, Elasticsearch compatibility), the caller
//! extractor, and handlers that extract, call one service function and map the result through
//! [`errors`]. No protocol or storage logic.

mod body;
mod caller;
pub mod compat;
mod connections;
pub mod errors;
mod filter_path;
pub mod metrics;
mod oidc;
mod profile;
mod role_mapping;
mod rp_protocol;
mod security;
mod status;
mod token;

pub use body::{EsJson, Parser};

use crate::app::AppState;
use crate::error::{ApiError, CORRELATION_HEADER, CORRELATION_ID};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;
use tracing::Instrument;

/// Register state, limits and every route. The binary and the tests call exactly this.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let max_body = state.runtime().settings.http.max_body;
        cfg.app_data(web::Data::from(state))
            .app_data(web::PayloadConfig::new(max_body))
            .service(
                web::scope("")
                    .wrap(from_fn(compat::compat))
                    .wrap(from_fn(correlation))
                    .configure(routes)
                    .default_service(web::to(no_handler)),
            );
    }
}

/// Give every request a correlation id: in the task-local that errors and audit events read,
/// in the log span, and in the `x-correlation-id` response header; and its client address to
/// the audit events emitted while it is served.
async fn correlation(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = crate::crypto::random_urlsafe(12);
    let span = tracing::info_span!("request", correlation_id = %id, method = %req.method(), path = %req.path());
    let client = req.peer_addr().map(|a| a.ip());
    let mut res = CORRELATION_ID
        .scope(
            id.clone(),
            crate::audit::in_request(client, next.call(req).instrument(span)),
        )
        .await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(CORRELATION_HEADER), v);
    }
    Ok(res)
}

/// Every route. Each resource answers other methods with 405.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(security::root))
            .route(web::head().to(security::root))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_health")
            .route(web::get().to(security::health))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/_authenticate")
            .route(web::get().to(security::authenticate))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/oidc/prepare")
            .route(web::post().to(oidc::prepare))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/oidc/authenticate")
            .route(web::post().to(oidc::authenticate))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/oidc/logout")
            .route(web::post().to(oidc::logout))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/oidc/_status")
            .route(web::get().to(status::status))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/oauth2/token")
            .route(web::post().to(token::create))
            .route(web::delete().to(token::invalidate))
            .default_service(web::to(wrong_method)),
    );
    role_mapping_routes(cfg);
    profile_routes(cfg);
    rp_protocol::routes(cfg);
    connection_routes(cfg);
}

/// Connected accounts (docs/connections.md). `_callback` is registered before `{name}`.
fn connection_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_oauth/connections")
            .route(web::get().to(connections::get_all))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_oauth/connections/_callback")
            .route(web::post().to(connections::callback))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_oauth/connections/{name}")
            .route(web::get().to(connections::get))
            .route(web::put().to(connections::put))
            .route(web::delete().to(connections::delete))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_oauth/connections/{name}/_authorize")
            .route(web::post().to(connections::authorize))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_oauth/connections/{name}/_token")
            .route(web::post().to(connections::token))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_oauth/connections/{name}/_grant")
            .route(web::delete().to(connections::delete_grant))
            .default_service(web::to(wrong_method)),
    );
}

/// User profiles (activated by Kibana after each login). `_activate` is registered before
/// `{uid}` so that it is not taken for a uid.
fn profile_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_security/profile/_activate")
            .route(web::post().to(profile::activate))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/profile/{uid}")
            .route(web::get().to(profile::get))
            .default_service(web::to(wrong_method)),
    );
}

/// Role mappings (spec §5.1).
fn role_mapping_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_security/role_mapping")
            .route(web::get().to(role_mapping::get_all))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/_security/role_mapping/{name}")
            .route(web::get().to(role_mapping::get))
            .route(web::put().to(role_mapping::put))
            .route(web::post().to(role_mapping::put))
            .route(web::delete().to(role_mapping::delete))
            .default_service(web::to(wrong_method)),
    );
}

/// The query parameters of a request that an endpoint reads (`allowed`), after checking that
/// every other one is one of Elasticsearch's output switches (`filter_path`, `pretty`,
/// `human`, `error_trace`, `format`, applied to every answer by [`compat`]); anything else
/// is refused as Elasticsearch refuses it.
pub(crate) fn query_params(
    req: &HttpRequest,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let mut kept = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "filter_path" | "pretty" | "human" | "error_trace" | "format" => {}
            k if allowed.contains(&k) => kept.push((k.to_string(), v.into_owned())),
            other => {
                return Err(ApiError::illegal_argument(
                    "invalid_parameter",
                    format!(
                        "request [{}] contains unrecognized parameter: [{other}]",
                        req.path()
                    ),
                ))
            }
        }
    }
    Ok(kept)
}

/// 404 for a path nobody serves.
pub async fn no_handler(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no handler found for uri [{}] and method [{}]",
        req.uri().path(),
        req.method()
    )))
}

async fn wrong_method(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(format!(
        "Incorrect HTTP method for uri [{}] and method [{}]",
        req.uri().path(),
        req.method()
    )))
}
