//! In a real browser: headless Chromium (Debian's `chromium` package, `/usr/bin/chromium`,
//! never downloaded) driven by `playwright-core` (pinned in `tests/browser/package.json` and
//! `package-lock.json`) through `tests/browser/drive.mjs`.
//!
//! - `demo_as_the_readme_says`: runs the real binary `oidc-realm demo`, exactly as the README
//!   tells a newcomer (no options, from the repository root), opens the URL it prints and logs
//!   in: "Log in" → the demo provider's login page → back on the app with username and roles
//!   → renew → "Log out" → the logged-out page. Then the bad inputs: a callback with another
//!   state (refused, the page says why), a second `demo` (port in use, exit 1, no panic), and
//!   Ctrl-C (SIGINT) stops it with exit 0 and frees the ports.
//! - `demo_refuses_non_loopback`: `demo --bind 0.0.0.0` (and `::`) exits 2 saying why.
//! - `facilitator_against_oidc_provider`: the reference facilitator (`examples/webapp`,
//!   in-process, with a service account token) and oidc-realm (in-process, on the same
//!   `configure()` the binary uses) against panva's `oidc-provider` (`tests/browser/op.mjs`,
//!   loading the package `tests/e2e/setup.sh` installs), through its own login, consent and
//!   logout confirmation pages.
//!
//! Screenshots of every step: `<target dir>/browser-artifacts/<test>/` (docs/testing.md).

#[path = "common/setup.rs"]
mod setup;
use actix_web::{App, HttpServer};
use oidc_realm::clock::SystemClock;
use oidc_realm::store::MemoryStore;
use oidc_realm::{configure, AppState};
use serde_json::{json, Value};
use setup::root;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_oidc-realm");

fn setup_browser() {
    static SETUP: OnceLock<Result<String, String>> = OnceLock::new();
    match setup::run_once(&SETUP, "tests/browser/setup.sh") {
        Ok(text) => print!("{text}"),
        Err(e) => panic!(
            "the browser suite needs Debian's chromium (`apt-get install -y chromium`), Node.js \
             20 or later and playwright-core (pinned in tests/browser/package-lock.json): run \
             tests/browser/setup.sh. It failed: {e}"
        ),
    }
}

fn setup_e2e() {
    static SETUP: OnceLock<Result<String, String>> = OnceLock::new();
    match setup::run_once(&SETUP, "tests/e2e/setup.sh") {
        Ok(text) => print!("{text}"),
        Err(e) => panic!(
            "this test runs the OpenID Provider of the e2e suite: run tests/e2e/setup.sh. It failed: {e}"
        ),
    }
}

/// A fresh directory for a test's screenshots.
fn artifacts(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("browser-artifacts")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run a scenario of `tests/browser/drive.mjs`; what the browser saw.
fn drive(input: Value) -> Value {
    let mut child = Command::new("node")
        .arg(root().join("tests/browser/drive.mjs"))
        .arg(input.to_string())
        .current_dir(root().join("tests/browser"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (the browser suite needs Node.js: tests/browser/setup.sh)");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            panic!("the browser did not finish within 120 s ({input})");
        }
    };
    let _ = child.wait();
    let err = err.join().unwrap_or_default();
    let line = out.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("drive.mjs printed no JSON ({e}): {out}\nstderr:\n{err}"));
    assert_eq!(
        v["ok"],
        true,
        "the browser failed: {}\nstderr:\n{err}",
        v["error"].as_str().unwrap_or(line)
    );
    v
}

fn roles(v: &Value) -> Vec<String> {
    v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// oidc-realm demo, the real binary

/// A running `oidc-realm demo`; killed when dropped.
struct Demo {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(
    r: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    });
}

impl Demo {
    fn spawn(args: &[&str]) -> (Self, mpsc::Receiver<String>) {
        let mut child = Command::new(BIN)
            .arg("demo")
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run oidc-realm demo");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        collect(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        collect(child.stderr.take().unwrap(), stderr.clone(), None);
        (
            Demo {
                child,
                stdout,
                stderr,
            },
            rx,
        )
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// The URL the demo tells the newcomer to open.
    fn url_to_open(&mut self, lines: &mpsc::Receiver<String>) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("Open ") {
                        return rest.split_whitespace().next().unwrap().to_string();
                    }
                }
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("the demo printed no URL to open; {}", self.output());
    }

    /// Wait (up to 30 s) until the demo has printed `text`, which may come after the URL
    /// line; its output so far either way.
    fn output_with(&self, lines: &mpsc::Receiver<String>, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stdout.lock().unwrap().contains(text) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            if lines.recv_timeout(left).is_err() {
                break;
            }
        }
        self.output()
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the output threads finish.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the demo did not exit within {within:?}; {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn demo_as_the_readme_says() {
    setup_browser();
    let shots = artifacts("demo");
    // The README: `cargo run --release -- demo`, then open the URL it prints.
    let (mut demo, lines) = Demo::spawn(&[]);
    let url = demo.url_to_open(&lines);
    assert_eq!(url, "http://127.0.0.1:5601/", "{}", demo.output());
    // The users are listed after the URL: wait for the last one.
    let out = demo.output_with(&lines, "carol-demo");
    for user in [
        "alice",
        "alice-demo",
        "bob",
        "bob-demo",
        "carol",
        "carol-demo",
    ] {
        assert!(out.contains(user), "the demo users are printed: {out}");
    }

    // alice: staff and finance.
    let alice = drive(
        json!({"scenario": "login", "app": url, "user": "alice", "password": "alice-demo",
                             "shots": shots.join("alice")}),
    );
    assert_eq!(alice["username"], "alice", "{alice}");
    assert_eq!(alice["full_name"], "Alice Liddell");
    assert_eq!(
        roles(&alice),
        ["demo_user", "finance_data", "viewer"],
        "{alice}"
    );
    let banner = alice["provider"][0]["banner"].as_str().unwrap_or_default();
    assert!(
        banner.contains("for demos only, never for production"),
        "{alice}"
    );
    assert_eq!(alice["renewals_before"], "0");
    assert_eq!(
        alice["renewals_after"], "1",
        "renewed with the refresh token"
    );
    assert_eq!(
        alice["cookie"],
        json!([{"name": "webapp_session", "httpOnly": true, "secure": false, "sameSite": "Lax"}]),
        "HttpOnly, SameSite=Lax; Secure relaxed on loopback http"
    );
    let navs: Vec<&str> = alice["logout_navigations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        navs.contains(&"http://127.0.0.1:9380/logout"),
        "logout goes through the provider's end-session: {alice}"
    );
    assert_eq!(alice["logged_out_url"], "http://127.0.0.1:5601/logged-out");
    assert_eq!(alice["after_logout_has_login"], true);
    assert_eq!(alice["after_logout_has_username"], false);

    // carol: another group, other roles.
    let carol = drive(
        json!({"scenario": "login", "app": url, "user": "carol", "password": "carol-demo",
                             "shots": shots.join("carol")}),
    );
    assert_eq!(roles(&carol), ["admin", "demo_user"], "{carol}");

    // A callback whose state is not the session's: refused, and the page says why.
    let wrong =
        drive(json!({"scenario": "wrong-state", "app": url, "shots": shots.join("wrong-state")}));
    assert_eq!(wrong["status"], 400, "{wrong}");
    let why = wrong["error"].as_str().unwrap();
    assert!(why.contains("state") && why.contains("refused"), "{wrong}");

    // A second demo: the port is in use, said clearly, exit 1, no panic.
    let (mut second, _lines) = Demo::spawn(&[]);
    let status = second.wait(Duration::from_secs(30));
    let out = second.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("is in use") && out.contains("9280"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    drop(second);

    // Ctrl-C stops all three: exit 0, the ports are free again.
    let pid = demo.child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let status = demo.wait(Duration::from_secs(20));
    assert!(status.success(), "{status:?}; {}", demo.output());
    for port in [9280, 9380, 5601] {
        TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} still taken after Ctrl-C: {e}"));
    }
    assert!(!demo.output().contains("panicked"), "{}", demo.output());
    println!("screenshots in {}", shots.display());
}

#[test]
fn demo_refuses_non_loopback() {
    for bind in ["0.0.0.0", "::", "192.0.2.10"] {
        let (mut demo, _lines) = Demo::spawn(&[
            "--bind",
            bind,
            "--realm-port",
            "0",
            "--op-port",
            "0",
            "--app-port",
            "0",
        ]);
        let status = demo.wait(Duration::from_secs(20));
        let out = demo.output();
        assert_eq!(status.code(), Some(2), "{bind}: {out}");
        assert!(out.contains("loopback only"), "{bind}: {out}");
        assert!(!out.contains("running"), "{bind}: nothing started: {out}");
    }
}

// ---------------------------------------------------------------------------------------
// The reference facilitator against a real OpenID Provider

/// `node tests/browser/op.mjs`; killed when dropped.
struct Op {
    child: Child,
    _stdin: ChildStdin,
    issuer: String,
}

impl Op {
    fn start(redirect_uri: &str, post_logout_redirect_uri: &str) -> Self {
        let mut child = Command::new("node")
            .arg(root().join("tests/browser/op.mjs"))
            .args(["0", redirect_uri, post_logout_redirect_uri])
            .current_dir(root().join("tests/browser"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node tests/browser/op.mjs");
        let stdin = child.stdin.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), stderr.clone(), None);
        let (tx, rx) = mpsc::channel();
        collect(
            child.stdout.take().unwrap(),
            Arc::new(Mutex::new(String::new())),
            Some(tx),
        );
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the provider printed no ready line; stderr:\n{}",
                    stderr.lock().unwrap()
                )
            });
        let ready: Value = serde_json::from_str(&line).unwrap();
        Op {
            child,
            _stdin: stdin,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const OP_SECRET: &str = "browser-client-secret-0123456789-abcdefghij";

#[actix_web::test]
async fn facilitator_against_oidc_provider() {
    setup_browser();
    setup_e2e();
    let shots = artifacts("webapp-oidc-provider");
    let app_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_url = format!("http://{}", app_listener.local_addr().unwrap());
    let op = Op::start(
        &format!("{app_url}{}", oidc_realm_webapp::CALLBACK_PATH),
        &format!("{app_url}{}", oidc_realm_webapp::LOGGED_OUT_PATH),
    );
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let d: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/.well-known/openid-configuration", op.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = |k: &str| serde_json::to_string(d[k].as_str().unwrap()).unwrap();
    let (token, hash) =
        oidc_realm::auth::service_tokens::generate("elastic/webapp/browser").unwrap();
    let yaml = format!(
        "token:\n  timeout: 2s\n\
         service_tokens:\n  elastic/webapp/browser:\n    hash: '{hash}'\n    privileges: [manage_oidc, manage_token]\n\
         role_mappings:\n  \
           staff:\n    enabled: true\n    roles: [viewer]\n    rules: {{field: {{groups: staff}}}}\n  \
           finance:\n    enabled: true\n    roles: [finance_data]\n    rules: {{field: {{groups: finance}}}}\n\
         realms:\n  op:\n    order: 0\n    rp.client_id: webapp\n    rp.client_secret: {secret}\n    \
           rp.redirect_uri: {app_url}/callback\n    rp.post_logout_redirect_uri: {app_url}/logged-out\n    \
           rp.response_type: code\n    rp.requested_scopes: [openid, profile, email, groups]\n    \
           rp.signature_algorithm: ES256\n    op.issuer: {iss}\n    op.authorization_endpoint: {authz}\n    \
           op.token_endpoint: {tok}\n    op.userinfo_endpoint: {ui}\n    op.endsession_endpoint: {es}\n    \
           op.jwkset_path: {jwks}\n    claims.principal: sub\n    claims.groups: groups\n    claims.name: name\n    claims.mail: email\n",
        secret = serde_json::to_string(OP_SECRET).unwrap(),
        iss = s("issuer"),
        authz = s("authorization_endpoint"),
        tok = s("token_endpoint"),
        ui = s("userinfo_endpoint"),
        es = s("end_session_endpoint"),
        jwks = s("jwks_uri"),
    );
    let loaded = oidc_realm::config::load_str(&yaml, &std::env::temp_dir())
        .unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"));
    let state = AppState::new(
        loaded.settings,
        loaded.warnings,
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
    );
    let realm_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let realm_url = format!("http://{}", realm_listener.local_addr().unwrap());
    let realm = HttpServer::new(move || App::new().configure(configure(state.clone())))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(realm_listener)
        .unwrap()
        .run();
    let realm_handle = realm.handle();
    actix_web::rt::spawn(realm);

    let webapp = oidc_realm_webapp::WebApp::new(oidc_realm_webapp::Config {
        public_url: app_url.parse().unwrap(),
        realm_url: realm_url.parse().unwrap(),
        realm: "op".into(),
        credentials: oidc_realm_webapp::Credentials::ServiceToken(token),
        title: "webapp".into(),
    })
    .unwrap();
    let app = oidc_realm_webapp::server(app_listener, webapp).unwrap();
    let app_handle = app.handle();
    actix_web::rt::spawn(app);

    let url = format!("{app_url}/");
    let input = json!({"scenario": "login", "app": url, "user": "alice", "password": "any", "shots": shots.join("alice")});
    let alice = actix_web::rt::task::spawn_blocking(move || drive(input))
        .await
        .unwrap();
    assert_eq!(alice["username"], "alice", "{alice}");
    assert_eq!(roles(&alice), ["finance_data", "viewer"], "{alice}");
    // Access tokens live 2 s here, less than the app's renewal margin (5 s): every page view
    // renews the token with the refresh token before using it, as it does when one expires.
    let renewals = |k: &str| alice[k].as_str().unwrap().parse::<u32>().unwrap();
    assert!(
        renewals("renewals_before") >= 1,
        "renewed on expiry: {alice}"
    );
    assert!(
        renewals("renewals_after") > renewals("renewals_before"),
        "{alice}"
    );
    let provider_pages = alice["provider"].as_array().unwrap().len();
    assert!(
        provider_pages >= 2,
        "oidc-provider's login and consent pages: {alice}"
    );
    let navs = alice["logout_navigations"].to_string();
    assert!(
        navs.contains(&format!("{}/session/end", op.issuer)),
        "logout through the provider's end-session: {alice}"
    );
    assert!(
        alice["logged_out_url"]
            .as_str()
            .unwrap()
            .ends_with("/logged-out"),
        "{alice}"
    );
    assert_eq!(alice["after_logout_has_username"], false);

    let input = json!({"scenario": "wrong-state", "app": url, "shots": shots.join("wrong-state")});
    let wrong = actix_web::rt::task::spawn_blocking(move || drive(input))
        .await
        .unwrap();
    assert_eq!(wrong["status"], 400, "{wrong}");
    assert!(
        wrong["error"].as_str().unwrap().contains("state"),
        "{wrong}"
    );

    app_handle.stop(false).await;
    realm_handle.stop(false).await;
    drop(op);
}
