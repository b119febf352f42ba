//! What Elasticsearch's official clients need from every response, applied in one
//! middleware around every route:
//!
//! - **Media types.** The clients send `Accept` and `Content-Type`
//!   `application/vnd.elasticsearch+json; compatible-with=8` (or 7, 9). Versions are checked
//!   as Elasticsearch checks them (400 `media_type_header_exception` for an unknown version
//!   or mismatched headers) and a JSON answer is labelled with the type that was asked for:
//!   `application/vnd.elasticsearch+json;compatible-with=8`, else `application/json`.
//! - **`X-Elastic-Product: Elasticsearch`** on every response but 401 and 403 (Elasticsearch
//!   strips it there), unless `compatibility.product_header: false`. The clients refuse a
//!   2xx answer without it. It is a compatibility signal, not a claim to be Elasticsearch.
//! - **`filter_path`** (on 2xx JSON answers) and **`pretty`** (on every JSON answer);
//!   `human` and `error_trace` are accepted and change nothing.
//!
//! The body itself is read by [`super::EsJson`], which accepts `application/json` and the
//! vendor JSON type (the version was checked here).

use super::filter_path::FilterPath;
use crate::app::AppState;
use crate::error::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::mime;
use actix_web::web;

/// The vendor media type's subtype (`application/vnd.elasticsearch+json`).
const VENDOR_SUBTYPE: &str = "vnd.elasticsearch";
/// The `compatible-with` versions accepted.
pub const COMPATIBLE_VERSIONS: [u8; 3] = [7, 8, 9];
const PRODUCT_HEADER: HeaderName = HeaderName::from_static("x-elastic-product");
const PRODUCT: HeaderValue = HeaderValue::from_static("Elasticsearch");
const VENDOR_JSON: [HeaderValue; 3] = [
    HeaderValue::from_static("application/vnd.elasticsearch+json;compatible-with=7"),
    HeaderValue::from_static("application/vnd.elasticsearch+json;compatible-with=8"),
    HeaderValue::from_static("application/vnd.elasticsearch+json;compatible-with=9"),
];

/// A request or response media type as far as oidc-realm cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// `application/json`, or the vendor JSON type with its `compatible-with` version.
    Json(Option<u8>),
    /// The vendor type with another format (`+cbor`, `+smile`, `+yaml`, `+x-ndjson`), and
    /// its version: Elasticsearch knows these; oidc-realm reads and writes JSON only.
    VendorOther(Option<u8>),
    /// Anything else (`text/plain`, `*/*`, unparseable).
    Other,
}

impl Media {
    fn version(&self) -> Option<u8> {
        match self {
            Media::Json(v) | Media::VendorOther(v) => *v,
            Media::Other => None,
        }
    }
}

/// Why a media type header was refused: Elasticsearch's exception type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTypeError {
    /// `status_exception` (a version) or `illegal_argument_exception` (not a media type).
    pub kind: &'static str,
    pub reason: String,
}

impl MediaTypeError {
    fn version(reason: String) -> Self {
        Self {
            kind: "status_exception",
            reason,
        }
    }
}

/// The common forms, recognised without allocating: `application/json` and the vendor JSON
/// type with an optional `compatible-with` (what the official clients send).
fn parse_common(value: &str) -> Option<Media> {
    const JSON: &str = "application/json";
    const VENDOR: &str = "application/vnd.elasticsearch+json";
    let v = value.trim();
    if v.eq_ignore_ascii_case(JSON) {
        return Some(Media::Json(None));
    }
    let head = v.get(..VENDOR.len())?;
    if !head.eq_ignore_ascii_case(VENDOR) {
        return None;
    }
    let rest = v[VENDOR.len()..].trim_start();
    if rest.is_empty() {
        return Some(Media::Json(None));
    }
    let param = rest.strip_prefix(';')?.trim();
    let (name, digit) = param.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("compatible-with") {
        return None;
    }
    match digit.trim().as_bytes() {
        [d @ b'7'..=b'9'] => Some(Media::Json(Some(d - b'0'))),
        _ => None,
    }
}

/// Parse one media type. `Err` carries Elasticsearch's message for a bad `compatible-with`
/// value or a value that is not a media type (`header` names the header in it).
pub fn parse_media(value: &str, header: &str) -> Result<Media, MediaTypeError> {
    if let Some(m) = parse_common(value) {
        return Ok(m);
    }
    // A list of types (`a, b`) states no single preference: as Elasticsearch, ignore it.
    if value.contains(',') {
        return Ok(Media::Other);
    }
    let Ok(mime) = value.trim().parse::<mime::Mime>() else {
        return Err(MediaTypeError {
            kind: "illegal_argument_exception",
            reason: format!("invalid media-type [{}]", crate::text::shown_header(value)),
        });
    };
    if mime.type_() != mime::APPLICATION {
        return Ok(Media::Other);
    }
    let vendor = mime.subtype().as_str().eq_ignore_ascii_case(VENDOR_SUBTYPE);
    if !vendor {
        let json = mime.subtype() == mime::JSON && mime.suffix().is_none();
        return Ok(if json {
            Media::Json(None)
        } else {
            Media::Other
        });
    }
    let version = match mime.get_param("compatible-with") {
        None => None,
        Some(v) => {
            let text = v.as_str();
            match text.parse::<u8>() {
                Ok(n) if COMPATIBLE_VERSIONS.contains(&n) => Some(n),
                _ => {
                    return Err(MediaTypeError::version(format!(
                    "{header} version must be either version 7, 8 or 9, but found {}. {header}={}",
                    crate::text::shown_header(text),
                    crate::text::shown_header(value)
                )))
                }
            }
        }
    };
    Ok(
        match mime.suffix().map(|s| s.as_str().to_ascii_lowercase()) {
            Some(s) if s == "json" => Media::Json(version),
            Some(_) => Media::VendorOther(version),
            None => Media::Other,
        },
    )
}

/// The media types of a request, checked as Elasticsearch checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The `compatible-with` version to label JSON answers with (`None`: plain JSON).
    pub answer_version: Option<u8>,
}

/// Check `Accept` and (for a request with a body) `Content-Type` as Elasticsearch's
/// `RestCompatibleVersionHelper` does, a header without a version counting as `current`
/// (the major of `compatibility.version`); decide the answer's type.
pub fn negotiate(
    accept: Option<&str>,
    content_type: Option<&str>,
    has_body: bool,
    current: u8,
) -> Result<Negotiated, MediaTypeError> {
    let accept_media = accept
        .map(|a| parse_media(a, "Accept"))
        .transpose()?
        .unwrap_or(Media::Other);
    let content_media = if has_body {
        content_type
            .map(|c| parse_media(c, "Content-Type"))
            .transpose()?
            .unwrap_or(Media::Other)
    } else {
        Media::Other
    };
    if has_body {
        let (a, c) = (accept_media.version(), content_media.version());
        let shown = || {
            format!(
                "Accept={}, Content-Type={}",
                crate::text::shown_header(accept.unwrap_or("null")),
                crate::text::shown_header(content_type.unwrap_or("null"))
            )
        };
        if a.unwrap_or(current) != c.unwrap_or(current) {
            return Err(MediaTypeError::version(format!("A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version and the compatible versions must match. {}", shown())));
        }
        if a.is_some() != c.is_some() {
            return Err(MediaTypeError::version(format!("A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version. {}", shown())));
        }
    }
    // As Elasticsearch: the Accept type if it names one, else the request's own type.
    let answer_version = match (&accept_media, &content_media) {
        (Media::Json(v) | Media::VendorOther(v), _) => *v,
        (Media::Other, Media::Json(v) | Media::VendorOther(v)) => *v,
        _ => None,
    };
    Ok(Negotiated { answer_version })
}

fn header_str<'a>(req: &'a ServiceRequest, name: &HeaderName) -> Option<&'a str> {
    // A header that is not text cannot name a media type: treated as absent (a body with
    // it is then refused by the body reader).
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn has_body(req: &ServiceRequest) -> bool {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    declared.is_some_and(|n| n > 0) || req.headers().contains_key(TRANSFER_ENCODING)
}

/// Output switches from the query string.
#[derive(Debug, Default)]
struct OutputParams {
    filter: Option<FilterPath>,
    pretty: bool,
}

fn output_params(query: &str) -> Result<OutputParams, String> {
    let mut out = OutputParams::default();
    if query.is_empty() {
        return Ok(out);
    }
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "filter_path" => {
                let f = FilterPath::parse(&v)?;
                out.filter = Some(match out.filter.take() {
                    Some(prev) => prev.merge(f)?,
                    None => f,
                });
            }
            "pretty" => out.pretty = v.is_empty() || v == "true",
            _ => {}
        }
    }
    Ok(out)
}

fn is_json_response(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

/// The middleware (see the module documentation).
pub async fn compat(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let (product_header, current) = req
        .app_data::<web::Data<AppState>>()
        .map_or((true, 8), |s| s.compatibility_signals());
    let negotiated = negotiate(
        header_str(&req, &ACCEPT),
        header_str(&req, &CONTENT_TYPE),
        has_body(&req),
        current,
    )
    .map_err(|e| ApiError::media_type_header(e.kind, e.reason));
    let params = output_params(req.query_string())
        .map_err(|e| ApiError::illegal_argument("invalid_parameter", e));
    let (mut res, answer_version, params) = match (negotiated, params) {
        (Ok(n), Ok(params)) => (
            next.call(req).await?.map_into_left_body(),
            n.answer_version,
            params,
        ),
        (Err(err), _) | (_, Err(err)) => {
            let response = actix_web::ResponseError::error_response(&err);
            (
                req.into_response(response).map_into_right_body(),
                None,
                OutputParams::default(),
            )
        }
    };
    let status = res.status();
    let json = is_json_response(res.headers());
    if json {
        if let Some(v) = answer_version {
            let i = COMPATIBLE_VERSIONS
                .iter()
                .position(|x| *x == v)
                .unwrap_or(1);
            res.headers_mut()
                .insert(CONTENT_TYPE, VENDOR_JSON[i].clone());
        }
    }
    if product_header && status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        res.headers_mut().insert(PRODUCT_HEADER, PRODUCT);
    }
    let filter = params.filter.filter(|_| status.is_success());
    if !json || (filter.is_none() && !params.pretty) {
        return Ok(res);
    }
    // Rewrite the JSON body: filtered and/or pretty-printed.
    let (req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("response body"))?;
    let rewritten = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut value) => {
            if let Some(f) = &filter {
                value = f.apply(value);
            }
            let out = if params.pretty {
                serde_json::to_vec_pretty(&value)
            } else {
                serde_json::to_vec(&value)
            };
            out.map(actix_web::web::Bytes::from).unwrap_or(bytes)
        }
        Err(_) => bytes,
    };
    let res = res.set_body(rewritten);
    Ok(ServiceResponse::new(req, res)
        .map_into_boxed_body()
        .map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            parse_media("application/json", "Accept"),
            Ok(Media::Json(None))
        );
        assert_eq!(
            parse_media("application/json; charset=UTF-8", "Accept"),
            Ok(Media::Json(None))
        );
        for v in [7u8, 8, 9] {
            assert_eq!(
                parse_media(
                    &format!("application/vnd.elasticsearch+json; compatible-with={v}"),
                    "Accept"
                ),
                Ok(Media::Json(Some(v)))
            );
        }
        assert_eq!(
            parse_media(
                "application/vnd.elasticsearch+json;compatible-with=8",
                "Accept"
            ),
            Ok(Media::Json(Some(8)))
        );
        assert_eq!(
            parse_media(
                "application/vnd.elasticsearch+cbor; compatible-with=8",
                "Accept"
            ),
            Ok(Media::VendorOther(Some(8)))
        );
        assert_eq!(parse_media("text/plain", "Accept"), Ok(Media::Other));
        assert_eq!(parse_media("*/*", "Accept"), Ok(Media::Other));
        assert_eq!(
            parse_media("application/json, text/plain", "Accept"),
            Ok(Media::Other)
        );
        let e = parse_media(
            "application/vnd.elasticsearch+json; compatible-with=6",
            "Accept",
        )
        .unwrap_err();
        assert_eq!(e.kind, "status_exception");
        assert_eq!(e.reason, "Accept version must be either version 7, 8 or 9, but found 6. Accept=application/vnd.elasticsearch+json; compatible-with=6");
        let e = parse_media("not a type", "Accept").unwrap_err();
        assert_eq!(e.kind, "illegal_argument_exception");
        assert_eq!(e.reason, "invalid media-type [not a type]");
        for bad in ["10", "abc", "-1", "300", ""] {
            assert!(parse_media(
                &format!("application/vnd.elasticsearch+json; compatible-with={bad}"),
                "Content-Type"
            )
            .is_err());
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_parser() {
        for v in [
            "application/json",
            "Application/JSON",
            " application/json ",
            "application/vnd.elasticsearch+json",
            "application/vnd.elasticsearch+json;compatible-with=7",
            "application/vnd.elasticsearch+json; compatible-with=8",
            "application/vnd.elasticsearch+json;Compatible-With=9",
        ] {
            let fast = parse_common(v).unwrap_or_else(|| panic!("{v}"));
            let m: mime::Mime = v.trim().parse().unwrap();
            let version = m
                .get_param("compatible-with")
                .map(|x| x.as_str().trim().parse::<u8>().unwrap());
            assert_eq!(fast, Media::Json(version), "{v}");
        }
        // Spaces around `;` and `=` are accepted, as Elasticsearch's own parser does.
        assert_eq!(
            parse_common("application/vnd.elasticsearch+json ; compatible-with = 9"),
            Some(Media::Json(Some(9)))
        );
        for v in [
            "application/json; charset=UTF-8",
            "application/vnd.elasticsearch+json; compatible-with=10",
            "application/vnd.elasticsearch+json; compatible-with=6",
            "application/vnd.elasticsearch+cbor; compatible-with=8",
            "application/vnd.elasticsearch+jsonx",
        ] {
            assert_eq!(parse_common(v), None, "{v}");
        }
    }

    #[test]
    fn negotiation_like_elasticsearch() {
        let v7 = "application/vnd.elasticsearch+json; compatible-with=7";
        let v8 = "application/vnd.elasticsearch+json; compatible-with=8";
        let v9 = "application/vnd.elasticsearch+json; compatible-with=9";
        let json = "application/json";
        let ok = |a, c, body| negotiate(a, c, body, 8).map(|n| n.answer_version);
        let err = |a, c, body| negotiate(a, c, body, 8).unwrap_err().reason;
        assert_eq!(ok(Some(v8), Some(v8), true), Ok(Some(8)));
        assert_eq!(ok(Some(v9), None, false), Ok(Some(9)));
        assert_eq!(ok(None, Some(json), true), Ok(None));
        assert_eq!(ok(None, None, false), Ok(None));
        // Versions compared first (a header without one counts as the current major), then
        // both must carry one.
        assert!(err(Some("*/*"), Some(v8), true).starts_with("A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version. Accept=*/*"));
        assert!(err(Some(v8), Some(v9), true).contains("and the compatible versions must match"));
        assert!(err(Some(v7), Some(json), true).contains("and the compatible versions must match"));
        assert!(!err(Some(v8), Some(json), true).contains("must match"));
        // Without a body the Content-Type is not looked at.
        assert_eq!(ok(Some(v8), Some(v9), false), Ok(Some(8)));
        // Not a media type at all.
        assert_eq!(
            negotiate(Some("nonsense"), None, false, 8)
                .unwrap_err()
                .kind,
            "illegal_argument_exception"
        );
    }
}
