//! HTTP handlers: extract, call one function, map the result. No protocol or storage logic.

mod body;
pub mod compat;
mod filter_path;
mod oidc;
mod profile;
mod role_mapping;
mod security;
mod status;
mod token;

pub use body::{EsJson, Parser};
pub use compat::shown_header;

use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};

/// Every route. Each resource answers other methods with 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
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
