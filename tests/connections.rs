//! Connected accounts (`/_oauth/connections/*`) through HTTP on the real `configure()`,
//! against an in-process fake OAuth service (`127.0.0.1:<random port>`): the management API,
//! authorize → callback → token → refresh → revocation, every refusal, key rotation, and the
//! single refresh under 32 concurrent `_token` calls.

mod common;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use oidc_realm::config::{Privilege, Settings, UserEntry};
use oidc_realm::secret::Secret;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY1: &str = "key-one-key-one-key-one-key-one-key-one";
const KEY2: &str = "key-two-key-two-key-two-key-two-key-two";
const CLIENT_ID: &str = "docs-client";
const CLIENT_SECRET: &str = "docs-client-secret-value";
const REDIRECT: &str = "https://app.example.com/connections/cb";
const APP: (&str, &str) = ("app", "app-password");
const APP2: (&str, &str) = ("app2", "app2-password");
const READER: (&str, &str) = ("reader", "reader-password");
const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password");

// ---------------------------------------------------------------------------------------------
// The fake OAuth service

#[derive(Default)]
struct Service {
    /// code → (PKCE challenge, redirect_uri given at authorize)
    codes: Mutex<HashMap<String, (Option<String>, String)>>,
    refresh_tokens: Mutex<HashSet<String>>,
    revoked: Mutex<Vec<String>>,
    refreshes: AtomicUsize,
    exchanges: AtomicUsize,
    n: AtomicU64,
    refuse_codes: AtomicBool,
    refuse_refresh: AtomicBool,
    /// Milliseconds each refresh takes.
    refresh_delay_ms: AtomicU64,
    /// When set, each refresh waits for a permit of this semaphore (the test releases it).
    refresh_gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// The issuer its metadata names (default: its own base URL).
    metadata_issuer: Mutex<Option<String>>,
    metadata_fetches: AtomicUsize,
}

struct FakeService {
    svc: Arc<Service>,
    base: String,
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn client_ok(req: &HttpRequest) -> bool {
    let want = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(want.as_str())
}

fn oauth_error(e: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": e }))
}

async fn token(svc: web::Data<Service>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if !client_ok(&req) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    let f = form(&body);
    let n = svc.n.fetch_add(1, Ordering::SeqCst);
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            svc.exchanges.fetch_add(1, Ordering::SeqCst);
            if svc.refuse_codes.load(Ordering::SeqCst) {
                return oauth_error("invalid_grant");
            }
            let Some((challenge, redirect)) = f
                .get("code")
                .and_then(|c| svc.codes.lock().unwrap().remove(c))
            else {
                return oauth_error("invalid_grant");
            };
            if f.get("redirect_uri") != Some(&redirect) {
                return oauth_error("invalid_grant");
            }
            let verified = match (challenge, f.get("code_verifier")) {
                (Some(c), Some(v)) => {
                    URL_SAFE_NO_PAD.encode(oidc_realm::crypto::sha256(&[v.as_bytes()])) == c
                }
                (None, None) => true,
                _ => false,
            };
            if !verified {
                return oauth_error("invalid_grant");
            }
            let rt = format!("rt-{n}");
            svc.refresh_tokens.lock().unwrap().insert(rt.clone());
            HttpResponse::Ok().json(json!({
                "access_token": format!("at-{n}"), "token_type": "Bearer",
                "expires_in": 300, "refresh_token": rt, "scope": "read write"
            }))
        }
        Some("refresh_token") => {
            svc.refreshes.fetch_add(1, Ordering::SeqCst);
            let delay = svc.refresh_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let gate = svc.refresh_gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            let known = f
                .get("refresh_token")
                .is_some_and(|r| svc.refresh_tokens.lock().unwrap().contains(r));
            if !known || svc.refuse_refresh.load(Ordering::SeqCst) {
                return oauth_error("invalid_grant");
            }
            HttpResponse::Ok().json(json!({
                "access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 300
            }))
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

/// RFC 8414 metadata.
async fn metadata(svc: web::Data<Service>, req: HttpRequest) -> HttpResponse {
    svc.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    let base = format!("http://{}", req.connection_info().host());
    let issuer = svc
        .metadata_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| base.clone());
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "revocation_endpoint": format!("{base}/revoke"),
    }))
}

/// OpenID Connect discovery of the issuer `<base>/tenant` (no RFC 8414 document for it).
async fn tenant_metadata(req: HttpRequest) -> HttpResponse {
    let base = format!("http://{}", req.connection_info().host());
    HttpResponse::Ok().json(json!({
        "issuer": format!("{base}/tenant"),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
    }))
}

async fn revoke(svc: web::Data<Service>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if !client_ok(&req) {
        return HttpResponse::Unauthorized().finish();
    }
    let f = form(&body);
    if let Some(t) = f.get("token") {
        svc.refresh_tokens.lock().unwrap().remove(t);
        svc.revoked.lock().unwrap().push(t.clone());
    }
    HttpResponse::Ok().finish()
}

impl FakeService {
    fn start() -> Self {
        let svc = Arc::new(Service::default());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = web::Data::from(svc.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/token", web::post().to(token))
                .route("/revoke", web::post().to(revoke))
                .route(
                    "/.well-known/oauth-authorization-server",
                    web::get().to(metadata),
                )
                .route(
                    "/tenant/.well-known/openid-configuration",
                    web::get().to(tenant_metadata),
                )
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        FakeService {
            svc,
            base: format!("http://{addr}"),
        }
    }

    /// The provider's login page: the user logs in and consents; the browser goes back to
    /// the redirect URI with a code.
    fn login(&self, authorize_url: &str) -> String {
        let u = url::Url::parse(authorize_url).unwrap();
        let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(
            q["redirect_uri"], REDIRECT,
            "the state is never in the redirect URI"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        let n = self.svc.n.fetch_add(1, Ordering::SeqCst);
        let code = format!("code-{n}");
        self.svc.codes.lock().unwrap().insert(
            code.clone(),
            (q.get("code_challenge").cloned(), q["redirect_uri"].clone()),
        );
        format!("{REDIRECT}?code={code}&state={}", q["state"])
    }

    fn definition(&self) -> Value {
        json!({
            "authorization_endpoint": format!("{}/authorize", self.base),
            "token_endpoint": format!("{}/token", self.base),
            "revocation_endpoint": format!("{}/revoke", self.base),
            "redirect_uri": REDIRECT,
            "scopes": ["read", "write"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test

fn entry(pw: &str, privs: &[Privilege]) -> UserEntry {
    UserEntry {
        password_hash: oidc_realm::config::PasswordHash::Bcrypt(bcrypt::hash(pw, 4).unwrap()),
        privileges: privs.iter().copied().collect(),
        roles: Vec::new(),
        full_name: None,
        email: None,
    }
}

fn conn_settings(key: Option<&str>, previous: Option<&str>) -> Settings {
    let mut s = settings();
    s.users.insert(
        APP.0.into(),
        entry(APP.1, &[Privilege::UseConnections, Privilege::ManageToken]),
    );
    s.users.insert(
        APP2.0.into(),
        entry(APP2.1, &[Privilege::UseConnections, Privilege::ManageToken]),
    );
    s.users.insert(
        READER.0.into(),
        entry(READER.1, &[Privilege::ReadConnections]),
    );
    s.users.insert(ALICE.0.into(), entry(ALICE.1, &[]));
    s.users.insert(BOB.0.into(), entry(BOB.1, &[]));
    s.connections.key = key.map(|k| Secret::new(k.to_string()));
    s.connections.previous_key = previous.map(|k| Secret::new(k.to_string()));
    s
}

struct Env {
    app: TestApp,
    fake: FakeService,
}

impl Env {
    async fn new() -> Self {
        let fake = FakeService::start();
        let app = TestApp::with(
            conn_settings(Some(KEY1), None),
            Arc::new(oidc_realm::store::MemoryStore::new()),
        );
        let env = Env { app, fake };
        let (s, b) = env
            .call(
                test_put("/_oauth/connections/docs", env.fake.definition()),
                ADMIN,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["connection"]["created"], true);
        env
    }

    async fn call(&self, req: actix_web::test::TestRequest, who: (&str, &str)) -> (u16, Value) {
        let svc = self.app.service().await;
        let (s, _, b) = send(&svc, req.insert_header(basic(who))).await;
        (s, b)
    }

    /// A user's oidc-realm access token (password grant through the facilitator).
    async fn user_token(&self, user: (&str, &str)) -> String {
        let (s, b) = self
            .call(
                post_json(
                    "/_security/oauth2/token",
                    json!({"grant_type": "password", "username": user.0, "password": user.1}),
                ),
                APP,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_string()
    }

    async fn authorize(&self, by: (&str, &str), token: &str) -> (u16, Value) {
        self.call(
            post_json(
                "/_oauth/connections/docs/_authorize",
                json!({ "access_token": token }),
            ),
            by,
        )
        .await
    }

    async fn callback(&self, by: (&str, &str), token: &str, url: &str) -> (u16, Value) {
        self.call(
            post_json(
                "/_oauth/connections/_callback",
                json!({ "access_token": token, "redirect_uri": url }),
            ),
            by,
        )
        .await
    }

    async fn token(&self, by: (&str, &str), token: &str) -> (u16, Value) {
        self.call(
            post_json(
                "/_oauth/connections/docs/_token",
                json!({ "access_token": token }),
            ),
            by,
        )
        .await
    }

    /// authorize → provider login → callback, for `user`; returns the user's token.
    async fn connect(&self, user: (&str, &str)) -> String {
        let t = self.user_token(user).await;
        let (s, b) = self.authorize(APP, &t).await;
        assert_eq!(s, 200, "{b}");
        let back = self.fake.login(b["redirect"].as_str().unwrap());
        let (s, b) = self.callback(APP, &t, &back).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["connection"], "docs");
        t
    }
}

fn test_put(path: &str, body: Value) -> actix_web::test::TestRequest {
    actix_web::test::TestRequest::put().uri(path).set_json(body)
}

fn code(b: &Value) -> &str {
    b["error"]["reason_code"]
        .as_str()
        .or_else(|| b["error"]["root_cause"][0]["reason_code"].as_str())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Cases

#[actix_web::test]
async fn full_flow_token_refresh_revocation() {
    let env = Env::new().await;
    let alice = env.connect(ALICE).await;
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 200, "{b}");
    let first = b["access_token"].as_str().unwrap().to_string();
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["scope"], "read write");
    assert_eq!(b["expires_in"], 300);
    // Still fresh: the same token, no refresh.
    env.app.advance(Duration::from_secs(100));
    let (_, b) = env.token(APP, &alice).await;
    assert_eq!(b["access_token"], first.as_str());
    assert_eq!(env.fake.svc.refreshes.load(Ordering::SeqCst), 0);
    // About to expire: refreshed.
    env.app.advance(Duration::from_secs(150));
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 200, "{b}");
    assert_ne!(b["access_token"], first.as_str());
    assert_eq!(env.fake.svc.refreshes.load(Ordering::SeqCst), 1);
    // The user's grant, revoked by the user's facilitator: revoked at the service too.
    let (s, b) = env
        .call(
            delete_json(
                "/_oauth/connections/docs/_grant",
                json!({ "access_token": alice }),
            ),
            APP,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["revoked_at_service"], true);
    assert_eq!(env.fake.svc.revoked.lock().unwrap().len(), 1);
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(code(&b), "authorization_required");
    // Again: nothing to revoke.
    let (s, _) = env
        .call(
            delete_json(
                "/_oauth/connections/docs/_grant",
                json!({ "access_token": alice }),
            ),
            APP,
        )
        .await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn no_grant_is_authorization_required() {
    let env = Env::new().await;
    let alice = env.user_token(ALICE).await;
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(code(&b), "authorization_required");
}

#[actix_web::test]
async fn state_replayed_expired_other_facilitator_other_user() {
    let env = Env::new().await;
    let alice = env.user_token(ALICE).await;
    // Replayed.
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    assert_eq!(env.callback(APP, &alice, &back).await.0, 200);
    let (s, b) = env.callback(APP, &alice, &back).await;
    assert_eq!((s, code(&b)), (400, "connection_state_invalid"), "{b}");
    // Expired (10 minutes).
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    env.app.advance(Duration::from_secs(601));
    let (s, b) = env.callback(APP, &alice, &back).await;
    assert_eq!((s, code(&b)), (400, "connection_state_invalid"), "{b}");
    // Just inside the 10 minutes: accepted.
    let alice = env.user_token(ALICE).await;
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    env.app.advance(Duration::from_secs(599));
    assert_eq!(env.callback(APP, &alice, &back).await.0, 200);
    // Another facilitator presents it, or the right one for another user: refused, and left
    // for the right facilitator and user, who can still finish.
    let alice = env.user_token(ALICE).await;
    let bob = env.user_token(BOB).await;
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    let (s, b) = env.callback(APP2, &alice, &back).await;
    assert_eq!((s, code(&b)), (400, "connection_state_mismatch"), "{b}");
    let (s, b) = env.callback(APP, &bob, &back).await;
    assert_eq!((s, code(&b)), (400, "connection_state_mismatch"), "{b}");
    let (s, b) = env.callback(APP, &alice, &back).await;
    assert_eq!(s, 200, "{b}");
    // A mismatched state still expires at its time.
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    assert_eq!(env.callback(APP, &bob, &back).await.0, 400);
    env.app.advance(Duration::from_secs(601));
    let alice = env.user_token(ALICE).await;
    let (s, b) = env.callback(APP, &alice, &back).await;
    assert_eq!((s, code(&b)), (400, "connection_state_invalid"), "{b}");
    // A made-up state, and none at all.
    let (s, b) = env
        .callback(APP, &alice, &format!("{REDIRECT}?code=x&state=made-up"))
        .await;
    assert_eq!((s, code(&b)), (400, "connection_state_invalid"), "{b}");
    let (s, b) = env
        .callback(APP, &alice, &format!("{REDIRECT}?code=x"))
        .await;
    assert_eq!((s, code(&b)), (400, "connection_callback_invalid"), "{b}");
    // Another callback URL than the connection's.
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    let moved = back.replace("app.example.com", "evil.example.com");
    let (s, b) = env.callback(APP, &alice, &moved).await;
    assert_eq!((s, code(&b)), (400, "connection_callback_invalid"), "{b}");
}

#[actix_web::test]
async fn provider_error_and_refused_code_exchange() {
    let env = Env::new().await;
    let alice = env.user_token(ALICE).await;
    let (_, b) = env.authorize(APP, &alice).await;
    let state = url::Url::parse(b["redirect"].as_str().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let (s, b) = env
        .callback(
            APP,
            &alice,
            &format!("{REDIRECT}?error=access_denied&state={state}"),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (400, "connection_authorization_denied"),
        "{b}"
    );
    assert!(b.to_string().contains("access_denied"));
    // The service refuses the code.
    env.fake.svc.refuse_codes.store(true, Ordering::SeqCst);
    let (_, b) = env.authorize(APP, &alice).await;
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    let (s, b) = env.callback(APP, &alice, &back).await;
    assert_eq!(
        (s, code(&b)),
        (400, "connection_code_exchange_failed"),
        "{b}"
    );
    assert!(
        !b.to_string().contains("code-"),
        "the code is never echoed: {b}"
    );
    let (s, _) = env.token(APP, &alice).await;
    assert_eq!(s, 401);
}

#[actix_web::test]
async fn refused_refresh_requires_authorization_again() {
    let env = Env::new().await;
    let alice = env.connect(ALICE).await;
    env.fake.svc.refuse_refresh.store(true, Ordering::SeqCst);
    env.app.advance(Duration::from_secs(290));
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!((s, code(&b)), (401, "authorization_required"), "{b}");
    // The grant is gone: no second refresh attempt.
    let (s, _) = env.token(APP, &alice).await;
    assert_eq!(s, 401);
    assert_eq!(env.fake.svc.refreshes.load(Ordering::SeqCst), 1);
    // Authorizing again works.
    env.fake.svc.refuse_refresh.store(false, Ordering::SeqCst);
    let alice = env.connect(ALICE).await;
    assert_eq!(env.token(APP, &alice).await.0, 200);
}

#[actix_web::test]
async fn a_grant_moved_to_another_user_does_not_open() {
    let env = Env::new().await;
    let alice = env.connect(ALICE).await;
    let bob = env.user_token(BOB).await;
    let store = env.app.state.tokens.store().clone();
    let grants = store
        .list_records("connection_grant", "docs/")
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    let (alice_key, rec) = &grants[0];
    assert!(
        !String::from_utf8_lossy(&rec.value).contains("at-"),
        "sealed at rest"
    );
    let bob_key = alice_key.replace("alice", "bob");
    store
        .put_record("connection_grant", &bob_key, rec.value.clone(), None)
        .await
        .unwrap();
    let (s, b) = env.token(APP, &bob).await;
    assert_eq!((s, code(&b)), (401, "authorization_required"), "{b}");
    // Alice's own still opens.
    assert_eq!(env.token(APP, &alice).await.0, 200);
    // And a copy under another connection does not open either.
    let other = alice_key.replacen("docs/", "chat/", 1);
    store
        .put_record("connection_grant", &other, rec.value.clone(), None)
        .await
        .unwrap();
    let mut def = env.fake.definition();
    def["client_id"] = json!(CLIENT_ID);
    assert_eq!(
        env.call(test_put("/_oauth/connections/chat", def), ADMIN)
            .await
            .0,
        200
    );
    let (s, _) = env
        .call(
            post_json(
                "/_oauth/connections/chat/_token",
                json!({ "access_token": alice }),
            ),
            APP,
        )
        .await;
    assert_eq!(s, 401);
}

#[actix_web::test]
async fn deleting_a_connection_in_use_is_409_unless_forced() {
    let env = Env::new().await;
    env.connect(ALICE).await;
    env.connect(BOB).await;
    let del = || actix_web::test::TestRequest::delete().uri("/_oauth/connections/docs");
    let (s, b) = env.call(del(), ADMIN).await;
    assert_eq!((s, code(&b)), (409, "connection_in_use"), "{b}");
    assert!(b.to_string().contains("2 user grant"), "{b}");
    let (s, b) = env
        .call(
            actix_web::test::TestRequest::delete().uri("/_oauth/connections/docs?force=true"),
            ADMIN,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["revoked_grants"], 2);
    assert_eq!(env.fake.svc.revoked.lock().unwrap().len(), 2);
    let (s, _) = env.call(del(), ADMIN).await;
    assert_eq!(s, 404);
    let store = env.app.state.tokens.store().clone();
    assert!(store
        .list_records("connection_grant", "")
        .await
        .unwrap()
        .is_empty());
}

#[actix_web::test]
async fn management_api_privileges_and_write_only_secret() {
    let env = Env::new().await;
    let (s, b) = env
        .call(
            actix_web::test::TestRequest::get().uri("/_oauth/connections"),
            READER,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["docs"]["client_id"], CLIENT_ID);
    assert_eq!(b["docs"]["mode"], "per_user");
    assert_eq!(b["docs"]["read_only"], false);
    assert!(!b.to_string().contains(CLIENT_SECRET), "{b}");
    assert!(b["docs"].get("client_secret").is_none());
    // Stored sealed.
    let store = env.app.state.tokens.store().clone();
    let rec = store
        .get_record("connection", "docs")
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&rec.value).contains(CLIENT_SECRET));
    // read_connections cannot write; use_connections cannot read or write.
    let (s, _) = env
        .call(
            test_put("/_oauth/connections/x", env.fake.definition()),
            READER,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = env
        .call(
            actix_web::test::TestRequest::get().uri("/_oauth/connections/docs"),
            APP,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = env
        .call(
            actix_web::test::TestRequest::delete().uri("/_oauth/connections/docs"),
            READER,
        )
        .await;
    assert_eq!(s, 403);
    // The reader cannot act for users.
    let alice = env.user_token(ALICE).await;
    assert_eq!(env.authorize(READER, &alice).await.0, 403);
    // A replace without a secret keeps the stored one (write-only).
    let mut def = env.fake.definition();
    def.as_object_mut().unwrap().remove("client_secret");
    def["scopes"] = json!(["read"]);
    let (s, b) = env
        .call(test_put("/_oauth/connections/docs", def.clone()), ADMIN)
        .await;
    assert_eq!(
        (s, &b["connection"]["created"]),
        (200, &json!(false)),
        "{b}"
    );
    env.connect(ALICE).await;
    // Creating without a secret, bad URLs, bad names, unknown fields: 400 with every problem.
    def["token_endpoint"] = json!("http://service.example.com/token");
    def["client_auth_method"] = json!("private_key_jwt");
    let (s, b) = env
        .call(test_put("/_oauth/connections/new", def), ADMIN)
        .await;
    assert_eq!(s, 400, "{b}");
    let reason = b.to_string();
    for want in ["client_secret", "token_endpoint", "client_auth_method"] {
        assert!(reason.contains(want), "{want} in {reason}");
    }
    let (s, _) = env
        .call(
            test_put("/_oauth/connections/_bad", env.fake.definition()),
            ADMIN,
        )
        .await;
    assert_eq!(s, 400);
    let mut extra = env.fake.definition();
    extra["surprise"] = json!(1);
    let (s, _) = env
        .call(test_put("/_oauth/connections/x", extra), ADMIN)
        .await;
    assert_eq!(s, 400);
    let (s, _) = env
        .call(
            actix_web::test::TestRequest::get().uri("/_oauth/connections/nope"),
            ADMIN,
        )
        .await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn configured_connections_are_read_only() {
    let fake = FakeService::start();
    let mut s = conn_settings(Some(KEY1), None);
    let d = fake.definition();
    let u = |k: &str| url::Url::parse(d[k].as_str().unwrap()).unwrap();
    s.connections.defined.insert(
        "yaml".into(),
        oidc_realm::config::ConnectionDef {
            issuer: None,
            authorization_endpoint: Some(u("authorization_endpoint")),
            token_endpoint: Some(u("token_endpoint")),
            revocation_endpoint: Some(u("revocation_endpoint")),
            redirect_uri: u("redirect_uri"),
            scopes: vec!["read".into()],
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET.into()),
            client_auth: oidc_realm::config::ConnectionClientAuth::ClientSecretBasic,
            pkce: true,
            mode: oidc_realm::config::ConnectionMode::PerUser,
        },
    );
    let app = TestApp::with(s, Arc::new(oidc_realm::store::MemoryStore::new()));
    let svc = app.service().await;
    let (st, _, b) = send(
        &svc,
        actix_web::test::TestRequest::get()
            .uri("/_oauth/connections/yaml")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(b["yaml"]["read_only"], true);
    let (st, _, b) = send(
        &svc,
        test_put("/_oauth/connections/yaml", d).insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!((st, code(&b)), (400, "connection_read_only"), "{b}");
    let (st, _, _) = send(
        &svc,
        actix_web::test::TestRequest::delete()
            .uri("/_oauth/connections/yaml")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(st, 400);
}

#[actix_web::test]
async fn without_an_encryption_key_connections_are_refused() {
    let fake = FakeService::start();
    let app = TestApp::with(
        conn_settings(None, None),
        Arc::new(oidc_realm::store::MemoryStore::new()),
    );
    let svc = app.service().await;
    let (s, _, b) = send(
        &svc,
        test_put("/_oauth/connections/docs", fake.definition()).insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!((s, code(&b)), (400, "connections_not_enabled"), "{b}");
}

#[actix_web::test]
async fn key_rotation_keeps_grants_and_connections_usable() {
    let env = Env::new().await;
    let alice = env.connect(ALICE).await;
    // Rotate: new key, old one as previous_key.
    env.app
        .state
        .swap_settings(conn_settings(Some(KEY2), Some(KEY1)), Vec::new())
        .unwrap();
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 200, "{b}");
    // The grant was sealed again with the new key; the connection's secret is sealed again
    // by a PUT (without the secret, which is kept).
    let mut def = env.fake.definition();
    def.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(
        env.call(test_put("/_oauth/connections/docs", def), ADMIN)
            .await
            .0,
        200
    );
    // Drop the old key: everything still opens.
    env.app
        .state
        .swap_settings(conn_settings(Some(KEY2), None), Vec::new())
        .unwrap();
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 200, "{b}");
    env.app.advance(Duration::from_secs(290));
    let (s, b) = env.token(APP, &alice).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        env.fake.svc.refreshes.load(Ordering::SeqCst),
        1,
        "the client secret opened"
    );
    // A key that never sealed them: nothing opens.
    env.app
        .state
        .swap_settings(conn_settings(Some(KEY1), None), Vec::new())
        .unwrap();
    let (s, _) = env.token(APP, &alice).await;
    assert_ne!(s, 200);
}

#[actix_web::test]
async fn rate_limit_per_user_on_authorize() {
    let env = Env::new().await;
    let alice = env.user_token(ALICE).await;
    let mut refused = 0;
    for _ in 0..24 {
        let (s, b) = env.authorize(APP, &alice).await;
        if s == 429 {
            assert_eq!(code(&b), "rate_limited");
            refused += 1;
        }
    }
    assert!(
        refused >= 1,
        "a burst of 24 exceeds the per-user burst of 20"
    );
    // Another user is not affected.
    let bob = env.user_token(BOB).await;
    assert_eq!(env.authorize(APP, &bob).await.0, 200);
}

#[actix_web::test]
async fn concurrent_token_calls_cause_one_refresh_and_other_users_do_not_wait() {
    let env = Env::new().await;
    let alice = env.connect(ALICE).await;
    // Alice's token is about to expire; Bob's is fresh.
    env.app.advance(Duration::from_secs(290));
    let bob = env.connect(BOB).await;
    // Alice's refresh is held at the service until the test releases it.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *env.fake.svc.refresh_gate.lock().unwrap() = Some(gate.clone());
    let svc = env.app.service().await;
    let alices_done = AtomicU64::new(0);
    let call = |token: String| {
        let svc = &svc;
        async move {
            let (s, _, b) = send(
                svc,
                post_json(
                    "/_oauth/connections/docs/_token",
                    json!({ "access_token": token }),
                )
                .insert_header(basic(APP)),
            )
            .await;
            (
                s,
                b["access_token"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let alices = futures_util::future::join_all((0..32).map(|_| {
        let call = call(alice.clone());
        let done = &alices_done;
        async move {
            let r = call.await;
            done.fetch_add(1, Ordering::SeqCst);
            r
        }
    }));
    let bobs = async {
        // Wait (polling, with a deadline) until Alice's refresh reached the service and is
        // held there.
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.fake.svc.refreshes.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "Alice's refresh never started");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Bob's call completes while Alice's refresh is still held: he did not wait for it.
        let bob_result = call(bob.clone()).await;
        let alices_finished_before_release = alices_done.load(Ordering::SeqCst);
        gate.add_permits(1_000);
        (bob_result, alices_finished_before_release)
    };
    let (alices, (bob_result, alices_finished_before_release)) = tokio::join!(alices, bobs);
    assert_eq!(bob_result.0, 200);
    assert_eq!(
        alices_finished_before_release, 0,
        "every call of Alice's waits for the one refresh"
    );
    assert_eq!(
        env.fake.svc.refreshes.load(Ordering::SeqCst),
        1,
        "exactly one refresh"
    );
    let tokens: HashSet<&str> = alices.iter().map(|(_, t)| t.as_str()).collect();
    assert!(alices.iter().all(|(s, _)| *s == 200));
    assert_eq!(tokens.len(), 1, "every caller got the refreshed token");
}

#[actix_web::test]
async fn shared_connection_one_grant_for_every_user() {
    let env = Env::new().await;
    let mut def = env.fake.definition();
    def["mode"] = json!("shared");
    assert_eq!(
        env.call(test_put("/_oauth/connections/team", def), ADMIN)
            .await
            .0,
        200
    );
    let empty = |path: &str| post_json(path, json!({}));
    // Only an administrator authorizes it, without a user token.
    let (s, _) = env
        .call(empty("/_oauth/connections/team/_authorize"), APP)
        .await;
    assert_eq!(s, 403);
    let (s, b) = env
        .call(empty("/_oauth/connections/team/_authorize"), ADMIN)
        .await;
    assert_eq!(s, 200, "{b}");
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    let (s, b) = env
        .call(
            post_json(
                "/_oauth/connections/_callback",
                json!({ "redirect_uri": back }),
            ),
            ADMIN,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Every facilitator with use_connections gets its token, without naming a user.
    let (s, b) = env
        .call(empty("/_oauth/connections/team/_token"), APP)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        env.call(empty("/_oauth/connections/team/_token"), APP2)
            .await
            .0,
        200
    );
    // A per-user call on a shared connection, and a shared call on a per-user one: refused.
    let alice = env.user_token(ALICE).await;
    let (s, b) = env
        .call(
            post_json(
                "/_oauth/connections/team/_token",
                json!({ "access_token": alice }),
            ),
            APP,
        )
        .await;
    assert_eq!((s, code(&b)), (400, "connection_wrong_mode"), "{b}");
    let (s, b) = env
        .call(empty("/_oauth/connections/docs/_token"), APP)
        .await;
    assert_eq!((s, code(&b)), (400, "connection_wrong_mode"), "{b}");
    // Revoked by an administrator.
    let (s, _) = env
        .call(
            delete_json("/_oauth/connections/team/_grant", json!({})),
            APP,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = env
        .call(
            delete_json("/_oauth/connections/team/_grant", json!({})),
            ADMIN,
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = env
        .call(empty("/_oauth/connections/team/_token"), APP)
        .await;
    assert_eq!((s, code(&b)), (401, "authorization_required"), "{b}");
}

#[actix_web::test]
async fn an_administrator_revokes_any_users_grant() {
    let env = Env::new().await;
    let alice = env.connect(ALICE).await;
    let by_name = json!({ "realm": "default_file", "username": "alice" });
    let (s, _) = env
        .call(
            delete_json("/_oauth/connections/docs/_grant", by_name.clone()),
            APP,
        )
        .await;
    assert_eq!(s, 403, "use_connections revokes only the user's own");
    let (s, b) = env
        .call(
            delete_json("/_oauth/connections/docs/_grant", by_name),
            ADMIN,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(env.token(APP, &alice).await.0, 401);
    let (s, _) = env
        .call(
            delete_json(
                "/_oauth/connections/docs/_grant",
                json!({ "access_token": alice, "username": "alice" }),
            ),
            ADMIN,
        )
        .await;
    assert_eq!(s, 400);
}

#[actix_web::test]
async fn audit_events_for_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let fake = FakeService::start();
    let mut s = conn_settings(Some(KEY1), None);
    s.audit = oidc_realm::config::AuditSettings {
        sink: Some(oidc_realm::config::AuditSink::File(path.clone())),
        max_size: 100 << 20,
        max_files: 5,
    };
    let env = Env {
        app: TestApp::with(s, Arc::new(oidc_realm::store::MemoryStore::new())),
        fake,
    };
    assert_eq!(
        env.call(
            test_put("/_oauth/connections/docs", env.fake.definition()),
            ADMIN
        )
        .await
        .0,
        200
    );
    let alice = env.connect(ALICE).await;
    env.app.advance(Duration::from_secs(290));
    assert_eq!(env.token(APP, &alice).await.0, 200);
    env.fake.svc.refuse_refresh.store(true, Ordering::SeqCst);
    env.app.advance(Duration::from_secs(290));
    assert_eq!(env.token(APP, &alice).await.0, 401);
    env.fake.svc.refuse_refresh.store(false, Ordering::SeqCst);
    let alice = env.connect(ALICE).await;
    let (s, _) = env
        .call(
            delete_json(
                "/_oauth/connections/docs/_grant",
                json!({ "access_token": alice }),
            ),
            APP,
        )
        .await;
    assert_eq!(s, 200);
    env.app.state.audit.flush();
    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("connection"))
        .collect();
    assert_eq!(
        names,
        [
            "connection_changed",
            "connection_grant_created",
            "connection_grant_refreshed",
            "connection_refresh_failed",
            "connection_grant_created",
            "connection_grant_revoked",
        ],
        "{text}"
    );
    let failed = events
        .iter()
        .find(|e| e["event"] == "connection_refresh_failed")
        .unwrap();
    assert_eq!(failed["principal"], "alice");
    assert_eq!(failed["reason"], "invalid_grant");
    for secret in [CLIENT_SECRET, "at-", "rt-", "code-"] {
        assert!(!text.contains(secret), "{secret} in the audit trail");
    }
}

/// `connections.*` in YAML: loaded, reloaded live (a connection added and one changed), and
/// `check-config` reports every mistake with its key.
#[actix_web::test]
async fn yaml_connections_reload_live_and_check_config_reports_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conn.key"), format!("{KEY1}\n")).unwrap();
    std::fs::write(dir.path().join("docs.secret"), CLIENT_SECRET).unwrap();
    let hash = bcrypt::hash(ADMIN.1, 4).unwrap();
    let config = |extra: &str| {
        format!(
            "users:\n  admin:\n    password_hash: \"{hash}\"\n    privileges: [all]\n\
             connection_encryption:\n  key: ${{file:conn.key}}\n\
             connections:\n  docs:\n    authorization_endpoint: https://docs.example.com/authorize\n    \
             token_endpoint: https://docs.example.com/token\n    redirect_uri: {REDIRECT}\n    \
             client_id: {CLIENT_ID}\n    client_secret: ${{file:docs.secret}}\n{extra}"
        )
    };
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config("")).unwrap();
    let loaded = oidc_realm::config::load(&path).unwrap();
    let app = TestApp::with(
        loaded.settings,
        Arc::new(oidc_realm::store::MemoryStore::new()),
    );
    let svc = app.service().await;
    let get = || {
        actix_web::test::TestRequest::get()
            .uri("/_oauth/connections")
            .insert_header(basic(ADMIN))
    };
    let (s, _, b) = send(&svc, get()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b.as_object().unwrap().len(), 1);
    assert_eq!(b["docs"]["read_only"], true);
    assert!(!b.to_string().contains(CLIENT_SECRET));

    std::fs::write(
        &path,
        config(
            "    scopes: [read]\n  chat:\n    authorization_endpoint: https://chat.example.com/a\n    \
             token_endpoint: https://chat.example.com/t\n    redirect_uri: https://app.example.com/chat\n    \
             client_id: c\n    client_secret: ${file:docs.secret}\n    mode: shared\n",
        ),
    )
    .unwrap();
    oidc_realm::reload::reload_from(&app.state, &path).unwrap();
    let (_, _, b) = send(&svc, get()).await;
    assert_eq!(b["docs"]["scopes"], json!(["read"]));
    assert_eq!(b["chat"]["mode"], "shared");

    // check-config: every mistake, with its key path; nothing secret in the output.
    std::fs::write(
        &path,
        config(
            "    scope: [read]\n    client_auth_method: tls_client_auth\n  Bad_Name:\n    client_id: x\n",
        )
        .replace("https://docs.example.com/token", "http://docs.example.com/token"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "connections.docs.scope: unknown key; did you mean `scopes`?",
        "connections.docs.client_auth_method",
        "connections.docs.token_endpoint",
        "connections.Bad_Name",
        "connections.Bad_Name.token_endpoint",
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(KEY1),
        "{text}"
    );
    // A failed reload keeps the running connections.
    assert!(oidc_realm::reload::reload_from(&app.state, &path).is_err());
    let (_, _, b) = send(&svc, get()).await;
    assert_eq!(b["chat"]["mode"], "shared");
}

#[actix_web::test]
async fn endpoints_discovered_from_the_issuer() {
    let env = Env::new().await;
    let by_issuer = json!({
        "issuer": env.fake.base,
        "redirect_uri": REDIRECT,
        "scopes": ["read"],
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    });
    let (s, b) = env
        .call(
            test_put("/_oauth/connections/found", by_issuer.clone()),
            ADMIN,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = env
        .call(
            actix_web::test::TestRequest::get().uri("/_oauth/connections/found"),
            ADMIN,
        )
        .await;
    assert_eq!(b["found"]["issuer"], format!("{}/", env.fake.base));
    assert_eq!(b["found"]["token_endpoint"], Value::Null);
    // The whole flow on discovered endpoints, revocation included.
    let alice = env.user_token(ALICE).await;
    let user = json!({ "access_token": alice });
    let (s, b) = env
        .call(
            post_json("/_oauth/connections/found/_authorize", user.clone()),
            APP,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["redirect"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/authorize?", env.fake.base)));
    let back = env.fake.login(b["redirect"].as_str().unwrap());
    assert_eq!(env.callback(APP, &alice, &back).await.0, 200);
    let (s, b) = env
        .call(
            post_json("/_oauth/connections/found/_token", user.clone()),
            APP,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = env
        .call(delete_json("/_oauth/connections/found/_grant", user), APP)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["revoked_at_service"], true);
    // Fetched once (at the PUT), then cached.
    assert_eq!(env.fake.svc.metadata_fetches.load(Ordering::SeqCst), 1);

    // An issuer with a path and only OpenID Connect discovery: the second metadata URL.
    let mut tenant = by_issuer.clone();
    tenant["issuer"] = json!(format!("{}/tenant", env.fake.base));
    let (s, b) = env
        .call(test_put("/_oauth/connections/tenant", tenant), ADMIN)
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = env
        .call(
            post_json(
                "/_oauth/connections/tenant/_authorize",
                json!({ "access_token": alice }),
            ),
            APP,
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // Metadata naming another issuer: refused when the connection is defined.
    *env.fake.svc.metadata_issuer.lock().unwrap() = Some("https://evil.example.com".into());
    let mut other = by_issuer;
    other["issuer"] = json!(format!(
        "{}/",
        env.fake.base.replace("127.0.0.1", "localhost")
    ));
    let (s, b) = env
        .call(test_put("/_oauth/connections/evil", other), ADMIN)
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("[issuer]"), "{b}");
    // Neither an issuer nor the endpoints.
    let (s, b) = env
        .call(
            test_put(
                "/_oauth/connections/nothing",
                json!({"redirect_uri": REDIRECT, "client_id": "c", "client_secret": "s"}),
            ),
            ADMIN,
        )
        .await;
    assert_eq!(s, 400);
    assert!(b.to_string().contains("authorization_endpoint"), "{b}");
}

#[actix_web::test]
async fn rate_limit_per_facilitator_on_authorize() {
    let fake = FakeService::start();
    let mut s = conn_settings(Some(KEY1), None);
    let users: Vec<(String, String)> = (0..11)
        .map(|i| (format!("user{i}"), format!("user{i}-password")))
        .collect();
    for (u, p) in &users {
        s.users.insert(u.clone(), entry(p, &[]));
    }
    let env = Env {
        app: TestApp::with(s, Arc::new(oidc_realm::store::MemoryStore::new())),
        fake,
    };
    assert_eq!(
        env.call(
            test_put("/_oauth/connections/docs", env.fake.definition()),
            ADMIN
        )
        .await
        .0,
        200
    );
    let mut tokens = Vec::new();
    for (u, p) in &users {
        tokens.push(env.user_token((u.as_str(), p.as_str())).await);
    }
    let spare = tokens.pop().unwrap();
    // 10 users × 20 (each within the per-user burst): over the facilitator's burst of 100.
    let mut by_caller = 0;
    for round in 0..20 {
        for t in &tokens {
            let (s, b) = env.authorize(APP, t).await;
            if s == 429 {
                assert!(b.to_string().contains("this caller"), "round {round}: {b}");
                by_caller += 1;
            } else {
                assert_eq!(s, 200, "{b}");
            }
        }
    }
    assert!(by_caller > 0, "the facilitator limit never applied");
    // Another facilitator is not affected.
    assert_eq!(env.authorize(APP2, &spare).await.0, 200);
}

/// Two nodes over one store (as with a shared store): concurrent `_token` calls for one user
/// on both cause exactly one refresh, through the refresh lease in the store.
#[actix_web::test]
async fn two_nodes_sharing_a_store_refresh_once() {
    let store: Arc<dyn oidc_realm::store::Store> = Arc::new(oidc_realm::store::MemoryStore::new());
    let fake = FakeService::start();
    let node1 = Env {
        app: TestApp::with(conn_settings(Some(KEY1), None), store.clone()),
        fake,
    };
    assert_eq!(
        node1
            .call(
                test_put("/_oauth/connections/docs", node1.fake.definition()),
                ADMIN
            )
            .await
            .0,
        200
    );
    let alice = node1.connect(ALICE).await;
    let node2 = TestApp::with(conn_settings(Some(KEY1), None), store.clone());
    node1.app.advance(Duration::from_secs(290));
    node2.advance(Duration::from_secs(290));
    node1.fake.svc.refresh_delay_ms.store(300, Ordering::SeqCst);
    let svc1 = node1.app.service().await;
    let svc2 = node2.service().await;
    let req = || {
        post_json(
            "/_oauth/connections/docs/_token",
            json!({ "access_token": alice }),
        )
        .insert_header(basic(APP))
    };
    let on1 = futures_util::future::join_all((0..16).map(|_| send(&svc1, req())));
    let on2 = futures_util::future::join_all((0..16).map(|_| send(&svc2, req())));
    let (r1, r2) = tokio::join!(on1, on2);
    let tokens: HashSet<String> = r1
        .iter()
        .chain(r2.iter())
        .map(|(s, _, b)| {
            assert_eq!(*s, 200, "{b}");
            b["access_token"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        node1.fake.svc.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh for both nodes"
    );
    assert_eq!(tokens.len(), 1);
    // The lease is released (polled, with a deadline).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store
        .list_records("connection_refresh_lease", "")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the refresh lease was never released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
