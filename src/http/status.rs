//! `GET /_security/oidc/_status`: the running configuration, the last reload error, and each
//! realm's key set. Never a secret.

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::Action;
use crate::clock::UnixMillis;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::clock::iso8601;

fn time(ms: Option<UnixMillis>) -> Value {
    ms.map(iso8601).map(Value::String).unwrap_or(Value::Null)
}

/// The status document (also used by tests without HTTP).
pub fn status_json(state: &AppState) -> Value {
    let rt = state.runtime();
    let info = state.reload_log().info();
    let mut realms = Map::new();
    for r in rt.realms.iter() {
        let k = r.keys().status();
        let discovery = r.config.op.discovery.as_ref().map(|d| {
            let st = r.discovery_status();
            let op = &r.config.op;
            json!({
                "url": d.url.as_str(),
                "issuer": d.discovered.as_ref().map(|m| m.issuer.clone()),
                "configured": d.written,
                "endpoints": {
                    "authorization_endpoint": op.authorization_endpoint.as_str(),
                    "token_endpoint": op.token_endpoint.as_ref().map(|u| u.as_str()),
                    "userinfo_endpoint": op.userinfo_endpoint.as_ref().map(|u| u.as_str()),
                    "endsession_endpoint": op.endsession_endpoint.as_ref().map(|u| u.as_str()),
                },
                "loaded_at": time(st.fetched_at),
                "last_attempt_at": time(st.last_attempt),
                "last_error": st.last_error.as_ref().map(|(_, e)| e.clone()),
                "last_error_at": time(st.last_error.as_ref().map(|(t, _)| *t)),
            })
        });
        realms.insert(
            r.name().to_string(),
            json!({
                "order": r.config.order,
                "enabled": r.config.enabled,
                "jwks": {
                    "source": k.source,
                    "location": k.location,
                    "kids": k.kids,
                    "loaded_at": time(k.fetched_at),
                    "last_attempt_at": time(k.last_attempt),
                    "last_error": k.last_error,
                    "last_error_at": time(k.last_error_at),
                    "reload_interval_seconds": r.config.op.jwkset_reload_interval.as_secs(),
                    "min_refetch_interval_seconds": r.config.op.jwkset_min_refetch_interval.as_secs(),
                },
            }),
        );
        if let (Some(d), Some(Value::Object(entry))) = (discovery, realms.get_mut(r.name())) {
            entry.insert("discovery".into(), d);
        }
    }
    json!({
        "config": {
            "path": info.config_path.as_ref().map(|p| p.display().to_string()),
            "generation": rt.generation,
            "loaded_at": iso8601(rt.loaded_at),
            "warnings": rt.warnings,
            "last_reload": {
                "at": time(info.last_attempt_at),
                "ok": info.last_ok,
            },
            "last_error": info.last_error.as_ref().map(|e| json!({
                "at": iso8601(e.at),
                "errors": e.errors,
            })),
            "reloads": { "succeeded": info.reloads_ok, "failed": info.reloads_failed },
        },
        "realms": realms,
    })
}

pub async fn status(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Action::ReloadStatus)?;
    Ok(HttpResponse::Ok().json(status_json(&state)))
}
