//! `GET /_security/oidc/_status`: the running configuration, the last reload error, and each
//! realm's key set. Never a secret.

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::Action;
use crate::clock::UnixMillis;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

/// `2026-11-25T17:21:54.123Z` for epoch milliseconds.
pub fn iso8601(ms: UnixMillis) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_formats() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::iso8601(1_790_000_000_123),
            "2026-09-21T14:13:20.123Z"
        );
        assert_eq!(super::iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
