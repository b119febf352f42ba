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

// ---------------------------------------------------------------------------------------------
// Provider discovery
// ---------------------------------------------------------------------------------------------

/// Realm keys for discovery: every endpoint left to the metadata.
const DISCOVER_ONLY: &[(&str, &str)] = &[
    ("op.discovery", "true"),
    ("op.authorization_endpoint", ""),
    ("op.token_endpoint", ""),
    ("op.userinfo_endpoint", ""),
    ("op.endsession_endpoint", ""),
    ("op.jwkset_path", ""),
];

fn discovery_keys(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut keys: Vec<(&'static str, String)> = DISCOVER_ONLY
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    for (k, v) in extra {
        keys.retain(|(key, _)| key != k);
        keys.push((k, v.clone()));
    }
    keys
}

/// `serve`'s start: load, discover, build.
async fn discovered_settings(
    op: &FakeOp,
    extra: &[(&'static str, String)],
) -> Result<(oidc_realm::config::Settings, Vec<String>), Vec<String>> {
    let keys = discovery_keys(extra);
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut s = settings();
    s.realms = vec![realm_config(op, "oidc1", 0, "code", &keys)];
    assert!(s.realms[0].op.discovery.as_ref().unwrap().pending());
    match oidc_realm::realm::discovery::discover_all(&mut s).await {
        Ok(w) => Ok((s, w)),
        Err(e) => Err(e.into()),
    }
}

async fn discovery_env(
    extra: &[(&'static str, String)],
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let op = FakeOp::start().await;
    let (s, _) = discovered_settings(&op, extra).await.unwrap();
    let t = TestApp::with(
        s,
        std::sync::Arc::new(oidc_realm::store::MemoryStore::new()),
    );
    op.use_clock(t.clock.clone());
    let app = t.service().await;
    Env { t, op, app }
}

#[actix_web::test]
async fn a_discovery_realm_logs_in_with_the_endpoints_of_the_metadata() {
    let e = discovery_env(&[]).await;
    let realm = &e.t.state.runtime().realms;
    let op = &realm.get("oidc1").unwrap().config.op;
    assert_eq!(op.authorization_endpoint.as_str(), e.op.url("/authorize"));
    assert_eq!(
        op.token_endpoint.as_ref().unwrap().as_str(),
        e.op.url("/token")
    );
    assert_eq!(
        op.endsession_endpoint.as_ref().unwrap().as_str(),
        e.op.url("/logout")
    );
    assert_eq!(e.op.hits("/.well-known/openid-configuration"), 1);
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(e.op.hits("/token"), 1);
    assert!(e.op.jwks_fetches() >= 1);
    let status = e.status().await;
    let d = &status["realms"]["oidc1"]["discovery"];
    assert_eq!(
        d["url"],
        format!("{}/.well-known/openid-configuration", e.op.issuer())
    );
    assert_eq!(d["issuer"], e.op.issuer());
    assert_eq!(d["endpoints"]["token_endpoint"], e.op.url("/token"));
    assert!(d["loaded_at"].is_string(), "{d}");
    assert!(d["last_error"].is_null(), "{d}");
}

#[actix_web::test]
async fn yaml_endpoints_win_over_the_metadata_with_a_warning() {
    let op = FakeOp::start().await;
    let mine = "http://127.0.0.1:9/my-userinfo".to_string();
    let (s, warnings) = discovered_settings(&op, &[("op.userinfo_endpoint", mine.clone())])
        .await
        .unwrap();
    assert_eq!(
        s.realms[0].op.userinfo_endpoint.as_ref().unwrap().as_str(),
        mine
    );
    assert_eq!(
        s.realms[0].op.token_endpoint.as_ref().unwrap().as_str(),
        op.url("/token")
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("realms.oidc1.op.userinfo_endpoint")
            && warnings[0].contains("differs from the provider metadata"),
        "{warnings:?}"
    );
    // An explicit op.discovery_url is used instead of the issuer's well-known URL.
    let other = FakeOp::start().await;
    let url = format!("{}/.well-known/openid-configuration", other.issuer());
    let err = discovered_settings(&op, &[("op.discovery_url", url)])
        .await
        .unwrap_err();
    // `other`'s metadata names `other` as its issuer, not this realm's op.issuer.
    assert!(err[0].contains("has issuer"), "{err:?}");
    assert_eq!(other.hits("/.well-known/openid-configuration"), 1);
    // (once, for the first realm above)
    assert_eq!(op.hits("/.well-known/openid-configuration"), 1);
}

#[actix_web::test]
async fn discovery_with_a_wrong_issuer_is_refused() {
    let op = FakeOp::start().await;
    for wrong in [format!("{}/", op.issuer()), "https://evil.example".into()] {
        op.set(|k| {
            k.discovery_extra.insert("issuer".into(), json!(wrong));
        });
        let err = discovered_settings(&op, &[]).await.unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(
            err[0].starts_with("realms.oidc1.op.discovery:")
                && err[0].contains(&format!("has issuer {wrong:?}"))
                && err[0].contains("must be equal exactly"),
            "{err:?}"
        );
    }
}

#[actix_web::test]
async fn unreachable_oversized_or_invalid_metadata_is_refused() {
    let op = FakeOp::start().await;
    // Nothing listens on the discovery URL's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    let err = discovered_settings(&op, &[("op.discovery_url", url)])
        .await
        .unwrap_err();
    assert!(
        err[0].contains("cannot fetch the provider metadata"),
        "{err:?}"
    );

    // Larger than 64 KiB.
    op.set(|k| {
        k.discovery_extra
            .insert("padding".into(), json!("x".repeat(70 * 1024)));
    });
    let err = discovered_settings(&op, &[]).await.unwrap_err();
    assert!(
        err[0].contains("larger than") || err[0].contains("too large"),
        "{err:?}"
    );

    // Not metadata: a required member missing, or an insecure endpoint.
    op.reset_knobs();
    op.set(|k| {
        k.discovery_extra.insert("jwks_uri".into(), Value::Null);
    });
    let err = discovered_settings(&op, &[]).await.unwrap_err();
    assert!(
        err[0].contains("is not valid") && err[0].contains("jwks_uri"),
        "{err:?}"
    );
    op.reset_knobs();
    op.set(|k| {
        k.discovery_extra.insert(
            "token_endpoint".into(),
            json!("http://op.example.org/token"),
        );
    });
    let err = discovered_settings(&op, &[]).await.unwrap_err();
    assert!(err[0].contains("insecure token_endpoint"), "{err:?}");
}

#[actix_web::test]
async fn discovery_is_refreshed_with_the_jwks_and_failures_keep_the_last_metadata() {
    let e = discovery_env(&[]).await;
    let generation = e.t.state.runtime().generation;
    // Not due yet: nothing fetched.
    assert_eq!(oidc_realm::reload::refresh_discovery(&e.t.state).await, 0);
    assert_eq!(e.op.hits("/.well-known/openid-configuration"), 1);
    // The provider moves its UserInfo endpoint; an hour later the refresh picks it up.
    let moved = e.op.url("/userinfo-v2");
    e.op.set(|k| {
        k.discovery_extra
            .insert("userinfo_endpoint".into(), json!(moved));
    });
    e.t.advance(std::time::Duration::from_secs(3601));
    assert_eq!(oidc_realm::reload::refresh_discovery(&e.t.state).await, 1);
    let rt = e.t.state.runtime();
    assert_eq!(rt.generation, generation + 1);
    let op = &rt.realms.get("oidc1").unwrap().config.op;
    assert_eq!(op.userinfo_endpoint.as_ref().unwrap().as_str(), moved);
    // A failing refresh keeps it, and _status says why.
    e.op.set(|k| {
        k.discovery_extra
            .insert("issuer".into(), json!("https://evil.example"));
    });
    e.t.advance(std::time::Duration::from_secs(3601));
    assert_eq!(oidc_realm::reload::refresh_discovery(&e.t.state).await, 0);
    let rt = e.t.state.runtime();
    assert_eq!(rt.generation, generation + 1);
    let status = e.status().await;
    let d = &status["realms"]["oidc1"]["discovery"];
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("https://evil.example"),
        "{d}"
    );
    assert_eq!(d["endpoints"]["userinfo_endpoint"], moved);
}

#[test]
fn discovery_keys_are_validated_by_the_loader() {
    let yaml = |extra: &str| {
        format!(
            "realms:\n  oidc1:\n    order: 0\n    rp.client_id: c\n    rp.client_secret: s\n    rp.redirect_uri: https://kibana.example.org/cb\n    rp.response_type: code\n    op.issuer: https://op.example.org\n    claims.principal: sub\n{extra}"
        )
    };
    let load = |extra: &str| oidc_realm::config::load_str(&yaml(extra), &std::env::temp_dir());
    // Discovery: no endpoint is required.
    let l = load("    op.discovery: true\n").unwrap();
    let d = l.settings.realms[0].op.discovery.clone().unwrap();
    assert_eq!(
        d.url.as_str(),
        "https://op.example.org/.well-known/openid-configuration"
    );
    assert!(d.pending() && d.written.is_empty());
    // Without discovery the endpoints are required as before.
    let err = load("").err().unwrap().to_string();
    assert!(
        err.contains("realms.oidc1.op.authorization_endpoint"),
        "{err}"
    );
    for (extra, key, says) in [
        (
            "    op.discovery_url: https://op.example.org/x\n",
            "op.discovery_url",
            "cannot be set unless",
        ),
        (
            "    op.discovery: yes\n",
            "op.discovery",
            "only [true] or [false]",
        ),
        (
            "    op.discovery: true\n    op.discovery_url: http://op.example.org/x\n",
            "op.discovery_url",
            "insecure",
        ),
        (
            "    op.discovry: true\n",
            "op.discovry",
            "did you mean `op.discovery`?",
        ),
    ] {
        let err = load(extra)
            .err()
            .unwrap_or_else(|| panic!("{extra} loaded"))
            .to_string();
        assert!(
            err.contains(&format!("realms.oidc1.{key}")) && err.contains(says),
            "{extra}: {err}"
        );
    }
}

#[actix_web::test]
async fn a_reload_keeps_the_metadata_or_asks_for_a_restart() {
    let e = discovery_env(&[]).await;
    let rt = e.t.state.runtime();
    // The same realm settings, as a reload loads them again (metadata pending).
    let keys = discovery_keys(&[]);
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut s = (*rt.settings).clone();
    s.realms = vec![realm_config(&e.op, "oidc1", 0, "code", &keys)];
    e.t.state.swap_settings(s.clone(), Vec::new()).unwrap();
    assert_eq!(e.op.hits("/.well-known/openid-configuration"), 1);
    let rt = e.t.state.runtime();
    let op = &rt.realms.get("oidc1").unwrap().config.op;
    assert_eq!(
        op.token_endpoint.as_ref().unwrap().as_str(),
        e.op.url("/token")
    );
    // Another discovery URL: its metadata is fetched at start only.
    let url = format!("{}/other/.well-known/openid-configuration", e.op.issuer());
    let keys = discovery_keys(&[("op.discovery_url", url)]);
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.realms = vec![realm_config(&e.op, "oidc1", 0, "code", &keys)];
    let err = e.t.state.swap_settings(s, Vec::new()).unwrap_err();
    let msg = Vec::<String>::from(err).join("\n");
    assert!(msg.contains("restart the server"), "{msg}");
}

#[actix_web::test]
async fn check_config_validates_discovery_unless_offline() {
    let op = FakeOp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oidc-realm.yml");
    let block = realm_yaml(&op, "oidc1", 0, "code", DISCOVER_ONLY);
    std::fs::write(&path, config_yaml(&[block])).unwrap();
    let run = |offline: bool| {
        let path = path.clone();
        async move {
            actix_web::rt::task::spawn_blocking(move || {
                let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_oidc-realm"));
                c.args(["check-config", "--config"]).arg(&path);
                if offline {
                    c.arg("--offline");
                }
                c.output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = run(false).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(op.hits("/.well-known/openid-configuration"), 1);

    op.set(|k| {
        k.discovery_extra
            .insert("issuer".into(), json!("https://evil.example"));
    });
    let out = run(false).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("realms.oidc1.op.discovery:") && stdout.contains("must be equal exactly"),
        "{stdout}"
    );
    // --offline: no network access, a warning instead.
    let out = run(true).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warning: realms.oidc1.op.discovery: not checked (--offline)"),
        "{stdout}"
    );
    assert_eq!(op.hits("/.well-known/openid-configuration"), 2);
}

// ---------------------------------------------------------------------------------------------
// private_key_jwt and GET /oidc/{realm}/jwks
// ---------------------------------------------------------------------------------------------

/// `${file:…}` of a fixture key (the loader reads secrets from files).
fn key_file(fixture: &str) -> String {
    format!(
        "${{file:{}/tests/fixtures/keys/{fixture}}}",
        env!("CARGO_MANIFEST_DIR")
    )
}

async fn pkjwt_env(
    extra: Vec<(&'static str, String)>,
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
            let mut keys: Vec<(&str, String)> =
                vec![("rp.client_auth_method", "private_key_jwt".into())];
            keys.extend(extra);
            let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.realms = vec![realm_config(op, "oidc1", 0, "code", &keys)];
            let published: Vec<Value> = s.realms[0]
                .rp
                .client_auth_keys
                .iter()
                .map(|k| k.public_jwk.clone())
                .collect();
            op.set(|k| {
                k.client_auth = ClientAuth::PrivateKeyJwt;
                k.client_jwks = published;
            });
        },
    )
    .await
}

async fn get_jwks<S, B>(e: &Env<S>, realm: &str) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    e.call(TestRequest::get().uri(&format!("/oidc/{realm}/jwks")))
        .await
}

#[actix_web::test]
async fn private_key_jwt_logs_in_with_an_rsa_key_and_publishes_it() {
    let e = pkjwt_env(vec![
        ("rp.client_auth_key", key_file("rsa2.pem")),
        ("rp.client_auth_key_id", "client-2026".into()),
        ("rp.client_auth_key_2", key_file("ec256.pem")),
    ])
    .await;
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    let rec = e.op.last("/token").unwrap();
    assert!(rec.header("authorization").is_none());
    let assertion = rec.form("client_assertion").unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(assertion.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["kid"], "client-2026");
    assert_eq!(header["alg"], "RS256");
    let claims: Value =
        serde_json::from_slice(&B64.decode(assertion.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], e.op.url("/token"));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    // A second login: a new jti (the OP refuses replays).
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");

    // The public keys, without any private member; the first signs.
    let (s, jwks) = get_jwks(&e, "oidc1").await;
    assert_eq!(s, 200, "{jwks}");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], "client-2026");
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[1]["kty"], "EC");
    assert_eq!(keys[1]["alg"], "ES256");
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "{k}");
        }
    }
    let (s, b) = get_jwks(&e, "nope").await;
    assert_eq!(s, 404, "{b}");
}

#[actix_web::test]
async fn private_key_jwt_with_an_ec_key() {
    let e = pkjwt_env(vec![("rp.client_auth_key", key_file("ec256.pem"))]).await;
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    let rec = e.op.last("/token").unwrap();
    let assertion = rec.form("client_assertion").unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(assertion.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
}

#[actix_web::test]
async fn an_assertion_the_provider_refuses_fails_the_login() {
    let e = pkjwt_env(vec![("rp.client_auth_key", key_file("rsa2.pem"))]).await;
    // The provider knows another key under this kid (e.g. rotation not yet published).
    let kid = e.op.knobs().client_jwks[0]["kid"].clone();
    let mut other = KeyChoice::Rsa1.public_jwk(None);
    other["kid"] = kid;
    e.op.set(|k| k.client_jwks = vec![other]);
    assert_refused(&e.login_oidc1().await, "token_endpoint_rejected");
    assert_eq!(
        e.op.last("/token").map(|_| ()),
        Some(()),
        "the code exchange was attempted"
    );
}

#[actix_web::test]
async fn a_realm_without_private_key_jwt_publishes_no_keys() {
    let e = env("code", &[]).await;
    let (s, b) = get_jwks(&e, "oidc1").await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["type"], "resource_not_found_exception", "{b}");
}

#[test]
fn private_key_jwt_keys_are_validated_by_the_loader() {
    let yaml = |extra: &str| {
        format!(
            "realms:\n  oidc1:\n    order: 0\n    rp.client_id: c\n    rp.client_secret: s\n    rp.redirect_uri: https://kibana.example.org/cb\n    rp.response_type: code\n    op.issuer: https://op.example.org\n    op.authorization_endpoint: https://op.example.org/a\n    op.token_endpoint: https://op.example.org/t\n    op.jwkset_path: https://op.example.org/jwks\n    claims.principal: sub\n{extra}"
        )
    };
    let load = |extra: &str| oidc_realm::config::load_str(&yaml(extra), &std::env::temp_dir());
    let rsa = key_file("rsa2.pem");
    let ed = key_file("ed25519.pem");
    let l = load(&format!(
        "    rp.client_auth_method: private_key_jwt\n    rp.client_auth_key: '{rsa}'\n    rp.client_auth_jwt_signature_algorithm: PS256\n"
    ))
    .unwrap();
    let keys = &l.settings.realms[0].rp.client_auth_keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].public_jwk["alg"], "PS256");
    assert!(!format!("{:?}", l.settings.realms[0]).contains("PRIVATE KEY"));
    for (extra, key, says) in [
        ("    rp.client_auth_method: private_key_jwt\n".to_string(), "rp.client_auth_key", "is required when"),
        (format!("    rp.client_auth_key: '{rsa}'\n"), "rp.client_auth_key", "cannot be set unless"),
        (format!("    rp.client_auth_method: private_key_jwt\n    rp.client_auth_key: '{ed}'\n"), "rp.client_auth_key", "not an RSA, EC P-256 or EC P-384"),
        (format!("    rp.client_auth_method: private_key_jwt\n    rp.client_auth_key: '{rsa}'\n    rp.client_auth_jwt_signature_algorithm: ES256\n"), "rp.client_auth_key", "RSA key, which cannot sign ES256"),
        (format!("    rp.client_auth_method: private_key_jwt\n    rp.client_auth_key: '{rsa}'\n    rp.client_auth_jwt_signature_algorithm: HS256\n"), "rp.client_auth_jwt_signature_algorithm", "with private_key_jwt"),
        (format!("    rp.client_auth_method: private_key_jwt\n    rp.client_auth_key: '{rsa}'\n    rp.client_auth_key_2: '{rsa}'\n"), "rp.client_auth_key_2_id", "same kid"),
        (format!("    rp.client_auth_method: private_key_jwt\n    rp.client_auth_keey: '{rsa}'\n"), "rp.client_auth_keey", "did you mean `rp.client_auth_key`?"),
    ] {
        let err = load(&extra).err().unwrap_or_else(|| panic!("{extra} loaded")).to_string();
        assert!(
            err.contains(&format!("realms.oidc1.{key}")) && err.contains(says),
            "{extra}: {err}"
        );
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Back-channel logout
// ---------------------------------------------------------------------------------------------

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token signed like the fake OP's ID tokens (RS256 with `rsa1`, in its JWKS), with
/// `changes` applied to the claims (`null` removes). `good_signature: false` corrupts it.
fn logout_token(op: &FakeOp, changes: Value, header: Value, good_signature: bool) -> String {
    let now = op.now_secs();
    let mut claims = json!({"iss": op.issuer(), "aud": CLIENT_ID, "iat": now, "exp": now + 120,
                            "jti": format!("jti-{}", rand_suffix()), "sid": "sess-1",
                            "events": {EVENT: {}}});
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    let mut h = json!({"alg": "RS256", "kid": "rsa1", "typ": "logout+jwt"});
    for (k, v) in header.as_object().unwrap() {
        h[k] = v.clone();
    }
    let input = format!(
        "{}.{}",
        B64.encode(h.to_string()),
        B64.encode(claims.to_string())
    );
    let body: String = KeyChoice::Rsa1
        .pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pair =
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap();
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    if !good_signature {
        sig[5] ^= 1;
    }
    format!("{input}.{}", B64.encode(sig))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn post_logout<S, B>(e: &Env<S>, realm: &str, token: &str) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let body = format!("logout_token={}", form_encode(token));
    let (s, bytes) = send_raw(
        &e.app,
        TestRequest::post()
            .uri(&format!("/oidc/{realm}/backchannel-logout"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body),
    )
    .await;
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (s, v)
}

#[track_caller]
fn assert_logout_refused(resp: &(u16, Value), code: &str) {
    let (s, b) = resp;
    assert_eq!(*s, 400, "{b}");
    assert_eq!(b["error"], "invalid_request", "{b}");
    assert!(
        b["error_description"].as_str().unwrap_or("").contains(code),
        "{code}: {b}"
    );
}

/// Logs in with the fake OP's ID token carrying `sid`; returns (access, refresh).
async fn login_with_sid<S, B>(e: &Env<S>, sid: Option<&str>) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    e.op.set(|k| {
        match sid {
            Some(s) => k.claims.insert("sid".into(), json!(s)),
            None => k.claims.remove("sid"),
        };
    });
    let (s, b) = e.login_oidc1().await;
    assert_eq!(s, 200, "{b}");
    (
        b["access_token"].as_str().unwrap().to_string(),
        b["refresh_token"].as_str().unwrap().to_string(),
    )
}

#[actix_web::test]
async fn backchannel_logout_by_sid_ends_that_login_and_its_refreshes() {
    let e = env("code", &[("rp.backchannel_logout", "true")]).await;
    let (access1, refresh1) = login_with_sid(&e, Some("sess-1")).await;
    // The login's pair refreshed: the new pair belongs to the same provider session.
    let (s, r) = e.refresh(FACILITATOR, &refresh1).await;
    assert_eq!(s, 200, "{r}");
    let access2 = r["access_token"].as_str().unwrap().to_string();
    let refresh2 = r["refresh_token"].as_str().unwrap().to_string();
    let (other_access, _) = login_with_sid(&e, Some("sess-2")).await;
    assert_eq!(e.whoami(&access2).await.0, 200);

    let resp = post_logout(
        &e,
        "oidc1",
        &logout_token(&e.op, json!({}), json!({}), true),
    )
    .await;
    assert_eq!(resp.0, 200, "{resp:?}");
    for t in [&access1, &access2] {
        assert_eq!(e.whoami(t).await.0, 401);
    }
    assert_ne!(e.refresh(FACILITATOR, &refresh2).await.0, 200);
    // Another session of the same user stays.
    assert_eq!(e.whoami(&other_access).await.0, 200);
}

#[actix_web::test]
async fn backchannel_logout_by_sub_ends_every_login_of_the_user() {
    let e = env("code", &[("rp.backchannel_logout", "true")]).await;
    let (a1, _) = login_with_sid(&e, Some("sess-1")).await;
    let (a2, r2) = login_with_sid(&e, None).await;
    let sub = User::default().sub;
    let token = logout_token(&e.op, json!({"sid": null, "sub": sub}), json!({}), true);
    assert_eq!(post_logout(&e, "oidc1", &token).await.0, 200);
    assert_eq!(e.whoami(&a1).await.0, 401);
    assert_eq!(e.whoami(&a2).await.0, 401);
    assert_ne!(e.refresh(FACILITATOR, &r2).await.0, 200);
    // sid and sub together must both match: nothing left to end, still 200.
    let token = logout_token(&e.op, json!({"sub": "someone-else"}), json!({}), true);
    assert_eq!(post_logout(&e, "oidc1", &token).await.0, 200);
}

#[actix_web::test]
async fn bad_logout_tokens_are_400_and_end_nothing() {
    let e = env("code", &[("rp.backchannel_logout", "true")]).await;
    let (access, _) = login_with_sid(&e, Some("sess-1")).await;
    let op = &e.op;
    let cases = [
        (
            logout_token(op, json!({}), json!({}), false),
            "bad_signature",
        ),
        (
            logout_token(op, json!({"nonce": "n"}), json!({}), true),
            "logout_token_nonce",
        ),
        (
            logout_token(op, json!({"sid": null}), json!({}), true),
            "logout_token_no_sid_or_sub",
        ),
        (
            logout_token(op, json!({"events": null}), json!({}), true),
            "logout_token_no_event",
        ),
        (
            logout_token(op, json!({"events": {EVENT: "x"}}), json!({}), true),
            "logout_token_no_event",
        ),
        (
            logout_token(op, json!({"iss": "https://evil.example"}), json!({}), true),
            "iss_mismatch",
        ),
        (
            logout_token(op, json!({"aud": "another-client"}), json!({}), true),
            "aud_mismatch",
        ),
        (
            logout_token(op, json!({"iat": null}), json!({}), true),
            "missing_claim",
        ),
        (
            logout_token(op, json!({"jti": null}), json!({}), true),
            "missing_claim",
        ),
        (
            logout_token(
                op,
                json!({"iat": op.now_secs() - 3600, "exp": op.now_secs() + 60}),
                json!({}),
                true,
            ),
            "logout_token_too_old",
        ),
        (
            logout_token(op, json!({"exp": op.now_secs() - 3600}), json!({}), true),
            "expired",
        ),
        (
            logout_token(op, json!({}), json!({"alg": "HS256"}), true),
            "alg_not_allowed",
        ),
        (
            logout_token(op, json!({}), json!({"typ": "at+jwt"}), true),
            "wrong_type",
        ),
        ("not-a-jwt".to_string(), "malformed"),
    ];
    for (token, code) in &cases {
        assert_logout_refused(&post_logout(&e, "oidc1", token).await, code);
    }
    assert_eq!(e.whoami(&access).await.0, 200, "no case ended the login");

    // A reused jti: the first is accepted, the replay refused.
    let token = logout_token(op, json!({"sid": "unknown-session"}), json!({}), true);
    assert_eq!(post_logout(&e, "oidc1", &token).await.0, 200);
    assert_logout_refused(
        &post_logout(&e, "oidc1", &token).await,
        "logout_token_replayed",
    );

    // Not a form, or no token.
    let (s, b) = send(
        &e.app,
        post_json(
            "/oidc/oidc1/backchannel-logout",
            json!({"logout_token": token}),
        ),
    )
    .await
    .into_status_body();
    assert_eq!(s, 400, "{b}");
    let (s, b) = post_logout(&e, "oidc1", "").await;
    assert_eq!((s, &b["error"]), (400, &json!("invalid_request")), "{b}");
}

#[actix_web::test]
async fn backchannel_logout_is_off_unless_enabled() {
    let e = env("code", &[]).await;
    let (access, _) = login_with_sid(&e, Some("sess-1")).await;
    let token = logout_token(&e.op, json!({}), json!({}), true);
    let (s, b) = post_logout(&e, "oidc1", &token).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(e.whoami(&access).await.0, 200);
    let (s, _) = post_logout(&e, "nope", &token).await;
    assert_eq!(s, 404);
}

trait StatusBody {
    fn into_status_body(self) -> (u16, Value);
}

impl StatusBody for (u16, actix_web::http::header::HeaderMap, Value) {
    fn into_status_body(self) -> (u16, Value) {
        (self.0, self.2)
    }
}
