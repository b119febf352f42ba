//! Logins per second through `prepare` + `authenticate` (implicit `id_token` flow, RS256,
//! realistic claims), next to the two limits of this path measured in the same run on the
//! same machine: RS256 verification per second on every core, and durable token issues per
//! second.
//!
//! ```text
//! cargo bench --bench login            # 10 s of logins
//! SECONDS=30 cargo bench --bench login
//! ```
//!
//! The server is the real `configure()` on 127.0.0.1 with the redb store in a temporary
//! directory. The provider's ID tokens are signed before the measurement (signing is the
//! provider's cost, not ours), each for the nonce its login will use (prepare accepts a
//! caller-chosen nonce, as in Elasticsearch).

use actix_web::{App, HttpServer};
use base64::Engine;
use oidc_realm::clock::{Clock, SystemClock};
use oidc_realm::model::{ClientRef, RealmRef, UserRecord};
use oidc_realm::store::RedbStore;
use oidc_realm::tokens::{Lifetimes, TokenService};
use oidc_realm::{configure, AppState};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RSA1: &str = include_str!("../tests/fixtures/keys/rsa1.pem");
const CONCURRENCY: usize = 32;

fn seconds() -> u64 {
    std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn config(port: u16) -> String {
    let hash = bcrypt::hash("bench-password", 4).expect("bcrypt");
    let root = env!("CARGO_MANIFEST_DIR");
    format!(
        r#"
http:
  bind: 127.0.0.1:{port}
log:
  level: warn
# The benchmark measures capacity: request rate limits off.
limits:
  requests_per_caller: 0
  requests_per_address: 0
users:
  facilitator:
    password_hash: "{hash}"
    privileges: [manage_oidc, manage_token]
realms:
  oidc1:
    order: 0
    rp.client_id: bench-client
    rp.client_secret: bench-secret
    rp.redirect_uri: https://kibana.example.org/api/security/oidc/implicit
    rp.response_type: id_token
    op.issuer: https://op.example.org
    op.authorization_endpoint: https://op.example.org/authorize
    op.jwkset_path: {root}/jwks/example.json
    claims.principal: email
    claim_patterns.principal: ^([^@]+)@staff\.example\.com$
    claims.groups: groups
    claims.name: name
    claims.mail: email
"#
    )
}

/// An RS256 ID token, signed with the key parsed once (jsonwebtoken re-parses a PEM key per
/// signature, which would make the set-up take minutes).
fn id_token(key: &aws_lc_rs::signature::RsaKeyPair, n: usize, nonce: &str, now: i64) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let header = json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"});
    let claims = json!({
        "iss": "https://op.example.org", "aud": "bench-client", "sub": format!("00u{n:08}"),
        "iat": now, "exp": now + 3600, "auth_time": now, "nonce": nonce,
        "email": format!("user{n}@staff.example.com"), "email_verified": true,
        "name": format!("User Number {n}"), "preferred_username": format!("user{n}"),
        "groups": ["finance-team", "staff", "vpn-users", "wiki-editors", "building-7"],
        "locale": "en-GB", "zoneinfo": "Europe/London",
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{signing_input}.{}", b64(&sig))
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let secs = seconds();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().expect("tempdir");

    // --- limit 1: RS256 verification, every core --------------------------------------------
    let pem = RSA1
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = base64::engine::general_purpose::STANDARD
        .decode(pem)
        .expect("PEM body");
    let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).expect("rsa1");
    let now = SystemClock.now_secs();
    let sample = id_token(&key, 0, "n", now);
    let jwks: serde_json::Value =
        serde_json::from_str(include_str!("../jwks/example.json")).expect("jwks");
    let rsa_jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
    let dkey = jsonwebtoken::DecodingKey::from_jwk(&rsa_jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["bench-client"]);
    let verified = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    jsonwebtoken::decode::<serde_json::Value>(&sample, &dkey, &validation)
                        .expect("verify");
                    verified.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
    });
    let verify_rate = verified.load(Ordering::Relaxed) as f64 / 3.0;

    // --- limit 2: durable token issues -------------------------------------------------------
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let issue_rate = rt.block_on(async {
        let store = Arc::new(RedbStore::open(&dir.path().join("issue.redb")).expect("store"));
        let tokens = TokenService::new(store, Arc::new(SystemClock));
        let lifetimes = Lifetimes {
            access: Duration::from_secs(1200),
            refresh: Duration::from_secs(86400),
        };
        let user = UserRecord {
            username: "user".into(),
            roles: vec!["finance_data".into()],
            full_name: Some("User".into()),
            email: Some("user@staff.example.com".into()),
            metadata: serde_json::Map::new(),
            realm: RealmRef {
                name: "oidc1".into(),
                kind: "oidc".into(),
            },
        };
        let client = ClientRef {
            username: "facilitator".into(),
            realm: "default_file".into(),
        };
        let count = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (tokens, user, client, count) =
                (tokens.clone(), user.clone(), client.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    tokens
                        .issue(
                            user.clone(),
                            client.clone(),
                            lifetimes,
                            true,
                            Some(b"id token for logout"),
                        )
                        .await
                        .expect("issue");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    });

    // --- the server ---------------------------------------------------------------------------
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let loaded = oidc_realm::config::load_str(&config(port), dir.path()).expect("config");
    let store = Arc::new(RedbStore::open(&dir.path().join("login.redb")).expect("store"));
    let state = AppState::new(
        loaded.settings,
        loaded.warnings,
        store,
        Arc::new(SystemClock),
    );
    let server_state = state.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server =
                HttpServer::new(move || App::new().configure(configure(server_state.clone())))
                    .workers(cores)
                    .disable_signals()
                    .bind(("127.0.0.1", port))
                    .expect("bind")
                    .run();
            tx.send(server.handle()).expect("handle");
            server.await.expect("server");
        });
    });
    let handle = rx.recv().expect("server handle");

    // Tokens for every login of the run, signed up front.
    let budget = (secs as usize) * 15_000;
    eprintln!("signing {budget} ID tokens up front (the provider's work, not measured)...");
    let signed: Vec<(String, String)> = (0..budget)
        .map(|n| {
            let nonce =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("nonce-{n:032}"));
            (nonce.clone(), id_token(&key, n, &nonce, now))
        })
        .collect();
    let signed = Arc::new(signed);

    let (logins, failures, took) = rt.block_on(async move {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let next = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        // One authenticated request first, so the facilitator's password check is remembered:
        // otherwise the first CONCURRENCY requests all verify it at once, and those beyond the
        // per-address allowance of full verifications (limits.password_checks_burst) get 429.
        let warm = client
            .get(format!("{base}/_security/_authenticate"))
            .basic_auth("facilitator", Some("bench-password"))
            .send()
            .await
            .expect("warm-up request");
        assert_eq!(warm.status(), 200, "warm-up request: {:?}", warm.text().await);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (client, base, next, ok, failed, signed) =
                (client.clone(), base.clone(), next.clone(), ok.clone(), failed.clone(), signed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((nonce, token)) = signed.get(n) else { break };
                    let p: serde_json::Value = client
                        .post(format!("{base}/_security/oidc/prepare"))
                        .basic_auth("facilitator", Some("bench-password"))
                        .json(&json!({"realm": "oidc1", "nonce": nonce}))
                        .send().await.expect("prepare").json().await.expect("prepare json");
                    let Some(st) = p["state"].as_str().map(str::to_string) else {
                        panic!("prepare answered without a state: {p}");
                    };
                    let redirect = format!(
                        "https://kibana.example.org/api/security/oidc/implicit#id_token={token}&state={st}"
                    );
                    let r = client
                        .post(format!("{base}/_security/oidc/authenticate"))
                        .basic_auth("facilitator", Some("bench-password"))
                        .json(&json!({"redirect_uri": redirect, "state": st, "nonce": nonce, "realm": "oidc1"}))
                        .send().await.expect("authenticate");
                    if r.status() == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let took = started.elapsed();
        handle.stop(true).await;
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed), took)
    });
    drop(state);

    let login_rate = logins as f64 / took.as_secs_f64();
    let lower = verify_rate.min(issue_rate);
    println!(
        "RS256 verifications/s on {cores} cores (jsonwebtoken, aws-lc-rs): {verify_rate:>9.0}"
    );
    println!("durable token issues/s (token service on redb, 64 tasks):      {issue_rate:>9.0}");
    println!("logins/s (prepare + authenticate, implicit RS256, {CONCURRENCY} clients): {login_rate:>9.0}   ({logins} ok, {failures} failed, {took:.1?})");
    println!(
        "logins / lower limit = {:.2}  (target >= 0.50)",
        login_rate / lower
    );
}
