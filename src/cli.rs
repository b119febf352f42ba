//! The command line: `serve`, `check-config`, `hash-password`, `create-service-token`, `demo`.
//! No logic beyond wiring.

use crate::app::{self, AppState};
use crate::clock::SystemClock;
use crate::config::{self, Settings};
use crate::reload;
use crate::store::RedbStore;
use actix_web::{App, HttpServer};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// oidc-realm: an OpenID Connect realm server speaking Elasticsearch's _security API.
#[derive(Debug, Parser)]
#[command(name = "oidc-realm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration, open the store and serve HTTP(S).
    Serve {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the configuration and print every problem; exit 1 if there is any.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
        /// Do not fetch `op.discovery` provider metadata (no network access); realms with
        /// discovery are then checked without their discovered endpoints.
        #[arg(long)]
        offline: bool,
    },
    /// Read a password from standard input and print an argon2id hash for `users.*.password_hash`.
    HashPassword,
    /// Create a service account token (as `elasticsearch-service-tokens create`): print the
    /// token once on standard output, and the configuration lines to add on standard error.
    CreateServiceToken {
        /// `namespace/service/token_name`, e.g. `elastic/kibana/kibana-prod`.
        name: String,
        /// Privileges for the configuration lines (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "manage_oidc,manage_token,manage_user_profile"
        )]
        privileges: Vec<String>,
    },
    /// Try oidc-realm in one command: oidc-realm on config/demo.yml, a development OpenID
    /// Provider with a login page and demo users, and the example web app (examples/webapp);
    /// prints the URL to open. Loopback only; for demos only, never for production. Ctrl-C
    /// stops all three.
    Demo {
        /// The loopback address all three listen on (127.0.0.1 or ::1; anything else is refused).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// oidc-realm's port.
        #[arg(long, default_value_t = crate::demo::DEFAULT_REALM_PORT)]
        realm_port: u16,
        /// The demo OpenID Provider's port.
        #[arg(long, default_value_t = crate::demo::DEFAULT_OP_PORT)]
        op_port: u16,
        /// The web app's port (the URL to open).
        #[arg(long, default_value_t = crate::demo::DEFAULT_APP_PORT)]
        app_port: u16,
    },
    /// Write every token, role mapping and profile of the store `data.*` selects as JSON
    /// lines (see docs/operations.md), e.g. to move from redb to PostgreSQL. Stop the
    /// server first when the store is redb (it locks its file).
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// The file to write (created, mode 0600; refused if it exists). Default: standard
        /// output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Read an export into the store `data.*` selects: pairs that exist already are skipped,
    /// role mappings and profiles replaced.
    Import {
        #[arg(long, short)]
        config: PathBuf,
        /// The export to read. Default: standard input.
        #[arg(long, short)]
        input: Option<PathBuf>,
    },
}

/// How often expired tokens and flows are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// How often URL key sets are checked for `op.jwkset_reload_interval` having passed.
pub const JWKS_REFRESH_TICK: Duration = Duration::from_secs(5);

/// Run the command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::CheckConfig { config, offline } => check_config(&config, offline),
        Command::HashPassword => hash_password(),
        Command::CreateServiceToken { name, privileges } => {
            create_service_token(&name, &privileges)
        }
        Command::Serve { config } => serve(&config),
        Command::Demo {
            bind,
            realm_port,
            op_port,
            app_port,
        } => crate::demo::run(crate::demo::DemoArgs {
            bind,
            realm_port,
            op_port,
            app_port,
        }),
        Command::Export { config, output } => transfer(&config, Transfer::Export(output)),
        Command::Import { config, input } => transfer(&config, Transfer::Import(input)),
    }
}

enum Transfer {
    Export(Option<PathBuf>),
    Import(Option<PathBuf>),
}

/// `export` / `import` over the store `data.*` of `config` selects.
fn transfer(config_path: &Path, what: Transfer) -> i32 {
    let loaded = match config::load(config_path) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return 1;
        }
    };
    let settings = loaded.settings;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return 1;
        }
    };
    let result = match &settings.data.postgres {
        None => RedbStore::open_with_cache(&settings.data.path, settings.data.cache_size)
            .map_err(|e| {
                format!(
                    "cannot open the store {}: {e}",
                    settings.data.path.display()
                )
            })
            .and_then(|store| rt.block_on(run_transfer(&store, what))),
        Some(pg) => crate::store::PgStore::open(&pg_options(pg))
            .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))
            .and_then(|store| rt.block_on(run_transfer(&store, what))),
    };
    match result {
        Ok(summary) => {
            eprintln!("{summary}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

async fn run_transfer(
    store: &dyn crate::store::StoreTransfer,
    what: Transfer,
) -> Result<String, String> {
    use crate::store::transfer;
    match what {
        Transfer::Export(output) => {
            let counts = match output {
                Some(path) => {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let file = options
                        .open(&path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    let counts = transfer::export(store, &mut out)
                        .await
                        .map_err(|e| format!("export failed: {e}"))?;
                    out.into_inner()
                        .map_err(|e| format!("export failed: {e}"))?
                        .sync_all()
                        .map_err(|e| format!("export failed: {e}"))?;
                    counts
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    transfer::export(store, &mut out)
                        .await
                        .map_err(|e| format!("export failed: {e}"))?
                }
            };
            Ok(format!(
                "exported {} token pair(s), {} role mapping(s), {} profile(s), {} record(s)",
                counts.tokens, counts.role_mappings, counts.profiles, counts.records
            ))
        }
        Transfer::Import(input) => {
            let counts = match input {
                Some(path) => {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                    transfer::import(store, std::io::BufReader::new(file)).await
                }
                None => transfer::import(store, std::io::stdin().lock()).await,
            }
            .map_err(|e| format!("import failed: {e}"))?;
            Ok(format!(
                "imported {} token pair(s) ({} already there), {} role mapping(s), {} profile(s), \
                 {} record(s)",
                counts.tokens,
                counts.tokens_skipped,
                counts.role_mappings,
                counts.profiles,
                counts.records
            ))
        }
    }
}

fn check_config(path: &Path, offline: bool) -> i32 {
    match config::load(path) {
        Ok(mut loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            // `op.discovery`: fetch and validate the provider metadata, as `serve` does.
            let discovered = if offline {
                for r in loaded.settings.realms.iter_mut() {
                    if let Some(d) = r.op.discovery.as_mut() {
                        println!(
                            "warning: realms.{}.op.discovery: not checked (--offline); {} is fetched at start",
                            r.name, d.url
                        );
                        // Checked as if the metadata had matched what is written.
                        r.op.discovery = None;
                    }
                }
                Ok(Vec::new())
            } else {
                actix_web::rt::System::new()
                    .block_on(crate::realm::discovery::discover_all(&mut loaded.settings))
            };
            let built = discovered.and_then(|warnings| {
                for w in &warnings {
                    println!("warning: {w}");
                }
                // The realms as `serve` would build them: JWKS files parsed, HTTP clients built.
                crate::realm::Realms::build(&loaded.settings)
            });
            if let Err(errors) = built {
                for e in &errors {
                    println!("{e}");
                }
                eprintln!(
                    "{}: {} problem(s); nothing was started",
                    path.display(),
                    errors.len()
                );
                return 1;
            }
            println!("{}", summary(&loaded.settings));
            0
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            eprintln!(
                "{}: {} problem(s); nothing was started",
                path.display(),
                errors.0.len()
            );
            1
        }
    }
}

/// `ok: 1 realm (oidc1), 2 users (admin, facilitator)`.
pub fn summary(s: &Settings) -> String {
    let realms: Vec<&str> = s.realms.iter().map(|r| r.name.as_str()).collect();
    let users: Vec<&str> = s.users.keys().map(String::as_str).collect();
    let mut line = format!(
        "ok: {} realm{} ({}), {} user{} ({})",
        realms.len(),
        if realms.len() == 1 { "" } else { "s" },
        realms.join(", "),
        users.len(),
        if users.len() == 1 { "" } else { "s" },
        users.join(", ")
    );
    let tokens = s.service_tokens.len();
    if tokens > 0 {
        let plural = if tokens == 1 { "" } else { "s" };
        line.push_str(&format!(", {tokens} service token{plural}"));
    }
    let mappings = s.role_mappings.len();
    if mappings > 0 {
        let plural = if mappings == 1 { "" } else { "s" };
        line.push_str(&format!(
            ", {mappings} role mapping{plural} from the configuration"
        ));
    }
    line
}

fn create_service_token(name: &str, privileges: &[String]) -> i32 {
    let unknown: Vec<&str> = privileges
        .iter()
        .map(|p| p.trim())
        .filter(|p| config::Privilege::parse(p).is_none())
        .collect();
    if !unknown.is_empty() {
        eprintln!(
            "unknown privilege(s) [{}]; allowed are [{}]",
            unknown.join(", "),
            config::Privilege::names()
        );
        return 2;
    }
    match crate::auth::service_tokens::generate(name) {
        Ok((token, hash)) => {
            let list = privileges
                .iter()
                .map(|p| p.trim())
                .collect::<Vec<_>>()
                .join(", ");
            eprintln!("Add to the configuration (service_tokens), then reload:\n\nservice_tokens:\n  {name}:\n    hash: \"{hash}\"\n    privileges: [{list}]\n\nThe token (shown only now; give it to the client, e.g. Kibana's elasticsearch.serviceAccountToken):");
            println!("{token}");
            0
        }
        Err(e) => {
            eprintln!(
                "invalid service token name [{}]: {e}",
                crate::text::shown_header(name)
            );
            2
        }
    }
}

fn hash_password() -> i32 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read standard input: {e}");
        return 1;
    }
    let password = input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("the password is empty: pipe it on standard input, e.g. `printf '%s' \"$PW\" | oidc-realm hash-password`");
        return 1;
    }
    match crate::auth::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            0
        }
        Err(e) => {
            eprintln!("hashing failed: {e}");
            1
        }
    }
}

fn serve(path: &Path) -> i32 {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} problem(s); refusing to start",
                path.display(),
                errors.0.len()
            );
            return 1;
        }
    };
    crate::logging::init(loaded.settings.log.format, &loaded.settings.log.level);
    for w in &loaded.warnings {
        tracing::warn!("config: {w}");
    }
    match actix_web::rt::System::new().block_on(serve_async(loaded, path)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

async fn serve_async(loaded: config::Loaded, config_path: &Path) -> Result<(), String> {
    let mut settings = loaded.settings;
    let mut warnings = loaded.warnings;
    // `op.discovery`: the provider metadata before the realms are built.
    let discovered = crate::realm::discovery::discover_all(&mut settings)
        .await
        .map_err(|errors| Vec::<String>::from(errors).join("\n"))?;
    for w in &discovered {
        tracing::warn!("config: {w}");
    }
    warnings.extend(discovered);
    let secret_files = loaded.files;
    let store = open_store(&settings)?;
    let bind = settings.http.bind;
    let tls = settings.http.tls.clone();
    let metrics_bind = settings.metrics.bind;
    tracing::info!("{}", summary(&settings));
    let state = AppState::try_new(settings, warnings, store, Arc::new(SystemClock))
        .map_err(|errors| errors.messages().join("\n"))?;
    // Role mappings stored through the API, compiled before the first login.
    let skipped = state
        .load_role_mappings()
        .await
        .map_err(|e| format!("cannot load role mappings from the store: {e}"))?;
    for msg in &skipped {
        tracing::error!("{msg}");
    }
    let sweeper = app::spawn_sweeper(state.clone(), SWEEP_INTERVAL);
    // Live operations: config/secret/JWKS file watching, SIGHUP, periodic JWKS URL refresh.
    state.reload_log().set_source(config_path, secret_files);
    let watcher = reload::spawn_watcher(state.clone(), config_path, Default::default())?;
    let refresher = reload::spawn_jwks_refresher(state.clone(), JWKS_REFRESH_TICK);
    let factory_state = state.clone();
    let server = HttpServer::new(move || {
        App::new().configure(crate::http::configure(factory_state.clone()))
    });
    let server = match &tls {
        Some(t) => {
            let cfg = tls_config(&t.certificate, &t.key)?;
            server
                .bind_rustls_0_23(bind, cfg)
                .map_err(|e| format!("cannot listen on {bind}: {e}"))?
        }
        None => server
            .bind(bind)
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    for addr in server.addrs() {
        tracing::info!("listening on {scheme}://{addr}");
    }
    // Prometheus metrics on their own listener, never on the API's.
    let metrics = match metrics_bind {
        Some(addr) => {
            let (metrics_server, addrs) = crate::http::metrics::server(state.clone(), addr)
                .map_err(|e| format!("metrics.bind: cannot listen on {addr}: {e}"))?;
            for a in addrs {
                tracing::info!("metrics on http://{a}/metrics");
            }
            let handle = metrics_server.handle();
            actix_web::rt::spawn(metrics_server);
            Some(handle)
        }
        None => None,
    };
    let result = server.run().await.map_err(|e| e.to_string());
    if let Some(handle) = metrics {
        handle.stop(true).await;
    }
    sweeper.abort();
    refresher.abort();
    drop(watcher);
    // Every audit event of the requests served is on disk before the process ends.
    state.audit.flush();
    tracing::info!("stopped");
    result
}

/// The store `data.*` selects: the redb file at `data.path`, or the PostgreSQL database of
/// `data.url` (`data.backend: postgres`), migrated to this build's schema.
pub fn open_store(settings: &Settings) -> Result<Arc<dyn crate::store::Store>, String> {
    match &settings.data.postgres {
        None => {
            let data_path = &settings.data.path;
            let store = RedbStore::open_with_cache(data_path, settings.data.cache_size)
                .map_err(|e| format!("cannot open the store {}: {e}", data_path.display()))?;
            tracing::info!(path = %data_path.display(), "store opened");
            Ok(Arc::new(store))
        }
        Some(pg) => {
            let store = crate::store::PgStore::open(&pg_options(pg))
                .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))?;
            tracing::info!(schema = %pg.schema, "PostgreSQL store opened");
            Ok(Arc::new(store))
        }
    }
}

/// The store options of `data.*` for PostgreSQL.
pub fn pg_options(pg: &config::PostgresSettings) -> crate::store::postgres::PgOptions {
    crate::store::postgres::PgOptions {
        url: pg.url.clone(),
        password: pg.password.clone(),
        schema: pg.schema.clone(),
        pool_size: pg.pool_size,
        ca_file: pg.tls_ca.clone(),
    }
}

/// The rustls server configuration for `http.tls`.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("http.tls.certificate: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("http.tls.certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("http.tls.key: {e}"))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("http.tls: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("http.tls: {e}"))
}
