//! `POST /_security/profile/_activate` and `GET /_security/profile/{uid}`: Elasticsearch's user
//! profiles, which Kibana activates after every login (see [`crate::profiles`]).

use super::{EsJson, Parser};
use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::{Action, AuthenticationType};
use crate::error::ApiError;
use crate::model::UserRecord;
use crate::profiles::{self, DataFilter};
use crate::secret::Secret;
use crate::tokens::BearerError;
use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /_security/profile/_activate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    grant_type: Option<String>,
    access_token: Option<Secret<String>>,
    username: Option<String>,
    password: Option<Secret<String>>,
}

impl Parser for ActivateRequest {
    const NAME: &'static str = "activate_profile_request";
}

/// The grant of an activation request, validated.
enum Grant<'a> {
    AccessToken(&'a str),
    Password(&'a str, &'a str),
}

impl ActivateRequest {
    /// Elasticsearch's grant rules (`Grant.validate`), every violation collected. An empty
    /// string counts as absent.
    fn validate(&self) -> Result<Grant<'_>, Vec<String>> {
        fn given(v: Option<&str>) -> Option<&str> {
            v.filter(|s| !s.is_empty())
        }
        let access_token = given(
            self.access_token
                .as_ref()
                .map(|s| s.expose_secret().as_str()),
        );
        let username = given(self.username.as_deref());
        let password = given(self.password.as_ref().map(|s| s.expose_secret().as_str()));
        let Some(grant) = self.grant_type.as_deref() else {
            return Err(vec!["[grant_type] is required".to_string()]);
        };
        /// Fields by name, with whether the request gives them.
        type Fields<'f> = &'f [(&'f str, bool)];
        let (required, unsupported): (Fields<'_>, Fields<'_>) = match grant {
            "password" => (
                &[
                    ("username", username.is_some()),
                    ("password", password.is_some()),
                ],
                &[("access_token", access_token.is_some())],
            ),
            "access_token" => (
                &[("access_token", access_token.is_some())],
                &[
                    ("username", username.is_some()),
                    ("password", password.is_some()),
                ],
            ),
            other => return Err(vec![format!("grant_type [{other}] is not supported")]),
        };
        let mut errors = Vec::new();
        for (name, present) in required {
            if !present {
                errors.push(format!("[{name}] is required for grant_type [{grant}]"));
            }
        }
        for (name, present) in unsupported {
            if *present {
                errors.push(format!(
                    "[{name}] is not supported for grant_type [{grant}]"
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        match (access_token, username, password) {
            (Some(token), _, _) => Ok(Grant::AccessToken(token)),
            (_, Some(u), Some(p)) => Ok(Grant::Password(u, p)),
            // Unreachable after the checks above; refused all the same.
            _ => Err(vec![format!("grant_type [{grant}] is not supported")]),
        }
    }
}

/// The user a grant stands for: the user of an oidc-realm access token (refused exactly as a
/// bearer caller would be), or a configured user with its password.
async fn subject(
    state: &AppState,
    req: &HttpRequest,
    grant: &Grant<'_>,
) -> Result<UserRecord, ApiError> {
    let auth = match *grant {
        Grant::AccessToken(token) => {
            let header = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ApiError::from(BearerError::Malformed))?;
            state
                .authenticate_caller(Some(&header), req.path(), req.peer_addr().map(|a| a.ip()))
                .await?
        }
        Grant::Password(username, password) => state
            .verify_password(username, password, req.peer_addr().map(|a| a.ip()))
            .await
            .map_err(|r| {
                super::errors::password_refused(
                    r,
                    format!(
                        "unable to authenticate user [{username}] for action [{}]",
                        Action::ProfileActivate.name()
                    ),
                )
            })?,
    };
    if auth.kind == AuthenticationType::ServiceAccount {
        return Err(ApiError::illegal_argument(
            "profile_subject_not_user",
            "profile is supported for user only, but subject is a [service_account]",
        ));
    }
    Ok((*auth.user).clone())
}

/// `POST /_security/profile/_activate`.
pub async fn activate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<ActivateRequest>,
) -> Result<HttpResponse, ApiError> {
    super::query_params(&req, &[])?;
    let body = body.0;
    // Elasticsearch validates the request before it authorizes the action.
    let grant = body
        .validate()
        .map_err(|errors| ApiError::validation(&errors))?;
    let caller = caller.require(Action::ProfileActivate)?;
    let user = subject(&state, &req, &grant).await?;
    let store = state.tokens.store().clone();
    let now = state.clock.now_millis();
    let profile = profiles::activate(&*store, &user, now).await?;
    tracing::info!(
        target: "audit",
        event = "profile_activated",
        by = ?caller.user.username,
        uid = %profile.doc.uid,
        username = ?user.username,
        realm = ?user.realm.name,
        seq_no = profile.seq_no,
        "user profile activated"
    );
    Ok(HttpResponse::Ok().json(profile.view(&DataFilter::none())))
}

/// `GET /_security/profile/{uid}[,{uid}...]`: the profiles found, in the order asked, and an
/// `errors` block naming the others (still 200, as in Elasticsearch 8).
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    uids: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let params = super::query_params(&req, &["data"])?;
    caller.require(Action::ProfileGet)?;
    let keys: Vec<&str> = params.iter().map(|(_, v)| v.as_str()).collect();
    let data = DataFilter::parse(&keys.join(","));
    let mut seen = std::collections::HashSet::new();
    let asked: Vec<&str> = uids
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty() && seen.insert(*u))
        .collect();
    let store = state.tokens.store().clone();
    let mut found = Vec::new();
    let mut missing = Map::new();
    for uid in asked {
        let profile = if profiles::is_uid(uid) {
            profiles::get(&*store, uid).await?
        } else {
            None
        };
        match profile {
            Some(p) => found.push(serde_json::to_value(p.view(&data)).map_err(|e| {
                ApiError::internal(format!("profile [{uid}] does not serialize: {e}"))
            })?),
            None => {
                missing.insert(
                    uid.to_string(),
                    json!({"type": "resource_not_found_exception", "reason": "profile document not found"}),
                );
            }
        }
    }
    let mut body = json!({ "profiles": found });
    if !missing.is_empty() {
        body["errors"] = json!({"count": missing.len(), "details": Value::Object(missing)});
    }
    Ok(HttpResponse::Ok().json(body))
}
