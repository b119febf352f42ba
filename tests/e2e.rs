//! End to end against a real OpenID Provider: panva's `oidc-provider` (OpenID-certified),
//! pinned in `tests/e2e/package.json` and `package-lock.json`, run by `tests/e2e/op.mjs`.
//!
//! Each test runs `tests/e2e/setup.sh` (once per process: `npm ci` from the lockfile, a no-op
//! when up to date; without Node.js or the packages the test fails saying so), then starts:
//!
//! - the provider: `node tests/e2e/op.mjs 0` (any free loopback port), read until its ready
//!   line (JSON with its issuer); its discovery document gives the realms their endpoints;
//! - oidc-realm: an actix `HttpServer` on `127.0.0.1:0` over `oidc_realm::configure`, with
//!   settings from YAML through `oidc_realm::config::load_str`, an in-memory store, and the
//!   system clock (plus an offset the key-rotation test moves forward);
//! - a browser: a reqwest client with a cookie jar that does not follow redirects by itself.
//!   It follows the provider's redirects, fills its built-in login form (devInteractions:
//!   `prompt=login`, `login`, `password`) and consent form, and stops at the first redirect
//!   off the provider: the realm's `rp.redirect_uri` with the code (or the ID token) and state.
//!
//! Everything is done through oidc-realm's public HTTP API, as Kibana would, with a service
//! account token: prepare, the browser at the provider, authenticate with that URL, then
//! `_authenticate`, refresh and logout.

#[path = "common/html_form.rs"]
mod html_form;
#[path = "common/setup.rs"]
mod setup;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use html_form::form;
use oidc_realm::clock::{Clock, SystemClock, UnixMillis};
use oidc_realm::store::MemoryStore;
use oidc_realm::{configure, AppState};
use serde_json::{json, Value};
use setup::root;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use url::Url;

/// What `tests/e2e/op.mjs` registers for every client.
const REDIRECT_URI: &str = "https://kibana.example.test/api/security/oidc/callback";
const POST_LOGOUT_REDIRECT_URI: &str = "https://kibana.example.test/security/logged_out";
const SECRET: &str = "e2e-client-secret-0123456789-abcdefghijklmnop";
/// The facilitator: Kibana's service account.
const SERVICE_TOKEN_NAME: &str = "elastic/kibana/e2e";
/// How long the provider may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Run `tests/e2e/setup.sh` once per test process; panic with its output if it fails.
fn setup() {
    static SETUP: OnceLock<Result<String, String>> = OnceLock::new();
    let result = setup::run_once(&SETUP, "tests/e2e/setup.sh");
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => panic!(
            "the e2e suite needs Node.js (20 or later) and the OpenID Provider it runs \
             (oidc-provider, pinned in tests/e2e/package-lock.json): run tests/e2e/setup.sh \
             (it needs the npm registry the first time). It failed: {e}"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The provider

/// `node tests/e2e/op.mjs 0`, listening; killed when dropped.
struct Op {
    child: Child,
    /// Closed on drop: the provider exits when its stdin ends, even if we cannot kill it.
    _stdin: ChildStdin,
    issuer: String,
    stderr: Arc<Mutex<String>>,
}

impl Op {
    fn start() -> Self {
        let script = root().join("tests/e2e/op.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .arg("0")
            .current_dir(root().join("tests/e2e"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `node {}`: {e} (the e2e suite needs Node.js: run tests/e2e/setup.sh)",
                    script.display()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut r = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Anything later is drained (op.mjs prints nothing else).
            for _ in lines {}
        });
        let mut op = Op {
            child,
            _stdin: stdin,
            issuer: String::new(),
            stderr,
        };
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => panic!(
                "the provider printed no ready line ({other:?}); its stderr:\n{}",
                op.stderr()
            ),
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {line}"));
        assert_eq!(ready["ready"], true, "{line}");
        op.issuer = ready["issuer"].as_str().expect("issuer").to_string();
        op
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// New signing keys at the provider; answers the kids now in use.
    async fn rotate(&self) -> Vec<String> {
        let r: Value = http()
            .post(self.url("/admin/rotate"))
            .send()
            .await
            .expect("rotate")
            .json()
            .await
            .expect("rotate answer");
        r["kids"]
            .as_array()
            .expect("kids")
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The browser

/// A user agent with a cookie jar, that follows redirects itself.
struct Browser {
    client: reqwest::Client,
    op_origin: url::Origin,
}

/// Where the provider sent the browser once it was done, and which pages it showed.
#[derive(Debug)]
struct Visit {
    /// The first URL off the provider (the realm's redirect URI, with code or ID token).
    left_to: String,
    saw_login: bool,
    saw_consent: bool,
}

impl Browser {
    fn new(op: &Op) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            client,
            op_origin: Url::parse(&op.issuer).unwrap().origin(),
        }
    }

    /// Open `url` (at the provider) and go on until the provider sends the browser away:
    /// follow its redirects, log in as `user` on its login page (devInteractions does not
    /// check the password), agree on its consent page, confirm on its logout page.
    async fn visit(&self, url: &str, user: &str) -> Visit {
        let mut visit = Visit {
            left_to: String::new(),
            saw_login: false,
            saw_consent: false,
        };
        let mut next = self.client.get(url);
        let mut at = Url::parse(url).unwrap();
        for _ in 0..20 {
            let resp = next.send().await.unwrap_or_else(|e| panic!("{at}: {e}"));
            let status = resp.status();
            if status.is_redirection() {
                let location = resp.headers()["location"].to_str().unwrap();
                let to = at.join(location).unwrap();
                if to.origin() != self.op_origin {
                    visit.left_to = to.to_string();
                    return visit;
                }
                at = to;
                next = self.client.get(at.clone());
                continue;
            }
            let html = resp.text().await.unwrap();
            assert_eq!(status, 200, "{at}: {html}");
            let (action, mut fields) =
                form(&at, &html).unwrap_or_else(|| panic!("{at}: a page without a form: {html}"));
            let prompt = fields
                .iter()
                .find(|(n, _)| n == "prompt")
                .map(|(_, v)| v.clone());
            match prompt.as_deref() {
                Some("login") => {
                    visit.saw_login = true;
                    fields.push(("login".into(), user.into()));
                    fields.push(("password".into(), "any password".into()));
                }
                Some("consent") => visit.saw_consent = true,
                // RP-initiated logout's confirmation page: "Yes, sign me out".
                None if fields.iter().any(|(n, _)| n == "xsrf") => {
                    fields.push(("logout".into(), "yes".into()));
                }
                _ => panic!("{at}: an unexpected page: {html}"),
            }
            next = self.client.post(action.clone()).form(&fields);
            at = action;
        }
        panic!("more than 20 steps at the provider, last at {at}");
    }
}

// ---------------------------------------------------------------------------------------
// oidc-realm

/// The system clock plus an offset tests can move forward (never back).
#[derive(Debug, Default)]
struct ShiftedClock {
    offset_millis: AtomicI64,
}

impl ShiftedClock {
    fn advance(&self, by: Duration) {
        self.offset_millis
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now_millis(&self) -> UnixMillis {
        SystemClock.now_millis() + self.offset_millis.load(Ordering::SeqCst)
    }
}

/// One realm per provider client, and `strict`: `rp-basic` again with a principal pattern
/// that only lets through lower-case letters (so not `mallory@evil`).
fn config_yaml(discovery: &Value, service_token_hash: &str) -> String {
    let d = |k: &str| {
        discovery[k]
            .as_str()
            .unwrap_or_else(|| panic!("discovery has no {k}: {discovery}"))
            .to_string()
    };
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let realm =
        |name: &str, order: u32, client: &str, response_type: &str, extra: &[(&str, &str)]| {
            let mut keys: Vec<(&str, String)> = vec![
                ("order", order.to_string()),
                ("rp.client_id", q(client)),
                ("rp.client_secret", q(SECRET)),
                ("rp.redirect_uri", q(REDIRECT_URI)),
                ("rp.post_logout_redirect_uri", q(POST_LOGOUT_REDIRECT_URI)),
                ("rp.response_type", q(response_type)),
                (
                    "rp.requested_scopes",
                    "[openid, profile, email, groups]".into(),
                ),
                ("op.issuer", q(&d("issuer"))),
                ("op.authorization_endpoint", q(&d("authorization_endpoint"))),
                ("op.token_endpoint", q(&d("token_endpoint"))),
                ("op.userinfo_endpoint", q(&d("userinfo_endpoint"))),
                ("op.endsession_endpoint", q(&d("end_session_endpoint"))),
                ("op.jwkset_path", q(&d("jwks_uri"))),
                ("claims.principal", "sub".into()),
                ("claims.groups", "groups".into()),
                ("claims.name", "name".into()),
                ("claims.mail", "email".into()),
            ];
            keys.extend(extra.iter().map(|(k, v)| (*k, q(v))));
            let mut s = format!("  {name}:\n");
            for (k, v) in keys {
                s.push_str(&format!("    {k}: {v}\n"));
            }
            s
        };
    let mut s = format!(
        "service_tokens:\n  {SERVICE_TOKEN_NAME}:\n    hash: '{service_token_hash}'\n    \
         privileges: [manage_oidc, manage_token, manage_user_profile]\n"
    );
    s.push_str(
        "role_mappings:\n  \
           finance:\n    enabled: true\n    roles: [finance_data]\n    \
             rules: {field: {groups: finance}}\n  \
           staff:\n    enabled: true\n    roles: [staff]\n    \
             rules: {all: [{field: {groups: staff}}, {field: {realm.name: [basic, post, jwt, implicit, implicit_token, strict, pkjwt, eddsa, discovered, bcl]}}]}\n",
    );
    s.push_str("realms:\n");
    s.push_str(&realm(
        "basic",
        1,
        "rp-basic",
        "code",
        &[
            ("rp.client_auth_method", "client_secret_basic"),
            ("rp.signature_algorithm", "RS256"),
        ],
    ));
    s.push_str(&realm(
        "post",
        2,
        "rp-post",
        "code",
        &[
            ("rp.client_auth_method", "client_secret_post"),
            ("rp.signature_algorithm", "ES256"),
        ],
    ));
    s.push_str(&realm(
        "jwt",
        3,
        "rp-jwt",
        "code",
        &[
            ("rp.client_auth_method", "client_secret_jwt"),
            ("rp.client_auth_jwt_signature_algorithm", "HS256"),
            ("rp.signature_algorithm", "RS256"),
        ],
    ));
    s.push_str(&realm(
        "implicit",
        4,
        "rp-implicit",
        "id_token",
        &[("rp.signature_algorithm", "ES256")],
    ));
    s.push_str(&realm(
        "implicit_token",
        5,
        "rp-implicit",
        "id_token token",
        &[("rp.signature_algorithm", "ES256")],
    ));
    s.push_str(&realm(
        "strict",
        6,
        "rp-basic",
        "code",
        &[("claim_patterns.principal", "^([a-z]+)$")],
    ));
    // private_key_jwt with the key whose public half tests/e2e/op.mjs registers.
    let client_key = format!(
        "${{file:{}}}",
        root().join("tests/fixtures/keys/rsa2.pem").display()
    );
    s.push_str(&realm(
        "pkjwt",
        7,
        "rp-pkjwt",
        "code",
        &[
            ("rp.client_auth_method", "private_key_jwt"),
            ("rp.client_auth_key", &client_key),
            ("rp.client_auth_key_id", "e2e-client-key"),
            ("rp.signature_algorithm", "RS256"),
        ],
    ));
    s.push_str(&realm(
        "eddsa",
        8,
        "rp-eddsa",
        "code",
        &[("rp.signature_algorithm", "EdDSA")],
    ));
    // Discovery: no endpoint written; `E2e::start` fetches the metadata as `serve` does.
    let mut discovered = realm("discovered", 9, "rp-basic", "code", &[]);
    discovered.retain_lines(|l| {
        ![
            "op.authorization_endpoint",
            "op.token_endpoint",
            "op.userinfo_endpoint",
            "op.endsession_endpoint",
            "op.jwkset_path",
        ]
        .iter()
        .any(|k| l.trim_start().starts_with(k))
    });
    discovered.push_str("    op.discovery: true\n");
    s.push_str(&discovered);
    s.push_str(&realm(
        "bcl",
        10,
        "rp-bcl",
        "code",
        &[("rp.backchannel_logout", "true")],
    ));
    s
}

/// Keep the lines of a string that satisfy `keep`.
trait RetainLines {
    fn retain_lines(&mut self, keep: impl Fn(&str) -> bool);
}

impl RetainLines for String {
    fn retain_lines(&mut self, keep: impl Fn(&str) -> bool) {
        *self = self
            .lines()
            .filter(|l| keep(l))
            .map(|l| format!("{l}\n"))
            .collect();
    }
}

/// The provider, oidc-realm configured against it, a facilitator and a browser.
struct E2e {
    op: Op,
    base: String,
    handle: ServerHandle,
    clock: Arc<ShiftedClock>,
    api: reqwest::Client,
    service_token: String,
    browser: Browser,
}

/// What prepare answered.
struct Prepared {
    redirect: String,
    state: String,
    nonce: String,
}

impl E2e {
    async fn start() -> Self {
        setup();
        let started = Instant::now();
        let op = Op::start();
        let api = http();
        let discovery: Value = api
            .get(op.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("discovery JSON");
        assert_eq!(discovery["issuer"], op.issuer.as_str());

        let (service_token, hash) = oidc_realm::auth::service_tokens::generate(SERVICE_TOKEN_NAME)
            .expect("generate a service token");
        let yaml = config_yaml(&discovery, &hash);
        let loaded = oidc_realm::config::load_str(&yaml, &std::env::temp_dir())
            .unwrap_or_else(|e| panic!("the configuration does not load:\n{e}\n---\n{yaml}"));
        let clock = Arc::new(ShiftedClock::default());
        let mut settings = loaded.settings;
        // `op.discovery` realms: the provider metadata, as `serve` fetches it at start.
        oidc_realm::realm::discovery::discover_all(&mut settings)
            .await
            .unwrap_or_else(|e| panic!("discovery failed: {}", Vec::<String>::from(e).join("\n")));
        let state = AppState::new(
            settings,
            loaded.warnings,
            Arc::new(MemoryStore::new()),
            clock.clone(),
        );
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let base = format!("http://{}", l.local_addr().unwrap());
        let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .listen(l)
            .expect("listen oidc-realm")
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        println!(
            "provider {} and oidc-realm {base} up in {:?}",
            op.issuer,
            started.elapsed()
        );
        let browser = Browser::new(&op);
        Self {
            op,
            base,
            handle,
            clock,
            api,
            service_token,
            browser,
        }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }

    /// A call to oidc-realm as the facilitator (or with `bearer`): (status, JSON body).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .api
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer.unwrap_or(&self.service_token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    async fn prepare(&self, realm: &str) -> Prepared {
        let (status, body) = self
            .post("/_security/oidc/prepare", json!({ "realm": realm }))
            .await;
        assert_eq!(status, 200, "prepare {realm}: {body}");
        let s = |k: &str| body[k].as_str().unwrap().to_string();
        Prepared {
            redirect: s("redirect"),
            state: s("state"),
            nonce: s("nonce"),
        }
    }

    async fn authenticate(&self, realm: &str, p: &Prepared, callback: &str) -> (u16, Value) {
        self.post(
            "/_security/oidc/authenticate",
            json!({"redirect_uri": callback, "state": p.state, "nonce": p.nonce, "realm": realm}),
        )
        .await
    }

    /// prepare, the browser at the provider as `user`, and the URL it came back with.
    async fn browse(&self, realm: &str, user: &str) -> (Prepared, Visit) {
        self.browse_in(&self.browser, realm, user).await
    }

    /// The same in another browser (its own cookies: the provider's session in the main
    /// browser would otherwise log the user in as whoever logged in there first).
    async fn browse_in(&self, browser: &Browser, realm: &str, user: &str) -> (Prepared, Visit) {
        let p = self.prepare(realm).await;
        let v = browser.visit(&p.redirect, user).await;
        assert!(
            v.left_to.starts_with(REDIRECT_URI),
            "the provider did not send the browser to the realm's redirect URI: {v:?}\n{}",
            self.op.stderr()
        );
        (p, v)
    }

    /// A whole login that must succeed: the authenticate answer.
    async fn login(&self, realm: &str, user: &str) -> Value {
        self.login_in(&self.browser, realm, user).await
    }

    async fn login_in(&self, browser: &Browser, realm: &str, user: &str) -> Value {
        let (p, v) = self.browse_in(browser, realm, user).await;
        let (status, body) = self.authenticate(realm, &p, &v.left_to).await;
        assert_eq!(
            status,
            200,
            "login of {user} at realm {realm} failed: {body}\nprovider stderr:\n{}",
            self.op.stderr()
        );
        body
    }

    async fn whoami(&self, access_token: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::GET,
            "/_security/_authenticate",
            None,
            Some(access_token),
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.post(
            "/_security/oauth2/token",
            json!({"grant_type": "refresh_token", "refresh_token": refresh_token}),
        )
        .await
    }

    async fn status(&self) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, "/_security/oidc/_status", None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn reason_code(body: &Value) -> &str {
    body["error"]["reason_code"].as_str().unwrap_or("")
}

/// A parameter of the query, or of the fragment, of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    let u = Url::parse(url).unwrap();
    let from = |s: &str| {
        url::form_urlencoded::parse(s.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    u.query()
        .and_then(from)
        .or_else(|| u.fragment().and_then(from))
}

/// The `kid` in the header of a JWT.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// The user a token pair or `_authenticate` shows, as (username, roles, full_name, email,
/// realm).
fn who(user: &Value) -> (String, Vec<String>, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&user["username"]),
        user["roles"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default(),
        s(&user["full_name"]),
        s(&user["email"]),
        s(&user["authentication_realm"]["name"]),
    )
}

fn alice(realm: &str) -> (String, Vec<String>, String, String, String) {
    (
        "alice".into(),
        vec!["finance_data".into(), "staff".into()],
        "Alice Liddell".into(),
        "alice@example.test".into(),
        realm.into(),
    )
}

/// A login at `realm` as alice, then what every login must give: the user with the roles
/// mapped from her `groups` (finance → finance_data, staff → staff), her name and e-mail
/// (from UserInfo in the code flow: oidc-provider puts no profile claims in an ID token
/// issued with an access token), shown by `_authenticate` with the access token; then a
/// refresh, whose new access token shows the same user.
async fn login_authenticate_refresh(e: &E2e, realm: &str) {
    let pair = e.login(realm, "alice").await;
    assert_eq!(pair["username"], "alice", "{pair}");
    assert_eq!(who(&pair["authentication"]), alice(realm), "{pair}");
    assert_eq!(
        pair["authentication"]["metadata"]["oidc(sub)"], "alice",
        "{pair}"
    );
    let access = pair["access_token"].as_str().unwrap();
    let (status, me) = e.whoami(access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(who(&me), alice(realm), "{me}");
    assert_eq!(me["authentication_type"], "token", "{me}");

    let (status, refreshed) = e.refresh(pair["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "refresh: {refreshed}");
    let access2 = refreshed["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_ne!(refreshed["refresh_token"], pair["refresh_token"]);
    let (status, me) = e.whoami(access2).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(who(&me), alice(realm), "{me}");
}

// ---------------------------------------------------------------------------------------
// Scenarios

#[actix_web::test]
async fn code_flow_client_secret_basic_rs256() {
    let e = E2e::start().await;
    login_authenticate_refresh(&e, "basic").await;
    e.stop().await;
}

#[actix_web::test]
async fn code_flow_client_secret_post_es256() {
    let e = E2e::start().await;
    login_authenticate_refresh(&e, "post").await;
    // Another user, in another browser: other groups, other roles.
    let pair = e.login_in(&Browser::new(&e.op), "post", "bob").await;
    assert_eq!(
        who(&pair["authentication"]),
        (
            "bob".into(),
            vec!["staff".into()],
            "Bob Builder".into(),
            "bob@example.test".into(),
            "post".into()
        ),
        "{pair}"
    );
    e.stop().await;
}

#[actix_web::test]
async fn code_flow_client_secret_jwt_hs256() {
    let e = E2e::start().await;
    login_authenticate_refresh(&e, "jwt").await;
    e.stop().await;
}

/// `private_key_jwt` at a real provider: oidc-provider verifies the RS256 assertion with the
/// key registered for `rp-pkjwt`; that key is what `GET /oidc/pkjwt/jwks` publishes.
#[actix_web::test]
async fn code_flow_private_key_jwt_rs256() {
    let e = E2e::start().await;
    login_authenticate_refresh(&e, "pkjwt").await;
    let jwks: Value = e
        .api
        .get(format!("{}/oidc/pkjwt/jwks", e.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "e2e-client-key", "{jwks}");
    assert_eq!(jwks["keys"][0]["kty"], "RSA", "{jwks}");
    e.stop().await;
}

/// EdDSA (Ed25519) ID tokens from oidc-provider, accepted by a realm that lists EdDSA.
#[actix_web::test]
async fn code_flow_eddsa_id_token() {
    let e = E2e::start().await;
    login_authenticate_refresh(&e, "eddsa").await;
    e.stop().await;
}

/// A realm with `op.discovery: true` and no endpoint written logs in with the endpoints of
/// oidc-provider's metadata; `_status` shows them.
#[actix_web::test]
async fn code_flow_with_discovery() {
    let e = E2e::start().await;
    login_authenticate_refresh(&e, "discovered").await;
    let status = e.status().await;
    let d = &status["realms"]["discovered"]["discovery"];
    assert_eq!(d["issuer"], e.op.issuer.as_str(), "{d}");
    assert_eq!(
        d["endpoints"]["token_endpoint"],
        format!("{}/token", e.op.issuer),
        "{d}"
    );
    e.stop().await;
}

/// `response_type: id_token`: the ID token comes in the fragment and carries the claims
/// itself (no access token, so no UserInfo).
#[actix_web::test]
async fn implicit_id_token_es256() {
    let e = E2e::start().await;
    let (p, v) = e.browse("implicit", "alice").await;
    let id_token = param(&v.left_to, "id_token").expect("an ID token in the fragment");
    assert!(param(&v.left_to, "access_token").is_none(), "{v:?}");
    assert!(Url::parse(&v.left_to).unwrap().query().is_none(), "{v:?}");
    assert_eq!(kid(&id_token), "ec-1");
    let (status, pair) = e.authenticate("implicit", &p, &v.left_to).await;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(who(&pair["authentication"]), alice("implicit"), "{pair}");
    let (status, me) = e.whoami(pair["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(who(&me), alice("implicit"), "{me}");
    e.stop().await;
}

/// `response_type: id_token token`: ID token and access token in the fragment (`at_hash`
/// checked), the claims from UserInfo with that access token.
#[actix_web::test]
async fn implicit_id_token_token_es256() {
    let e = E2e::start().await;
    let (p, v) = e.browse("implicit_token", "alice").await;
    assert!(param(&v.left_to, "id_token").is_some(), "{v:?}");
    assert!(param(&v.left_to, "access_token").is_some(), "{v:?}");
    let (status, pair) = e.authenticate("implicit_token", &p, &v.left_to).await;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(
        who(&pair["authentication"]),
        alice("implicit_token"),
        "{pair}"
    );
    let (status, refreshed) = e.refresh(pair["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{refreshed}");
    e.stop().await;
}

/// Logout: oidc-realm invalidates the tokens and answers the provider's end-session URL; the
/// provider accepts it (id_token_hint, the registered post_logout_redirect_uri, state), shows
/// its confirmation page and, confirmed, sends the browser to the post-logout URI with our
/// state. Its session is gone then: a new authorization request shows the login page, where
/// before the logout it was answered at once (single sign-on).
#[actix_web::test]
async fn logout_ends_the_provider_session() {
    let e = E2e::start().await;
    let (p, v) = e.browse("basic", "alice").await;
    assert!(v.saw_login && v.saw_consent, "{v:?}");
    let (status, pair) = e.authenticate("basic", &p, &v.left_to).await;
    assert_eq!(status, 200, "{pair}");

    // The provider's session, before: no login page, no consent page.
    let (_, again) = e.browse("basic", "alice").await;
    assert!(!again.saw_login && !again.saw_consent, "{again:?}");

    let access = pair["access_token"].as_str().unwrap();
    let (status, out) = e
        .post(
            "/_security/oidc/logout",
            json!({"token": access, "refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let redirect = out["redirect"].as_str().expect("an end-session redirect");
    assert!(
        redirect.starts_with(&e.op.url("/session/end")),
        "{redirect}"
    );
    assert_eq!(
        param(redirect, "post_logout_redirect_uri").as_deref(),
        Some(POST_LOGOUT_REDIRECT_URI)
    );
    assert!(param(redirect, "id_token_hint").is_some(), "{redirect}");
    let state = param(redirect, "state").expect("state");

    let done = e.browser.visit(redirect, "alice").await;
    assert!(
        done.left_to.starts_with(POST_LOGOUT_REDIRECT_URI),
        "the provider did not accept the logout: {done:?}\n{}",
        e.op.stderr()
    );
    assert_eq!(param(&done.left_to, "state"), Some(state));

    // oidc-realm's tokens are gone.
    let (status, _) = e.whoami(access).await;
    assert_eq!(status, 401);
    let (status, body) = e.refresh(pair["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "{body}");

    // The provider's session is gone: the login page again, and a new login works.
    let (p, v) = e.browse("basic", "alice").await;
    assert!(v.saw_login, "no login page after logout: {v:?}");
    let (status, pair) = e.authenticate("basic", &p, &v.left_to).await;
    assert_eq!(status, 200, "{pair}");
    e.stop().await;
}

/// Back-Channel Logout from oidc-provider: the provider's session ends at the provider (its
/// end-session page, not oidc-realm's logout API); the provider POSTs a logout token to
/// oidc-realm (through the forwarder of tests/e2e/op.mjs), which invalidates the login's
/// access and refresh tokens.
#[actix_web::test]
async fn backchannel_logout_from_the_provider_ends_the_login() {
    let e = E2e::start().await;
    let target = format!("{}/oidc/bcl/backchannel-logout", e.base);
    let r = e
        .api
        .post(e.op.url("/admin/bcl-target"))
        .body(target)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let pair = e.login("bcl", "alice").await;
    let access = pair["access_token"].as_str().unwrap();
    let (status, me) = e.whoami(access).await;
    assert_eq!(status, 200, "{me}");

    let end = format!(
        "{}?client_id=rp-bcl&post_logout_redirect_uri={}",
        e.op.url("/session/end"),
        url::form_urlencoded::byte_serialize(POST_LOGOUT_REDIRECT_URI.as_bytes())
            .collect::<String>()
    );
    let done = e.browser.visit(&end, "alice").await;
    assert!(
        done.left_to.starts_with(POST_LOGOUT_REDIRECT_URI),
        "the provider did not end the session: {done:?}\n{}",
        e.op.stderr()
    );
    // The provider calls back during the end-session step; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = e.whoami(access).await;
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the login survived the provider's logout\n{}",
            e.op.stderr()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = e.refresh(pair["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "{body}");
    e.stop().await;
}

/// The provider rotates its keys while both run: the old kids leave its JWKS, new ones sign.
/// oidc-realm, which holds the old set, meets an unknown kid, fetches the JWKS again and
/// accepts the token: no restart, no reload. The refetch is rate limited
/// (`op.jwkset_min_refetch_interval`, 30 s by default, counted from the first fetch): a login
/// right after the rotation is refused (`kid_not_found`), and the realm's clock is then moved
/// past the interval instead of waiting.
#[actix_web::test]
async fn key_rotation_is_picked_up_without_restart() {
    let e = E2e::start().await;
    let (p, v) = e.browse("implicit", "alice").await;
    assert_eq!(kid(&param(&v.left_to, "id_token").unwrap()), "ec-1");
    let (status, body) = e.authenticate("implicit", &p, &v.left_to).await;
    assert_eq!(status, 200, "{body}");
    e.login("basic", "alice").await;
    let kids_before = |realm: &str, status: &Value| status["realms"][realm]["jwks"]["kids"].clone();
    let before = e.status().await;
    assert_eq!(
        kids_before("implicit", &before),
        json!(["rsa-1", "ec-1", "ed-1"])
    );
    assert_eq!(
        kids_before("basic", &before),
        json!(["rsa-1", "ec-1", "ed-1"])
    );

    assert_eq!(e.op.rotate().await, ["rsa-2", "ec-2", "ed-2"]);
    // Within the refetch interval of the first fetch, the unknown kid is refused, not
    // fetched: the realm still holds the old keys.
    let (p, v) = e.browse("implicit", "alice").await;
    let (status, body) = e.authenticate("implicit", &p, &v.left_to).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(reason_code(&body), "kid_not_found", "{body}");
    // Once it has passed, the same kind of login fetches the new set and succeeds.
    e.clock.advance(Duration::from_secs(31));

    // Signed with the new EC key (the browser sees the ID token in the implicit flow).
    let (p, v) = e.browse("implicit", "alice").await;
    assert_eq!(kid(&param(&v.left_to, "id_token").unwrap()), "ec-2");
    let (status, body) = e.authenticate("implicit", &p, &v.left_to).await;
    assert_eq!(status, 200, "after the rotation: {body}");
    assert_eq!(who(&body["authentication"]), alice("implicit"), "{body}");
    // And the code flow (new RSA key), on another realm with its own key cache.
    let body = e.login("basic", "alice").await;
    assert_eq!(who(&body["authentication"]), alice("basic"), "{body}");

    let after = e.status().await;
    assert_eq!(
        kids_before("implicit", &after),
        json!(["rsa-2", "ec-2", "ed-2"])
    );
    assert_eq!(
        kids_before("basic", &after),
        json!(["rsa-2", "ec-2", "ed-2"])
    );
    e.stop().await;
}

/// `claim_patterns.principal: ^([a-z]+)$` lets alice through and refuses `mallory@evil`, whom
/// the provider authenticates all the same: 401 `principal_missing`, and no token.
#[actix_web::test]
async fn principal_pattern_refuses_a_user() {
    let e = E2e::start().await;
    let pair = e.login("strict", "alice").await;
    assert_eq!(pair["username"], "alice", "{pair}");

    let (p, v) = e
        .browse_in(&Browser::new(&e.op), "strict", "mallory@evil")
        .await;
    assert!(v.saw_login, "{v:?}");
    let (status, body) = e.authenticate("strict", &p, &v.left_to).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(reason_code(&body), "principal_missing", "{body}");
    assert!(body.get("access_token").is_none());
    e.stop().await;
}

/// The same authenticate twice (a replay of the callback): the second is refused,
/// 401 `flow_unknown`, even though the provider's code would be refused anyway.
#[actix_web::test]
async fn replayed_authenticate_is_refused() {
    let e = E2e::start().await;
    let (p, v) = e.browse("basic", "alice").await;
    let (status, body) = e.authenticate("basic", &p, &v.left_to).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = e.authenticate("basic", &p, &v.left_to).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(reason_code(&body), "flow_unknown", "{body}");
    e.stop().await;
}
