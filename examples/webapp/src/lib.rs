//! A reference facilitator for oidc-realm: a small web app that logs its users in through
//! oidc-realm's `_security/oidc/*` API, written to be copied (see `README.md` beside this
//! crate).
//!
//! The login, as the API expects of a facilitator (`docs/integration.md`):
//!
//! 1. `GET /login`: `POST /_security/oidc/prepare` → the `state` and `nonce` are kept in a new
//!    server-side session (random id in an `HttpOnly; Secure; SameSite=Lax` cookie), and the
//!    browser is sent to the provider;
//! 2. `GET /callback?...`: the session's `state` is compared (constant time) with the
//!    callback's and removed from the session; a mismatch, or no login pending in this
//!    browser, is refused with a page saying why (400), before oidc-realm is called;
//! 3. `POST /_security/oidc/authenticate` with the callback URL, state and nonce: the user's
//!    access and refresh tokens, username and roles go into a *new* session (a fresh id: the
//!    pre-login id is never reused);
//! 4. `GET /`: the user's page (username, roles, access-token expiry); an expired access token
//!    is renewed with the refresh token (`POST /_security/oauth2/token`) before it is used;
//! 5. `POST /logout`: `POST /_security/oidc/logout`, the session is dropped, and the browser
//!    goes to the provider's end-session URL oidc-realm answered (or `/logged-out`).
//!
//! The tokens never leave the server: the browser holds only the session id.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// The path the provider sends the browser back to: register `<public_url>/callback` as the
/// realm's `rp.redirect_uri`.
pub const CALLBACK_PATH: &str = "/callback";
/// Where the provider sends the browser after its end-session: register
/// `<public_url>/logged-out` as the realm's `rp.post_logout_redirect_uri`.
pub const LOGGED_OUT_PATH: &str = "/logged-out";
/// The session cookie.
pub const COOKIE_NAME: &str = "webapp_session";
/// A session unused this long is forgotten.
const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions are kept (expired ones are purged first).
const MAX_SESSIONS: usize = 10_000;
/// The access token is renewed this long before oidc-realm would refuse it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// How the app authenticates to oidc-realm: as any facilitator, with its own credentials.
#[derive(Clone)]
pub enum Credentials {
    /// HTTP Basic: a user of oidc-realm's `users` with `manage_oidc` and `manage_token`.
    Basic { username: String, password: String },
    /// A service account token (`oidc-realm create-service-token`).
    ServiceToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::ServiceToken(_) => f.write_str("ServiceToken(<redacted>)"),
        }
    }
}

/// The app's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The app's own origin as browsers reach it, e.g. `https://app.example.com`. Plain
    /// `http` is accepted only for a loopback host; then (only then) the cookie is not `Secure`.
    pub public_url: Url,
    /// oidc-realm's base URL, e.g. `http://127.0.0.1:9280`.
    pub realm_url: Url,
    /// The realm to log in with (`realm` of prepare and authenticate).
    pub realm: String,
    pub credentials: Credentials,
    /// A title for the pages.
    pub title: String,
}

/// The running app: its configuration, HTTP client and sessions.
pub struct WebApp {
    cfg: Config,
    http: reqwest::Client,
    secure_cookie: bool,
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Clone, Default)]
struct Session {
    last_used: Option<Instant>,
    login: Option<PendingLogin>,
    user: Option<User>,
}

#[derive(Clone)]
struct PendingLogin {
    state: String,
    nonce: String,
}

#[derive(Clone)]
struct User {
    username: String,
    full_name: Option<String>,
    roles: Vec<String>,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: SystemTime,
    renewals: u32,
}

/// Why a request failed: shown on an error page with its status.
struct Failure {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Failure {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Failure {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl WebApp {
    /// Check the configuration and build the HTTP client.
    pub fn new(cfg: Config) -> Result<Arc<Self>, String> {
        let secure_cookie = match cfg.public_url.scheme() {
            "https" => true,
            "http" if is_loopback(&cfg.public_url) => false,
            "http" => {
                return Err(format!(
                    "public_url {}: plain http is only for a loopback host (the session cookie must be Secure)",
                    cfg.public_url
                ))
            }
            other => return Err(format!("public_url: unsupported scheme {other}")),
        };
        if cfg.realm_url.scheme() == "http" && !is_loopback(&cfg.realm_url) {
            return Err(format!(
                "realm_url {}: plain http is only for a loopback host (the app sends its credentials and the users' tokens)",
                cfg.realm_url
            ));
        }
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Arc::new(WebApp {
            cfg,
            http,
            secure_cookie,
            sessions: Mutex::new(HashMap::new()),
        }))
    }

    fn url(&self, path: &str) -> String {
        let base = self.cfg.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }

    // -- sessions ------------------------------------------------------------------------

    fn session_id(req: &HttpRequest) -> Option<String> {
        req.cookie(COOKIE_NAME).map(|c| c.value().to_string())
    }

    fn load(&self, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let s = sessions.get_mut(id)?;
        if s.last_used.is_some_and(|t| t.elapsed() > SESSION_IDLE) {
            sessions.remove(id);
            return None;
        }
        s.last_used = Some(Instant::now());
        Some(s.clone())
    }

    fn store(&self, id: &str, mut s: Session) -> Result<(), Failure> {
        s.last_used = Some(Instant::now());
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if !sessions.contains_key(id) && sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.last_used.is_some_and(|t| t.elapsed() <= SESSION_IDLE));
            if sessions.len() >= MAX_SESSIONS {
                return Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many sessions",
                    "The app keeps too many sessions right now; try again later.",
                ));
            }
        }
        sessions.insert(id.to_string(), s);
        Ok(())
    }

    fn remove(&self, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(id)
    }

    fn cookie(&self, id: &str) -> Cookie<'static> {
        Cookie::build(COOKIE_NAME, id.to_string())
            .path("/")
            .http_only(true)
            .secure(self.secure_cookie)
            .same_site(SameSite::Lax)
            .finish()
    }

    fn removal_cookie(&self) -> Cookie<'static> {
        let mut c = self.cookie("");
        c.make_removal();
        c
    }

    // -- oidc-realm's API ----------------------------------------------------------------

    async fn call(&self, path: &str, body: Value) -> Result<Value, RealmError> {
        let url = self
            .cfg
            .realm_url
            .join(path)
            .map_err(|e| RealmError::transport(e.to_string()))?;
        let req = self.http.post(url).json(&body);
        let req = match &self.cfg.credentials {
            Credentials::Basic { username, password } => req.basic_auth(username, Some(password)),
            Credentials::ServiceToken(t) => req.bearer_auth(t),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| RealmError::transport(e.without_url().to_string()))?;
        read_json(resp).await
    }

    async fn whoami(&self, access_token: &str) -> Result<Value, RealmError> {
        let url = self
            .cfg
            .realm_url
            .join("/_security/_authenticate")
            .map_err(|e| RealmError::transport(e.to_string()))?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| RealmError::transport(e.without_url().to_string()))?;
        read_json(resp).await
    }

    /// `POST /_security/oauth2/token` with the refresh token: the user's new token pair.
    async fn renew(&self, user: &mut User) -> Result<(), RealmError> {
        let Some(refresh) = user.refresh_token.clone() else {
            return Err(RealmError::transport("no refresh token".into()));
        };
        let r = self
            .call(
                "/_security/oauth2/token",
                json!({"grant_type": "refresh_token", "refresh_token": refresh}),
            )
            .await?;
        let access = r["access_token"]
            .as_str()
            .ok_or_else(|| RealmError::transport("no access_token in the answer".into()))?;
        user.access_token = access.to_string();
        user.refresh_token = r["refresh_token"].as_str().map(str::to_string);
        user.expires_at = expiry(&r);
        user.renewals += 1;
        Ok(())
    }
}

/// An error answer of oidc-realm (its `reason_code`), or a transport failure.
#[derive(Debug)]
struct RealmError {
    status: Option<u16>,
    reason_code: String,
}

impl RealmError {
    fn transport(msg: String) -> Self {
        RealmError {
            status: None,
            reason_code: format!("cannot reach oidc-realm: {msg}"),
        }
    }
}

impl fmt::Display for RealmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "oidc-realm answered {s} ({})", self.reason_code),
            None => f.write_str(&self.reason_code),
        }
    }
}

async fn read_json(resp: reqwest::Response) -> Result<Value, RealmError> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let code = body["error"]["reason_code"]
        .as_str()
        .or_else(|| body["error"]["type"].as_str())
        .unwrap_or("no reason given");
    Err(RealmError {
        status: Some(status.as_u16()),
        reason_code: code.to_string(),
    })
}

fn expiry(token_answer: &Value) -> SystemTime {
    let secs = token_answer["expires_in"].as_u64().unwrap_or(0);
    SystemTime::now() + Duration::from_secs(secs)
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

// -- pages --------------------------------------------------------------------------------

fn esc(s: &str) -> String {
    html_escape::encode_safe(s).into_owned()
}

fn page(title: &str, app_title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · {a}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;line-height:1.5}}\
         .error{{color:#a00}} code{{background:#eee;padding:0 .2em}} button{{font-size:1em}} a.button{{border:1px solid #777;border-radius:3px;padding:.2em .6em;background:#eee;color:#000;text-decoration:none}}</style>\
         </head><body><p><a href=\"/\">{a}</a></p><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title),
        a = esc(app_title),
    )
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(body)
}

fn failure_page(app: &WebApp, f: Failure) -> HttpResponse {
    let body = format!(
        "<p class=\"error\" id=\"error\">{}</p>\n<p><a id=\"login\" href=\"/login\">Log in</a></p>",
        esc(&f.detail)
    );
    html(f.status, page(f.title, &app.cfg.title, &body))
}

fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::SeeOther();
    b.insert_header((header::LOCATION, location.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn login_page(app: &WebApp, status: StatusCode, title: &str, note: &str) -> HttpResponse {
    let body = format!(
        "<p>{}</p>\n<p><a id=\"login\" class=\"button\" href=\"/login\">Log in</a></p>",
        esc(note)
    );
    html(status, page(title, &app.cfg.title, &body))
}

fn user_page(app: &WebApp, u: &User) -> HttpResponse {
    let now = SystemTime::now();
    let left = u
        .expires_at
        .duration_since(now)
        .unwrap_or_default()
        .as_secs();
    let roles = if u.roles.is_empty() {
        "<li><em>none</em></li>".to_string()
    } else {
        u.roles
            .iter()
            .map(|r| format!("<li class=\"role\">{}</li>", esc(r)))
            .collect::<String>()
    };
    let body = format!(
        "<p>Logged in as <strong id=\"username\">{user}</strong>{name}.</p>\n\
         <h2>Roles</h2><ul id=\"roles\">{roles}</ul>\n\
         <h2>Access token</h2><p id=\"expiry\">Expires at <span id=\"expires-at\">{at}</span> \
         (in {m} min {s} s); renewed with the refresh token <span id=\"renewals\">{n}</span> time(s).</p>\n\
         <form method=\"post\" action=\"/refresh\"><button id=\"refresh\" type=\"submit\">Renew the access token now</button></form>\n\
         <form method=\"post\" action=\"/logout\"><button id=\"logout\" type=\"submit\">Log out</button></form>",
        user = esc(&u.username),
        name = u
            .full_name
            .as_deref()
            .map(|n| format!(" (<span id=\"full-name\">{}</span>)", esc(n)))
            .unwrap_or_default(),
        at = httpdate::fmt_http_date(u.expires_at),
        m = left / 60,
        s = left % 60,
        n = u.renewals,
    );
    html(StatusCode::OK, page("Welcome", &app.cfg.title, &body))
}

// -- handlers -----------------------------------------------------------------------------

async fn home(app: web::Data<WebApp>, req: HttpRequest) -> HttpResponse {
    let Some(id) = WebApp::session_id(&req) else {
        return login_page(
            &app,
            StatusCode::OK,
            "Not logged in",
            "You are not logged in.",
        );
    };
    let Some(mut session) = app.load(&id) else {
        return login_page(
            &app,
            StatusCode::OK,
            "Not logged in",
            "You are not logged in.",
        );
    };
    let Some(mut user) = session.user.clone() else {
        return login_page(
            &app,
            StatusCode::OK,
            "Not logged in",
            "You are not logged in.",
        );
    };
    // Renew an expired (or nearly expired) access token before using it.
    let mut renewed = false;
    if SystemTime::now() + EXPIRY_MARGIN >= user.expires_at {
        if let Err(e) = app.renew(&mut user).await {
            return ended(
                &app,
                &id,
                &format!(
                    "Your session ended: the access token expired and could not be renewed ({e})."
                ),
            );
        }
        renewed = true;
    }
    // The token is checked at oidc-realm (it may have been invalidated elsewhere); a refused
    // token is renewed once.
    let who = match app.whoami(&user.access_token).await {
        Ok(v) => v,
        Err(e) if e.status == Some(401) && !renewed => {
            if let Err(e) = app.renew(&mut user).await {
                return ended(&app, &id, &format!("Your session ended: the access token was refused and could not be renewed ({e})."));
            }
            match app.whoami(&user.access_token).await {
                Ok(v) => v,
                Err(e) => return ended(&app, &id, &format!("Your session ended ({e}).")),
            }
        }
        Err(e) if e.status == Some(401) => {
            return ended(&app, &id, &format!("Your session ended ({e})."))
        }
        Err(e) => {
            return failure_page(
                &app,
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "oidc-realm unavailable",
                    e.to_string(),
                ),
            )
        }
    };
    if let Some(roles) = who["roles"].as_array() {
        user.roles = roles
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
    }
    session.user = Some(user.clone());
    if let Err(f) = app.store(&id, session) {
        return failure_page(&app, f);
    }
    user_page(&app, &user)
}

/// Drop the session and show the logged-out page with `note`.
fn ended(app: &WebApp, id: &str, note: &str) -> HttpResponse {
    app.remove(id);
    let mut r = login_page(app, StatusCode::OK, "Session ended", note);
    let _ = r.add_cookie(&app.removal_cookie());
    r
}

async fn login(app: web::Data<WebApp>, req: HttpRequest) -> HttpResponse {
    let prepared = match app
        .call("/_security/oidc/prepare", json!({"realm": app.cfg.realm}))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            return failure_page(
                &app,
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "Cannot start the login",
                    e.to_string(),
                ),
            )
        }
    };
    let (Some(redirect), Some(state), Some(nonce)) = (
        prepared["redirect"].as_str(),
        prepared["state"].as_str(),
        prepared["nonce"].as_str(),
    ) else {
        return failure_page(
            &app,
            Failure::new(
                StatusCode::BAD_GATEWAY,
                "Cannot start the login",
                "oidc-realm's prepare answer lacks redirect, state or nonce",
            ),
        );
    };
    // A new session for every login: whatever id the browser had is dropped.
    if let Some(old) = WebApp::session_id(&req) {
        app.remove(&old);
    }
    let id = random_id();
    let session = Session {
        login: Some(PendingLogin {
            state: state.to_string(),
            nonce: nonce.to_string(),
        }),
        ..Session::default()
    };
    if let Err(f) = app.store(&id, session) {
        return failure_page(&app, f);
    }
    see_other(redirect).cookie(app.cookie(&id)).finish()
}

async fn callback(app: web::Data<WebApp>, req: HttpRequest) -> HttpResponse {
    let refused = |detail: &str| {
        failure_page(
            &app,
            Failure::new(StatusCode::BAD_REQUEST, "Login refused", detail.to_string()),
        )
    };
    let Some(id) = WebApp::session_id(&req) else {
        return refused("No login was started in this browser (no session cookie): the callback is refused. Start again with Log in.");
    };
    let Some(mut session) = app.load(&id) else {
        return refused("No login was started in this browser (the session is unknown or expired): the callback is refused. Start again with Log in.");
    };
    // Single use: whatever happens next, this login is over.
    let Some(pending) = session.login.take() else {
        return refused("No login is pending in this session (it was already completed or refused): the callback is refused. Start again with Log in.");
    };
    let _ = app.store(&id, session.clone());
    let states: Vec<String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .collect();
    let [state] = states.as_slice() else {
        return refused("The callback carries no state, or more than one: it is refused. Start again with Log in.");
    };
    if !ct_eq(state, &pending.state) {
        return refused("The state in the callback is not the one of the login this browser started: the callback is refused (it may be forged, or from another login). Start again with Log in.");
    }
    let redirect_uri = format!(
        "{}{}",
        app.url(CALLBACK_PATH),
        match req.query_string() {
            "" => String::new(),
            q => format!("?{q}"),
        }
    );
    let r = match app
        .call(
            "/_security/oidc/authenticate",
            json!({"redirect_uri": redirect_uri, "state": pending.state, "nonce": pending.nonce, "realm": app.cfg.realm}),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => {
            let status = if e.status.is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_GATEWAY
            };
            return failure_page(&app, Failure::new(status, "Login failed", format!("The login was refused: {e}.")));
        }
    };
    let (Some(username), Some(access)) = (r["username"].as_str(), r["access_token"].as_str())
    else {
        return failure_page(
            &app,
            Failure::new(
                StatusCode::BAD_GATEWAY,
                "Login failed",
                "oidc-realm's answer lacks username or access_token",
            ),
        );
    };
    let auth = &r["authentication"];
    let user = User {
        username: username.to_string(),
        full_name: auth["full_name"].as_str().map(str::to_string),
        roles: auth["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        access_token: access.to_string(),
        refresh_token: r["refresh_token"].as_str().map(str::to_string),
        expires_at: expiry(&r),
        renewals: 0,
    };
    // A fresh session id for the logged-in user (no fixation of the pre-login id).
    app.remove(&id);
    let new_id = random_id();
    if let Err(f) = app.store(
        &new_id,
        Session {
            user: Some(user),
            ..Session::default()
        },
    ) {
        return failure_page(&app, f);
    }
    see_other("/").cookie(app.cookie(&new_id)).finish()
}

async fn refresh(app: web::Data<WebApp>, req: HttpRequest) -> HttpResponse {
    let Some(id) = WebApp::session_id(&req) else {
        return see_other("/").finish();
    };
    let Some(mut session) = app.load(&id) else {
        return see_other("/").finish();
    };
    let Some(mut user) = session.user.take() else {
        return see_other("/").finish();
    };
    if let Err(e) = app.renew(&mut user).await {
        return ended(
            &app,
            &id,
            &format!("Your session ended: the access token could not be renewed ({e})."),
        );
    }
    session.user = Some(user);
    if let Err(f) = app.store(&id, session) {
        return failure_page(&app, f);
    }
    see_other("/").finish()
}

async fn logout(app: web::Data<WebApp>, req: HttpRequest) -> HttpResponse {
    let session = WebApp::session_id(&req).and_then(|id| app.remove(&id));
    let mut location = LOGGED_OUT_PATH.to_string();
    if let Some(user) = session.and_then(|s| s.user) {
        let mut body = json!({"token": user.access_token});
        if let Some(rt) = &user.refresh_token {
            body["refresh_token"] = json!(rt);
        }
        match app.call("/_security/oidc/logout", body).await {
            Ok(v) => {
                if let Some(r) = v["redirect"].as_str() {
                    location = r.to_string();
                }
            }
            // The local session is gone either way; the provider's may remain.
            Err(e) => {
                return {
                    let mut r = login_page(
                        &app,
                        StatusCode::OK,
                        "Logged out",
                        &format!("You are logged out of this app; oidc-realm's logout failed ({e}), so you may still be logged in at the provider."),
                    );
                    let _ = r.add_cookie(&app.removal_cookie());
                    r
                }
            }
        }
    }
    see_other(&location).cookie(app.removal_cookie()).finish()
}

async fn logged_out(app: web::Data<WebApp>) -> HttpResponse {
    login_page(
        &app,
        StatusCode::OK,
        "Logged out",
        "You are logged out, here and at the provider.",
    )
}

/// The app's routes, for `App::configure`.
pub fn configure(app: Arc<WebApp>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(app))
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login))
            .route(CALLBACK_PATH, web::get().to(callback))
            .route("/refresh", web::post().to(refresh))
            .route("/logout", web::post().to(logout))
            .route(LOGGED_OUT_PATH, web::get().to(logged_out));
    }
}

/// The app's HTTP server on an already bound listener (run it with `.await`).
pub fn server(
    listener: std::net::TcpListener,
    app: Arc<WebApp>,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure(app.clone())))
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(public: &str, realm: &str) -> Config {
        Config {
            public_url: Url::parse(public).unwrap(),
            realm_url: Url::parse(realm).unwrap(),
            realm: "r".into(),
            credentials: Credentials::Basic {
                username: "f".into(),
                password: "secret-password".into(),
            },
            title: "t".into(),
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(WebApp::new(cfg("http://127.0.0.1:1", "http://127.0.0.1:2")).is_ok());
        assert!(WebApp::new(cfg("http://localhost:1", "http://[::1]:2")).is_ok());
        let e = WebApp::new(cfg("http://app.example.com", "http://127.0.0.1:2"))
            .err()
            .unwrap();
        assert!(e.contains("loopback"), "{e}");
        let e = WebApp::new(cfg("https://app.example.com", "http://realm.example.com"))
            .err()
            .unwrap();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn cookie_is_secure_except_on_loopback_http() {
        let app = WebApp::new(cfg("https://app.example.com", "https://realm.example.com")).unwrap();
        let c = app.cookie("x").to_string();
        assert!(
            c.contains("HttpOnly") && c.contains("Secure") && c.contains("SameSite=Lax"),
            "{c}"
        );
        let app = WebApp::new(cfg("http://127.0.0.1:1", "http://127.0.0.1:2")).unwrap();
        let c = app.cookie("x").to_string();
        assert!(
            c.contains("HttpOnly") && !c.contains("Secure") && c.contains("SameSite=Lax"),
            "{c}"
        );
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = cfg("http://127.0.0.1:1", "http://127.0.0.1:2");
        assert!(!format!("{c:?}").contains("secret-password"));
        let t = Credentials::ServiceToken("AAEAAWVsYXN0aWM".into());
        assert!(!format!("{t:?}").contains("AAEAAWVsYXN0aWM"));
    }

    #[test]
    fn state_comparison() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
    }

    /// An app whose oidc-realm is unreachable (port 1): every check below happens before
    /// oidc-realm would be called, or shows that it could not be.
    fn offline() -> Arc<WebApp> {
        WebApp::new(cfg("http://127.0.0.1:5601", "http://127.0.0.1:1")).unwrap()
    }

    fn pending(app: &WebApp, state: &str) -> String {
        let id = random_id();
        let s = Session {
            login: Some(PendingLogin {
                state: state.into(),
                nonce: "n".into(),
            }),
            ..Session::default()
        };
        app.store(&id, s).ok().unwrap();
        id
    }

    async fn get(app: &Arc<WebApp>, uri: &str, cookie: Option<&str>) -> (u16, String) {
        use actix_web::test;
        let svc = test::init_service(actix_web::App::new().configure(configure(app.clone()))).await;
        let mut req = test::TestRequest::get().uri(uri);
        if let Some(c) = cookie {
            req = req.cookie(Cookie::new(COOKIE_NAME, c.to_string()));
        }
        let resp = test::call_service(&svc, req.to_request()).await;
        let status = resp.status().as_u16();
        let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        (status, body)
    }

    #[actix_web::test]
    async fn callback_checks_before_calling_oidc_realm() {
        let app = offline();
        // No cookie, an unknown session.
        let (st, body) = get(&app, "/callback?code=c&state=s", None).await;
        assert_eq!(st, 400);
        assert!(body.contains("no session cookie"), "{body}");
        let (st, body) = get(&app, "/callback?code=c&state=s", Some("unknown")).await;
        assert_eq!(st, 400);
        assert!(body.contains("unknown or expired"), "{body}");
        // Another state: refused, and the pending login is gone (single use).
        let id = pending(&app, "the-state");
        let (st, body) = get(&app, "/callback?code=c&state=another", Some(&id)).await;
        assert_eq!(st, 400);
        assert!(
            body.contains("The state in the callback is not the one"),
            "{body}"
        );
        let (st, body) = get(&app, "/callback?code=c&state=the-state", Some(&id)).await;
        assert_eq!(st, 400);
        assert!(body.contains("No login is pending"), "{body}");
        // No state, or two.
        for q in ["code=c", "code=c&state=the-state&state=the-state"] {
            let id = pending(&app, "the-state");
            let (st, body) = get(&app, &format!("/callback?{q}"), Some(&id)).await;
            assert_eq!(st, 400, "{q}");
            assert!(body.contains("no state, or more than one"), "{q}: {body}");
        }
        // The right state: only then is oidc-realm called (unreachable here: 502).
        let id = pending(&app, "the-state");
        let (st, body) = get(&app, "/callback?code=c&state=the-state", Some(&id)).await;
        assert_eq!(st, 502, "{body}");
        assert!(body.contains("cannot reach oidc-realm"), "{body}");
    }

    #[actix_web::test]
    async fn login_without_oidc_realm_says_so() {
        let app = offline();
        let (st, body) = get(&app, "/login", None).await;
        assert_eq!(st, 502);
        assert!(body.contains("Cannot start the login"), "{body}");
        let (st, body) = get(&app, "/", None).await;
        assert_eq!(st, 200);
        assert!(body.contains("id=\"login\""), "{body}");
    }

    #[test]
    fn pages_escape() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
    }
}
