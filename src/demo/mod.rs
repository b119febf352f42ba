//! `oidc-realm demo`: in one process, oidc-realm on `config/demo.yml`, a development OpenID
//! Provider with a real login page ([`op`]), and the reference facilitator
//! (`examples/webapp`); then it prints the URL to open. Loopback only; a port in use is an
//! error message and exit code 1; Ctrl-C (SIGINT) or SIGTERM stops all three.

pub mod op;

use crate::app::{self, AppState};
use crate::clock::SystemClock;
use crate::config;
use crate::crypto::random_urlsafe;
use crate::store::RedbStore;
use actix_web::{App, HttpServer};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The demo configuration template (see its header).
pub const DEMO_YAML: &str = include_str!("../../config/demo.yml");
/// The realm of `config/demo.yml`.
pub const REALM: &str = "demo";
const CLIENT_ID: &str = "oidc-realm-demo";
const FACILITATOR: &str = "demo-webapp";
/// The default addresses, as written in `config/demo.yml`.
pub const DEFAULT_REALM_PORT: u16 = 9280;
pub const DEFAULT_OP_PORT: u16 = 9380;
pub const DEFAULT_APP_PORT: u16 = 5601;

/// Where the demo listens.
#[derive(Debug, Clone, Copy)]
pub struct DemoArgs {
    pub bind: IpAddr,
    pub realm_port: u16,
    pub op_port: u16,
    pub app_port: u16,
}

/// Why the demo could not start (its message is printed as is).
#[derive(Debug)]
pub struct DemoError(pub String);

/// A refused `--bind` (a usage error: exit code 2).
const NOT_LOOPBACK: &str = "loopback only";

/// Run the demo until SIGINT/SIGTERM; the process exit code: 0 when stopped, 2 for a
/// non-loopback address, 1 for anything else that kept it from starting (a port in use).
pub fn run(args: DemoArgs) -> i32 {
    match start(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("oidc-realm demo: {}", e.0);
            if e.0.contains(NOT_LOOPBACK) {
                2
            } else {
                1
            }
        }
    }
}

/// The three listeners, bound before anything else starts (so a port in use is reported at
/// once, and nothing half-starts).
struct Listeners {
    realm: TcpListener,
    op: TcpListener,
    app: TcpListener,
}

fn bind_all(args: &DemoArgs) -> Result<Listeners, DemoError> {
    if !args.bind.is_loopback() {
        return Err(DemoError(format!(
            "refusing to listen on {}: the demo listens on {NOT_LOOPBACK} (127.0.0.1 or ::1); its users and passwords are public and its provider is for demos only, never for production",
            args.bind
        )));
    }
    let bind = |port: u16, what: &str| {
        let addr = SocketAddr::new(args.bind, port);
        TcpListener::bind(addr).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                DemoError(format!(
                    "port {port} ({what}) on {} is in use: is another `oidc-realm demo`, `oidc-realm serve` or `cargo run --example dev_op` running? Stop it, or choose other ports with --realm-port, --op-port and --app-port",
                    args.bind
                ))
            } else {
                DemoError(format!("cannot listen on {addr} ({what}): {e}"))
            }
        })
    };
    Ok(Listeners {
        realm: bind(args.realm_port, "oidc-realm")?,
        op: bind(args.op_port, "the demo OpenID Provider")?,
        app: bind(args.app_port, "the web app")?,
    })
}

fn origin(l: &TcpListener) -> Result<String, DemoError> {
    let a = l
        .local_addr()
        .map_err(|e| DemoError(format!("listener address: {e}")))?;
    Ok(format!("http://{a}"))
}

/// `config/demo.yml` with the addresses the demo listens on and the facilitator's hash.
pub fn demo_yaml(
    realm: SocketAddr,
    op: SocketAddr,
    app: SocketAddr,
    facilitator_hash: &str,
) -> String {
    DEMO_YAML
        .replace(
            &format!("127.0.0.1:{DEFAULT_REALM_PORT}"),
            &realm.to_string(),
        )
        .replace(&format!("127.0.0.1:{DEFAULT_OP_PORT}"), &op.to_string())
        .replace(&format!("127.0.0.1:{DEFAULT_APP_PORT}"), &app.to_string())
        .replace("@FACILITATOR_PASSWORD_HASH@", facilitator_hash)
}

/// A temporary directory for the demo's data, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, DemoError> {
        let dir = std::env::temp_dir().join(format!(
            "oidc-realm-demo-{}-{}",
            std::process::id(),
            random_urlsafe(6)
        ));
        std::fs::create_dir(&dir)
            .map_err(|e| DemoError(format!("cannot create {}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(args: DemoArgs) -> Result<(), DemoError> {
    let listeners = bind_all(&args)?;
    let realm_addr = listeners
        .realm
        .local_addr()
        .map_err(|e| DemoError(e.to_string()))?;
    let op_addr = listeners
        .op
        .local_addr()
        .map_err(|e| DemoError(e.to_string()))?;
    let app_addr = listeners
        .app
        .local_addr()
        .map_err(|e| DemoError(e.to_string()))?;
    let op_url = origin(&listeners.op)?;
    let app_url = origin(&listeners.app)?;
    let realm_url = origin(&listeners.realm)?;

    let dir = TempDir::new()?;
    let client_secret = random_urlsafe(32);
    std::fs::write(dir.path().join("client_secret"), &client_secret)
        .map_err(|e| DemoError(format!("cannot write the demo client secret: {e}")))?;
    let facilitator_password = random_urlsafe(24);
    let hash = crate::auth::hash_password(&facilitator_password)
        .map_err(|e| DemoError(format!("cannot hash the web app's password: {e}")))?;
    let yaml = demo_yaml(realm_addr, op_addr, app_addr, &hash);
    let loaded = config::load_str(&yaml, dir.path()).map_err(|errors| {
        DemoError(format!(
            "config/demo.yml does not load (a bug in the demo): {}",
            errors
                .0
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    crate::logging::init(loaded.settings.log.format, &loaded.settings.log.level);

    let provider = op::DemoOp::new(
        op_url.clone(),
        op::Client {
            client_id: CLIENT_ID.into(),
            client_secret,
            redirect_uri: format!("{app_url}{}", oidc_realm_webapp::CALLBACK_PATH),
            post_logout_redirect_uri: format!("{app_url}{}", oidc_realm_webapp::LOGGED_OUT_PATH),
        },
    )
    .map_err(DemoError)?;
    let webapp = oidc_realm_webapp::WebApp::new(oidc_realm_webapp::Config {
        public_url: app_url
            .parse()
            .map_err(|e| DemoError(format!("{app_url}: {e}")))?,
        realm_url: realm_url
            .parse()
            .map_err(|e| DemoError(format!("{realm_url}: {e}")))?,
        realm: REALM.into(),
        credentials: oidc_realm_webapp::Credentials::Basic {
            username: FACILITATOR.into(),
            password: facilitator_password,
        },
        title: "oidc-realm demo app".into(),
    })
    .map_err(DemoError)?;

    let result = actix_web::rt::System::new().block_on(async move {
        // The provider first: oidc-realm fetches its JWKS.
        let op_server =
            HttpServer::new(move || App::new().configure(op::configure(provider.clone())))
                .workers(1)
                .disable_signals()
                .listen(listeners.op)
                .map_err(|e| format!("demo provider: {e}"))?
                .run();
        let op_handle = op_server.handle();
        actix_web::rt::spawn(op_server);

        let data_path = loaded.settings.data.path.clone();
        let store = RedbStore::open(&data_path)
            .map_err(|e| format!("cannot open the store {}: {e}", data_path.display()))?;
        for w in &loaded.warnings {
            tracing::debug!("config: {w}");
        }
        let state = AppState::try_new(
            loaded.settings,
            loaded.warnings,
            Arc::new(store),
            Arc::new(SystemClock),
        )
        .map_err(|errors| errors.messages().join("\n"))?;
        let skipped = state
            .load_role_mappings()
            .await
            .map_err(|e| format!("cannot load role mappings from the store: {e}"))?;
        for msg in &skipped {
            tracing::error!("{msg}");
        }
        let sweeper = app::spawn_sweeper(state.clone(), crate::cli::SWEEP_INTERVAL);
        let refresher =
            crate::reload::spawn_jwks_refresher(state.clone(), crate::cli::JWKS_REFRESH_TICK);
        let factory_state = state.clone();
        let realm_server = HttpServer::new(move || {
            App::new().configure(crate::http::configure(factory_state.clone()))
        })
        .workers(2)
        .disable_signals()
        .listen(listeners.realm)
        .map_err(|e| format!("oidc-realm: {e}"))?
        .run();
        let realm_handle = realm_server.handle();
        actix_web::rt::spawn(realm_server);

        let app_server = oidc_realm_webapp::server(listeners.app, webapp)
            .map_err(|e| format!("web app: {e}"))?;
        let app_handle = app_server.handle();
        actix_web::rt::spawn(app_server);

        print_welcome(&app_url, &realm_url, &op_url);
        wait_for_stop().await;
        println!("stopping the web app, oidc-realm and the demo provider");
        app_handle.stop(true).await;
        realm_handle.stop(true).await;
        op_handle.stop(true).await;
        sweeper.abort();
        refresher.abort();
        state.audit.flush();
        Ok::<(), String>(())
    });
    drop(dir);
    result.map_err(DemoError)
}

fn print_welcome(app: &str, realm: &str, op: &str) {
    let users: Vec<String> = op::USERS
        .iter()
        .map(|u| {
            format!(
                "    {:<6} password {:<11} groups: {}",
                u.username,
                u.password,
                u.groups.join(", ")
            )
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\noidc-realm demo: running (for demos only, never for production)\n\
         \n  Open {app}/ in your browser, click \"Log in\", and sign in as a demo user:\n{}\n\
         \n  oidc-realm            {realm}   (realm \"{REALM}\", config/demo.yml)\
         \n  demo OpenID Provider  {op}\
         \n  web app (facilitator) {app}   (examples/webapp)\n\
         \n  Ctrl-C stops all three.\n",
        users.join("\n")
    );
    let _ = out.flush();
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_yaml_loads_with_other_ports() {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("client_secret"), random_urlsafe(32)).unwrap();
        let hash = crate::auth::hash_password("a-password-for-the-test").unwrap();
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let yaml = demo_yaml(a(19280), a(19380), a(15601), &hash);
        assert!(!yaml.contains(":9380") && !yaml.contains(":5601") && !yaml.contains(":9280"));
        let loaded = config::load_str(&yaml, dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(loaded.settings.realms[0].name, REALM);
        assert_eq!(loaded.settings.role_mappings.len(), 4);
    }

    #[test]
    fn non_loopback_is_refused() {
        for ip in ["0.0.0.0", "::", "192.0.2.1"] {
            let e = bind_all(&DemoArgs {
                bind: ip.parse().unwrap(),
                realm_port: 0,
                op_port: 0,
                app_port: 0,
            })
            .err()
            .unwrap();
            assert!(e.0.contains("loopback only"), "{}", e.0);
        }
    }

    #[test]
    fn a_port_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = bind_all(&DemoArgs {
            bind: "127.0.0.1".parse().unwrap(),
            realm_port: 0,
            op_port: port,
            app_port: 0,
        })
        .err()
        .unwrap();
        assert!(
            e.0.contains(&format!("port {port}")) && e.0.contains("in use"),
            "{}",
            e.0
        );
    }
}
