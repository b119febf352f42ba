//! The one place where failures become HTTP responses.
//!
//! Clients get Elasticsearch's error body (`error.root_cause`, `error.type`, `error.reason`,
//! `status`), plus a stable `reason_code` and the request's `correlation_id` (also sent as the
//! `x-correlation-id` header). The precise cause goes to the server log only, tagged with the
//! same correlation id. Get-token errors use the OAuth 2.0 shape instead, as in Elasticsearch.

use actix_web::http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};
use std::fmt;

tokio::task_local! {
    /// The correlation id of the request being served (set by the middleware in `app`).
    pub static CORRELATION_ID: String;
}

/// The header carrying the correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The `WWW-Authenticate` challenge for HTTP Basic.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"security\" charset=\"UTF-8\"";
/// The `WWW-Authenticate` challenge for bearer tokens.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"security\"";

/// The correlation id of the current request, or `-` outside a request.
pub fn correlation_id() -> String {
    CORRELATION_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".to_string())
}

#[derive(Debug, Clone)]
enum Shape {
    /// `{"error":{...},"status":N}`
    Elasticsearch,
    /// `{"error":"...","error_description":"..."}`
    OAuth { error: &'static str },
}

/// An error answered to a client (boxed: errors travel in `Result`s on hot paths).
#[derive(Clone)]
pub struct ApiError(Box<Inner>);

#[derive(Clone)]
/// The parts of an [`ApiError`].
pub struct Inner {
    status: StatusCode,
    /// Elasticsearch exception type, e.g. `security_exception`.
    kind: &'static str,
    /// Client-visible reason. Never contains a secret, token, nonce or code.
    reason: String,
    /// Stable machine-readable reason code.
    code: &'static str,
    challenges: Vec<String>,
    /// Elasticsearch's `caused_by` (type, reason), when the error wraps another.
    caused_by: Option<(&'static str, String)>,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
    /// The precise cause, for the server log only.
    detail: Option<String>,
    shape: Shape,
}

impl std::ops::Deref for ApiError {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status.as_u16())
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.reason)
    }
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, reason: String) -> Self {
        Self(Box::new(Inner {
            status,
            kind,
            reason,
            code,
            challenges: Vec::new(),
            caused_by: None,
            retry_after: None,
            detail: None,
            shape: Shape::Elasticsearch,
        }))
    }

    /// Attach the precise cause, logged with the correlation id and never sent.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 400 `action_request_validation_exception`: `Validation Failed: 1: a;2: b;`.
    pub fn validation<S: AsRef<str>>(messages: &[S]) -> Self {
        let mut reason = String::from("Validation Failed: ");
        for (i, m) in messages.iter().enumerate() {
            reason.push_str(&format!("{}: {};", i + 1, m.as_ref()));
        }
        Self::new(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "validation_failed",
            reason,
        )
    }

    /// 400 `x_content_parse_exception` for a body that does not parse.
    pub fn parse(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "x_content_parse_exception",
            "body_parse_error",
            reason.into(),
        )
    }

    /// 400 `parse_exception` (Elasticsearch's `ElasticsearchParseException`), e.g. an invalid
    /// role mapping: `failed to parse role-mapping [<name>]. missing field [enabled]`.
    pub fn parse_exception(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "parse_exception",
            code,
            reason.into(),
        )
    }

    /// 400 `illegal_argument_exception`.
    pub fn illegal_argument(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            code,
            reason.into(),
        )
    }

    /// 400 `security_exception` (e.g. a realm that prepare cannot find).
    pub fn security_400(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "security_exception",
            code,
            reason.into(),
        )
    }

    /// 401 for a missing or failed Basic/Bearer authentication of the caller.
    pub fn unauthenticated(code: &'static str, reason: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            code,
            reason.into(),
        );
        e.challenges = vec![BASIC_CHALLENGE.to_string(), BEARER_CHALLENGE.to_string()];
        e
    }

    /// 401 for a bearer token that is expired, unknown, invalidated or malformed, with
    /// Elasticsearch's `error="invalid_token"` challenge.
    pub fn invalid_token(code: &'static str, description: &str) -> Self {
        let reason = match code {
            "token_malformed" => "token malformed".to_string(),
            _ => "token expired".to_string(),
        };
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "security_exception", code, reason);
        e.challenges = vec![format!(
            "Bearer realm=\"security\", error=\"invalid_token\", error_description=\"{description}\""
        )];
        e
    }

    /// 403: the caller lacks the privilege for `action`.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "security_exception",
            "action_unauthorized",
            reason.into(),
        )
    }

    /// 404 `resource_not_found_exception`.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_not_found_exception",
            "not_found",
            reason.into(),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "illegal_argument_exception",
            "method_not_allowed",
            reason.into(),
        )
    }

    /// 409 `version_conflict_engine_exception`: a document was written concurrently; the
    /// client may retry.
    pub fn conflict(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "version_conflict_engine_exception",
            code,
            reason.into(),
        )
    }

    /// 413: the body is larger than `http.max_body`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "content_too_long_exception",
            "body_too_large",
            format!("request body is larger than the limit of [{limit}] bytes"),
        )
    }

    /// 406, as Elasticsearch answers a body whose `Content-Type` it cannot read:
    /// `Content-Type header [text/plain] is not supported` (or `... is missing`).
    pub fn unsupported_media_type(content_type: Option<&str>) -> Self {
        let reason = match content_type {
            Some(ct) => format!(
                "Content-Type header [{}] is not supported",
                crate::text::shown_header(ct)
            ),
            None => "Content-Type header is missing".to_string(),
        };
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "media_type_header_exception",
            "unsupported_media_type",
            reason,
        )
    }

    /// 400 for an invalid `Accept`/`Content-Type` (e.g. an unknown `compatible-with`
    /// version), with Elasticsearch's reason and the precise problem (of type `cause_kind`)
    /// as `caused_by`.
    pub fn media_type_header(cause_kind: &'static str, cause: String) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "media_type_header_exception",
            "invalid_media_type",
            "Invalid media-type value on headers [Content-Type, Accept]".to_string(),
        );
        e.caused_by = Some((cause_kind, cause));
        e
    }

    /// 400 in the OAuth 2.0 shape used by the get-token API.
    pub fn oauth(error: &'static str, description: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, error, error, description.into());
        e.shape = Shape::OAuth { error };
        e
    }

    /// 500 with a generic reason; `detail` goes to the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "internal_error",
            "internal error; see the server log for this correlation id".to_string(),
        )
        .with_detail(detail)
    }

    /// 429 `es_rejected_execution_exception` (Elasticsearch's type for rejected work), with
    /// `Retry-After: <seconds>`: this client sent too much of something; it may retry later.
    pub fn too_many_requests(
        code: &'static str,
        reason: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            code,
            reason.into(),
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503: too much work in flight (e.g. password verifications); the client may retry.
    pub fn busy(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "es_rejected_execution_exception",
            "overloaded",
            reason.into(),
        )
    }

    /// 502 `exception`: a service oidc-realm called for the client (a connection's token
    /// endpoint) failed or answered something unusable; `detail` goes to the log.
    pub fn bad_gateway(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "exception", code, reason.into())
    }

    /// 503: the store cannot be reached.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_shards_exception",
            "store_unavailable",
            "the token store is unavailable".to_string(),
        )
        .with_detail(detail)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The JSON body sent to the client.
    pub fn body(&self, correlation_id: &str) -> Value {
        match &self.shape {
            Shape::OAuth { error } => json!({
                "error": error,
                "error_description": self.reason,
            }),
            Shape::Elasticsearch => {
                let mut cause = json!({ "type": self.kind, "reason": self.reason });
                if !self.challenges.is_empty() {
                    cause["header"] = json!({ "WWW-Authenticate": self.challenges });
                }
                let mut error = cause.clone();
                error["root_cause"] = json!([cause]);
                if let Some((kind, reason)) = &self.caused_by {
                    error["caused_by"] = json!({ "type": kind, "reason": reason });
                }
                error["reason_code"] = json!(self.code);
                error["correlation_id"] = json!(correlation_id);
                json!({ "error": error, "status": self.status.as_u16() })
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let id = correlation_id();
        let detail = self.detail.as_deref().unwrap_or("");
        if self.status.is_server_error() {
            tracing::error!(correlation_id = %id, status = self.status.as_u16(), code = self.code, reason = ?self.reason, detail, "request failed");
        } else {
            tracing::info!(correlation_id = %id, status = self.status.as_u16(), code = self.code, reason = ?self.reason, detail, "request refused");
        }
        let mut resp = HttpResponse::build(self.status);
        for c in &self.challenges {
            if let Ok(v) = HeaderValue::from_str(c) {
                resp.append_header((WWW_AUTHENTICATE, v));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.insert_header((HeaderName::from_static(CORRELATION_HEADER), v));
        }
        if let Some(secs) = self.retry_after {
            resp.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        resp.json(self.body(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reason_is_numbered_like_elasticsearch() {
        let e = ApiError::validation(&["state parameter is missing", "nonce parameter is missing"]);
        assert_eq!(
            e.reason(),
            "Validation Failed: 1: state parameter is missing;2: nonce parameter is missing;"
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body = e.body("abc");
        assert_eq!(body["status"], 400);
        assert_eq!(body["error"]["type"], "action_request_validation_exception");
        assert_eq!(
            body["error"]["root_cause"][0]["reason"],
            body["error"]["reason"]
        );
        assert_eq!(body["error"]["correlation_id"], "abc");
    }

    #[test]
    fn unauthenticated_echoes_challenges_in_body() {
        let body = ApiError::unauthenticated("x", "nope").body("id");
        assert_eq!(
            body["error"]["header"]["WWW-Authenticate"][0],
            BASIC_CHALLENGE
        );
        assert_eq!(
            body["error"]["root_cause"][0]["header"]["WWW-Authenticate"][1],
            BEARER_CHALLENGE
        );
    }

    #[test]
    fn oauth_shape() {
        let body = ApiError::oauth("invalid_grant", "token has been invalidated").body("id");
        assert_eq!(
            body,
            json!({"error":"invalid_grant","error_description":"token has been invalidated"})
        );
    }

    #[test]
    fn detail_is_not_in_body_or_debug() {
        let e = ApiError::internal("secret-ish detail");
        assert!(!e.body("id").to_string().contains("secret-ish"));
        assert!(!format!("{e:?}").contains("secret-ish"));
    }
}
