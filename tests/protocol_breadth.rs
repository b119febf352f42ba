//! Issue 14 (protocol breadth) end to end through the public API against the in-process fake
//! OP: nested claims (`claims.*` as a JSON Pointer) and EdDSA ID tokens, each with its
//! failure cases.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::TestRequest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use common::fake_op::*;
use common::login::*;
use common::*;
use serde_json::{json, Value};

const ED25519: &str = include_str!("fixtures/keys/ed25519.pem");

impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn login_oidc1(&self) -> (u16, Value) {
        let (callback, state, nonce) = self.start_login().await.parts();
        let (s, _, b) = self
            .authenticate_full(FACILITATOR, &callback, &state, &nonce, Some("oidc1"))
            .await;
        (s, b)
    }
}

#[track_caller]
fn assert_refused(resp: &(u16, Value), code: &str) {
    let (s, b) = resp;
    assert_eq!(*s, 401, "{b}");
    assert_eq!(b["error"]["type"], "security_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], code, "{b}");
}

// ---------------------------------------------------------------------------------------------
// Nested claims
// ---------------------------------------------------------------------------------------------

fn keycloak_user() -> User {
    let mut u = User {
        groups: None,
        ..User::default()
    };
    u.extra.insert(
        "realm_access".into(),
        json!({"roles": ["offline_access", "realm-admin"]}),
    );
    u.extra.insert(
        "resource_access".into(),
        json!({"kibana.example.org": {"roles": ["kibana-viewer"]}}),
    );
    u.extra
        .insert("https://example.com/groups".into(), json!(["ns-finance"]));
    u.extra.insert("preferred_username".into(), json!("jwong"));
    u
}

#[actix_web::test]
async fn nested_claims_map_keycloak_roles_to_groups_and_role_mappings() {
    let e = env(
        "code",
        &[
            ("claims.groups", "/realm_access/roles"),
            ("claim_patterns.groups", "^realm-(.*)$"),
        ],
    )
    .await;
    e.op.set(|k| k.user = keycloak_user());
    e.put_mapping(
        "admins",
        json!({"enabled": true, "roles": ["superuser"],
               "rules": {"field": {"groups": "admin"}}}),
    )
    .await;
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["superuser"]), "{b}");
}

#[actix_web::test]
async fn nested_claims_reach_client_roles_with_dotted_client_ids() {
    let e = env(
        "code",
        &[("claims.groups", "/resource_access/kibana.example.org/roles")],
    )
    .await;
    e.op.set(|k| k.user = keycloak_user());
    e.put_mapping(
        "viewers",
        json!({"enabled": true, "roles": ["viewer"],
               "rules": {"field": {"groups": "kibana-viewer"}}}),
    )
    .await;
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["viewer"]), "{b}");
}

#[actix_web::test]
async fn namespaced_url_claims_stay_top_level() {
    let e = env("code", &[("claims.groups", "https://example.com/groups")]).await;
    e.op.set(|k| k.user = keycloak_user());
    e.put_mapping(
        "ns",
        json!({"enabled": true, "roles": ["finance"],
               "rules": {"field": {"groups": "ns-finance"}}}),
    )
    .await;
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["finance"]), "{b}");
}

#[actix_web::test]
async fn a_missing_nested_principal_is_refused() {
    let e = env("code", &[("claims.principal", "/realm_access/username")]).await;
    e.op.set(|k| k.user = keycloak_user());
    assert_refused(&e.login_oidc1().await, "principal_missing");
}

#[actix_web::test]
async fn a_nested_path_ending_on_an_object_or_crossing_a_string_is_refused() {
    let e = env("code", &[("claims.groups", "/resource_access")]).await;
    e.op.set(|k| k.user = keycloak_user());
    assert_refused(&e.login_oidc1().await, "claim_value_unsupported");

    let e = env("code", &[("claims.groups", "/preferred_username/roles")]).await;
    e.op.set(|k| k.user = keycloak_user());
    assert_refused(&e.login_oidc1().await, "claim_value_unsupported");
}

#[test]
fn invalid_nested_paths_are_configuration_errors() {
    let op_free_yaml = |groups: &str| {
        format!(
            "realms:\n  oidc1:\n    order: 0\n    rp.client_id: c\n    rp.client_secret: s\n    rp.redirect_uri: https://kibana.example.org/cb\n    rp.response_type: id_token\n    op.issuer: https://op.example.org\n    op.authorization_endpoint: https://op.example.org/a\n    op.jwkset_path: https://op.example.org/jwks\n    claims.principal: sub\n    claims.groups: '{groups}'\n"
        )
    };
    for (path, says) in [
        ("/realm_access//roles", "empty member name"),
        ("/realm_access/roles/", "empty member name"),
        ("/a~2b", "'~' not followed by 0 or 1"),
        ("/1/2/3/4/5/6/7/8/9", "at most 8"),
    ] {
        let err = oidc_realm::config::load_str(&op_free_yaml(path), &std::env::temp_dir())
            .err()
            .unwrap_or_else(|| panic!("{path} loaded"))
            .to_string();
        assert!(
            err.contains("realms.oidc1.claims.groups") && err.contains(says),
            "{path}: {err}"
        );
    }
    for ok in ["/realm_access/roles", "https://example.com/groups", "a.b"] {
        oidc_realm::config::load_str(&op_free_yaml(ok), &std::env::temp_dir())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// EdDSA
// ---------------------------------------------------------------------------------------------

fn ed_pair() -> aws_lc_rs::signature::Ed25519KeyPair {
    let body: String = ED25519
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap()
}

fn ed_jwks() -> String {
    use aws_lc_rs::signature::KeyPair;
    let x = B64.encode(ed_pair().public_key().as_ref());
    json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "use": "sig", "alg": "EdDSA", "x": x},
        KeyChoice::Rsa1.public_jwk(Some("rsa1")),
    ]})
    .to_string()
}

/// An EdDSA ID token for the fake OP's default user (a corrupted signature unless
/// `good_signature`).
fn ed_token(op: &FakeOp, nonce: &str, good_signature: bool) -> String {
    let header = B64.encode(json!({"alg": "EdDSA", "kid": "ed1", "typ": "JWT"}).to_string());
    let now = op.now_secs();
    let claims = json!({"iss": op.issuer(), "aud": CLIENT_ID, "sub": User::default().sub, "exp": now + 600, "iat": now, "nonce": nonce});
    let payload = B64.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let mut sig = ed_pair().sign(input.as_bytes()).as_ref().to_vec();
    if !good_signature {
        sig[10] ^= 1;
    }
    format!("{input}.{}", B64.encode(sig))
}

async fn ed_login<S, B>(e: &Env<S>, good_signature: bool) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (s, p) = e.prepare(json!({"realm": "oidc1"})).await;
    assert_eq!(s, 200, "{p}");
    let nonce = p["nonce"].as_str().unwrap().to_string();
    let state = p["state"].as_str().unwrap().to_string();
    let token = ed_token(&e.op, &nonce, good_signature);
    e.op.set(|k| k.id_token = Some(token));
    let callback = e.op.browser_login(p["redirect"].as_str().unwrap()).await;
    let (s, _, b) = e
        .authenticate_full(FACILITATOR, &callback, &state, &nonce, Some("oidc1"))
        .await;
    (s, b)
}

async fn ed_env(
    algs: &'static str,
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    env_from(
        settings(),
        std::sync::Arc::new(oidc_realm::store::MemoryStore::new()),
        move |op, s| {
            op.set(|k| k.jwks_body = Some(ed_jwks()));
            s.realms = vec![realm_config(
                op,
                "oidc1",
                0,
                "code",
                &[("rp.signature_algorithm", algs)],
            )];
        },
    )
    .await
}

#[actix_web::test]
async fn an_eddsa_id_token_logs_in_when_the_realm_lists_eddsa() {
    let e = ed_env("[RS256, EdDSA]").await;
    let (s, b) = ed_login(&e, true).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["username"], User::default().sub, "{b}");
    let at = b["access_token"].as_str().unwrap();
    let (s, me) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(at)),
        )
        .await;
    assert_eq!(
        (s, &me["username"]),
        (200, &json!(User::default().sub)),
        "{me}"
    );
}

#[actix_web::test]
async fn an_eddsa_id_token_is_refused_unless_listed_or_when_its_signature_is_bad() {
    let e = ed_env("[RS256]").await;
    assert_refused(&ed_login(&e, true).await, "alg_not_allowed");
    let e = ed_env("[EdDSA]").await;
    assert_refused(&ed_login(&e, false).await, "bad_signature");
}
