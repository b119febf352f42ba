//! `PUT`/`POST`/`GET`/`DELETE /_security/role_mapping[/{name}]` (spec §5.1), with
//! Elasticsearch's bodies, messages and status codes. Mappings from the configuration are
//! shown (with `"source": "file"`) but cannot be written or deleted here.

use super::{EsJson, Parser};
use crate::app::AppState;
use crate::audit::Who;
use crate::auth::caller::Caller;
use crate::auth::Action;
use crate::error::ApiError;
use crate::roles::RoleMapper;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

/// A role-mapping body: any JSON object, read strictly (duplicate keys refused at any depth);
/// its fields are checked by `RoleMapping::parse`.
#[derive(Debug)]
pub struct MappingBody(pub Value);

impl Parser for MappingBody {
    const NAME: &'static str = "role-mapping";
}

/// How deep a role-mapping body may nest (rules nest; 64 levels is far beyond any real one).
const MAX_BODY_DEPTH: usize = 64;

impl<'de> Deserialize<'de> for MappingBody {
    /// Duplicate members are refused at any depth (`Value` would silently keep the last).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::deserialize_strict(d, MAX_BODY_DEPTH).map(MappingBody)
    }
}

/// Query parameters: `refresh` (accepted and ignored: every write is visible on return) and
/// the common ones ([`super::query_params`]); others are refused as Elasticsearch does.
fn check_params(req: &HttpRequest, allow_refresh: bool) -> Result<(), ApiError> {
    let allowed: &[&str] = if allow_refresh { &["refresh"] } else { &[] };
    for (_, v) in super::query_params(req, allowed)? {
        if !matches!(v.as_str(), "" | "true" | "false" | "wait_for") {
            return Err(ApiError::illegal_argument(
                "invalid_parameter",
                format!("Unknown value for refresh: [{v}]."),
            ));
        }
    }
    Ok(())
}

/// `PUT`/`POST /_security/role_mapping/{name}`.
pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: EsJson<MappingBody>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller.require(Action::RoleMappingPut)?;
    check_params(&req, true)?;
    let name = name.into_inner();
    let created = state
        .role_mappings
        .put(Who::of(&caller.user), &name, &body.0 .0)
        .await?;
    tracing::info!(mapping = ?name, created, "role mapping written");
    Ok(HttpResponse::Ok().json(json!({"role_mapping": {"created": created}})))
}

/// `DELETE /_security/role_mapping/{name}`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller.require(Action::RoleMappingDelete)?;
    check_params(&req, true)?;
    let name = name.into_inner();
    let found = state
        .role_mappings
        .delete(Who::of(&caller.user), &name)
        .await?;
    if found {
        tracing::info!(mapping = ?name, "role mapping deleted");
        Ok(HttpResponse::Ok().json(json!({"found": true})))
    } else {
        Ok(HttpResponse::NotFound().json(json!({"found": false})))
    }
}

/// `GET /_security/role_mapping`.
pub async fn get_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::RoleMappingGet)?;
    check_params(&req, false)?;
    let mapper = snapshot(&state).await?;
    let mut out = Map::new();
    for (m, source) in mapper.all() {
        out.insert(m.name.clone(), shown(m, source));
    }
    Ok(HttpResponse::Ok().json(Value::Object(out)))
}

/// `GET /_security/role_mapping/{name}[,{name}...]`: those found; 404 `{}` if none is.
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    names: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::RoleMappingGet)?;
    check_params(&req, false)?;
    let mapper = snapshot(&state).await?;
    let mut out = Map::new();
    let names: Vec<&str> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.contains(&"*") || names.contains(&"_all") {
        for (m, source) in mapper.all() {
            out.insert(m.name.clone(), shown(m, source));
        }
        return Ok(HttpResponse::Ok().json(Value::Object(out)));
    }
    for name in names {
        if let Some((m, source)) = mapper.get(name) {
            out.insert(m.name.clone(), shown(m, source));
        }
    }
    if out.is_empty() {
        return Ok(HttpResponse::NotFound().json(json!({})));
    }
    Ok(HttpResponse::Ok().json(Value::Object(out)))
}

async fn snapshot(state: &AppState) -> Result<std::sync::Arc<RoleMapper>, ApiError> {
    state.role_mappings.ensure_loaded().await?;
    Ok(state.role_mappings.snapshot())
}

/// Elasticsearch's form plus `"source": "file" | "api"`.
fn shown(m: &crate::roles::RoleMapping, source: crate::roles::Source) -> Value {
    let mut v = m.to_es_json();
    v["source"] = json!(source.as_str());
    v
}
