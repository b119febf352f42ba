//! The [`Caller`] extractor: authenticates the caller of a request with the state's
//! [`Authenticator`](crate::auth::caller::Authenticator); a refused caller is audited here,
//! where the refusal's reason code (decided by [`super::errors`]) is known.

use crate::app::AppState;
use crate::audit::{Audit, AuditEvent, Capped, Method};
use crate::auth::caller::{Caller, CallerRefused, PasswordRefused, Refusal};
use crate::error::ApiError;
use crate::metrics::Limit;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req.headers().get(AUTHORIZATION).cloned();
        let uri = req.uri().path().to_string();
        let client = req.peer_addr().map(|a| a.ip());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState not registered"))?;
            match state
                .authenticate_caller(header.as_ref(), &uri, client)
                .await
            {
                Ok(auth) => Ok(state.caller(auth, client)),
                Err(refused) => Err(audited(&state.audit, refused)),
            }
        })
    }
}

/// The answer to a refused caller, audited: `authentication_failed` with its reason code
/// (and the Basic user name, when one was given), `rate_limited` when the address used its
/// password checks; nothing for a server-side failure (overload, store outage), which the
/// metrics and the log record.
fn audited(audit: &Audit, refused: CallerRefused) -> ApiError {
    let principal = match &refused.why {
        Refusal::Password { username, .. } => Some(Capped::new(username)),
        _ => None,
    };
    // `Some(Ok)`: refused credentials; `Some(Err(secs))`: throttled; `None`: not audited.
    let audited = match &refused.why {
        Refusal::Password {
            refused: PasswordRefused::Throttled(secs),
            ..
        } => Some(Err(*secs)),
        Refusal::Password {
            refused: PasswordRefused::Busy,
            ..
        }
        | Refusal::Token(_) => None,
        _ => Some(Ok(())),
    };
    let error = ApiError::from(refused);
    match audited {
        Some(Ok(())) => audit.emit(
            None,
            AuditEvent::AuthenticationFailed {
                method: Method::Request,
                reason_code: error.code(),
                realm: None,
                principal,
            },
        ),
        Some(Err(secs)) => audit.emit(
            None,
            AuditEvent::RateLimited {
                limit: Limit::PasswordChecks.as_str(),
                retry_after_secs: secs,
            },
        ),
        None => {}
    }
    error
}
