//! Several nodes on one PostgreSQL database: three `AppState`s, each with its own store (its
//! own pool, writer and listener) on one schema, behind the real `configure()`.
//!
//! Needs the PostgreSQL of the development and CI machines (see
//! `oidc_realm::store::postgres::testing`); a missing database fails these tests.

mod common;

use actix_web::test::TestRequest;
use actix_web::App;
use common::fake_op::*;
use common::*;
use oidc_realm::clock::ManualClock;
use oidc_realm::config::Settings;
use oidc_realm::roles::UserModel;
use oidc_realm::store::postgres::testing::TestSchema;
use oidc_realm::store::Store;
use oidc_realm::{configure, AppState};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a change committed on one node may take to reach another node's caches in these
/// tests: the notification path (milliseconds); the TTL backstop never fires here (the
/// injected clock does not move).
const PROPAGATION: Duration = Duration::from_secs(5);

struct Cluster {
    schema: TestSchema,
    op: FakeOp,
    clock: Arc<ManualClock>,
    settings: Settings,
}

impl Cluster {
    async fn new() -> Self {
        let schema = TestSchema::new();
        let op = FakeOp::start().await;
        let clock = ManualClock::at(1_790_000_000_000);
        op.use_clock(clock.clone());
        let mut settings = settings();
        settings.realms = vec![realm_config(&op, "oidc1", 0, "code", &[])];
        Cluster {
            schema,
            op,
            clock,
            settings,
        }
    }

    /// A node: its own store on the shared schema, its own state.
    fn node(&self) -> Arc<AppState> {
        let store: Arc<dyn Store> = Arc::new(self.schema.open());
        AppState::new(self.settings.clone(), Vec::new(), store, self.clock.clone())
    }
}

async fn call<S, B>(app: &S, req: TestRequest) -> (u16, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (s, _, b) = send(app, req).await;
    (s, b)
}

fn whoami(token: &str) -> TestRequest {
    TestRequest::get()
        .uri("/_security/_authenticate")
        .insert_header(bearer(token))
}

fn jwong() -> UserModel {
    UserModel {
        username: "jwong".into(),
        groups: vec!["Finance-Team".into()],
        realm_name: "oidc1".into(),
        ..Default::default()
    }
}

/// Poll `cond` until it holds or `PROPAGATION` passes.
async fn eventually<F, Fut>(what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if cond().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION,
            "{what}: not within {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_web::test]
async fn a_login_moves_across_three_nodes_and_an_invalidation_reaches_every_node() {
    let c = Cluster::new().await;
    let states = [c.node(), c.node(), c.node()];
    let a = actix_web::test::init_service(App::new().configure(configure(states[0].clone()))).await;
    let b = actix_web::test::init_service(App::new().configure(configure(states[1].clone()))).await;
    let n3 =
        actix_web::test::init_service(App::new().configure(configure(states[2].clone()))).await;

    // Prepare on A, authenticate on B.
    let (s, p) = call(
        &a,
        post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let callback = c.op.browser_login(p["redirect"].as_str().unwrap()).await;
    let body = json!({
        "redirect_uri": callback,
        "state": p["state"],
        "nonce": p["nonce"],
        "realm": "oidc1",
    });
    let authenticate = || {
        post_json("/_security/oidc/authenticate", body.clone()).insert_header(basic(FACILITATOR))
    };
    let (s, tokens) = call(&b, authenticate()).await;
    assert_eq!(s, 200, "{tokens}");
    // Single use across nodes: the same state on C (or again on B) is refused.
    let (s, again) = call(&n3, authenticate()).await;
    assert_eq!(s, 401, "{again}");
    let (s, _) = call(&b, authenticate()).await;
    assert_eq!(s, 401);

    // Refresh on C.
    let refresh = |rt: &str| {
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "refresh_token", "refresh_token": rt}),
        )
        .insert_header(basic(FACILITATOR))
    };
    let (s, refreshed) = call(&n3, refresh(tokens["refresh_token"].as_str().unwrap())).await;
    assert_eq!(s, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_string();

    // Two nodes refresh the new refresh token at the same instant: one pair, both get it.
    let rt2 = refreshed["refresh_token"].as_str().unwrap();
    let ((s1, r1), (s2, r2)) = tokio::join!(call(&a, refresh(rt2)), call(&b, refresh(rt2)));
    assert_eq!((s1, s2), (200, 200), "{r1} {r2}");
    assert_eq!(r1["access_token"], r2["access_token"]);
    assert_eq!(r1["refresh_token"], r2["refresh_token"]);

    // Every node knows (and caches) the refreshed access token.
    for app in [&a, &b, &n3] {
        assert_eq!(call(app, whoami(&access)).await.0, 200);
    }
    // Invalidate on A: A refuses at once, B and C as soon as the notification arrives.
    let (s, inv) = call(
        &a,
        delete_json("/_security/oauth2/token", json!({"token": access}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{inv}");
    assert_eq!(inv["invalidated_tokens"], 1);
    assert_eq!(call(&a, whoami(&access)).await.0, 401);
    eventually("B refuses the invalidated token", || async {
        call(&b, whoami(&access)).await.0 == 401
    })
    .await;
    eventually("C refuses the invalidated token", || async {
        call(&n3, whoami(&access)).await.0 == 401
    })
    .await;
    // And it stays refused (nothing re-caches it).
    for app in [&a, &b, &n3] {
        assert_eq!(call(app, whoami(&access)).await.0, 401);
    }
}

#[actix_web::test]
async fn role_mappings_written_on_one_node_reach_the_others() {
    let c = Cluster::new().await;
    let states = [c.node(), c.node()];
    let a = actix_web::test::init_service(App::new().configure(configure(states[0].clone()))).await;
    assert!(states[1].roles_for(&jwong()).is_empty());
    let (s, b) = call(
        &a,
        TestRequest::put()
            .uri("/_security/role_mapping/finance")
            .insert_header(basic(ADMIN))
            .set_json(json!({
                "enabled": true,
                "roles": ["finance_data"],
                "rules": {"field": {"realm.name": "oidc1"}}
            })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(states[0].roles_for(&jwong()), ["finance_data"]);
    let other = states[1].clone();
    eventually("node B compiles the new mapping", || {
        let other = other.clone();
        async move { other.roles_for(&jwong()) == ["finance_data"] }
    })
    .await;
    // A delete travels the same way.
    let (s, _) = call(
        &a,
        TestRequest::delete()
            .uri("/_security/role_mapping/finance")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(s, 200);
    eventually("node B drops the deleted mapping", || {
        let other = other.clone();
        async move { other.roles_for(&jwong()).is_empty() }
    })
    .await;
}

/// Load on three served nodes; one is stopped (and its store closed) in the middle. The
/// other two keep answering, and every token any node acknowledged (200) is known to the
/// survivors afterwards.
#[actix_web::test]
async fn killing_a_node_mid_load_loses_nothing_acknowledged() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let c = Cluster::new().await;
    let states = [c.node(), c.node(), c.node()];
    let mut served: Vec<Option<Served>> = states
        .iter()
        .map(|s| Some(Served::start(s.clone(), 2)))
        .collect();
    let bases: Vec<String> = served.iter().flatten().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (user, password) = FACILITATOR;
    let issue = |base: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/_security/oauth2/token"))
                .basic_auth(user, Some(password))
                .json(&json!({"grant_type": "client_credentials"}))
                .send()
                .await
                .ok()?;
            if r.status() != 200 {
                return None;
            }
            let b: Value = r.json().await.ok()?;
            b["access_token"].as_str().map(str::to_string)
        }
    };
    let mut acknowledged = Vec::new();
    let mut refused_by_survivors = 0;
    for round in 0..40 {
        if round == 15 {
            // Kill node 0: stop its server and close its store.
            if let Some(s) = served[0].take() {
                s.stop().await;
            }
        }
        let batch: Vec<_> = bases.iter().map(|b| issue(b.clone())).collect();
        let results = futures_util::future::join_all(batch).await;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(tok) => acknowledged.push(tok),
                None if i != 0 || round < 15 => refused_by_survivors += 1,
                None => {}
            }
        }
    }
    assert_eq!(refused_by_survivors, 0, "the surviving nodes kept serving");
    assert!(
        acknowledged.len() >= 15 * 3 + 25 * 2,
        "{}",
        acknowledged.len()
    );
    // Every acknowledged token is valid on each survivor.
    for base in &bases[1..] {
        for tok in &acknowledged {
            let r = client
                .get(format!("{base}/_security/_authenticate"))
                .bearer_auth(tok)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    for s in served.into_iter().flatten() {
        s.stop().await;
    }
}

async fn client_credentials<S, B>(app: &S) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (s, b) = call(
        app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "client_credentials"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["access_token"].as_str().unwrap().to_string()
}

/// The backstop: a change that sends no notification at all (here: a row deleted behind the
/// nodes' back) is seen once `data.cache_ttl` (5 s by default) has passed on the node's clock,
/// and not before (the cache does answer until then).
#[actix_web::test]
async fn a_cached_token_is_checked_again_after_the_cache_ttl() {
    let c = Cluster::new().await;
    let a = actix_web::test::init_service(App::new().configure(configure(c.node()))).await;
    let token = client_credentials(&a).await;
    assert_eq!(call(&a, whoami(&token)).await.0, 200);
    c.schema
        .execute(&format!("DELETE FROM {}.tokens", c.schema.name))
        .unwrap();
    c.clock.advance(Duration::from_millis(4_900));
    assert_eq!(
        call(&a, whoami(&token)).await.0,
        200,
        "served from the cache"
    );
    c.clock.advance(Duration::from_millis(100));
    assert_eq!(
        call(&a, whoami(&token)).await.0,
        401,
        "trusted past cache_ttl"
    );
}

/// A node whose listener loses its connection reconnects and drops every cached token:
/// an invalidation it may have missed meanwhile is not served from its cache.
#[actix_web::test]
async fn a_node_whose_listener_was_cut_resyncs() {
    let c = Cluster::new().await;
    let states = [c.node(), c.node()];
    let a = actix_web::test::init_service(App::new().configure(configure(states[0].clone()))).await;
    let b = actix_web::test::init_service(App::new().configure(configure(states[1].clone()))).await;
    let token = client_credentials(&a).await;
    assert_eq!(call(&b, whoami(&token)).await.0, 200);
    let followed = states[1].store_changes_followed();
    // Cut every listener of this schema (both nodes'), then invalidate at once: the
    // notification may be lost; the resync on reconnection covers it.
    c.schema
        .execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query = 'LISTEN \"oidc_realm.{}\"'",
            c.schema.name
        ))
        .unwrap();
    let (s, _) = call(
        &a,
        delete_json("/_security/oauth2/token", json!({"token": token}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200);
    let other = states[1].clone();
    eventually(
        "node B followed a change (the invalidation or a resync)",
        || {
            let other = other.clone();
            async move { other.store_changes_followed() > followed }
        },
    )
    .await;
    eventually("B refuses the invalidated token", || async {
        call(&b, whoami(&token)).await.0 == 401
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Back-channel logout across nodes

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token for `sid`, signed like the fake OP's ID tokens (RS256 with `rsa1`).
fn logout_token(op: &FakeOp, sid: &str) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
    use base64::Engine;
    let now = op.now_secs();
    let claims = json!({"iss": op.issuer(), "aud": CLIENT_ID, "iat": now, "exp": now + 120,
                        "jti": format!("jti-{sid}-{now}"), "sid": sid,
                        "events": {LOGOUT_EVENT: {}}});
    let header = json!({"alg": "RS256", "kid": "rsa1", "typ": "logout+jwt"});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let der: String = KeyChoice::Rsa1
        .pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pair =
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&STANDARD.decode(der).unwrap()).unwrap();
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", B64.encode(sig))
}

/// An OIDC login on `app` whose ID token carries `sid`: its `(access, refresh)`.
async fn login_with_sid<S, B>(c: &Cluster, app: &S, sid: &str) -> (String, String)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    c.op.set(|k| {
        k.claims.insert("sid".into(), json!(sid));
    });
    let (s, p) = call(
        app,
        post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let callback = c.op.browser_login(p["redirect"].as_str().unwrap()).await;
    let body = json!({
        "redirect_uri": callback,
        "state": p["state"],
        "nonce": p["nonce"],
        "realm": "oidc1",
    });
    let (s, t) = call(
        app,
        post_json("/_security/oidc/authenticate", body).insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    (
        t["access_token"].as_str().unwrap().to_string(),
        t["refresh_token"].as_str().unwrap().to_string(),
    )
}

#[actix_web::test]
async fn a_backchannel_logout_on_one_node_is_refused_on_the_others() {
    let mut c = Cluster::new().await;
    c.settings.realms = vec![realm_config(
        &c.op,
        "oidc1",
        0,
        "code",
        &[("rp.backchannel_logout", "true")],
    )];
    let states = [c.node(), c.node(), c.node()];
    let a = actix_web::test::init_service(App::new().configure(configure(states[0].clone()))).await;
    let b = actix_web::test::init_service(App::new().configure(configure(states[1].clone()))).await;
    let n3 =
        actix_web::test::init_service(App::new().configure(configure(states[2].clone()))).await;

    // Session 1 logs in on A and is refreshed on B (the new pair keeps the session); session 2
    // of the same user logs in on B.
    let (access1, refresh1) = login_with_sid(&c, &a, "sess-1").await;
    let (s, r) = call(
        &b,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "refresh_token", "refresh_token": refresh1}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let access2 = r["access_token"].as_str().unwrap().to_string();
    let refresh2 = r["refresh_token"].as_str().unwrap().to_string();
    let (other, _) = login_with_sid(&c, &b, "sess-2").await;
    // Every node knows (and caches) every access token.
    for app in [&a, &b, &n3] {
        for t in [&access1, &access2, &other] {
            assert_eq!(call(app, whoami(t)).await.0, 200);
        }
    }

    // The provider logs session 1 out through C.
    let (s, bytes) = send_raw(
        &n3,
        TestRequest::post()
            .uri("/oidc/oidc1/backchannel-logout")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!(
                "logout_token={}",
                form_encode(&logout_token(&c.op, "sess-1"))
            )),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&bytes));
    // C refuses at once; A and B as soon as the notification arrives.
    for t in [&access1, &access2] {
        assert_eq!(call(&n3, whoami(t)).await.0, 401);
        eventually("A refuses the logged-out session's token", || async {
            call(&a, whoami(t)).await.0 == 401
        })
        .await;
        eventually("B refuses the logged-out session's token", || async {
            call(&b, whoami(t)).await.0 == 401
        })
        .await;
    }
    // Its refresh token is refused on every node; the other session stays valid everywhere.
    for app in [&a, &b, &n3] {
        let (s, r) = call(
            app,
            post_json(
                "/_security/oauth2/token",
                json!({"grant_type": "refresh_token", "refresh_token": refresh2}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
        assert_ne!(s, 200, "{r}");
        assert_eq!(call(app, whoami(&access1)).await.0, 401);
        assert_eq!(call(app, whoami(&other)).await.0, 200);
    }
}
