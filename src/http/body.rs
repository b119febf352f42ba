//! Request bodies: JSON only (`application/json` or Elasticsearch's vendor JSON type), within
//! `http.max_body`, parsed strictly (unknown and duplicate fields refused) into
//! Elasticsearch-shaped 400/406/413 errors.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// A request body type, with the parser name Elasticsearch reports in its errors.
pub trait Parser: DeserializeOwned + 'static {
    /// e.g. `oidc_authn`.
    const NAME: &'static str;
    /// Whether an absent or empty body means `{}`.
    const EMPTY_IS_OBJECT: bool = false;
}

/// A parsed JSON body.
#[derive(Debug)]
pub struct EsJson<T>(pub T);

/// `application/json` or `application/vnd.elasticsearch+json` (its `compatible-with`
/// version was checked by [`super::compat`]).
fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req.headers().get(CONTENT_TYPE) else {
        return false;
    };
    let Ok(ct) = ct.to_str() else { return false };
    matches!(
        super::compat::parse_media(ct, "Content-Type"),
        Ok(super::compat::Media::Json(_))
    )
}

impl<T: Parser> FromRequest for EsJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<crate::app::AppState>>()
            .map(|s| s.runtime().settings.http.max_body)
            .unwrap_or(64 * 1024);
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let json = is_json(req);
        // Kept as the header value (cheap to clone); turned into text only for an error.
        let content_type = req.headers().get(CONTENT_TYPE).cloned();
        let has_content_type = content_type.is_some();
        let payload = web::Payload::from_request(req, payload).into_inner();
        Box::pin(async move {
            // Refuse an oversized body before reading any of it.
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(ApiError::payload_too_large(limit));
            }
            let payload = payload.map_err(|e| ApiError::parse(format!("unreadable body: {e}")))?;
            let body = match payload.to_bytes_limited(limit).await {
                Err(_) => return Err(ApiError::payload_too_large(limit)),
                Ok(Err(e)) => return Err(ApiError::parse(format!("unreadable body: {e}"))),
                Ok(Ok(b)) => b,
            };
            if body.is_empty() && T::EMPTY_IS_OBJECT && (json || !has_content_type) {
                return parse::<T>(b"{}").map(EsJson);
            }
            if !json {
                let shown =
                    content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                return Err(ApiError::unsupported_media_type(shown.as_deref()));
            }
            if body.is_empty() {
                return Err(ApiError::parse("request body is required"));
            }
            parse::<T>(&body).map(EsJson)
        })
    }
}

/// Parse `bytes` as `T`, turning serde's message into Elasticsearch's
/// `[line:col] [parser] message` form (the message names a field, never a value).
///
/// The top-level value must be an object: serde would otherwise read a JSON array into a
/// struct by position (`["oidc1",null,"hint"]` as `{"realm":"oidc1","login_hint":"hint"}`).
/// Anything else is refused as Elasticsearch's `ObjectParser` refuses it:
/// `[1:1] [token_request] Expected START_OBJECT but was: START_ARRAY`.
pub fn parse<T: Parser>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some((line, column, token)) = non_object_start(bytes) {
        return Err(ApiError::parse(format!(
            "[{line}:{column}] [{}] Expected START_OBJECT but was: {token}",
            T::NAME
        )));
    }
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; keep only the description.
        let msg = msg
            .split(" at line ")
            .next()
            .unwrap_or(&msg)
            .replace('`', "");
        ApiError::parse(format!(
            "[{}:{}] [{}] {}",
            e.line(),
            e.column(),
            T::NAME,
            describe(&msg)
        ))
    })
}

/// Where the document's first token is and its Elasticsearch (Jackson) name, when that token
/// is a value other than an object. `None` for an object, and for a document whose first token
/// is not a JSON value (`nope`, `01`: left to serde's syntax error). As Jackson, an array or
/// a string is known from its first character; a number or literal must be complete.
/// Positions are 1-based; JSON whitespace is ASCII, so counting bytes counts columns.
fn non_object_start(bytes: &[u8]) -> Option<(usize, usize, &'static str)> {
    let (mut line, mut column) = (1usize, 1usize);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => {
                line += 1;
                column = 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                column += 1;
                continue;
            }
            _ => {}
        }
        let token = match b {
            b'{' => return None,
            b'[' => "START_ARRAY",
            b'"' => "VALUE_STRING",
            _ => {
                let rest = bytes.get(i..).unwrap_or_default();
                let end = rest
                    .iter()
                    .position(|c| b" \t\r\n,:[]{}\"".contains(c))
                    .unwrap_or(rest.len());
                match rest.get(..end).unwrap_or_default() {
                    b"true" | b"false" => "VALUE_BOOLEAN",
                    b"null" => "VALUE_NULL",
                    word if serde_json::from_slice::<serde_json::Number>(word).is_ok() => {
                        "VALUE_NUMBER"
                    }
                    _ => return None,
                }
            }
        };
        return Some((line, column, token));
    }
    None
}

/// serde's message with any echoed value removed: `invalid type: string "x", expected a
/// boolean` becomes `invalid type: string, expected a boolean`.
fn describe(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        return format!(
            "unknown field [{}]",
            rest.split(',').next().unwrap_or(rest).trim()
        );
    }
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let kind = rest.split([' ', ',']).next().unwrap_or("");
            let expected = rest.split_once(", expected ").map(|(_, e)| e).unwrap_or("");
            return format!("{}{kind}, expected {expected}", prefix);
        }
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        a: Option<String>,
    }
    impl Parser for Body {
        const NAME: &'static str = "test_parser";
    }

    #[test]
    fn unknown_field_named_like_elasticsearch() {
        let e = parse::<Body>(br#"{"foo":1}"#).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(
            e.reason().contains("[test_parser] unknown field [foo]"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn duplicate_and_malformed_refused() {
        assert!(parse::<Body>(br#"{"a":"x","a":"y"}"#)
            .unwrap_err()
            .reason()
            .contains("duplicate field"));
        assert!(parse::<Body>(b"{").is_err());
        assert!(parse::<Body>(b"[]").is_err());
        assert!(parse::<Body>(b"{}").is_ok());
        assert!(parse::<Body>(b" \r\n\t{\"a\":\"x\"} ").is_ok());
        assert!(parse::<Body>(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn only_an_object_is_a_body() {
        // serde alone reads this one by position.
        let positional: Result<Body, _> = serde_json::from_slice(br#"["x"]"#);
        assert!(positional.is_ok());
        for (body, reason) in [
            (
                &br#"["x"]"#[..],
                "[1:1] [test_parser] Expected START_OBJECT but was: START_ARRAY",
            ),
            (
                b"[",
                "[1:1] [test_parser] Expected START_OBJECT but was: START_ARRAY",
            ),
            (
                b"\n\n   [\"x\"]",
                "[3:4] [test_parser] Expected START_OBJECT but was: START_ARRAY",
            ),
            (
                b"\"x\"",
                "[1:1] [test_parser] Expected START_OBJECT but was: VALUE_STRING",
            ),
            (
                b" -1",
                "[1:2] [test_parser] Expected START_OBJECT but was: VALUE_NUMBER",
            ),
            (
                b"7",
                "[1:1] [test_parser] Expected START_OBJECT but was: VALUE_NUMBER",
            ),
            (
                b"false",
                "[1:1] [test_parser] Expected START_OBJECT but was: VALUE_BOOLEAN",
            ),
            (
                b"null",
                "[1:1] [test_parser] Expected START_OBJECT but was: VALUE_NULL",
            ),
        ] {
            let e = parse::<Body>(body).unwrap_err();
            assert_eq!(e.status().as_u16(), 400);
            assert_eq!(e.reason(), reason, "{body:?}");
        }
        // Not a JSON value: serde's syntax error, not this one.
        for body in [
            &b"x"[..],
            b"nope",
            b"nulls",
            b"truex",
            b"01",
            b"-",
            b"1.",
            b"@",
        ] {
            let e = parse::<Body>(body).unwrap_err();
            assert!(!e.reason().contains("START_OBJECT"), "{}", e.reason());
        }
        // Complete scalars followed by more are still named by their first token.
        let e = parse::<Body>(b"1,2").unwrap_err();
        assert!(
            e.reason().ends_with("but was: VALUE_NUMBER"),
            "{}",
            e.reason()
        );
        let e = parse::<Body>(b"[1,").unwrap_err();
        assert!(
            e.reason().ends_with("but was: START_ARRAY"),
            "{}",
            e.reason()
        );
        assert!(parse::<Body>(b"   ").is_err());
    }

    #[test]
    fn values_are_not_echoed() {
        let e = parse::<Body>(br#"{"a":12345678}"#).unwrap_err();
        assert!(!e.reason().contains("12345678"), "{}", e.reason());
    }
}
