//! The demo's development OpenID Provider: a real HTML login page for a few public demo users,
//! the authorization code flow (with PKCE), a token endpoint, JWKS, UserInfo and end-session.
//! Its ES256 signing key is generated at start and never written anywhere.
//!
//! FOR DEMOS ONLY, NEVER FOR PRODUCTION: the users and their passwords are public (they are
//! listed on the login page), state lives in memory, there is no consent, and it listens on
//! loopback only (`oidc-realm demo` refuses anything else).

use crate::crypto::{random_urlsafe, sha256};
use crate::secret::ct_eq;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use url::Url;

/// A demo user: public username and password, and the claims the provider asserts.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    pub username: &'static str,
    pub password: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// The demo users, shown on the login page (and in the README).
pub const USERS: &[DemoUser] = &[
    DemoUser {
        username: "alice",
        password: "alice-demo",
        name: "Alice Liddell",
        email: "alice@demo.invalid",
        groups: &["staff", "finance"],
    },
    DemoUser {
        username: "bob",
        password: "bob-demo",
        name: "Bob Builder",
        email: "bob@demo.invalid",
        groups: &["staff"],
    },
    DemoUser {
        username: "carol",
        password: "carol-demo",
        name: "Carol Admin",
        email: "carol@demo.invalid",
        groups: &["admins"],
    },
];

/// The banner every page of the provider shows.
pub const BANNER: &str =
    "Demo provider: for demos only, never for production. Its users and passwords are public.";

/// How long a login form, an authorization code and an access token stay valid.
const REQUEST_TTL: Duration = Duration::from_secs(600);
const CODE_TTL: Duration = Duration::from_secs(60);
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// At most this many of each kept in memory.
const MAX_ENTRIES: usize = 1000;

/// The one client registered at the demo provider: oidc-realm's demo realm.
#[derive(Clone)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct AuthRequest {
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    at: Instant,
}

#[derive(Clone)]
struct Grant {
    request: AuthRequest,
    user: DemoUser,
    at: Instant,
}

#[derive(Default)]
struct State {
    requests: HashMap<String, AuthRequest>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, (DemoUser, Instant)>,
}

/// The provider: its issuer, client, signing key and in-memory state.
pub struct DemoOp {
    issuer: String,
    client: Client,
    kid: String,
    key: EncodingKey,
    jwk: Value,
    state: Mutex<State>,
}

impl DemoOp {
    /// A provider at `issuer` (`http://127.0.0.1:<port>`) for `client`, with a new signing key.
    pub fn new(issuer: String, client: Client) -> Result<Arc<Self>, String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "cannot generate the demo provider's signing key".to_string())?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| "cannot encode the demo provider's signing key".to_string())?;
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err("unexpected public key encoding".into());
        }
        let kid = format!("demo-{}", &random_urlsafe(6));
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(Arc::new(DemoOp {
            issuer,
            client,
            kid,
            key,
            jwk,
            state: Mutex::new(State::default()),
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id_token(&self, user: &DemoUser, nonce: Option<&str>) -> Result<String, String> {
        let now = unix_now();
        let mut claims = user_claims(user);
        claims["iss"] = json!(self.issuer);
        claims["aud"] = json!(self.client.client_id);
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + TOKEN_TTL.as_secs());
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn user_claims(u: &DemoUser) -> Value {
    json!({"sub": u.username, "name": u.name, "email": u.email, "groups": u.groups})
}

/// Forget entries older than `ttl`; refuse to add when still full.
fn purge<V>(map: &mut HashMap<String, V>, age: impl Fn(&V) -> Instant, ttl: Duration) -> bool {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| age(v).elapsed() < ttl);
    }
    map.len() < MAX_ENTRIES
}

// -- pages --------------------------------------------------------------------------------

fn esc(s: &str) -> String {
    html_escape::encode_safe(s).into_owned()
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · demo provider</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;line-height:1.5}}\
         #banner{{background:#b00;color:#fff;padding:.6em 1em;font-weight:bold}}\
         .error{{color:#a00}} table{{border-collapse:collapse}} td,th{{border:1px solid #999;padding:.2em .6em}}</style>\
         </head><body><div id=\"banner\" role=\"alert\">{banner}</div><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title),
        banner = esc(BANNER),
    );
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(html)
}

fn error_page(status: StatusCode, msg: &str) -> HttpResponse {
    page(
        status,
        "Request refused",
        &format!("<p class=\"error\" id=\"error\">{}</p>", esc(msg)),
    )
}

fn login_form(request_id: &str, error: Option<&str>) -> String {
    let rows: String = USERS
        .iter()
        .map(|u| {
            format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(u.username),
                esc(u.password),
                esc(u.name),
                esc(&u.groups.join(", "))
            )
        })
        .collect();
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"request\" value=\"{req}\">\
         <p><label>Username <input id=\"username\" name=\"username\" autocomplete=\"username\" required></label></p>\
         <p><label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button id=\"submit\" type=\"submit\">Sign in</button></p></form>\n\
         <h2>Demo users</h2><table id=\"users\"><tr><th>Username</th><th>Password</th><th>Name</th><th>Groups</th></tr>{rows}</table>",
        req = esc(request_id),
    )
}

// -- endpoints ----------------------------------------------------------------------------

async fn discovery(op: web::Data<DemoOp>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "issuer": op.issuer,
        "authorization_endpoint": op.url("/authorize"),
        "token_endpoint": op.url("/token"),
        "userinfo_endpoint": op.url("/userinfo"),
        "jwks_uri": op.url("/jwks"),
        "end_session_endpoint": op.url("/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
        "claims_supported": ["sub", "name", "email", "groups"],
    }))
}

async fn jwks(op: web::Data<DemoOp>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"keys": [op.jwk]}))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(op: web::Data<DemoOp>, q: web::Query<AuthorizeQuery>) -> HttpResponse {
    let q = q.into_inner();
    // Never redirect to an unregistered URI: these are shown to the user instead.
    if q.client_id.as_deref() != Some(op.client.client_id.as_str()) {
        return error_page(StatusCode::BAD_REQUEST, "Unknown client_id.");
    }
    if q.redirect_uri.as_deref() != Some(op.client.redirect_uri.as_str()) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The redirect_uri is not the one registered for this client.",
        );
    }
    if q.response_type.as_deref() != Some("code") {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Only response_type=code is supported.",
        );
    }
    if !q
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|s| s == "openid"))
    {
        return error_page(StatusCode::BAD_REQUEST, "The scope must include openid.");
    }
    let s256 = matches!(q.code_challenge_method.as_deref(), Some("S256"));
    if q.code_challenge.is_some() && !s256 {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Only code_challenge_method=S256 is supported.",
        );
    }
    let id = random_urlsafe(24);
    let request = AuthRequest {
        redirect_uri: op.client.redirect_uri.clone(),
        state: q.state,
        nonce: q.nonce,
        code_challenge: q.code_challenge,
        at: Instant::now(),
    };
    {
        let mut st = op.state();
        if !purge(&mut st.requests, |r| r.at, REQUEST_TTL) {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many logins in progress.",
            );
        }
        st.requests.insert(id.clone(), request);
    }
    page(StatusCode::OK, "Sign in", &login_form(&id, None))
}

#[derive(Deserialize)]
struct LoginForm {
    request: String,
    username: String,
    password: String,
}

async fn login(op: web::Data<DemoOp>, form: web::Form<LoginForm>) -> HttpResponse {
    let form = form.into_inner();
    let request = {
        let st = op.state();
        st.requests
            .get(&form.request)
            .filter(|r| r.at.elapsed() < REQUEST_TTL)
            .cloned()
    };
    let Some(request) = request else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This login form has expired or was already used: start again from the application.",
        );
    };
    // Every user's password is compared (constant time), whichever name was typed.
    let mut found = None;
    for u in USERS {
        let name_ok = ct_eq(u.username.as_bytes(), form.username.as_bytes());
        let pw_ok = ct_eq(u.password.as_bytes(), form.password.as_bytes());
        if name_ok && pw_ok {
            found = Some(*u);
        }
    }
    let Some(user) = found else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            &login_form(&form.request, Some("Wrong username or password.")),
        );
    };
    let code = random_urlsafe(32);
    let mut target = match Url::parse(&request.redirect_uri) {
        Ok(u) => u,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect_uri"),
    };
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = &request.state {
            pairs.append_pair("state", s);
        }
    }
    {
        let mut st = op.state();
        st.requests.remove(&form.request);
        if !purge(&mut st.codes, |g| g.at, CODE_TTL) {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "Too many codes pending.");
        }
        st.codes.insert(
            code,
            Grant {
                request,
                user,
                at: Instant::now(),
            },
        );
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(status: StatusCode, error: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error}))
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, the form-encoded id and secret)
/// or the form's `client_id` and `client_secret` (`client_secret_post`).
fn client_credentials(req: &HttpRequest, form: &TokenForm) -> Option<(String, String)> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let b64 = v.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unform = |s: &str| -> Option<String> {
            let q = format!("v={s}");
            url::form_urlencoded::parse(q.as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((unform(id)?, unform(secret)?));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

async fn token(
    op: web::Data<DemoOp>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let Some((id, secret)) = client_credentials(&req, &form) else {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let id_ok = ct_eq(id.as_bytes(), op.client.client_id.as_bytes());
    let secret_ok = ct_eq(secret.as_bytes(), op.client.client_secret.as_bytes());
    if !(id_ok && secret_ok) {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.grant_type.as_deref() != Some("authorization_code") {
        return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // Single use: the code is removed whatever happens next.
    let grant = form
        .code
        .as_deref()
        .and_then(|c| op.state().codes.remove(c))
        .filter(|g| g.at.elapsed() < CODE_TTL);
    let Some(grant) = grant else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if form.redirect_uri.as_deref() != Some(grant.request.redirect_uri.as_str()) {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    if let Some(challenge) = &grant.request.code_challenge {
        let Some(verifier) = &form.code_verifier else {
            return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
        };
        let computed = URL_SAFE_NO_PAD.encode(sha256(&[verifier.as_bytes()]));
        if !ct_eq(computed.as_bytes(), challenge.as_bytes()) {
            return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
    }
    let id_token = match op.id_token(&grant.user, grant.request.nonce.as_deref()) {
        Ok(t) => t,
        Err(_) => return token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    let access = random_urlsafe(32);
    {
        let mut st = op.state();
        if !purge(&mut st.access_tokens, |(_, at)| *at, TOKEN_TTL) {
            return token_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        }
        st.access_tokens
            .insert(access.clone(), (grant.user, Instant::now()));
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL.as_secs(),
            "id_token": id_token,
        }))
}

async fn userinfo(op: web::Data<DemoOp>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let user = token.and_then(|t| {
        op.state()
            .access_tokens
            .get(t)
            .filter(|(_, at)| at.elapsed() < TOKEN_TTL)
            .map(|(u, _)| *u)
    });
    match user {
        Some(u) => HttpResponse::Ok().json(user_claims(&u)),
        None => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
            .finish(),
    }
}

#[derive(Deserialize)]
struct EndSession {
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn end_session(op: web::Data<DemoOp>, q: web::Query<EndSession>) -> HttpResponse {
    let q = q.into_inner();
    // The provider keeps no login session (it asks for the password every time): there is
    // nothing to end but the redirect back to a registered URI.
    match q.post_logout_redirect_uri {
        Some(uri) if uri == op.client.post_logout_redirect_uri => {
            let mut target = match Url::parse(&uri) {
                Ok(u) => u,
                Err(_) => return error_page(StatusCode::BAD_REQUEST, "bad URI"),
            };
            if let Some(s) = &q.state {
                target.query_pairs_mut().append_pair("state", s);
            }
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target.as_str()))
                .finish()
        }
        Some(_) => error_page(
            StatusCode::BAD_REQUEST,
            "The post_logout_redirect_uri is not the one registered for this client.",
        ),
        None => page(
            StatusCode::OK,
            "Logged out",
            "<p>You are logged out of the demo provider.</p>",
        ),
    }
}

/// The provider's routes.
pub fn configure(op: Arc<DemoOp>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(op))
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/jwks", web::get().to(jwks))
            .route("/authorize", web::get().to(authorize))
            .route("/login", web::post().to(login))
            .route("/token", web::post().to(token))
            .route("/userinfo", web::get().to(userinfo))
            .route("/logout", web::get().to(end_session));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, App};

    fn client() -> Client {
        Client {
            client_id: "demo-client".into(),
            client_secret: "s3cret-value-of-enough-length-1234".into(),
            redirect_uri: "http://127.0.0.1:5601/callback".into(),
            post_logout_redirect_uri: "http://127.0.0.1:5601/logged-out".into(),
        }
    }

    async fn app() -> impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    > {
        let op = DemoOp::new("http://127.0.0.1:9380".into(), client()).unwrap();
        test::init_service(App::new().configure(configure(op))).await
    }

    fn authorize_uri(redirect: &str, challenge: &str) -> String {
        format!(
            "/authorize?response_type=code&client_id=demo-client&scope=openid&state=st&nonce=no&code_challenge={challenge}&code_challenge_method=S256&redirect_uri={}",
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        )
    }

    async fn request_id(
        app: &impl actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
        challenge: &str,
    ) -> String {
        let resp = test::call_service(
            app,
            test::TestRequest::get()
                .uri(&authorize_uri("http://127.0.0.1:5601/callback", challenge))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        assert!(body.contains(BANNER), "{body}");
        assert!(body.contains("alice-demo"), "the users are listed: {body}");
        let start = body.find("name=\"request\" value=\"").unwrap() + 22;
        body[start..].split('"').next().unwrap().to_string()
    }

    #[actix_web::test]
    async fn wrong_password_wrong_verifier_and_code_reuse_are_refused() {
        let app = app().await;
        let verifier = "v".repeat(50);
        let challenge = URL_SAFE_NO_PAD.encode(sha256(&[verifier.as_bytes()]));
        let id = request_id(&app, &challenge).await;
        // Wrong password: the form again, 401.
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/login")
                .set_form([
                    ("request", id.as_str()),
                    ("username", "alice"),
                    ("password", "bob-demo"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 401);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/login")
                .set_form([
                    ("request", id.as_str()),
                    ("username", "alice"),
                    ("password", "alice-demo"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 303);
        let loc = Url::parse(resp.headers().get("location").unwrap().to_str().unwrap()).unwrap();
        assert_eq!(loc.path(), "/callback");
        let code = loc
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(
            loc.query_pairs().find(|(k, _)| k == "state").unwrap().1,
            "st"
        );
        let basic = format!(
            "Basic {}",
            STANDARD.encode("demo-client:s3cret-value-of-enough-length-1234")
        );
        let exchange = |verifier: &str, code: &str| {
            test::TestRequest::post()
                .uri("/token")
                .insert_header(("authorization", basic.clone()))
                .set_form([
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", "http://127.0.0.1:5601/callback"),
                    ("code_verifier", verifier),
                ])
                .to_request()
        };
        // A wrong verifier consumes the code.
        let resp = test::call_service(&app, exchange("w".repeat(50).as_str(), &code)).await;
        assert_eq!(resp.status(), 400);
        let resp = test::call_service(&app, exchange(&verifier, &code)).await;
        assert_eq!(resp.status(), 400, "single use");
    }

    #[actix_web::test]
    async fn token_and_userinfo() {
        let app = app().await;
        let verifier = "x".repeat(50);
        let challenge = URL_SAFE_NO_PAD.encode(sha256(&[verifier.as_bytes()]));
        let id = request_id(&app, &challenge).await;
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/login")
                .set_form([
                    ("request", id.as_str()),
                    ("username", "bob"),
                    ("password", "bob-demo"),
                ])
                .to_request(),
        )
        .await;
        let loc = Url::parse(resp.headers().get("location").unwrap().to_str().unwrap()).unwrap();
        let code = loc
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        // Wrong client secret.
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/token")
                .insert_header((
                    "authorization",
                    format!("Basic {}", STANDARD.encode("demo-client:nope")),
                ))
                .set_form([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 401);
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/token")
                .set_form([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "http://127.0.0.1:5601/callback"),
                    ("code_verifier", verifier.as_str()),
                    ("client_id", "demo-client"),
                    ("client_secret", "s3cret-value-of-enough-length-1234"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let body: Value = test::read_body_json(resp).await;
        let idt = body["id_token"].as_str().unwrap();
        let payload: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(idt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["sub"], "bob");
        assert_eq!(payload["nonce"], "no");
        assert_eq!(payload["groups"], json!(["staff"]));
        let at = body["access_token"].as_str().unwrap();
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/userinfo")
                .insert_header(("authorization", format!("Bearer {at}")))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/userinfo")
                .insert_header(("authorization", "Bearer nope"))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 401);
    }

    #[actix_web::test]
    async fn unregistered_redirects_are_refused() {
        let app = app().await;
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(&authorize_uri("http://evil.example/cb", "c"))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 400);
        assert!(resp.headers().get("location").is_none());
        // Unknown client, another response type, no openid scope, a plain PKCE challenge.
        let good = authorize_uri("http://127.0.0.1:5601/callback", "c");
        for (from, to) in [
            ("client_id=demo-client", "client_id=other"),
            ("response_type=code", "response_type=token"),
            ("scope=openid", "scope=profile"),
            ("code_challenge_method=S256", "code_challenge_method=plain"),
        ] {
            let uri = good.replace(from, to);
            let resp =
                test::call_service(&app, test::TestRequest::get().uri(&uri).to_request()).await;
            assert_eq!(resp.status(), 400, "{uri}");
            assert!(resp.headers().get("location").is_none());
        }
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/logout?post_logout_redirect_uri=http%3A%2F%2Fevil.example%2F")
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 400);
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/logout?post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A5601%2Flogged-out&state=s")
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 303);
        assert_eq!(
            resp.headers().get("location").unwrap(),
            "http://127.0.0.1:5601/logged-out?state=s"
        );
    }
}
