//! A development OpenID Provider for trying oidc-realm by hand, matching
//! `config/oidc-realm.yml`: issuer `http://127.0.0.1:9380`, client `oidc-realm-dev` with the
//! development secret of `config/secrets/oidc1_client_secret`, and the keys of
//! `jwks/example.json`. Every authorization request logs the user in at once (no login page)
//! and redirects to the facilitator's callback.
//!
//! ```text
//! cargo run --example dev_op
//! ```
//!
//! It is the fake provider of the test suite (`tests/common/fake_op.rs`), signing with the
//! test keys of `tests/fixtures/keys/`: never point a real deployment at it. For a provider
//! with a login page and users, and a web app in front, run `oidc-realm demo` instead (the
//! README's first command; it uses the same port 9380, so run one or the other).

#[path = "../tests/common/fake_op.rs"]
mod fake_op;

use fake_op::FakeOp;
use oidc_realm::clock::SystemClock;
use std::sync::Arc;

const ADDR: &str = "127.0.0.1:9380";
const CALLBACK: &str = "http://127.0.0.1:5601/api/security/oidc/callback";

#[actix_web::main]
async fn main() {
    let secret = std::fs::read_to_string("config/secrets/oidc1_client_secret")
        .expect("run from the repository root: config/secrets/oidc1_client_secret is needed");
    let op = FakeOp::start_on(ADDR).await;
    op.use_clock(Arc::new(SystemClock));
    op.set(|k| {
        k.client_id = "oidc-realm-dev".into();
        k.client_secret = secret.trim_end_matches(['\n', '\r']).to_string();
        k.redirect_uris = vec![CALLBACK.into()];
    });
    if std::env::args().any(|a| a == "--print-jwks") {
        println!("{}", op.jwks_json());
        return;
    }
    println!(
        "development OpenID Provider on http://{ADDR} (test keys; auto-login as {})",
        op.knobs().user.sub
    );
    println!("stop with Ctrl-C");
    let _ = tokio::signal::ctrl_c().await;
}
