//! Property tests (`proptest`): arbitrary bodies, header values and query strings sent to every
//! route of `src/http/mod.rs` through the real `configure()` (in-process, `actix_web::test`)
//! never produce a 5xx (except a 503 with one of the documented overload reason codes) nor a
//! panic (a panic fails the case). Every answer also keeps these invariants:
//!
//! - the body is JSON (only a `HEAD` answer may be empty);
//! - every 4xx has Elasticsearch's error shape (`error.type`, `error.reason`, `status`), or
//!   one of Elasticsearch's own 4xx bodies: on the token endpoint the OAuth shape (`error`,
//!   `error_description`) and the invalidate API's counts (its 404), on a role mapping `{}`
//!   (get, 404) and `{"found": false}` (delete, 404);
//! - a 429 carries `Retry-After`;
//! - `X-Elastic-Product: Elasticsearch` is on every answer but 401 and 403;
//! - no error body contains a credential of the request (a password, a bearer token, a
//!   `password`/`token`/`refresh_token`/`access_token`/`kerberos_ticket` value of 10 characters
//!   or more, not a plain word, that the request does not also send in some other field).
//!
//! Each property runs one server (a memory store, one realm `oidc1` against the fake OP) for
//! all its cases, so state accumulates as it would in a running server: role mappings
//! written by earlier cases, tokens invalidated, profiles activated. Values only the running
//! server knows (a valid access and refresh token, a pending login's state, nonce and callback)
//! are generated as placeholders (`$access`, `$refresh`, `$state`, `$nonce`, `$callback`,
//! `$realm`, `$issuer`) and filled in when the request is built.
//!
//! Unknown user names are not generated where a password would be checked (Basic credentials,
//! the `password` grant, profile activation): each costs a full argon2id verification against
//! a dummy hash (~0.7 s in a debug build) by design (timing equalisation); the flood behaviour
//! of that path has its own tests (`hardening_auth.rs`). Wrong passwords of known users are
//! generated. Requests carry no peer address, so the per-address limit on password checks
//! does not apply.
//!
//! Case counts are modest (the whole file runs in well under a minute in a debug build); set
//! `PROPTEST_CASES` to run more. A failure prints the minimal failing request. With
//! `--nocapture` each property prints what its cases reached (route, method, status, reason
//! code), its slowest case and how many full password verifications it caused.

mod common;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::test::TestRequest;
use common::fake_op::*;
use common::*;
use oidc_realm::store::MemoryStore;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// `http.max_body` of the test settings.
const MAX_BODY: usize = 64 * 1024;

/// The `reason_code`s of the documented 503s: too many password checks running, the store
/// unreachable.
const DOCUMENTED_503: [&str; 2] = ["overloaded", "store_unavailable"];

// ---------------------------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------------------------

/// Every resource of `src/http/mod.rs`, plus paths nobody serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Root,
    Health,
    WhoAmI,
    Prepare,
    OidcAuthenticate,
    Logout,
    Status,
    Token,
    RoleMappings,
    RoleMapping,
    ProfileActivate,
    Profile,
    /// A path under `/_security/` that no route serves.
    Unknown,
}

const ROUTES: [Route; 13] = [
    Route::Root,
    Route::Health,
    Route::WhoAmI,
    Route::Prepare,
    Route::OidcAuthenticate,
    Route::Logout,
    Route::Status,
    Route::Token,
    Route::RoleMappings,
    Route::RoleMapping,
    Route::ProfileActivate,
    Route::Profile,
    Route::Unknown,
];

impl Route {
    /// The methods the route serves (others get 405).
    fn methods(self) -> &'static [&'static str] {
        match self {
            Route::Root => &["GET", "HEAD"],
            Route::Health | Route::WhoAmI | Route::Status | Route::RoleMappings => &["GET"],
            Route::Prepare | Route::OidcAuthenticate | Route::Logout | Route::ProfileActivate => {
                &["POST"]
            }
            Route::Token => &["POST", "DELETE"],
            Route::RoleMapping => &["GET", "PUT", "POST", "DELETE"],
            Route::Profile => &["GET"],
            Route::Unknown => &["GET", "POST"],
        }
    }

    /// The path, with `param` (already percent-encoded) for `{name}`, `{uid}` or the unknown
    /// tail.
    fn path(self, param: &str) -> String {
        match self {
            Route::Root => "/".into(),
            Route::Health => "/_health".into(),
            Route::WhoAmI => "/_security/_authenticate".into(),
            Route::Prepare => "/_security/oidc/prepare".into(),
            Route::OidcAuthenticate => "/_security/oidc/authenticate".into(),
            Route::Logout => "/_security/oidc/logout".into(),
            Route::Status => "/_security/oidc/_status".into(),
            Route::Token => "/_security/oauth2/token".into(),
            Route::RoleMappings => "/_security/role_mapping".into(),
            Route::RoleMapping => format!("/_security/role_mapping/{param}"),
            Route::ProfileActivate => "/_security/profile/_activate".into(),
            Route::Profile => format!("/_security/profile/{param}"),
            Route::Unknown => format!("/_security/{param}"),
        }
    }

    /// The body fields the route's parser knows (so that generated objects reach validation
    /// and the handlers, not only the unknown-field refusal).
    fn fields(self) -> &'static [&'static str] {
        match self {
            Route::Prepare => &["realm", "iss", "login_hint", "state", "nonce"],
            Route::OidcAuthenticate => &["redirect_uri", "state", "nonce", "realm"],
            Route::Logout => &["token", "refresh_token"],
            Route::Token => &[
                "grant_type",
                "username",
                "password",
                "kerberos_ticket",
                "refresh_token",
                "scope",
                "token",
                "realm_name",
            ],
            Route::RoleMapping => &[
                "enabled",
                "roles",
                "rules",
                "metadata",
                "role_templates",
                "run_as",
            ],
            Route::ProfileActivate => &["grant_type", "access_token", "username", "password"],
            _ => &["realm", "token"],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generated requests
// ---------------------------------------------------------------------------------------------

/// A configured caller (see `tests/common/mod.rs`).
#[derive(Debug, Clone, Copy)]
enum Known {
    Admin,
    Facilitator,
    OidcOnly,
    Argon,
}

impl Known {
    fn creds(self) -> (&'static str, &'static str) {
        match self {
            Known::Admin => ADMIN,
            Known::Facilitator => FACILITATOR,
            Known::OidcOnly => OIDC_ONLY,
            Known::Argon => ARGON_USER,
        }
    }
}

/// Bytes, shown as (lossy) text in a failing case.
#[derive(Clone)]
struct Text(Vec<u8>);

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::ops::Deref for Text {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The `Authorization` header.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(Known),
    WrongPassword(Known, String),
    /// `Basic` + base64 of bytes without `:` (never a user name to look up).
    BasicNoColon(Text),
    /// `Basic` + arbitrary header-safe text (mostly not base64).
    BasicText(Text),
    /// The valid access token of the admin.
    BearerValid,
    Bearer(Text),
    /// Anything, scheme included.
    Raw(Text),
}

/// A request body.
#[derive(Debug, Clone)]
enum Body {
    Empty,
    Bytes(Text),
    Json(Value),
    /// `depth` nested arrays or objects, optionally unterminated.
    Deep {
        depth: usize,
        object: bool,
        closed: bool,
    },
    /// `{"<field>": "xxx…"}` of about `len` bytes (around `http.max_body`).
    Huge {
        field: String,
        len: usize,
    },
    /// An object with these members, in order (duplicates kept).
    Fields(Vec<(String, Value)>),
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    route: Route,
    /// Percent-encoded path parameter.
    param: String,
    /// Query string (already encoded), without `?`.
    query: String,
    auth: Auth,
    content_type: Option<Text>,
    accept: Option<Text>,
    body: Body,
}

/// Values only the running server knows, substituted for placeholders.
struct Live {
    access: String,
    refresh: String,
    state: String,
    nonce: String,
    callback: String,
    issuer: String,
}

impl Live {
    fn fill(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(match s.as_str() {
                "$access" => self.access.clone(),
                "$refresh" => self.refresh.clone(),
                "$state" => self.state.clone(),
                "$nonce" => self.nonce.clone(),
                "$callback" => self.callback.clone(),
                "$realm" => "oidc1".into(),
                "$issuer" => self.issuer.clone(),
                _ => s,
            }),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.fill(x)).collect()),
            Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, x)| (k, self.fill(x))).collect())
            }
            other => other,
        }
    }
}

const KNOWN_USERS: [&str; 5] = ["admin", "facilitator", "kibana2", "oidc-only", "argon"];

/// Where a `username` would have its password checked, only configured users (see the module
/// documentation).
fn tame_username(route: Route, key: &str, v: Value) -> Value {
    let checks_password = matches!(route, Route::Token | Route::ProfileActivate);
    match v {
        Value::String(s)
            if checks_password && key == "username" && !KNOWN_USERS.contains(&s.as_str()) =>
        {
            json!("admin")
        }
        other => other,
    }
}

fn header_value(bytes: &[u8]) -> HeaderValue {
    // Header-safe: tab, visible ASCII, space and obs-text; anything else becomes `?`.
    let safe: Vec<u8> = bytes
        .iter()
        .map(|&b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b'?'
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&safe).unwrap_or_else(|_| HeaderValue::from_static("x"))
}

/// Body fields whose value is a credential: never echoed in an error.
const SECRET_FIELDS: [&str; 5] = [
    "password",
    "token",
    "refresh_token",
    "access_token",
    "kerberos_ticket",
];

/// A built request and the credentials it carries that no error body may echo.
struct Built {
    req: TestRequest,
    secrets: Vec<String>,
}

/// The credentials among `members` (and the values of every other member, which an error may
/// legitimately name: a credential that is also sent as, say, a realm name is not checked).
fn split_secrets(members: &[(String, Value)]) -> (Vec<String>, Vec<String>) {
    let (mut secrets, mut public) = (Vec::new(), Vec::new());
    for (k, v) in members {
        match v {
            Value::String(s) if SECRET_FIELDS.contains(&k.as_str()) => secrets.push(s.clone()),
            other => {
                public.push(k.clone());
                public.push(other.to_string());
            }
        }
    }
    (secrets, public)
}

impl Case {
    fn build(&self, live: &Live) -> Built {
        let path = self.route.path(&self.param);
        let uri = if self.query.is_empty() {
            path
        } else {
            format!("{path}?{}", self.query)
        };
        let mut req = TestRequest::default().method(self.method.clone()).uri(&uri);
        let b64 = |s: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        let auth: Option<Vec<u8>> = match &self.auth {
            Auth::None => None,
            Auth::Basic(k) => {
                let (u, p) = k.creds();
                Some(format!("Basic {}", b64(format!("{u}:{p}").as_bytes())).into_bytes())
            }
            Auth::WrongPassword(k, p) => {
                let u = k.creds().0;
                Some(format!("Basic {}", b64(format!("{u}:{p}").as_bytes())).into_bytes())
            }
            Auth::BasicNoColon(b) => {
                let b: Vec<u8> = b.iter().copied().filter(|c| *c != b':').collect();
                Some(format!("Basic {}", b64(&b)).into_bytes())
            }
            Auth::BasicText(t) => Some([b"Basic ".as_slice(), t].concat()),
            Auth::BearerValid => Some(format!("Bearer {}", live.access).into_bytes()),
            Auth::Bearer(t) => Some([b"Bearer ".as_slice(), t].concat()),
            Auth::Raw(t) => Some(t.to_vec()),
        };
        if let Some(a) = auth {
            req = req.insert_header((HeaderName::from_static("authorization"), header_value(&a)));
        }
        if let Some(ct) = &self.content_type {
            req = req.insert_header((HeaderName::from_static("content-type"), header_value(ct)));
        }
        if let Some(a) = &self.accept {
            req = req.insert_header((HeaderName::from_static("accept"), header_value(a)));
        }
        let mut members: Vec<(String, Value)> = Vec::new();
        let body: Vec<u8> = match &self.body {
            Body::Empty => Vec::new(),
            Body::Bytes(b) => b.to_vec(),
            Body::Json(v) => {
                let v = live.fill(v.clone());
                if let Value::Object(m) = &v {
                    members = m.clone().into_iter().collect();
                }
                v.to_string().into_bytes()
            }
            Body::Deep {
                depth,
                object,
                closed,
            } => {
                let (open, close) = if *object {
                    ("{\"a\":", "}")
                } else {
                    ("[", "]")
                };
                let mut s = open.repeat(*depth);
                s.push_str("null");
                if *closed {
                    s.push_str(&close.repeat(*depth));
                }
                s.into_bytes()
            }
            Body::Huge { field, len } => {
                let pad = len.saturating_sub(field.len() + 8);
                format!("{{{}:\"{}\"}}", json!(field), "x".repeat(pad)).into_bytes()
            }
            Body::Fields(fields) => {
                members = fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            tame_username(self.route, k, live.fill(v.clone())),
                        )
                    })
                    .collect();
                let inner: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json!(k), v))
                    .collect();
                format!("{{{}}}", inner.join(",")).into_bytes()
            }
        };
        if !body.is_empty() {
            req = req.set_payload(body);
        }
        let (mut secrets, mut public) = split_secrets(&members);
        match &self.auth {
            Auth::Basic(k) => secrets.push(k.creds().1.to_string()),
            Auth::WrongPassword(_, p) => secrets.push(p.clone()),
            Auth::BearerValid => secrets.push(live.access.clone()),
            Auth::Bearer(t) => secrets.push(String::from_utf8_lossy(t).into_owned()),
            _ => {}
        }
        public.push(self.param.clone());
        public.push(self.query.clone());
        // Short values, and words (a value `refresh_token` or `password` is also a field
        // name or grant type a message may name), may occur in a message by chance.
        secrets.retain(|s| {
            s.chars().count() >= 10
                && !s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !public.iter().any(|p| p.contains(s.as_str()))
        });
        Built { req, secrets }
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "(?s).{0,24}".prop_map(Value::String),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("(?s).{0,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Strings with a meaning somewhere in the API, and the placeholders.
fn interesting_string() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "$access",
        "$refresh",
        "$state",
        "$nonce",
        "$callback",
        "$realm",
        "$issuer",
        "password",
        "refresh_token",
        "client_credentials",
        "_kerberos",
        "access_token",
        "admin",
        "facilitator",
        "admin-password",
        "oidc1",
        "",
        "/",
        "//evil.example/x",
        "https://kibana.example.org/api/security/oidc/callback?code=x&state=y",
        "/api/security/oidc/callback?state=$state&code=c",
        "ora1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "orr1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAEAAWVsYXN0aWMva2liYW5hL3Rva2VuMTpzZWNyZXQ",
        "/^(a+)+$/",
        "*",
        "\u{0}",
        "\n\r\u{1b}[31m",
        "ａｄｍｉｎ",
    ])
    .prop_map(str::to_string)
}

/// A value for a known field: a shape the handler expects, or anything.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => interesting_string().prop_map(Value::String),
        2 => arb_json(),
        1 => Just(json!(true)),
        1 => Just(json!(["superuser", "kibana_admin"])),
        1 => Just(json!({"field": {"groups": "finance-team"}})),
        1 => Just(json!({"any": [{"field": {"username": "*"}}, {"except": {"field": {"realm.name": "oidc1"}}}]})),
        1 => Just(json!({"all": [{"field": {"dn": "*,ou=people,dc=example,dc=com"}}, {"field": {"metadata.x": [1, null, true]}}]})),
        1 => Just(json!([{"template": {"source": "{{username}}"}, "format": "json"}])),
        1 => "(?s).{0,300}".prop_map(|s| json!({"field": {"groups": format!("/{s}/")}})),
    ]
}

/// Values for a rule's `field`: literals, wildcards, Lucene regexes, DN sub-trees, numbers,
/// booleans, null, and lists of those.
fn rule_value() -> impl Strategy<Value = Value> {
    let one = prop_oneof![
        3 => "[a-z0-9*?.,=-]{0,16}".prop_map(Value::String),
        2 => "(?s).{0,24}".prop_map(|r| Value::String(format!("/{r}/"))),
        1 => "[a-z]{1,6}".prop_map(|ou| json!(format!("*,ou={ou},dc=example,dc=com"))),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => "(?s).{0,24}".prop_map(Value::String),
    ];
    prop_oneof![
        4 => one.clone(),
        1 => prop::collection::vec(one, 0..4).prop_map(Value::Array),
    ]
}

/// Role-mapping rules: `field` leaves under `any`, `all` and `except`.
fn arb_rule() -> impl Strategy<Value = Value> {
    let field = (
        prop_oneof![
            5 => prop::sample::select(vec!["username", "groups", "dn", "realm.name", "metadata.x", "metadata.oidc(sub)"]).prop_map(str::to_string),
            1 => "(?s).{0,12}",
        ],
        rule_value(),
    )
        .prop_map(|(f, v)| json!({ "field": { f: v } }));
    field.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "any": v })),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "all": v })),
            inner.prop_map(|v| json!({ "except": v })),
        ]
    })
}

/// A value for the body field `key`: mostly of the type (and often the value) the handler
/// wants, so that requests get past parsing into validation and the handlers.
fn typed_field(key: &'static str) -> BoxedStrategy<Value> {
    let hints: &[&str] = match key {
        "realm" => &["$realm", "nope"],
        "iss" => &["$issuer"],
        "state" => &["$state"],
        "nonce" => &["$nonce"],
        "redirect_uri" => &["$callback", "/api/security/oidc/callback?code=c&state=s"],
        "token" | "access_token" => &["$access"],
        "refresh_token" => &["$refresh"],
        "grant_type" => &[
            "password",
            "refresh_token",
            "client_credentials",
            "_kerberos",
            "access_token",
        ],
        "username" => &["admin", "facilitator", "argon", "kibana2"],
        "password" => &["admin-password", "argon-password", "wrong"],
        "realm_name" => &["oidc1", "file"],
        "login_hint" => &["user@example.com"],
        "scope" => &["openid"],
        _ => &[],
    };
    match key {
        "enabled" => prop_oneof![8 => any::<bool>().prop_map(Value::Bool), 1 => field_value()].boxed(),
        "roles" | "run_as" => prop_oneof![
            8 => prop::collection::vec("[a-z_]{1,12}", 0..4).prop_map(|r| json!(r)),
            1 => field_value(),
        ]
        .boxed(),
        "rules" => prop_oneof![8 => arb_rule(), 1 => field_value()].boxed(),
        "metadata" => prop_oneof![
            6 => prop::collection::vec(("[a-z_]{1,8}", arb_json()), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            1 => field_value(),
        ]
        .boxed(),
        "role_templates" => prop_oneof![
            6 => prop::collection::vec(
                ("(?s).{0,40}", prop::sample::select(vec!["json", "string", "yaml"])),
                0..3,
            )
            .prop_map(|t| json!(t
                .into_iter()
                .map(|(source, format)| json!({"template": {"source": source}, "format": format}))
                .collect::<Vec<_>>())),
            2 => Just(json!([{"template": {"source": "{{username}}-{{#tojson}}groups{{/tojson}}"}, "format": "json"}])),
            1 => field_value(),
        ]
        .boxed(),
        _ if hints.is_empty() => prop_oneof![
            3 => interesting_string().prop_map(Value::String),
            2 => "(?s).{0,40}".prop_map(Value::String),
            1 => field_value(),
        ]
        .boxed(),
        _ => prop_oneof![
            6 => prop::sample::select(hints.to_vec()).prop_map(|h| json!(h)),
            2 => interesting_string().prop_map(Value::String),
            2 => "(?s).{0,40}".prop_map(Value::String),
            1 => field_value(),
        ]
        .boxed(),
    }
}

/// An object body for `route`: each of its fields present or not, sometimes an unknown
/// member, sometimes a member twice.
fn arb_fields(route: Route) -> impl Strategy<Value = Vec<(String, Value)>> {
    let per_key: Vec<BoxedStrategy<Option<(String, Value)>>> = route
        .fields()
        .iter()
        .map(|k| {
            prop::option::weighted(0.5, typed_field(k).prop_map(move |v| (k.to_string(), v)))
                .boxed()
        })
        .collect();
    (
        per_key,
        prop::option::weighted(0.1, ("(?s).{0,12}", arb_json())),
        prop::option::weighted(0.05, any::<prop::sample::Index>()),
    )
        .prop_map(|(members, extra, dup)| {
            let mut out: Vec<(String, Value)> = members.into_iter().flatten().collect();
            if let (Some(i), false) = (dup, out.is_empty()) {
                let again = out[i.index(out.len())].clone();
                out.push(again);
            }
            out.extend(extra);
            out
        })
}

/// Well-formed bodies of each route (with placeholders), the starting points of mutations.
fn templates(route: Route, method: &Method) -> Vec<Value> {
    let delete = *method == Method::DELETE;
    match route {
        Route::Prepare => vec![
            json!({"realm": "$realm"}),
            json!({"iss": "$issuer", "login_hint": "jwong@example.com"}),
            json!({"realm": "$realm", "state": "caller-chosen-state", "nonce": "caller-chosen-nonce"}),
        ],
        Route::OidcAuthenticate => vec![
            json!({"redirect_uri": "$callback", "state": "$state", "nonce": "$nonce"}),
            json!({"redirect_uri": "$callback", "state": "$state", "nonce": "$nonce", "realm": "$realm"}),
        ],
        Route::Logout => vec![
            json!({"token": "$access"}),
            json!({"token": "$access", "refresh_token": "$refresh"}),
        ],
        Route::Token if delete => vec![
            json!({"token": "$access"}),
            json!({"refresh_token": "$refresh"}),
            json!({"realm_name": "oidc1"}),
            json!({"username": "nobody", "realm_name": "file"}),
        ],
        Route::Token => vec![
            json!({"grant_type": "password", "username": "admin", "password": "admin-password"}),
            json!({"grant_type": "refresh_token", "refresh_token": "$refresh"}),
            json!({"grant_type": "client_credentials"}),
            json!({"grant_type": "_kerberos", "kerberos_ticket": "YII="}),
        ],
        Route::RoleMapping => vec![
            json!({"enabled": true, "roles": ["finance_data"], "rules": {"field": {"groups": "finance-team"}}}),
            json!({"enabled": false, "role_templates": [{"template": {"source": "{{username}}"}, "format": "string"}],
                   "rules": {"all": [{"field": {"realm.name": "oidc1"}}, {"except": {"field": {"username": "/adm.n/"}}}]},
                   "metadata": {"version": 1}}),
        ],
        Route::ProfileActivate => vec![
            json!({"grant_type": "password", "username": "admin", "password": "admin-password"}),
            json!({"grant_type": "access_token", "access_token": "$access"}),
        ],
        _ => vec![json!({})],
    }
}

/// One change to a template.
#[derive(Debug, Clone)]
enum Mutation {
    Drop(prop::sample::Index),
    Replace(prop::sample::Index, Value),
    Add(String, Value),
    Duplicate(prop::sample::Index),
}

/// A template of the route with up to two mutations, as an ordered member list.
fn arb_mutated(route: Route, method: Method) -> impl Strategy<Value = Vec<(String, Value)>> {
    let keys: Vec<&'static str> = route.fields().to_vec();
    let mutation = prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Drop),
        (any::<prop::sample::Index>(), field_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        (
            prop_oneof![4 => prop::sample::select(keys).prop_map(str::to_string), 1 => "(?s).{0,12}"],
            field_value()
        )
            .prop_map(|(k, v)| Mutation::Add(k, v)),
        any::<prop::sample::Index>().prop_map(Mutation::Duplicate),
    ];
    (
        prop::sample::select(templates(route, &method)),
        prop::collection::vec(mutation, 0..3),
    )
        .prop_map(|(template, mutations)| {
            let mut members: Vec<(String, Value)> = template
                .as_object()
                .map(|m| m.clone().into_iter().collect())
                .unwrap_or_default();
            for m in mutations {
                match m {
                    Mutation::Drop(i) if !members.is_empty() => {
                        members.remove(i.index(members.len()));
                    }
                    Mutation::Replace(i, v) if !members.is_empty() => {
                        let n = members.len();
                        members[i.index(n)].1 = v;
                    }
                    Mutation::Add(k, v) => members.push((k, v)),
                    Mutation::Duplicate(i) if !members.is_empty() => {
                        let again = members[i.index(members.len())].clone();
                        members.push(again);
                    }
                    _ => {}
                }
            }
            members
        })
}

fn arb_body(route: Route, method: Method) -> impl Strategy<Value = Body> {
    prop_oneof![
        9 => arb_mutated(route, method).prop_map(Body::Fields),
        1 => Just(Body::Empty),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Body::Bytes(Text(b))),
        1 => "(?s).{0,200}".prop_map(|s| Body::Bytes(Text(s.into_bytes()))),
        3 => arb_json().prop_map(Body::Json),
        2 => (1usize..3000, any::<bool>(), any::<bool>()).prop_map(|(depth, object, closed)| Body::Deep { depth, object, closed }),
        1 => (prop::sample::select(route.fields().to_vec()), (MAX_BODY - 2048)..(MAX_BODY + 512))
            .prop_map(|(f, len)| Body::Huge { field: f.to_string(), len }),
        3 => arb_fields(route).prop_map(Body::Fields),
    ]
}

fn arb_method(route: Route) -> impl Strategy<Value = Method> {
    let served: Vec<&'static str> = route.methods().to_vec();
    prop_oneof![
        6 => prop::sample::select(served),
        1 => prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"]),
    ]
    .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap())
}

fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn arb_param() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,16}",
        2 => "(?s).{1,24}".prop_map(|s| encode_segment(&s)),
        1 => prop::collection::vec(any::<u8>(), 1..12).prop_map(|b| {
            // Raw percent-escapes, invalid UTF-8 included.
            b.iter().map(|x| format!("%{x:02X}")).collect::<String>()
        }),
        1 => Just("_activate".to_string()),
        1 => Just("u_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_0".to_string()),
        1 => Just("a/b".to_string()),
        1 => Just("%2e%2e".to_string()),
    ]
}

fn arb_query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["filter_path", "pretty", "human", "error_trace", "format", "refresh"]).prop_map(str::to_string),
        1 => "(?s).{0,10}",
    ];
    let filter = prop_oneof![
        "[a-z_.*,-]{0,40}",
        prop::collection::vec(
            prop::sample::select(vec![
                "*",
                "**",
                "error",
                "type",
                "reason",
                "-status",
                "authentication",
                "roles",
                "a",
                ".",
                ",",
                "-",
                "*.*",
                "role_mapping"
            ]),
            0..8
        )
        .prop_map(|parts| parts.join(".")),
        Just("*.".repeat(200)),
    ];
    let value = prop_oneof![
        3 => filter,
        2 => prop::sample::select(vec!["", "true", "false", "yaml", "json", "wait_for", "1"]).prop_map(str::to_string),
        2 => "(?s).{0,30}",
    ];
    prop_oneof![
        1 => Just(String::new()),
        6 => prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        }),
        // Raw query text made of characters a URI allows unencoded, and stray escapes.
        1 => "[a-zA-Z0-9_.,*&=%+-]{0,60}".prop_map(|q| {
            // A `%` must start an escape for the URI to parse; keep only well-formed ones.
            q.replace('%', "%25")
        }),
    ]
}

fn json_type() -> Option<Text> {
    Some(Text(b"application/json".to_vec()))
}

fn arb_header_bytes() -> impl Strategy<Value = Text> {
    prop_oneof![
        3 => "[ -~]{0,60}".prop_map(|s| Text(s.into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Text),
    ]
}

fn arb_content_type() -> impl Strategy<Value = Option<Text>> {
    let known = prop::sample::select(vec![
        "application/json",
        "application/json; charset=UTF-8",
        "Application/JSON",
        "application/vnd.elasticsearch+json; compatible-with=8",
        "application/vnd.elasticsearch+json;compatible-with=7",
        "application/vnd.elasticsearch+json; compatible-with=9",
        "application/vnd.elasticsearch+json; compatible-with=6",
        "application/vnd.elasticsearch+json; compatible-with=10",
        "application/vnd.elasticsearch+json; compatible-with=abc",
        "application/vnd.elasticsearch+cbor; compatible-with=8",
        "application/vnd.elasticsearch+yaml",
        "application/x-www-form-urlencoded",
        "text/plain",
        "*/*",
        "application/json, text/plain",
        "application",
        ";;;",
        "",
    ])
    .prop_map(|s| Some(Text(s.as_bytes().to_vec())));
    prop_oneof![
        6 => Just(json_type()),
        3 => known,
        1 => Just(None),
        2 => arb_header_bytes().prop_map(Some),
    ]
}

fn arb_accept() -> impl Strategy<Value = Option<Text>> {
    prop_oneof![
        6 => Just(None),
        3 => arb_content_type(),
        1 => arb_header_bytes().prop_map(Some),
    ]
}

fn arb_known() -> impl Strategy<Value = Known> {
    prop::sample::select(vec![
        Known::Admin,
        Known::Facilitator,
        Known::OidcOnly,
        Known::Argon,
    ])
}

fn arb_auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        2 => Just(Auth::None),
        6 => arb_known().prop_map(Auth::Basic),
        2 => (arb_known(), "(?s).{0,40}").prop_map(|(k, p)| Auth::WrongPassword(k, p)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Auth::BasicNoColon(Text(b))),
        1 => arb_header_bytes().prop_map(Auth::BasicText),
        3 => Just(Auth::BearerValid),
        2 => prop_oneof![
            arb_header_bytes(),
            "(ora1|orr1)_[A-Za-z0-9_-]{0,60}".prop_map(|s| Text(s.into_bytes())),
            "AAEAA[A-Za-z0-9_-]{0,80}".prop_map(|s| Text(s.into_bytes())),
        ].prop_map(Auth::Bearer),
        1 => arb_header_bytes().prop_map(Auth::Raw),
    ]
}

/// Mostly a privileged caller, so that bodies reach the handlers.
fn privileged_auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        8 => Just(Auth::Basic(Known::Admin)),
        2 => Just(Auth::Basic(Known::Facilitator)),
        2 => Just(Auth::BearerValid),
        1 => arb_auth(),
    ]
}

fn arb_route() -> impl Strategy<Value = Route> {
    prop::sample::select(ROUTES.to_vec())
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// The invariants of every answer. `secrets`: the request's credentials, which no error body
/// may contain.
fn check(
    case: &Case,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[String],
) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&body[..body.len().min(600)]).into_owned();
    // X-Elastic-Product on every answer but 401 and 403, as Elasticsearch.
    let product = headers
        .get("x-elastic-product")
        .is_some_and(|v| v == "Elasticsearch");
    prop_assert_eq!(
        product,
        status != 401 && status != 403,
        "X-Elastic-Product on a {}",
        status
    );
    if status >= 400 {
        let text = String::from_utf8_lossy(body);
        for s in secrets {
            prop_assert!(!text.contains(s), "a {} echoes a secret: {}", status, shown);
        }
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let code = json
        .as_ref()
        .and_then(|v| v["error"]["reason_code"].as_str())
        .unwrap_or("");
    prop_assert!(
        status < 500 || (status == 503 && DOCUMENTED_503.contains(&code)),
        "{status}: {shown}"
    );
    if body.is_empty() {
        // Only a HEAD answer may come without a body.
        prop_assert!(case.method == Method::HEAD, "{status} without a body");
        return Ok(());
    }
    let Some(v) = json else {
        return Err(TestCaseError::fail(format!(
            "{status}: the body is not JSON ({:?}): {shown}",
            headers.get("content-type")
        )));
    };
    if (400..500).contains(&status) {
        let es = v["error"]["type"].is_string()
            && v["error"]["reason"].is_string()
            && v["status"] == json!(status);
        let oauth = case.route == Route::Token
            && v["error"].is_string()
            && v["error_description"].is_string();
        // Elasticsearch's own 404 bodies: an unknown token to invalidate (the counts), an
        // unknown role mapping to get (`{}`) or delete (`{"found": false}`).
        let invalidate_counts = case.route == Route::Token
            && case.method == Method::DELETE
            && status == 404
            && v["invalidated_tokens"].is_u64();
        let no_mapping = case.route == Route::RoleMapping
            && status == 404
            && ((case.method == Method::GET && v == json!({}))
                || (case.method == Method::DELETE && v == json!({"found": false})));
        prop_assert!(
            es || oauth || invalidate_counts || no_mapping,
            "{status} without Elasticsearch's error shape: {shown}"
        );
        if status == 429 {
            prop_assert!(
                headers.contains_key("retry-after"),
                "429 without Retry-After"
            );
        }
    }
    Ok(())
}

/// POST `body` to `path` as the facilitator and expect a 200. A 429 (long runs reach the
/// per-caller request rate or the pending-login quota, `limits.*`) is waited out: the logins
/// pending are let expire (the server's clock moves 10 minutes on) and the `Retry-After`
/// seconds pass.
async fn facilitator_ok<S, B>(app: &S, t: &TestApp, path: &str, body: Value) -> Value
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    for _ in 0..5 {
        let (s, headers, v) = send(
            app,
            post_json(path, body.clone()).insert_header(basic(FACILITATOR)),
        )
        .await;
        match s {
            200 => return v,
            429 => {
                let wait = headers
                    .get("retry-after")
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(3);
                t.advance(std::time::Duration::from_secs(601));
                actix_web::rt::time::sleep(std::time::Duration::from_secs(wait)).await;
            }
            _ => panic!("{path}: {s} {v}"),
        }
    }
    panic!("{path}: still 429 after waiting");
}

/// A valid token pair of the admin (obtained by the facilitator) and a pending login.
async fn fresh_live<S, B>(app: &S, t: &TestApp, op: &FakeOp) -> Live
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let tok = facilitator_ok(
        app,
        t,
        "/_security/oauth2/token",
        json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}),
    )
    .await;
    let p = facilitator_ok(app, t, "/_security/oidc/prepare", json!({"realm": "oidc1"})).await;
    let callback = op.browser_login(p["redirect"].as_str().unwrap()).await;
    Live {
        access: tok["access_token"].as_str().unwrap().to_string(),
        refresh: tok["refresh_token"].as_str().unwrap().to_string(),
        state: p["state"].as_str().unwrap().to_string(),
        nonce: p["nonce"].as_str().unwrap().to_string(),
        callback,
        issuer: op.issuer(),
    }
}

/// Run `cases` cases of `strategy` against one server (see the module documentation).
fn run(name: &str, cases: u32, strategy: impl Strategy<Value = Case>) {
    let sys = actix_web::rt::System::new();
    let op = sys.block_on(FakeOp::start());
    let mut s = settings();
    s.realms = vec![realm_config(&op, "oidc1", 0, "code", &[])];
    let t = TestApp::with(s, Arc::new(MemoryStore::new()));
    op.use_clock(t.clock.clone());
    let app = sys.block_on(t.service());
    let live = std::cell::RefCell::new(sys.block_on(fresh_live(&app, &t, &op)));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        // Shrinking through `prop_flat_map` can regenerate without end: bound it.
        max_shrink_time: 30_000,
        max_flat_map_regens: 256,
        ..Config::default()
    });
    // What the cases reached, by route and status (shown with `--nocapture`).
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<String, usize>::new());
    let slowest = std::cell::RefCell::new((std::time::Duration::ZERO, String::new()));
    let result = runner.run(&strategy, |case| {
        let started = std::time::Instant::now();
        let (status, headers, body, secrets) = sys.block_on(async {
            let built = case.build(&live.borrow());
            let resp = actix_web::test::call_service(&app, built.req.to_request()).await;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (
                status,
                headers,
                actix_web::test::read_body(resp).await,
                built.secrets,
            )
        });
        // A case that used up the live token pair or pending login (logout, invalidation,
        // a finished login) gets fresh ones for the next cases.
        let consumed = status == 200
            && matches!(
                (case.route, &case.method),
                (Route::Logout, _) | (Route::OidcAuthenticate, _) | (Route::Token, &Method::DELETE)
            );
        if consumed {
            *live.borrow_mut() = sys.block_on(fresh_live(&app, &t, &op));
        }
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["reason_code"].as_str().map(str::to_string))
            .unwrap_or_default();
        *seen
            .borrow_mut()
            .entry(format!("{:?} {} {status} {code}", case.route, case.method))
            .or_default() += 1;
        let took = started.elapsed();
        if took > slowest.borrow().0 {
            *slowest.borrow_mut() = (took, format!("{case:?}"));
        }
        check(&case, status, &headers, &body, &secrets)
    });
    sys.block_on(op.stop());
    let (took, case) = slowest.into_inner();
    println!("{name}: slowest case {took:?}: {case}");
    println!(
        "{name}: {} full password verifications",
        t.state.password_verifications()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    println!("{name}: reached");
    for (k, n) in seen.borrow().iter() {
        println!("  {n:5}  {k}");
    }
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn arb_route_method() -> impl Strategy<Value = (Route, Method)> {
    arb_route().prop_flat_map(|route| arb_method(route).prop_map(move |m| (route, m)))
}

/// Arbitrary bodies (bytes, JSON values, deep nesting, strings around `http.max_body`,
/// the route's own bodies mutated, objects of the route's fields) to every route, mostly as
/// a privileged caller with `Content-Type: application/json`.
#[test]
fn arbitrary_bodies_to_every_route_never_5xx() {
    let strategy = arb_route_method().prop_flat_map(|(route, method)| {
        (
            arb_param(),
            privileged_auth(),
            prop_oneof![6 => Just(json_type()), 1 => arb_content_type()],
            arb_body(route, method.clone()),
        )
            .prop_map(move |(param, auth, content_type, body)| Case {
                method: method.clone(),
                route,
                param,
                query: String::new(),
                auth,
                content_type,
                accept: None,
                body,
            })
    });
    run("arbitrary bodies", cases(256), strategy);
}

/// Arbitrary `Authorization`, `Content-Type` and `Accept` values to every route, with
/// plausible bodies.
#[test]
fn arbitrary_headers_to_every_route_never_5xx() {
    let strategy = arb_route_method().prop_flat_map(|(route, method)| {
        (
            arb_param(),
            arb_auth(),
            arb_content_type(),
            arb_accept(),
            prop_oneof![
                1 => Just(Body::Empty),
                3 => arb_mutated(route, method.clone()).prop_map(Body::Fields),
            ],
        )
            .prop_map(move |(param, auth, content_type, accept, body)| Case {
                method: method.clone(),
                route,
                param,
                query: String::new(),
                auth,
                content_type,
                accept,
                body,
            })
    });
    run("arbitrary headers", cases(256), strategy);
}

/// Arbitrary query strings (`filter_path`, `pretty` and the other output switches, unknown
/// parameters, raw text) and path parameters to every route.
#[test]
fn arbitrary_query_strings_to_every_route_never_5xx() {
    let strategy = arb_route_method().prop_flat_map(|(route, method)| {
        (
            arb_param(),
            arb_query(),
            privileged_auth(),
            prop_oneof![
                1 => Just(Body::Empty),
                3 => arb_mutated(route, method.clone()).prop_map(Body::Fields),
            ],
        )
            .prop_map(move |(param, query, auth, body)| Case {
                method: method.clone(),
                route,
                param,
                query,
                auth,
                content_type: json_type(),
                accept: None,
                body,
            })
    });
    run("arbitrary query strings", cases(256), strategy);
}

/// A redirect as a facilitator might mangle it.
#[derive(Debug, Clone)]
enum Redirect {
    Intact,
    Replace(String),
    Append(String),
    Fragment(String),
    OtherHost(String),
    PathOnly,
    /// The callback with its `state` or `code` value replaced.
    Param(&'static str, String),
}

/// Authenticate against a real pending login with a mangled redirect and arbitrary state and
/// nonce: 200 only for the intact callback with the right state and nonce, otherwise a 400
/// or 401 of Elasticsearch's shape, never a 5xx.
#[test]
fn authenticate_with_mangled_redirects_never_5xx() {
    let text = "(?s).{0,40}";
    let redirect = prop_oneof![
        1 => Just(Redirect::Intact),
        2 => prop_oneof![text.prop_map(String::from), interesting_string()].prop_map(Redirect::Replace),
        2 => "[ -~]{0,30}".prop_map(Redirect::Append),
        2 => "[ -~]{0,30}".prop_map(Redirect::Fragment),
        1 => "[a-z0-9.:@-]{0,30}".prop_map(Redirect::OtherHost),
        1 => Just(Redirect::PathOnly),
        2 => (prop::sample::select(vec!["state", "code"]), "[ -~]{0,30}")
            .prop_map(|(p, v)| Redirect::Param(p, v)),
    ];
    let secret = || {
        prop_oneof![
            4 => Just(None),
            1 => "(?s).{0,30}".prop_map(Some),
        ]
    };
    let strategy = (
        redirect,
        secret(),
        secret(),
        prop::option::of("(?s).{0,10}"),
    );
    let sys = actix_web::rt::System::new();
    let op = sys.block_on(FakeOp::start());
    let mut s = settings();
    s.realms = vec![realm_config(&op, "oidc1", 0, "code", &[])];
    let t = TestApp::with(s, Arc::new(MemoryStore::new()));
    op.use_clock(t.clock.clone());
    let app = sys.block_on(t.service());
    let mut runner = TestRunner::new(Config {
        cases: cases(96),
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 30_000,
        max_flat_map_regens: 256,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(redirect, state, nonce, realm)| {
        sys.block_on(async {
            let p = facilitator_ok(
                &app,
                &t,
                "/_security/oidc/prepare",
                json!({"realm": "oidc1"}),
            )
            .await;
            let cb = op.browser_login(p["redirect"].as_str().unwrap()).await;
            let real_state = p["state"].as_str().unwrap().to_string();
            let real_nonce = p["nonce"].as_str().unwrap().to_string();
            let redirect_uri = match &redirect {
                Redirect::Intact => cb.clone(),
                Redirect::Replace(r) => r.clone(),
                Redirect::Append(x) => format!("{cb}&{x}"),
                Redirect::Fragment(x) => format!("{cb}#{x}"),
                Redirect::OtherHost(h) => cb.replace("kibana.example.org", h),
                Redirect::PathOnly => {
                    let u = url::Url::parse(&cb).unwrap();
                    format!("{}?{}", u.path(), u.query().unwrap_or(""))
                }
                Redirect::Param(name, v) => {
                    let u = url::Url::parse(&cb).unwrap();
                    let mut out = u.clone();
                    out.query_pairs_mut()
                        .clear()
                        .extend_pairs(u.query_pairs().map(|(k, x)| {
                            let x = if k == *name {
                                v.clone()
                            } else {
                                x.into_owned()
                            };
                            (k.into_owned(), x)
                        }));
                    out.to_string()
                }
            };
            let mut body = json!({
                "redirect_uri": redirect_uri,
                "state": state.clone().unwrap_or(real_state.clone()),
                "nonce": nonce.clone().unwrap_or(real_nonce.clone()),
            });
            if let Some(r) = &realm {
                body["realm"] = json!(r);
            }
            let case = Case {
                method: Method::POST,
                route: Route::OidcAuthenticate,
                param: String::new(),
                query: String::new(),
                auth: Auth::Basic(Known::Facilitator),
                content_type: json_type(),
                accept: None,
                body: Body::Json(body),
            };
            let live = Live {
                access: String::new(),
                refresh: String::new(),
                state: real_state,
                nonce: real_nonce,
                callback: cb,
                issuer: op.issuer(),
            };
            let built = case.build(&live);
            let resp = actix_web::test::call_service(&app, built.req.to_request()).await;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = actix_web::test::read_body(resp).await;
            check(&case, status, &headers, &bytes, &built.secrets)?;
            let should_pass = matches!(redirect, Redirect::Intact | Redirect::PathOnly)
                && state.is_none()
                && nonce.is_none()
                && realm.as_deref().is_none_or(|r| r == "oidc1");
            if should_pass {
                prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
            } else {
                prop_assert!(
                    [200, 400, 401].contains(&status),
                    "{}: {}",
                    status,
                    String::from_utf8_lossy(&bytes)
                );
            }
            Ok(())
        })
    });
    sys.block_on(op.stop());
    if let Err(e) = result {
        panic!("authenticate with mangled redirects: {e}");
    }
}
