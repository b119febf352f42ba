//! The reference facilitator as a program. Configuration from the environment:
//!
//! | Variable | Example |
//! |---|---|
//! | `WEBAPP_BIND` | `127.0.0.1:5601` (default) |
//! | `WEBAPP_PUBLIC_URL` | `http://127.0.0.1:5601` (default: `http://` + `WEBAPP_BIND`) |
//! | `OIDC_REALM_URL` | `http://127.0.0.1:9280` (default) |
//! | `OIDC_REALM_REALM` | `oidc1` (default) |
//! | `OIDC_REALM_USERNAME` + `OIDC_REALM_PASSWORD`, or `OIDC_REALM_SERVICE_TOKEN` | the app's credentials at oidc-realm |

use oidc_realm_webapp::{Config, Credentials, WebApp};
use std::env::var;

fn main() {
    if let Err(e) = run() {
        eprintln!("oidc-realm-webapp: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let bind = var("WEBAPP_BIND").unwrap_or_else(|_| "127.0.0.1:5601".into());
    let public = var("WEBAPP_PUBLIC_URL").unwrap_or_else(|_| format!("http://{bind}"));
    let realm_url = var("OIDC_REALM_URL").unwrap_or_else(|_| "http://127.0.0.1:9280".into());
    let credentials = match (
        var("OIDC_REALM_SERVICE_TOKEN"),
        var("OIDC_REALM_USERNAME"),
        var("OIDC_REALM_PASSWORD"),
    ) {
        (Ok(t), _, _) => Credentials::ServiceToken(t),
        (_, Ok(username), Ok(password)) => Credentials::Basic { username, password },
        _ => {
            return Err(
                "set OIDC_REALM_SERVICE_TOKEN, or OIDC_REALM_USERNAME and OIDC_REALM_PASSWORD"
                    .into(),
            )
        }
    };
    let cfg = Config {
        public_url: public
            .parse()
            .map_err(|e| format!("WEBAPP_PUBLIC_URL: {e}"))?,
        realm_url: realm_url
            .parse()
            .map_err(|e| format!("OIDC_REALM_URL: {e}"))?,
        realm: var("OIDC_REALM_REALM").unwrap_or_else(|_| "oidc1".into()),
        credentials,
        title: "oidc-realm webapp".into(),
    };
    let app = WebApp::new(cfg)?;
    let listener =
        std::net::TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    println!("listening on http://{bind}; open {public}");
    actix_web::rt::System::new()
        .block_on(async move {
            let server = oidc_realm_webapp::server(listener, app)?;
            let handle = server.handle();
            actix_web::rt::spawn(async move {
                let _ = actix_web::rt::signal::ctrl_c().await;
                handle.stop(true).await;
            });
            server.await
        })
        .map_err(|e| e.to_string())
}
