//! The login test environment, shared by the OIDC test files: the real app over a memory (or
//! given) store, with realms built against a fresh fake OP that shares the app's clock, and
//! the requests of a login. Each test file adds its own conveniences in an `impl Env` block
//! of its own (their request bodies differ: some name the realm, some do not).

use super::fake_op::*;
use super::*;
use actix_web::test::TestRequest;
use oidc_realm::config::RealmConfig;
use serde_json::{json, Value};

pub struct Env<S> {
    pub t: TestApp,
    pub op: FakeOp,
    pub app: S,
}

/// A login started with prepare (realm `oidc1`) and taken through the browser at the OP.
pub struct Login {
    pub callback: String,
    pub state: String,
    pub nonce: String,
}

impl Login {
    /// (callback, state, nonce).
    pub fn parts(self) -> (String, String, String) {
        (self.callback, self.state, self.nonce)
    }
}

/// A server with `settings` over `store`, adjusted by `setup` once the fake OP is up (its
/// URLs are known then), the OP sharing the server's clock.
pub async fn env_from(
    settings: Settings,
    store: Arc<dyn Store>,
    setup: impl FnOnce(&FakeOp, &mut Settings),
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let op = FakeOp::start().await;
    let mut s = settings;
    setup(&op, &mut s);
    let t = TestApp::with(s, store);
    op.use_clock(t.clock.clone());
    let app = t.service().await;
    Env { t, op, app }
}

/// A server with realms built by `realms(op)` against a fresh fake OP sharing its clock.
pub async fn env_with(
    realms: impl FnOnce(&FakeOp) -> Vec<RealmConfig>,
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    env_from(settings(), Arc::new(MemoryStore::new()), |op, s| {
        s.realms = realms(op)
    })
    .await
}

/// One realm `oidc1` of `response_type` with `extra` realm keys (see `realm_yaml`).
pub async fn env(
    response_type: &str,
    extra: &[(&str, &str)],
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let response_type = response_type.to_string();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env_with(move |op| {
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vec![realm_config(op, "oidc1", 0, &response_type, &extra)]
    })
    .await
}

impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    pub async fn call(&self, req: TestRequest) -> (u16, Value) {
        let (s, _, b) = send(&self.app, req).await;
        (s, b)
    }

    /// `POST /_security/oidc/prepare` with `body`, as the facilitator.
    pub async fn prepare(&self, body: Value) -> (u16, Value) {
        self.call(post_json("/_security/oidc/prepare", body).insert_header(basic(FACILITATOR)))
            .await
    }

    /// `POST /_security/oidc/prepare` for realm `oidc1`, as `who`.
    pub async fn prepare_as(
        &self,
        who: (&str, &str),
    ) -> (u16, actix_web::http::header::HeaderMap, Value) {
        send(
            &self.app,
            post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
                .insert_header(basic(who)),
        )
        .await
    }

    /// `POST /_security/oidc/authenticate` as `who`; the body names `realm` when given.
    pub async fn authenticate_full(
        &self,
        who: (&str, &str),
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        realm: Option<&str>,
    ) -> (u16, actix_web::http::header::HeaderMap, Value) {
        let mut body = json!({"redirect_uri": redirect_uri, "state": state, "nonce": nonce});
        if let Some(r) = realm {
            body["realm"] = json!(r);
        }
        send(
            &self.app,
            post_json("/_security/oidc/authenticate", body).insert_header(basic(who)),
        )
        .await
    }

    /// prepare (realm `oidc1`) as `who`, then the browser at the OP.
    pub async fn start_login_as(&self, who: (&str, &str)) -> Login {
        let (s, _, p) = self.prepare_as(who).await;
        assert_eq!(s, 200, "{p}");
        Login {
            callback: self.op.browser_login(p["redirect"].as_str().unwrap()).await,
            state: p["state"].as_str().unwrap().to_string(),
            nonce: p["nonce"].as_str().unwrap().to_string(),
        }
    }

    /// prepare (realm `oidc1`) as the facilitator → the browser at the OP → the callback.
    pub async fn start_login(&self) -> Login {
        self.start_login_as(FACILITATOR).await
    }

    /// A refresh grant as `who`.
    pub async fn refresh(&self, who: (&str, &str), refresh_token: &str) -> (u16, Value) {
        self.call(
            post_json(
                "/_security/oauth2/token",
                json!({"grant_type": "refresh_token", "refresh_token": refresh_token}),
            )
            .insert_header(basic(who)),
        )
        .await
    }

    /// `GET /_security/_authenticate` with a bearer access token.
    pub async fn whoami(&self, access_token: &str) -> (u16, Value) {
        self.call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(access_token)),
        )
        .await
    }

    /// Store a role mapping (as the admin); asserts 200.
    pub async fn put_mapping(&self, name: &str, body: Value) {
        let (s, b) = self
            .call(
                TestRequest::put()
                    .uri(&format!("/_security/role_mapping/{name}"))
                    .insert_header(basic(ADMIN))
                    .set_json(body),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    /// `GET /_security/oidc/_status` (as the admin); asserts 200.
    pub async fn status(&self) -> Value {
        let (s, b) = self
            .call(
                TestRequest::get()
                    .uri("/_security/oidc/_status")
                    .insert_header(basic(ADMIN)),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }
}
