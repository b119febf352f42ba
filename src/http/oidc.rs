//! `POST /_security/oidc/prepare`, `/authenticate` and `/logout` (spec §2).

use super::{EsJson, Parser};
use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::{user_json, Action, AuthenticationType};
use crate::error::ApiError;
use crate::metrics::{Limit, TokenEvent};
use crate::realm::flow::{FlowError, PendingLimit, TOO_MANY_PENDING_RETRY_AFTER};
use crate::realm::{
    self, AuthenticateParams, LoginContext, LoginError, LogoutError, PrepareError, PrepareParams,
};
use crate::secret::Secret;
use crate::store::FlowLimits;
use crate::tokens::BearerError;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

const AUTHN_FAILED: &str =
    "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]";

/// Body of `prepare`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    realm: Option<String>,
    iss: Option<String>,
    login_hint: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
}

impl Parser for PrepareRequest {
    const NAME: &'static str = "oidc_prepare_authentication";
}

/// Body of `authenticate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    redirect_uri: Option<String>,
    state: Option<Secret<String>>,
    nonce: Option<Secret<String>>,
    realm: Option<String>,
}

impl Parser for AuthenticateRequest {
    const NAME: &'static str = "oidc_authn";
}

/// Body of `logout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    token: Option<Secret<String>>,
    refresh_token: Option<Secret<String>>,
}

impl Parser for LogoutRequest {
    const NAME: &'static str = "oidc_logout";
}

/// The bounds on pending logins (`limits.pending_logins_per_caller`, `limits.pending_logins`).
fn flow_limits(state: &AppState) -> FlowLimits {
    let limits = state.runtime().settings.limits;
    FlowLimits {
        per_caller: limits.pending_logins_per_caller,
        total: limits.pending_logins,
    }
}

/// The `reason_code` of a prepare refused for too many pending logins.
pub const TOO_MANY_PENDING_CODE: &str = "too_many_pending_logins";

/// 429 `es_rejected_execution_exception` (Elasticsearch's type for rejected work) with
/// `Retry-After`: the caller (or, past the global cap, every caller) has too many logins
/// pending. Not a store outage: that stays a 503.
fn too_many_pending(limit: PendingLimit) -> ApiError {
    ApiError::too_many_requests(
        TOO_MANY_PENDING_CODE,
        limit.to_string(),
        TOO_MANY_PENDING_RETRY_AFTER.as_secs(),
    )
}

fn realm_lookup_error(reason: String) -> ApiError {
    // Elasticsearch answers 500 here; a missing realm is the caller's mistake, so 400
    // (a documented deviation).
    ApiError::security_400("realm_not_found", reason)
}

/// `POST /_security/oidc/prepare`.
pub async fn prepare(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<PrepareRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    // Elasticsearch validates a request before it authorizes it (then 400 before 403).
    let by_name = match (&req.realm, &req.iss) {
        (None, None) => {
            return Err(ApiError::validation(&[
                "one of [realm, issuer] must be provided",
            ]))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(&[
                "only one of [realm, issuer] can be provided in the same request",
            ]))
        }
        (Some(name), None) => Ok(name.as_str()),
        (None, Some(iss)) => Err(iss.as_str()),
    };
    let caller = caller.require(Action::OidcPrepare)?;
    let realms = state.runtime().realms.clone();
    let realm = match by_name {
        Ok(name) => realms.get(name).cloned().ok_or_else(|| {
            realm_lookup_error(format!(
                "Cannot find OpenID Connect realm with name [{name}]"
            ))
        })?,
        Err(iss) => match realm::realm_for_issuer(&realms, iss) {
            Ok(r) => r.clone(),
            Err(0) => {
                return Err(realm_lookup_error(format!(
                    "Cannot find OpenID Connect realm with issuer [{iss}]"
                )))
            }
            Err(_) => {
                return Err(realm_lookup_error(format!(
                    "Found multiple OpenID Connect realm with issuer [{iss}]"
                )))
            }
        },
    };
    let no_roles = |_: &crate::claims::MappedUser, _: &str| Vec::new();
    let ctx = LoginContext {
        tokens: &state.tokens,
        clock: state.clock.as_ref(),
        lifetimes: state.lifetimes(),
        flows: state.flows(),
        flow_limits: flow_limits(&state),
        caller: caller.client_ref(),
        roles: &no_roles,
    };
    let params = PrepareParams {
        state: req.state,
        nonce: req.nonce,
        login_hint: req.login_hint,
    };
    let resp = realm::prepare(&realm, params, &ctx)
        .await
        .map_err(|e| match e {
            PrepareError::StateInUse => ApiError::illegal_argument(
                "state_in_use",
                "the state is already used by a pending login; let prepare generate one",
            ),
            PrepareError::Invalid(m) => ApiError::validation(&[m]),
            PrepareError::TooManyPending(limit) => {
                state.metrics.rate_limited(Limit::PendingLogins);
                too_many_pending(limit)
            }
            // A store outage: 503 `store_unavailable`.
            PrepareError::Flow(FlowError::Store(s)) => s.into(),
            PrepareError::Flow(f) => ApiError::internal(f.to_string()),
        })?;
    state.metrics.prepared(realm.name());
    Ok(HttpResponse::Ok().json(resp))
}

/// `POST /_security/oidc/authenticate`.
pub async fn authenticate(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<AuthenticateRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let mut missing = Vec::new();
    if req
        .state
        .as_ref()
        .is_none_or(|s| s.expose_secret().is_empty())
    {
        missing.push("state parameter is missing");
    }
    if req
        .nonce
        .as_ref()
        .is_none_or(|s| s.expose_secret().is_empty())
    {
        missing.push("nonce parameter is missing");
    }
    if req.redirect_uri.as_deref().is_none_or(str::is_empty) {
        missing.push("redirect_uri parameter is missing");
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(&missing));
    }
    let caller = caller.require(Action::OidcAuthenticate)?;
    let rt = state.runtime();
    let roles = |user: &crate::claims::MappedUser, realm: &str| {
        state.roles_for(&crate::roles::UserModel {
            username: user.principal.clone(),
            dn: user.dn.clone(),
            groups: user.groups.clone(),
            metadata: user.metadata.clone(),
            realm_name: realm.to_string(),
        })
    };
    let ctx = LoginContext {
        tokens: &state.tokens,
        clock: state.clock.as_ref(),
        lifetimes: state.lifetimes(),
        flows: state.flows(),
        flow_limits: flow_limits(&state),
        caller: caller.client_ref(),
        roles: &roles,
    };
    // The realm label of a failure: the requested realm when it is configured (a label never
    // takes an unchecked request value), else empty.
    let requested_realm = req
        .realm
        .as_deref()
        .and_then(|r| rt.realms.get(r))
        .map(|r| r.name().to_string());
    let params = AuthenticateParams {
        redirect_uri: req.redirect_uri.unwrap_or_default(),
        state: req.state.unwrap_or_default(),
        nonce: req.nonce.unwrap_or_default(),
        realm: req.realm,
    };
    let outcome = realm::authenticate(&rt.realms, params, &ctx)
        .await
        .map_err(|e| {
            let realm = requested_realm.as_deref().unwrap_or("");
            state.metrics.login_failed(realm, e.code());
            login_error(e)
        })?;
    state.metrics.login_succeeded(&outcome.user.realm.name);
    state.metrics.token(TokenEvent::Issued);
    let expires_in = ctx.lifetimes.access.as_secs();
    let mut body = super::token::token_response(
        &outcome.pair,
        expires_in,
        user_json(&outcome.user, AuthenticationType::Realm),
    );
    body["username"] = json!(outcome.user.username);
    Ok(HttpResponse::Ok().json(body))
}

/// A failed login: 401 with Elasticsearch's generic body; the cause goes to the log.
fn login_error(e: LoginError) -> ApiError {
    match e {
        // The login itself succeeded; minting its tokens failed: a server error (503 for a
        // store outage, 500 otherwise), not a refused login.
        LoginError::Token(t) => t.into(),
        other => {
            tracing::warn!(target: "audit", event = "oidc_login_failed", code = other.code(), cause = ?other.to_string(), "login failed");
            ApiError::unauthenticated(other.code(), AUTHN_FAILED).with_detail(other.to_string())
        }
    }
}

/// `POST /_security/oidc/logout`.
pub async fn logout(
    state: web::Data<AppState>,
    caller: Caller,
    body: EsJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let Some(token) = req.token.filter(|t| !t.expose_secret().is_empty()) else {
        return Err(ApiError::validation(&["token is missing"]));
    };
    caller.require(Action::OidcLogout)?;
    let rt = state.runtime();
    let refresh = req
        .refresh_token
        .as_ref()
        .map(|r| r.expose_secret().as_str())
        .filter(|r| !r.is_empty());
    let redirect = realm::logout(&rt.realms, token.expose_secret(), refresh, &state.tokens)
        .await
        .map_err(|e| match e {
            LogoutError::TokenInvalid => BearerError::Expired.into(),
            LogoutError::NotOidc => ApiError::illegal_argument(
                "token_not_oidc",
                "Access token is not valid for an OpenID Connect realm",
            ),
            LogoutError::Token(t) => t.into(),
        })?;
    state.metrics.logout();
    Ok(HttpResponse::Ok().json(json!({ "redirect": redirect })))
}
