//! The [`Caller`] extractor: authenticates the caller of a request with the state's
//! [`Authenticator`](crate::auth::caller::Authenticator).

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::error::ApiError;
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
            let auth = state
                .authenticate_caller(header.as_ref(), &uri, client)
                .await?;
            Ok(state.callers.caller(auth, client))
        })
    }
}
