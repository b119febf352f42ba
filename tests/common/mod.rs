//! Test harness: the real `configure()` over a chosen store, with a manual clock.
#![allow(dead_code)]

pub mod fake_op;
pub mod login;
pub mod rust_src;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use actix_web::App;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oidc_realm::clock::ManualClock;
use oidc_realm::config::*;
use oidc_realm::store::{MemoryStore, Store};
use oidc_realm::{configure, AppState};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

pub const FACILITATOR: (&str, &str) = ("facilitator", "facilitator-password");
pub const OTHER_FACILITATOR: (&str, &str) = ("kibana2", "kibana2-password");
pub const ADMIN: (&str, &str) = ("admin", "admin-password");
pub const OIDC_ONLY: (&str, &str) = ("oidc-only", "oidc-only-password");
pub const ARGON_USER: (&str, &str) = ("argon", "argon-password");

fn bcrypt4(pw: &str) -> PasswordHash {
    PasswordHash::Bcrypt(bcrypt::hash(pw, 4).unwrap())
}

/// An argon2id hash with minimal cost, so debug-build tests stay fast.
fn cheap_argon2(pw: &str) -> PasswordHash {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    PasswordHash::Argon2id(a.hash_password(pw.as_bytes(), &salt).unwrap().to_string())
}

fn user(hash: PasswordHash, privs: &[Privilege]) -> UserEntry {
    UserEntry {
        password_hash: hash,
        privileges: privs.iter().copied().collect::<BTreeSet<_>>(),
        roles: Vec::new(),
        full_name: None,
        email: None,
    }
}

/// Settings with several callers and no realms.
pub fn settings() -> Settings {
    let mut users = BTreeMap::new();
    users.insert(
        FACILITATOR.0.to_string(),
        user(
            bcrypt4(FACILITATOR.1),
            &[Privilege::ManageOidc, Privilege::ManageToken],
        ),
    );
    users.insert(
        OTHER_FACILITATOR.0.to_string(),
        user(
            bcrypt4(OTHER_FACILITATOR.1),
            &[Privilege::ManageOidc, Privilege::ManageToken],
        ),
    );
    users.insert(ADMIN.0.to_string(), {
        let mut u = user(bcrypt4(ADMIN.1), &[Privilege::All]);
        u.full_name = Some("The Admin".into());
        u.email = Some("admin@example.com".into());
        u
    });
    users.insert(
        OIDC_ONLY.0.to_string(),
        user(bcrypt4(OIDC_ONLY.1), &[Privilege::ManageOidc]),
    );
    users.insert(
        ARGON_USER.0.to_string(),
        user(cheap_argon2(ARGON_USER.1), &[Privilege::ManageToken]),
    );
    Settings {
        base_dir: ".".into(),
        http: HttpSettings {
            bind: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            max_body: 64 * 1024,
        },
        data: DataSettings {
            path: "unused.redb".into(),
            postgres: None,
            cache_size: oidc_realm::config::DEFAULT_DATA_CACHE_SIZE,
        },
        token: TokenSettings {
            cache_size: oidc_realm::config::DEFAULT_TOKEN_CACHE_SIZE as u64,
            timeout: Duration::from_secs(20 * 60),
            refresh_timeout: Duration::from_secs(24 * 3600),
            refresh_reuse: RefreshReuse::RevokeFamily,
        },
        log: LogSettings {
            format: LogFormat::Human,
            level: "info".into(),
        },
        users,
        service_tokens: BTreeMap::new(),
        compatibility: CompatibilitySettings::default(),
        // Request rate limits off: tests that need them set them (tests/compat.rs).
        limits: LimitSettings {
            requests_per_caller: 0,
            requests_per_address: 0,
            ..LimitSettings::default()
        },
        metrics: MetricsSettings::default(),
        audit: AuditSettings::default(),
        realms: Vec::new(),
        role_mappings: Vec::new(),
        connections: ConnectionSettings::default(),
    }
}

pub struct TestApp {
    pub state: Arc<AppState>,
    pub clock: Arc<ManualClock>,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_store(Arc::new(MemoryStore::new()))
    }

    pub fn with_store(store: Arc<dyn Store>) -> Self {
        Self::with(settings(), store)
    }

    pub fn with(settings: Settings, store: Arc<dyn Store>) -> Self {
        let clock = ManualClock::at(1_790_000_000_000);
        let state = AppState::new(settings, Vec::new(), store, clock.clone());
        Self { state, clock }
    }

    pub async fn service(
        &self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        test::init_service(App::new().configure(configure(self.state.clone()))).await
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}

pub fn basic((u, p): (&str, &str)) -> (&'static str, String) {
    (
        "Authorization",
        format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))),
    )
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// Send a request and return (status, headers, JSON body or Null).
pub async fn send<S, B>(
    app: &S,
    req: test::TestRequest,
) -> (u16, actix_web::http::header::HeaderMap, serde_json::Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = test::read_body(resp).await;
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

/// Send a request and return the raw body bytes too.
pub async fn send_raw<S, B>(app: &S, req: test::TestRequest) -> (u16, actix_web::web::Bytes)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    (status, test::read_body(resp).await)
}

pub fn post_json(path: &str, body: serde_json::Value) -> test::TestRequest {
    test::TestRequest::post().uri(path).set_json(body)
}

pub fn delete_json(path: &str, body: serde_json::Value) -> test::TestRequest {
    test::TestRequest::delete().uri(path).set_json(body)
}

/// The real `configure()` served by an actix-web `HttpServer` on `127.0.0.1:<random port>`
/// with `workers` worker threads: requests on different connections are handled in parallel.
pub struct Served {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Served {
    pub fn start(state: Arc<AppState>, workers: usize) -> Self {
        let server =
            actix_web::HttpServer::new(move || App::new().configure(configure(state.clone())))
                .workers(workers)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            handle,
        }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Refresh one refresh token from `n` connections at once against a served app, and check
/// what the refresh semantics promise (spec §3.3, src/tokens/mod.rs): every request within
/// the 30 s window gets 200 and byte-for-byte the same new pair, exactly one new pair is
/// minted (invalidating the user's tokens afterwards counts the original pair and one new
/// pair, 4 tokens), and the new pair works.
pub async fn assert_concurrent_refreshes_get_one_pair(base: &str, n: usize) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = || {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    };
    let c = client();
    let first: serde_json::Value = c
        .post(format!("{base}/_security/oauth2/token"))
        .basic_auth(FACILITATOR.0, Some(FACILITATOR.1))
        .json(&serde_json::json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r0 = first["refresh_token"].as_str().unwrap().to_string();
    // One client (one connection) per request, each connected and authenticated (its Basic
    // password check remembered) beforehand, so the refreshes start together.
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = client();
        let r = c
            .get(format!("{base}/_security/_authenticate"))
            .basic_auth(FACILITATOR.0, Some(FACILITATOR.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        clients.push(c);
    }
    let futs = clients.iter().map(|c| {
        let req = c
            .post(format!("{base}/_security/oauth2/token"))
            .basic_auth(FACILITATOR.0, Some(FACILITATOR.1))
            .json(&serde_json::json!({"grant_type": "refresh_token", "refresh_token": r0}));
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    });
    let results = futures_util::future::join_all(futs).await;
    let (_, b0) = &results[0];
    for (s, b) in &results {
        assert_eq!(*s, 200, "{}", String::from_utf8_lossy(b));
        assert_eq!(b, b0, "two different pairs for one refresh token");
    }
    let pair: serde_json::Value = serde_json::from_slice(b0).unwrap();
    assert_ne!(pair["access_token"], first["access_token"]);
    assert_ne!(pair["refresh_token"], first["refresh_token"]);
    let me = c
        .get(format!("{base}/_security/_authenticate"))
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // Exactly one pair was minted: the user holds 2 pairs (4 tokens), not one per winner.
    let counts: serde_json::Value = c
        .delete(format!("{base}/_security/oauth2/token"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .json(&serde_json::json!({"username": ADMIN.0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts,
        serde_json::json!({"invalidated_tokens": 4, "previously_invalidated_tokens": 0, "error_count": 0})
    );
}
