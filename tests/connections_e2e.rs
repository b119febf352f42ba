//! Connections end to end against a real OAuth 2.0 service: panva's `oidc-provider`, pinned in
//! `tests/e2e/package.json` and `package-lock.json` (installed by `tests/e2e/setup.sh`), run
//! by `tests/e2e/oauth_service.mjs` (refresh tokens with rotation, revocation, access tokens
//! of 120 s, PKCE required).
//!
//! oidc-realm runs in-process on the real `configure()` with an in-memory store and a manual
//! clock; a browser (a reqwest client with a cookie jar) logs the user in at the service.
//! authorize → login and consent at the service → callback → `_token` (the token works at
//! the service's UserInfo) → expiry → refreshed token (works too) → `_grant` revocation (the
//! refreshed token stops working at the service) → `authorization_required`.

mod common;
#[path = "common/html_form.rs"]
mod html_form;
#[path = "common/setup.rs"]
mod setup;
use html_form::form;

use common::*;
use oidc_realm::config::{PasswordHash, Privilege, UserEntry};
use oidc_realm::secret::Secret;
use serde_json::{json, Value};
use setup::root;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;
use url::Url;

const REDIRECT_URI: &str = "https://app.example.test/connections/callback";
const CLIENT_ID: &str = "connections-client";
const SECRET: &str = "connections-client-secret-0123456789-abcdef";
const ACCESS_TOKEN_TTL: u64 = 120;
const KEY: &str = "e2e-connections-key-0123456789-abcdefghij";
const APP: (&str, &str) = ("app", "app-password");
const ALICE: (&str, &str) = ("alice", "alice-password");

fn setup() {
    static SETUP: OnceLock<Result<String, String>> = OnceLock::new();
    match setup::run_once(&SETUP, "tests/e2e/setup.sh") {
        Ok(text) => print!("{text}"),
        Err(e) => panic!(
            "the connections e2e suite needs Node.js (20 or later) and oidc-provider (pinned in \
             tests/e2e/package-lock.json): run tests/e2e/setup.sh (it needs the npm registry \
             the first time). It failed: {e}"
        ),
    }
}

/// `node tests/e2e/oauth_service.mjs 0`, listening; killed when dropped.
struct OAuthService {
    child: Child,
    _stdin: ChildStdin,
    issuer: String,
    stderr: Arc<Mutex<String>>,
}

impl OAuthService {
    fn start() -> Self {
        let script = root().join("tests/e2e/oauth_service.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .arg("0")
            .current_dir(root().join("tests/e2e"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node {}`: {e}", script.display()));
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
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            other => panic!(
                "the service printed no ready line ({other:?}); its stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        let ready: Value = serde_json::from_str(&line).unwrap();
        OAuthService {
            child,
            _stdin: stdin,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
            stderr,
        }
    }
}

impl Drop for OAuthService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(cookies: bool) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The browser at the service: follow its redirects, log in as `user`, consent, and stop at
/// the first redirect off the service (the connection's redirect URI with code and state).
async fn browse(service: &OAuthService, url: &str, user: &str) -> String {
    let client = http(true);
    let origin = Url::parse(&service.issuer).unwrap().origin();
    let mut next = client.get(url);
    let mut at = Url::parse(url).unwrap();
    for _ in 0..20 {
        let resp = next.send().await.unwrap();
        let status = resp.status();
        if status.is_redirection() {
            let to = at
                .join(resp.headers()["location"].to_str().unwrap())
                .unwrap();
            if to.origin() != origin {
                return to.to_string();
            }
            at = to;
            next = client.get(at.clone());
            continue;
        }
        let html = resp.text().await.unwrap();
        assert_eq!(status, 200, "{at}: {html}");
        let (action, mut fields) = form(&at, &html).unwrap_or_else(|| panic!("{at}: {html}"));
        if fields.iter().any(|(n, v)| n == "prompt" && v == "login") {
            fields.push(("login".into(), user.into()));
            fields.push(("password".into(), "any".into()));
        }
        next = client.post(action.clone()).form(&fields);
        at = action;
    }
    panic!(
        "more than 20 steps at the service; its stderr:\n{}",
        service.stderr.lock().unwrap()
    );
}

/// The service's UserInfo answer for an access token: its status.
async fn userinfo(endpoint: &str, token: &str) -> u16 {
    http(false)
        .get(endpoint)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn entry(pw: &str, privs: &[Privilege]) -> UserEntry {
    UserEntry {
        password_hash: PasswordHash::Bcrypt(bcrypt::hash(pw, 4).unwrap()),
        privileges: privs.iter().copied().collect(),
        roles: Vec::new(),
        full_name: None,
        email: None,
    }
}

#[actix_web::test]
async fn authorize_login_callback_token_refresh_revoke_at_a_real_service() {
    setup();
    let service = OAuthService::start();
    let discovery: Value = http(false)
        .get(format!(
            "{}/.well-known/openid-configuration",
            service.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = |k: &str| discovery[k].as_str().unwrap().to_string();

    let mut s = settings();
    s.users.insert(
        APP.0.into(),
        entry(APP.1, &[Privilege::UseConnections, Privilege::ManageToken]),
    );
    s.users.insert(ALICE.0.into(), entry(ALICE.1, &[]));
    s.connections.key = Some(Secret::new(KEY.into()));
    let app = TestApp::with(s, Arc::new(oidc_realm::store::MemoryStore::new()));
    let svc = app.service().await;
    let call = |req: actix_web::test::TestRequest, who: (&'static str, &'static str)| {
        let svc = &svc;
        async move {
            let (s, _, b) = send(svc, req.insert_header(basic(who))).await;
            (s, b)
        }
    };

    let (st, b) = call(
        actix_web::test::TestRequest::put()
            .uri("/_oauth/connections/svc")
            .set_json(json!({
                // Endpoints discovered from the service's RFC 8414 metadata.
                "issuer": service.issuer,
                "redirect_uri": REDIRECT_URI,
                "scopes": ["openid", "api"],
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
            })),
        ADMIN,
    )
    .await;
    assert_eq!(st, 200, "{b}");

    let (st, b) = call(
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ALICE.0, "password": ALICE.1}),
        ),
        APP,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let alice = b["access_token"].as_str().unwrap().to_string();
    let user = json!({ "access_token": alice });

    // authorize → the service's login and consent → back at the redirect URI.
    let (st, b) = call(
        post_json("/_oauth/connections/svc/_authorize", user.clone()),
        APP,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let back = browse(&service, b["redirect"].as_str().unwrap(), "alice").await;
    assert!(back.starts_with(REDIRECT_URI), "{back}");
    let (st, b) = call(
        post_json(
            "/_oauth/connections/_callback",
            json!({ "access_token": alice, "redirect_uri": back }),
        ),
        APP,
    )
    .await;
    assert_eq!(
        st,
        200,
        "{b}; service stderr:\n{}",
        service.stderr.lock().unwrap()
    );
    // The same callback again: the state is used up.
    let (st, _) = call(
        post_json(
            "/_oauth/connections/_callback",
            json!({ "access_token": alice, "redirect_uri": back }),
        ),
        APP,
    )
    .await;
    assert_eq!(st, 400);

    // A token that works at the service.
    let (st, b) = call(
        post_json("/_oauth/connections/svc/_token", user.clone()),
        APP,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let first = b["access_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&d("userinfo_endpoint"), &first).await, 200);

    // Past its expiry (oidc-realm's clock): refreshed at the service; the new one works.
    app.advance(Duration::from_secs(ACCESS_TOKEN_TTL));
    let (st, b) = call(
        post_json("/_oauth/connections/svc/_token", user.clone()),
        APP,
    )
    .await;
    assert_eq!(
        st,
        200,
        "{b}; service stderr:\n{}",
        service.stderr.lock().unwrap()
    );
    let second = b["access_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(userinfo(&d("userinfo_endpoint"), &second).await, 200);

    // Revoked at the service.
    let (st, b) = call(
        delete_json("/_oauth/connections/svc/_grant", user.clone()),
        APP,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["revoked_at_service"], true, "{b}");
    // oidc-provider revokes the whole grant with its refresh token: the access token too.
    assert_eq!(userinfo(&d("userinfo_endpoint"), &second).await, 401);
    let (st, b) = call(
        post_json("/_oauth/connections/svc/_token", user.clone()),
        APP,
    )
    .await;
    assert_eq!(st, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "authorization_required", "{b}");
}
