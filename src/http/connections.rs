//! `/_oauth/connections/*`: connections (third-party OAuth services) and the per-user grants
//! there (see [`crate::connections`] and docs/connections.md).

use super::{EsJson, Parser};
use crate::app::AppState;
use crate::audit::Who;
use crate::auth::caller::Caller;
use crate::auth::{Action, AuthenticationType};
use crate::connections::{PutConnection, Subject};
use crate::error::ApiError;
use crate::secret::Secret;
use crate::tokens::BearerError;
use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

impl Parser for PutConnection {
    const NAME: &'static str = "put_connection_request";
}

/// The body of `_authorize`, `_callback`, `_token` and `_grant`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The user's oidc-realm access token (per-user connections).
    access_token: Option<Secret<String>>,
    /// `_callback`: the URL the browser reached.
    redirect_uri: Option<String>,
    /// `_grant` by an administrator: the user whose grant to remove.
    username: Option<String>,
    realm: Option<String>,
}

impl Parser for GrantRequest {
    const NAME: &'static str = "connection_grant_request";
    const EMPTY_IS_OBJECT: bool = true;
}

impl GrantRequest {
    fn refuse_others(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let given = [
            ("redirect_uri", self.redirect_uri.is_some()),
            ("username", self.username.is_some()),
            ("realm", self.realm.is_some()),
        ];
        let errors: Vec<String> = given
            .iter()
            .filter(|(name, present)| *present && !allowed.contains(name))
            .map(|(name, _)| format!("[{name}] is not supported by this endpoint"))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(&errors))
        }
    }
}

/// The user of an oidc-realm access token, refused as a bearer caller would be.
async fn subject_of(
    state: &AppState,
    req: &HttpRequest,
    token: &Secret<String>,
) -> Result<Subject, ApiError> {
    let header = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        .map_err(|_| ApiError::from(BearerError::Malformed))?;
    let auth = state
        .authenticate_caller(Some(&header), req.path(), req.peer_addr().map(|a| a.ip()))
        .await?;
    if auth.kind != AuthenticationType::Token {
        return Err(ApiError::illegal_argument(
            "connection_subject_not_user",
            "[access_token] must be an oidc-realm access token of a user",
        ));
    }
    Ok(Subject {
        realm: auth.user.realm.name.clone(),
        username: auth.user.username.clone(),
    })
}

/// With `access_token`: the user's grant, for a caller with `use_connections`. Without: the
/// shared grant, for a caller with `shared_action`'s privilege.
async fn caller_and_subject(
    state: &AppState,
    req: &HttpRequest,
    caller: Caller,
    body: &GrantRequest,
    shared_action: Action,
) -> Result<(crate::auth::Authentication, Subject), ApiError> {
    match &body.access_token {
        Some(token) => {
            let auth = caller.require(Action::ConnectionUse)?;
            let subject = subject_of(state, req, token).await?;
            Ok((auth, subject))
        }
        None => Ok((caller.require(shared_action)?, Subject::shared())),
    }
}

/// `GET /_oauth/connections`.
pub async fn get_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    caller.require(Action::ConnectionGet)?;
    let rt = state.runtime();
    let all = state
        .connections
        .list(&rt.settings.connections, None)
        .await?;
    Ok(HttpResponse::Ok().json(all))
}

/// `GET /_oauth/connections/{name}`.
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    caller.require(Action::ConnectionGet)?;
    let rt = state.runtime();
    let one = state
        .connections
        .list(&rt.settings.connections, Some(&name))
        .await?;
    Ok(HttpResponse::Ok().json(one))
}

/// `PUT /_oauth/connections/{name}`.
pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: EsJson<PutConnection>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    let auth = caller.require(Action::ConnectionManage)?;
    let rt = state.runtime();
    let created = state
        .connections
        .put(&rt.settings.connections, &name, body.0, Who::of(&auth.user))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "connection": { "created": created } })))
}

/// `DELETE /_oauth/connections/{name}[?force=true]`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let params = super::query_params(&req, &["force"])?;
    let force = match params
        .iter()
        .find(|(k, _)| k == "force")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(other) => {
            return Err(ApiError::illegal_argument(
                "invalid_parameter",
                format!(
                    "Failed to parse value [{}] as only [true] or [false] are allowed.",
                    crate::text::Cap {
                        max_chars: 40,
                        control: Some(' '),
                        ellipsis: true
                    }
                    .apply(other)
                ),
            ))
        }
    };
    let auth = caller.require(Action::ConnectionDelete)?;
    let rt = state.runtime();
    let revoked = state
        .connections
        .delete(&rt.settings.connections, &name, force, Who::of(&auth.user))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "found": true, "revoked_grants": revoked })))
}

/// `POST /_oauth/connections/{name}/_authorize`.
pub async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: EsJson<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    body.0.refuse_others(&[])?;
    let (auth, subject) =
        caller_and_subject(&state, &req, caller, &body.0, Action::ConnectionManage).await?;
    let rt = state.runtime();
    let (redirect, st) = state
        .connections
        .authorize(
            &rt.settings.connections,
            &name,
            &subject,
            Who::of(&auth.user),
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "redirect": redirect, "state": st })))
}

/// `POST /_oauth/connections/_callback`.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    body.0.refuse_others(&["redirect_uri"])?;
    let Some(url) = body.0.redirect_uri.clone() else {
        return Err(ApiError::validation(&["[redirect_uri] is required"]));
    };
    let (auth, subject) =
        caller_and_subject(&state, &req, caller, &body.0, Action::ConnectionManage).await?;
    let rt = state.runtime();
    let done = state
        .connections
        .callback(
            &rt.settings.connections,
            &url,
            &subject,
            Who::of(&auth.user),
        )
        .await?;
    Ok(HttpResponse::Ok().json(done))
}

/// `POST /_oauth/connections/{name}/_token`.
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: EsJson<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    body.0.refuse_others(&[])?;
    // A shared grant serves every facilitator with `use_connections`.
    let (auth, subject) =
        caller_and_subject(&state, &req, caller, &body.0, Action::ConnectionUse).await?;
    let rt = state.runtime();
    let token = state
        .connections
        .token(
            &rt.settings.connections,
            &name,
            &subject,
            Who::of(&auth.user),
        )
        .await?;
    Ok(HttpResponse::Ok().json(token))
}

/// `DELETE /_oauth/connections/{name}/_grant`: the user's own (`access_token`, with
/// `use_connections`), any user's (`realm` + `username`, with `manage_connections`), or the
/// shared grant (empty body, `manage_connections`).
pub async fn delete_grant(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: EsJson<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    let body = body.0;
    let (auth, subject) = match (&body.access_token, &body.username, &body.realm) {
        (Some(_), None, None) => {
            body.refuse_others(&[])?;
            caller_and_subject(&state, &req, caller, &body, Action::ConnectionManage).await?
        }
        (None, Some(u), Some(r)) => {
            body.refuse_others(&["username", "realm"])?;
            let auth = caller.require(Action::ConnectionManage)?;
            (
                auth,
                Subject {
                    realm: r.clone(),
                    username: u.clone(),
                },
            )
        }
        (None, None, None) => {
            body.refuse_others(&[])?;
            (caller.require(Action::ConnectionManage)?, Subject::shared())
        }
        _ => return Err(ApiError::validation(&[
            "give either [access_token], or [realm] and [username], or neither (the shared grant)",
        ])),
    };
    let rt = state.runtime();
    let Some(at_service) = state
        .connections
        .revoke(
            &rt.settings.connections,
            &name,
            &subject,
            Who::of(&auth.user),
        )
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "no grant at connection [{name}] for this user"
        )));
    };
    Ok(HttpResponse::Ok().json(json!({ "revoked": true, "revoked_at_service": at_service })))
}
