//! The metrics listener (`metrics.bind`): `GET /metrics` only, never on the API listener.

use crate::app::AppState;
use crate::metrics::CONTENT_TYPE;
use actix_web::{web, HttpResponse};
use std::net::SocketAddr;
use std::sync::Arc;

/// `GET /metrics`.
async fn handler(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.render_metrics())
}

/// The routes of the metrics listener: `GET /metrics` only (anything else is 404).
fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::from(state))
            .route("/metrics", web::get().to(handler));
    }
}

/// Bind the metrics listener (one worker, no signal handling of its own: `serve` stops it
/// after the API listener). Returns the server to run and the addresses it listens on.
pub fn server(
    state: Arc<AppState>,
    bind: SocketAddr,
) -> std::io::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(configure(state.clone()))
    })
    .workers(1)
    .disable_signals()
    .bind(bind)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}
