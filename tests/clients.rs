//! Elasticsearch's official clients, stock (default options: node URL and credentials only),
//! against oidc-realm over real HTTP: the Python client 8.19.x and 9.x and the Node.js client
//! 8.19.x and 9.x (`tests/clients/client_check.{py,mjs}`), and Kibana's OIDC login replayed
//! with the Node.js client 9.x (`tests/clients/kibana_login.mjs`).
//!
//! Each test runs `tests/clients/setup.sh` (once per process; it installs the pinned clients
//! and is a no-op when they are up to date), then starts:
//!
//! - a fake OpenID Provider (`tests/common/fake_op.rs`);
//! - oidc-realm: an actix `HttpServer` on `127.0.0.1:0` over `oidc_realm::configure`, with
//!   settings from YAML through `oidc_realm::config::load_str`, an in-memory store and a
//!   `ManualClock` shared with the provider;
//! - a control server on another loopback port: `POST /advance?seconds=N` moves that clock;
//!
//! and runs one script as a child process with `OIDC_REALM_URL`, `CONTROL_URL` and
//! `SERVICE_TOKEN` in its environment. The script must exit 0; otherwise the test fails with
//! its output, which names the failing call and the client version.

mod common;

#[path = "common/setup.rs"]
mod setup;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use common::fake_op::{realm_yaml, FakeOp};
use oidc_realm::clock::{Clock, ManualClock};
use oidc_realm::store::MemoryStore;
use oidc_realm::{configure, AppState};
use setup::root;
use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The service token the harness configures; Kibana's service account.
const SERVICE_TOKEN_NAME: &str = "elastic/kibana/kibana-test";
/// The users' passwords, as the scripts know them (test-only).
const USERS: &[(&str, &str, &str)] = &[
    (
        "facilitator",
        "facilitator-password",
        "privileges: [manage_oidc, manage_token, manage_user_profile]",
    ),
    ("admin", "admin-password", "privileges: [all]"),
    (
        "enduser",
        "enduser-password",
        "privileges: []\n    roles: [superuser]",
    ),
];
/// The callback the fake OP redirects the browser to (its one registered redirect URI).
const CALLBACK: &str = common::fake_op::REDIRECT_URI;
/// Longest a script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `tests/clients/setup.sh` once per test process; panic with its output if it fails.
fn setup() {
    static SETUP: OnceLock<Result<String, String>> = OnceLock::new();
    let result = setup::run_once(&SETUP, "tests/clients/setup.sh");
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => panic!("tests/clients/setup.sh failed: {e}"),
    }
}

/// The configuration file the server runs on.
fn config_yaml(op: &FakeOp, service_token_hash: &str) -> String {
    let mut s = String::from("users:\n");
    for (name, password, rest) in USERS {
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        s.push_str(&format!(
            "  {name}:\n    password_hash: '{hash}'\n    {rest}\n"
        ));
    }
    s.push_str(&format!(
        "service_tokens:\n  {SERVICE_TOKEN_NAME}:\n    hash: '{service_token_hash}'\n    privileges: [manage_oidc, manage_token, manage_user_profile]\n"
    ));
    s.push_str("token:\n  timeout: 20m\n");
    s.push_str("realms:\n");
    s.push_str(&realm_yaml(
        op,
        "oidc1",
        0,
        "code",
        &[("rp.redirect_uri", CALLBACK)],
    ));
    s
}

/// oidc-realm, its fake OP and the control server, all on loopback.
struct Harness {
    url: String,
    control_url: String,
    service_token: String,
    op: FakeOp,
    servers: Vec<ServerHandle>,
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

/// `POST /advance?seconds=N`: move the shared clock forward; answers the new time.
async fn advance(
    clock: web::Data<ManualClock>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    match query.get("seconds").and_then(|s| s.parse::<u64>().ok()) {
        Some(secs) => {
            clock.advance(Duration::from_secs(secs));
            HttpResponse::Ok().json(serde_json::json!({"now_millis": clock.now_millis()}))
        }
        None => HttpResponse::BadRequest().body("expected ?seconds=<non-negative integer>"),
    }
}

impl Harness {
    async fn start() -> Self {
        let op = FakeOp::start().await;
        let clock = ManualClock::starting_now();
        op.use_clock(clock.clone());

        let (service_token, hash) = oidc_realm::auth::service_tokens::generate(SERVICE_TOKEN_NAME)
            .expect("generate a service token");
        let yaml = config_yaml(&op, &hash);
        let loaded = oidc_realm::config::load_str(&yaml, &std::env::temp_dir())
            .unwrap_or_else(|e| panic!("the configuration does not load:\n{e}\n---\n{yaml}"));
        let state = AppState::new(
            loaded.settings,
            loaded.warnings,
            Arc::new(MemoryStore::new()),
            clock.clone(),
        );

        let l = listener();
        let url = format!("http://{}", l.local_addr().unwrap());
        let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
            .workers(2)
            .disable_signals()
            .shutdown_timeout(0)
            .listen(l)
            .expect("listen oidc-realm")
            .run();
        let realm_handle = server.handle();
        actix_web::rt::spawn(server);

        let l = listener();
        let control_url = format!("http://{}", l.local_addr().unwrap());
        let data = web::Data::from(clock);
        let control = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/advance", web::post().to(advance))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(l)
        .expect("listen control")
        .run();
        let control_handle = control.handle();
        actix_web::rt::spawn(control);

        Self {
            url,
            control_url,
            service_token,
            op,
            servers: vec![realm_handle, control_handle],
        }
    }

    async fn stop(self) {
        for h in self.servers {
            h.stop(false).await;
        }
        self.op.stop().await;
    }
}

/// What a finished script left.
struct Outcome {
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Run `program args` in the repository root with the harness's environment; kill it after
/// [`SCRIPT_TIMEOUT`].
fn run_child(program: PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> Outcome {
    let mut child = Command::new(&program)
        .args(&args)
        .current_dir(root())
        .envs(env)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let (ok, status) = loop {
        match child.try_wait().expect("wait for the script") {
            Some(s) => break (s.success(), s.to_string()),
            None if started.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break (false, format!("killed after {SCRIPT_TIMEOUT:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Outcome {
        ok,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Start a harness, run one script against it, and fail with its output unless it exits 0.
async fn check(what: &str, program: PathBuf, args: &[&str]) {
    setup();
    let h = Harness::start().await;
    let env = vec![
        ("OIDC_REALM_URL".to_string(), h.url.clone()),
        ("CONTROL_URL".to_string(), h.control_url.clone()),
        ("SERVICE_TOKEN".to_string(), h.service_token.clone()),
    ];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let shown = format!("{} {}", program.display(), args.join(" "));
    let out = actix_web::rt::task::spawn_blocking(move || run_child(program, args, env))
        .await
        .expect("script runner");
    h.stop().await;
    if !out.ok {
        panic!(
            "{what}: `{shown}` failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status, out.stdout, out.stderr
        );
    }
    print!("{}", out.stdout);
}

fn venv_python(major: &str) -> PathBuf {
    root().join(format!("target/clients/venv-{major}/bin/python"))
}

fn script(name: &str) -> String {
    root()
        .join("tests/clients")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[actix_web::test]
async fn python_client_8() {
    check(
        "Python client 8.19.x",
        venv_python("es8"),
        &[&script("client_check.py")],
    )
    .await;
}

#[actix_web::test]
async fn python_client_9() {
    check(
        "Python client 9.x",
        venv_python("es9"),
        &[&script("client_check.py")],
    )
    .await;
}

#[actix_web::test]
async fn node_client_8() {
    check(
        "Node.js client 8.19.x",
        "node".into(),
        &[&script("client_check.mjs"), "es8"],
    )
    .await;
}

#[actix_web::test]
async fn node_client_9() {
    check(
        "Node.js client 9.x",
        "node".into(),
        &[&script("client_check.mjs"), "es9"],
    )
    .await;
}

#[actix_web::test]
async fn kibana_oidc_login_node_client_9() {
    check(
        "Kibana's OIDC login (Node.js client 9.x)",
        "node".into(),
        &[&script("kibana_login.mjs")],
    )
    .await;
}
