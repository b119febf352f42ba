//! OpenID Connect login end to end: prepare → fake OP → authenticate → _authenticate →
//! refresh → logout, through HTTP on the real `configure()`, and every refusal a realm owes
//! (user-needs §2), each asserting the 401 and its reason code.

mod common;

use actix_web::test::TestRequest;
use common::fake_op::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use common::login::*;

/// This file's logins name the realm (`oidc1`) in the authenticate body.
impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn authenticate_as(
        &self,
        who: (&str, &str),
        redirect_uri: &str,
        state: &str,
        nonce: &str,
    ) -> (u16, Value) {
        let (s, _, b) = self
            .authenticate_full(who, redirect_uri, state, nonce, Some("oidc1"))
            .await;
        (s, b)
    }

    async fn authenticate(&self, redirect_uri: &str, state: &str, nonce: &str) -> (u16, Value) {
        self.authenticate_as(FACILITATOR, redirect_uri, state, nonce)
            .await
    }

    async fn login(&self) -> (u16, Value) {
        let (callback, state, nonce) = self.start_login().await.parts();
        self.authenticate(&callback, &state, &nonce).await
    }
}

fn assert_refused(resp: &(u16, Value), code: &str) {
    let (s, b) = resp;
    assert_eq!(*s, 401, "{b}");
    assert_eq!(b["error"]["type"], "security_exception", "{b}");
    assert_eq!(
        b["error"]["reason"],
        "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]"
    );
    assert_eq!(b["error"]["reason_code"], code, "{b}");
}

fn query(url: &str) -> std::collections::BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[actix_web::test]
async fn code_flow_end_to_end_with_pkce_refresh_and_logout() {
    let e = env("code", &[]).await;
    let (s, p) = e.prepare(json!({"realm": "oidc1"})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["realm"], "oidc1");
    let state = p["state"].as_str().unwrap();
    let nonce = p["nonce"].as_str().unwrap();
    assert_eq!(state.len(), 43);
    assert_eq!(nonce.len(), 43);
    let redirect = p["redirect"].as_str().unwrap();
    assert!(redirect.starts_with(&e.op.url("/authorize?")));
    let q = query(redirect);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], REDIRECT_URI);
    assert_eq!(q["scope"], "openid");
    assert_eq!(q["state"], state);
    assert_eq!(q["nonce"], nonce);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);

    let callback = e.op.browser_login(redirect).await;
    let (s, b) = e.authenticate(&callback, state, nonce).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "00u1abcd");
    assert_eq!(b["type"], "Bearer");
    assert_eq!(b["expires_in"], 1200);
    let auth = &b["authentication"];
    assert_eq!(auth["username"], "00u1abcd");
    assert_eq!(auth["full_name"], "James Wong");
    assert_eq!(auth["email"], "james.wong@staff.example.com");
    assert_eq!(auth["roles"], json!([]));
    assert_eq!(
        auth["authentication_realm"],
        json!({"name": "oidc1", "type": "oidc"})
    );
    assert_eq!(
        auth["lookup_realm"],
        json!({"name": "oidc1", "type": "oidc"})
    );
    assert_eq!(auth["authentication_type"], "realm");
    assert_eq!(auth["metadata"]["oidc(sub)"], "00u1abcd");
    // UserInfo repeats the groups claim; arrays are concatenated as Elasticsearch merges them.
    assert_eq!(auth["metadata"]["oidc(groups)"][0], "finance-team");
    assert_eq!(
        auth["metadata"]["oidc(email)"],
        "james.wong@staff.example.com"
    );
    assert!(auth["metadata"].get("oidc(exp)").is_none());
    assert!(auth["metadata"].get("oidc(nonce)").is_none());

    // The OP saw client_secret_basic done right (it refuses otherwise) and the PKCE verifier.
    let token_req = e.op.last("/token").unwrap();
    assert_eq!(
        pkce_s256(token_req.form("code_verifier").unwrap()),
        q["code_challenge"]
    );
    assert_eq!(token_req.form("redirect_uri"), Some(REDIRECT_URI));

    // The access token authenticates as the OIDC user.
    let access = b["access_token"].as_str().unwrap();
    let (s, me) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(access)),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(me["username"], "00u1abcd");
    assert_eq!(me["authentication_type"], "token");
    assert_eq!(me["authentication_realm"]["type"], "oidc");

    // The facilitator refreshes; another facilitator may not.
    let refresh = b["refresh_token"].as_str().unwrap();
    let refresh_req = |who| {
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "refresh_token", "refresh_token": refresh}),
        )
        .insert_header(basic(who))
    };
    let (s, other) = e.call(refresh_req(OTHER_FACILITATOR)).await;
    assert_eq!(
        (s, other["error_description"].clone()),
        (
            400,
            json!("tokens must be refreshed by the creating client")
        )
    );
    let (s, r) = e.call(refresh_req(FACILITATOR)).await;
    assert_eq!(s, 200, "{r}");
    let access2 = r["access_token"].as_str().unwrap();
    let refresh2 = r["refresh_token"].as_str().unwrap();

    // Logout: both tokens invalidated; the redirect carries the ID token hint, the configured
    // post-logout URI exactly, and a fresh state.
    let (s, out) = e
        .call(
            post_json(
                "/_security/oidc/logout",
                json!({"token": access2, "refresh_token": refresh2}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    let logout_url = out["redirect"].as_str().unwrap();
    assert!(logout_url.starts_with(&e.op.url("/logout?")));
    let lq = query(logout_url);
    assert_eq!(lq["post_logout_redirect_uri"], POST_LOGOUT_REDIRECT_URI);
    assert_eq!(lq["state"].len(), 43);
    assert_eq!(lq["id_token_hint"].split('.').count(), 3);
    let (s, b) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(access2)),
        )
        .await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");
    let (s, r) = e
        .call(
            post_json(
                "/_security/oauth2/token",
                json!({"grant_type": "refresh_token", "refresh_token": refresh2}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(
        (s, r["error_description"].clone()),
        (400, json!("token has been invalidated"))
    );
}

#[actix_web::test]
async fn code_flow_with_client_secret_post_and_jwt() {
    for (method, auth) in [
        ("client_secret_post", ClientAuth::Post),
        ("client_secret_jwt", ClientAuth::Jwt),
    ] {
        let e = env("code", &[("rp.client_auth_method", method)]).await;
        e.op.set(|k| k.client_auth = auth);
        let (s, b) = e.login().await;
        assert_eq!(s, 200, "{method}: {b}");
        let req = e.op.last("/token").unwrap();
        match method {
            "client_secret_post" => {
                assert_eq!(req.form("client_secret"), Some(CLIENT_SECRET));
                assert!(req.header("authorization").is_none());
            }
            _ => assert!(req.form("client_assertion").is_some()),
        }
    }
}

#[actix_web::test]
async fn pkce_can_be_switched_off_for_providers_that_reject_it() {
    let e = env("code", &[("rp.pkce", "false")]).await;
    let (s, p) = e.prepare(json!({"realm": "oidc1"})).await;
    assert_eq!(s, 200);
    assert!(!query(p["redirect"].as_str().unwrap()).contains_key("code_challenge"));
    let callback = e.op.browser_login(p["redirect"].as_str().unwrap()).await;
    let (s, b) = e
        .authenticate(
            &callback,
            p["state"].as_str().unwrap(),
            p["nonce"].as_str().unwrap(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(e.op.last("/token").unwrap().form("code_verifier").is_none());
}

#[actix_web::test]
async fn implicit_id_token_and_id_token_token() {
    let e = env("id_token", &[]).await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(e.op.hits("/token"), 0);

    let e = env("id_token token", &[]).await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        e.op.hits("/userinfo"),
        1,
        "UserInfo is called with the OP access token"
    );
    // at_hash is required for `id_token token`.
    e.op.set(|k| k.at_hash = HashClaim::Absent);
    assert_refused(&e.login().await, "at_hash_missing");
    e.op.set(|k| k.at_hash = HashClaim::Wrong);
    assert_refused(&e.login().await, "at_hash_mismatch");
}

#[actix_web::test]
async fn es256_realm() {
    let e = env("code", &[("rp.signature_algorithm", "ES256")]).await;
    e.op.set(|k| k.signer = Signer::Key(KeyChoice::Ec256));
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    // The same realm refuses an RS256 token.
    e.op.set(|k| k.signer = Signer::OpKey);
    assert_refused(&e.login().await, "alg_not_allowed");
}

#[actix_web::test]
async fn third_party_initiated_login_by_issuer() {
    let e = env("code", &[]).await;
    let (s, p) = e
        .prepare(json!({"iss": e.op.issuer(), "login_hint": "jwong@example.com"}))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["realm"], "oidc1");
    assert_eq!(
        query(p["redirect"].as_str().unwrap())["login_hint"],
        "jwong@example.com"
    );

    let (s, b) = e
        .prepare(json!({"iss": "https://unknown.example.com"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["error"]["reason"],
        "Cannot find OpenID Connect realm with issuer [https://unknown.example.com]"
    );
    let (s, b) = e
        .prepare(json!({"iss": format!("{}/", e.op.issuer())}))
        .await;
    assert_eq!(s, 400, "issuer match is exact: {b}");
}

#[actix_web::test]
async fn two_realms_with_one_issuer_are_ambiguous_for_iss() {
    let e = env_with(|op| {
        vec![
            realm_config(op, "oidc1", 0, "code", &[]),
            realm_config(op, "oidc2", 1, "code", &[]),
        ]
    })
    .await;
    let (s, b) = e.prepare(json!({"iss": e.op.issuer()})).await;
    assert_eq!(s, 400);
    assert!(b["error"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Found multiple OpenID Connect realm"));
    // A state prepared for oidc2 cannot be used with realm oidc1.
    let (_, p) = e.prepare(json!({"realm": "oidc2"})).await;
    let callback = e.op.browser_login(p["redirect"].as_str().unwrap()).await;
    let resp = e
        .authenticate(
            &callback,
            p["state"].as_str().unwrap(),
            p["nonce"].as_str().unwrap(),
        )
        .await;
    assert_refused(&resp, "flow_other_realm");
}

#[actix_web::test]
async fn prepare_and_authenticate_validation() {
    let e = env("code", &[]).await;
    let cases = [
        (json!({}), "Validation Failed: 1: one of [realm, issuer] must be provided;"),
        (json!({"realm": "oidc1", "iss": "x"}), "Validation Failed: 1: only one of [realm, issuer] can be provided in the same request;"),
    ];
    for (body, reason) in cases {
        let (s, b) = e.prepare(body).await;
        assert_eq!((s, b["error"]["reason"].clone()), (400, json!(reason)));
    }
    let (s, b) = e.prepare(json!({"realm": "nope"})).await;
    assert_eq!(
        (s, b["error"]["reason"].clone()),
        (
            400,
            json!("Cannot find OpenID Connect realm with name [nope]")
        )
    );
    let (s, b) = e.prepare(json!({"realm": "oidc1", "bogus": 1})).await;
    assert_eq!(
        (s, b["error"]["reason"].clone()),
        (
            400,
            json!("[1:24] [oidc_prepare_authentication] unknown field [bogus]")
        )
    );

    let (s, b) = e
        .call(
            post_json("/_security/oidc/authenticate", json!({})).insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["error"]["reason"],
        "Validation Failed: 1: state parameter is missing;2: nonce parameter is missing;3: redirect_uri parameter is missing;"
    );
    // Without manage_oidc: 403.
    let (s, b) = e
        .call(
            post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
                .insert_header(basic(ARGON_USER)),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["reason_code"], "action_unauthorized", "{b}");
    // A caller-chosen state and nonce are used as given.
    let (s, p) = e
        .prepare(json!({"realm": "oidc1", "state": "my-state-123", "nonce": "my-nonce-456"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (p["state"].as_str(), p["nonce"].as_str()),
        (Some("my-state-123"), Some("my-nonce-456"))
    );
}

/// user-needs §2, the rows that concern login: each knob makes the OP misbehave in one way;
/// each login must be refused with the precise reason.
#[actix_web::test]
async fn every_id_token_pitfall_is_refused_with_its_reason() {
    let e = env("code", &[("rp.signature_algorithm", "[RS256, ES256]")]).await;
    let tripwire = Tripwire::start();
    type Knob = Box<dyn Fn(&mut Knobs)>;
    let cases: Vec<(&str, Knob, &str)> = vec![
        // 1: alg none
        (
            "alg none",
            Box::new(|k: &mut Knobs| k.unsigned("none")),
            "alg_not_allowed",
        ),
        (
            "alg None",
            Box::new(|k: &mut Knobs| k.unsigned("None")),
            "alg_not_allowed",
        ),
        (
            "alg NONE",
            Box::new(|k: &mut Knobs| k.unsigned("NONE")),
            "alg_not_allowed",
        ),
        // 2: RS/HS confusion (the realm allows RS256 and ES256 only)
        (
            "HS256 keyed with the RSA public key PEM",
            Box::new(|k: &mut Knobs| k.signer = Signer::PublicKeyPem),
            "alg_not_allowed",
        ),
        (
            "HS256 keyed with the RSA modulus",
            Box::new(|k: &mut Knobs| k.signer = Signer::PublicKeyModulus),
            "alg_not_allowed",
        ),
        (
            "HS256 keyed with the client secret",
            Box::new(|k: &mut Knobs| k.signer = Signer::ClientSecret),
            "alg_not_allowed",
        ),
        // 3: mixed families: ES256 token naming the RSA key, RS256 token naming an EC key
        (
            "ES256 with kid of an RSA key",
            Box::new(|k: &mut Knobs| {
                k.signer = Signer::Key(KeyChoice::Ec256);
                k.kid = Kid::Value("rsa1".into());
            }),
            "key_alg_mismatch",
        ),
        (
            "RS256 with kid of an EC key",
            Box::new(|k: &mut Knobs| k.kid = Kid::Value("ec256".into())),
            "key_alg_mismatch",
        ),
        // 4: key material in the header, kid injection
        (
            "embedded jwk",
            Box::new(|k: &mut Knobs| k.embed_attacker_jwk()),
            "forbidden_header",
        ),
        (
            "x5u",
            Box::new(|k: &mut Knobs| k.x5u("http://169.254.169.254/")),
            "forbidden_header",
        ),
        (
            "kid path traversal",
            Box::new(|k: &mut Knobs| k.kid = Kid::Value("../../../../dev/null".into())),
            "kid_not_found",
        ),
        (
            "kid SQL",
            Box::new(|k: &mut Knobs| k.kid = Kid::Value("' OR '1'='1".into())),
            "kid_not_found",
        ),
        (
            "10 KB kid",
            Box::new(|k: &mut Knobs| k.kid = Kid::Value("k".repeat(10_000))),
            "malformed",
        ),
        // 7: bad signatures
        (
            "flipped signature bit",
            Box::new(|k: &mut Knobs| k.corrupt_signature = true),
            "bad_signature",
        ),
        (
            "ES256 zero signature",
            Box::new(|k: &mut Knobs| {
                k.signer = Signer::Key(KeyChoice::Ec256);
                k.signature = Some(base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    [0u8; 64],
                ));
            }),
            "bad_signature",
        ),
        (
            "attacker key, right kid",
            Box::new(|k: &mut Knobs| {
                k.signer = Signer::Key(KeyChoice::AttackerRsa);
                k.kid = Kid::Value("rsa1".into());
            }),
            "bad_signature",
        ),
        // 8: nonce
        (
            "nonce missing",
            Box::new(|k: &mut Knobs| k.nonce = Param::Drop),
            "nonce_missing",
        ),
        (
            "nonce of another login",
            Box::new(|k: &mut Knobs| k.nonce = Param::Replace("another-prepare-nonce".into())),
            "nonce_mismatch",
        ),
        // 14: issuer and audience
        (
            "iss with trailing slash",
            Box::new(|k: &mut Knobs| {
                k.iss = Some(format!("{}/", k.iss.clone().unwrap_or_default()))
            }),
            "iss_mismatch",
        ),
        (
            "iss of another tenant",
            Box::new(|k: &mut Knobs| k.iss = Some("https://login.example.com/other-tenant".into())),
            "iss_mismatch",
        ),
        (
            "aud for another client",
            Box::new(|k: &mut Knobs| k.aud = Some(json!("other-client"))),
            "aud_mismatch",
        ),
        (
            "aud array without azp",
            Box::new(|k: &mut Knobs| k.aud = Some(json!([CLIENT_ID, "other"]))),
            "azp_missing",
        ),
        (
            "azp of another client",
            Box::new(|k: &mut Knobs| {
                k.aud = Some(json!([CLIENT_ID, "other"]));
                k.azp = Some("other".into());
            }),
            "azp_mismatch",
        ),
        // 15: time
        (
            "expired beyond skew",
            Box::new(|k: &mut Knobs| k.exp_offset = Some(-61)),
            "expired",
        ),
        (
            "exp missing",
            Box::new(|k: &mut Knobs| k.exp_offset = None),
            "missing_claim",
        ),
        (
            "exp as string",
            Box::new(|k: &mut Knobs| {
                k.claims.insert("exp".into(), json!("4102444800"));
            }),
            "invalid_claim",
        ),
        (
            "exp 1e300",
            Box::new(|k: &mut Knobs| {
                k.claims.insert("exp".into(), json!(1e300));
            }),
            "invalid_claim",
        ),
        (
            "nbf beyond skew",
            Box::new(|k: &mut Knobs| k.nbf_offset = Some(61)),
            "not_yet_valid",
        ),
        (
            "iat an hour ahead",
            Box::new(|k: &mut Knobs| k.iat_offset = 3600),
            "issued_in_future",
        ),
        // 19/20: odd tokens
        (
            "zip header",
            Box::new(|k: &mut Knobs| {
                k.header.insert("zip".into(), json!("DEF"));
            }),
            "forbidden_header",
        ),
        (
            "duplicate sub",
            Box::new(|k: &mut Knobs| k.duplicate_sub = Some("admin".into())),
            "malformed",
        ),
        (
            "JWE",
            Box::new(|k: &mut Knobs| k.id_token = Some("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d".into())),
            "encrypted_token",
        ),
    ];
    for (name, knob, code) in cases {
        e.op.reset_knobs();
        e.op.set(|k| knob(k));
        let resp = e.login().await;
        assert_eq!(resp.1["error"]["reason_code"], code, "{name}");
        assert_refused(&resp, code);
    }
    // jku: refused, and nothing was fetched from the URL it names.
    e.op.reset_knobs();
    let url = tripwire.url("/keys");
    e.op.set(|k| k.jku(&url));
    assert_refused(&e.login().await, "forbidden_header");
    assert_eq!(tripwire.hits(), 0);
    // After all that, a good login still works.
    e.op.reset_knobs();
    assert_eq!(e.login().await.0, 200);
}

#[actix_web::test]
async fn state_and_flow_refusals() {
    let e = env("code", &[]).await;
    // 9a: no state in the redirect.
    e.op.set(|k| k.state = Param::Drop);
    assert_refused(&e.login().await, "state_missing");
    e.op.reset_knobs();
    // 9b: the state of another prepare.
    let (cb1, state1, nonce1) = e.start_login().await.parts();
    let (_cb2, state2, nonce2) = e.start_login().await.parts();
    assert_refused(
        &e.authenticate(&cb1, &state2, &nonce2).await,
        "state_mismatch",
    );
    // The real one still works once...
    let (s, _) = e.authenticate(&cb1, &state1, &nonce1).await;
    assert_eq!(s, 200);
    // 9d/16d: ...and never again (state replay; the code would be replayed too).
    assert_refused(
        &e.authenticate(&cb1, &state1, &nonce1).await,
        "flow_unknown",
    );
    assert_eq!(e.op.hits("/token"), 1);
    // A nonce that differs from the prepared one.
    let (cb, state, _nonce) = e.start_login().await.parts();
    assert_refused(
        &e.authenticate(&cb, &state, "not-the-nonce").await,
        "nonce_mismatch",
    );
    // Another facilitator cannot finish a login this one prepared, nor consume it: the
    // login stays pending for the facilitator that prepared it.
    let (cb, state, nonce) = e.start_login().await.parts();
    assert_refused(
        &e.authenticate_as(OTHER_FACILITATOR, &cb, &state, &nonce)
            .await,
        "flow_other_caller",
    );
    let (s, b) = e.authenticate(&cb, &state, &nonce).await;
    assert_eq!(s, 200, "{b}");
    // A flow expires after 10 minutes.
    let (cb, state, nonce) = e.start_login().await.parts();
    e.t.advance(Duration::from_secs(601));
    e.op.set_now(e.op.now_secs());
    assert_refused(&e.authenticate(&cb, &state, &nonce).await, "flow_unknown");
}

#[actix_web::test]
async fn redirect_uri_must_be_the_configured_one() {
    let e = env("code", &[]).await;
    let corpus = include_str!("fixtures/open-redirects.txt");
    for target in corpus
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (cb, state, nonce) = e.start_login().await.parts();
        let code_and_state = cb.split_once('?').unwrap().1;
        let forged = format!("{target}?{code_and_state}");
        let resp = e.authenticate(&forged, &state, &nonce).await;
        // Not an absolute URL at all: invalid; a URL, but not the configured one: mismatch.
        let code = if url::Url::parse(target).is_ok() {
            "redirect_uri_mismatch"
        } else {
            "redirect_uri_invalid"
        };
        assert_refused(&resp, code);
        assert!(!resp.1.to_string().contains("evil"), "echoed: {}", resp.1);
    }
    assert_eq!(
        e.op.hits("/token"),
        0,
        "no code was exchanged for a foreign redirect"
    );
}

#[actix_web::test]
async fn op_and_token_endpoint_failures() {
    let e = env("code", &[]).await;
    e.op.set(|k| k.authorize_error = Some(("access_denied".into(), "user said no".into())));
    assert_refused(&e.login().await, "op_error_response");
    e.op.reset_knobs();
    e.op.set(|k| k.token_reply = TokenReply::invalid_grant("code expired"));
    assert_refused(&e.login().await, "token_endpoint_rejected");
    e.op.set(|k| k.token_reply = TokenReply::ServerError);
    assert_refused(&e.login().await, "token_endpoint_status");
    e.op.set(|k| k.token_reply = TokenReply::NonJson);
    assert_refused(&e.login().await, "token_response_not_json");
    e.op.set(|k| k.token_reply = TokenReply::NoIdToken);
    assert_refused(&e.login().await, "no_id_token");
    e.op.set(|k| k.token_reply = TokenReply::TokenType("mac".into()));
    assert_refused(&e.login().await, "unsupported_token_type");
    e.op.reset_knobs();
    e.op.set(|k| k.userinfo_reply = UserinfoReply::SubMismatch);
    assert_refused(&e.login().await, "userinfo_subject_mismatch");
    e.op.set(|k| k.userinfo_reply = UserinfoReply::Jwt);
    assert_refused(&e.login().await, "userinfo_jwt_unsupported");
    e.op.reset_knobs();
    assert_eq!(e.login().await.0, 200);
}

#[actix_web::test]
async fn claim_patterns_as_elasticsearch_documents_them() {
    let e = env(
        "code",
        &[
            ("claims.principal", "email"),
            ("claim_patterns.principal", r"^([^@]+)@staff\.example\.com$"),
        ],
    )
    .await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "james.wong");
    for email in [
        "james.wong@other.example.com",
        "admin@staff.example.com.attacker.net",
        "a@evil.com@staff.example.com",
    ] {
        e.op.set(|k| k.user.email = Some(email.into()));
        assert_refused(&e.login().await, "principal_missing");
    }
}

#[actix_web::test]
async fn a_claim_that_is_an_object_fails_clearly() {
    let e = env("code", &[]).await;
    e.op.set(|k| k.user.groups = Some(json!({"nested": "object"})));
    assert_refused(&e.login().await, "claim_value_unsupported");
}

/// Each line of the corpus, labelled by the comment above it, is refused with the reason
/// code that says what is wrong with it (asserted per line: a corpus line that started failing
/// for another reason, say an earlier check, would no longer test what its comment says).
#[actix_web::test]
async fn malformed_implicit_id_tokens_of_the_corpus_are_401() {
    let e = env("id_token", &[]).await;
    let corpus = include_str!("fixtures/malformed-tokens.txt");
    // Against this RS256 realm. Lines whose header is acceptable but whose signature is not
    // genuine never reach the payload: they are refused at the signature, whatever their
    // payload says (payload parsing is tested with authentic HS256 tokens in
    // tests/pitfalls.rs, row 20; psychic ES256 signatures against an ES256 realm in row 7).
    let expected: &[(&str, &str)] = &[
        ("alg none, empty signature", "alg_not_allowed"),
        ("alg None (case variant)", "alg_not_allowed"),
        ("alg NONE, no third part", "malformed"),
        ("alg as a number", "malformed"),
        ("embedded jwk header (attacker key)", "forbidden_header"),
        (
            "jku pointing at loopback (must never be fetched)",
            "forbidden_header",
        ),
        (
            "x5u pointing at metadata address (must never be fetched)",
            "forbidden_header",
        ),
        ("kid path traversal", "kid_not_found"),
        ("kid SQL-ish", "kid_not_found"),
        ("kid of 10 KB", "malformed"),
        ("zip DEF header (compression)", "forbidden_header"),
        ("five parts (JWE shape)", "encrypted_token"),
        ("payload is an array", "bad_signature"),
        ("payload is null", "bad_signature"),
        ("payload is a string", "bad_signature"),
        ("duplicate sub key", "bad_signature"),
        ("exp as string", "bad_signature"),
        ("exp huge float", "bad_signature"),
        ("deeply nested payload", "bad_signature"),
        ("non-base64url characters", "malformed"),
        ("padding characters", "malformed"),
        ("invalid UTF-8 in header", "malformed"),
        ("empty string parts", "malformed"),
        ("only dots", "malformed"),
        ("truncated", "malformed"),
        (
            "ES256 with all-zero signature (psychic signature)",
            "alg_not_allowed",
        ),
        ("ES256 with DER-encoded r=0,s=0", "alg_not_allowed"),
    ];
    let mut label = "";
    let mut got: Vec<(String, String)> = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            label = comment;
            continue;
        }
        let (s, p) = e.prepare(json!({"realm": "oidc1"})).await;
        assert_eq!(s, 200);
        let state = p["state"].as_str().unwrap();
        let redirect = fragment_redirect(&[("id_token", line), ("state", state)]);
        let resp = e
            .authenticate(&redirect, state, p["nonce"].as_str().unwrap())
            .await;
        let code = resp.1["error"]["reason_code"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert_refused(&resp, &code);
        got.push((label.to_string(), code));
    }
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(l, c)| (l.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want, "{got:#?}");
}

#[actix_web::test]
async fn logout_edge_cases() {
    let e = env_with(|op| {
        vec![realm_config(
            op,
            "oidc1",
            0,
            "code",
            &[("op.endsession_endpoint", "")],
        )]
    })
    .await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200);
    let access = b["access_token"].as_str().unwrap();
    let logout =
        |body: Value| post_json("/_security/oidc/logout", body).insert_header(basic(FACILITATOR));
    // Without an endsession endpoint: tokens invalidated, redirect null.
    let (s, out) = e.call(logout(json!({"token": access}))).await;
    assert_eq!((s, out), (200, json!({"redirect": null})));
    // The same token again: 401.
    let (s, b) = e.call(logout(json!({"token": access}))).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["type"], "security_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");
    assert_eq!(b["error"]["reason"], "token expired", "{b}");
    // Missing token: 400.
    let (s, b) = e.call(logout(json!({}))).await;
    assert_eq!(
        (s, b["error"]["reason"].clone()),
        (400, json!("Validation Failed: 1: token is missing;"))
    );
    // A caller cannot choose where the OP sends the browser after logout.
    let (s, b) = e
        .call(logout(
            json!({"token": access, "post_logout_redirect_uri": "https://evil.com"}),
        ))
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["type"], "x_content_parse_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], "body_parse_error", "{b}");
    assert!(
        b["error"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("[oidc_logout] unknown field [post_logout_redirect_uri]"),
        "{b}"
    );
    assert!(!b.to_string().contains("evil"), "{b}");
    // A token of a file user is not an OIDC token.
    let (_, _, t) = send(
        &e.app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "client_credentials"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    let (s, b) = e.call(logout(json!({"token": t["access_token"]}))).await;
    assert_eq!(
        (s, b["error"]["reason"].clone()),
        (
            400,
            json!("Access token is not valid for an OpenID Connect realm")
        )
    );
}

#[actix_web::test]
async fn op_key_rotation_is_picked_up_from_the_jwks_url() {
    let e = env("code", &[]).await;
    assert_eq!(e.login().await.0, 200);
    let fetches = e.op.jwks_fetches();
    // The provider rotates its key some time later.
    e.t.advance(Duration::from_secs(31));
    e.op.rotate_to("rsa2", KeyChoice::Rsa2, false);
    assert_eq!(e.login().await.0, 200, "new kid → one refetch, then valid");
    assert_eq!(e.op.jwks_fetches(), fetches + 1);
    // Unknown kids do not make us hammer the OP: at most one fetch per 30 s.
    e.op.set(|k| k.kid = Kid::Value("random-kid".into()));
    for _ in 0..5 {
        assert_refused(&e.login().await, "kid_not_found");
    }
    assert_eq!(e.op.jwks_fetches(), fetches + 1);
}

#[actix_web::test]
async fn a_finance_team_group_claim_yields_the_finance_data_role() {
    let e = env("code", &[]).await;
    let (s, b) = e
        .call(
            TestRequest::put()
                .uri("/_security/role_mapping/finance")
                .insert_header(basic(ADMIN))
                .set_json(json!({
                    "enabled": true,
                    "roles": ["finance_data"],
                    "rules": {"all": [
                        {"field": {"realm.name": "oidc1"}},
                        {"field": {"groups": "finance-team"}}
                    ]}
                })),
        )
        .await;
    assert_eq!((s, b), (200, json!({"role_mapping": {"created": true}})));
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["finance_data"]));
    let (_, me) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(b["access_token"].as_str().unwrap())),
        )
        .await;
    assert_eq!(me["roles"], json!(["finance_data"]));
    // Another group: no role.
    e.op.set(|k| k.user.groups = Some(json!(["engineering"])));
    let (_, b) = e.login().await;
    assert_eq!(b["authentication"]["roles"], json!([]));
}

#[actix_web::test]
async fn redirects_with_a_doubled_state_or_code_are_refused() {
    let e = env("code", &[]).await;
    let (cb, state, nonce) = e.start_login().await.parts();
    // The state once in the query and once in the fragment: which one would count?
    let forged = format!("{cb}#state=another-state");
    assert_refused(
        &e.authenticate(&forged, &state, &nonce).await,
        "redirect_param_duplicate",
    );
    let (cb, state, nonce) = e.start_login().await.parts();
    let forged = format!("{cb}&code=second-code");
    assert_refused(
        &e.authenticate(&forged, &state, &nonce).await,
        "redirect_param_duplicate",
    );
    assert_eq!(e.op.hits("/token"), 0);
}

#[actix_web::test]
async fn caller_chosen_values_are_bounded() {
    let e = env("code", &[]).await;
    let long = "n".repeat(513);
    for body in [
        json!({"realm": "oidc1", "nonce": long}),
        json!({"realm": "oidc1", "state": long}),
        json!({"realm": "oidc1", "login_hint": long}),
    ] {
        let (s, b) = e.prepare(body).await;
        assert_eq!(s, 400, "{b}");
    }
    let (s, _) = e
        .prepare(json!({"realm": "oidc1", "nonce": "n".repeat(512)}))
        .await;
    assert_eq!(s, 200);
}

/// The path and query of a callback URL, as Kibana sends it to authenticate.
fn path_only(callback: &str) -> String {
    let u = url::Url::parse(callback).unwrap();
    format!("{}?{}", u.path(), u.query().unwrap())
}

#[actix_web::test]
async fn a_path_only_redirect_uri_as_kibana_sends_it_logs_in() {
    let e = env("code", &[]).await;
    let (cb, state, nonce) = e.start_login().await.parts();
    let path = path_only(&cb);
    assert!(path.starts_with("/api/security/oidc/callback?"), "{path}");
    let (s, b) = e.authenticate(&path, &state, &nonce).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "00u1abcd");
    assert_eq!(e.op.hits("/token"), 1);
    // The code was exchanged with the configured redirect URI, as for an absolute one.
    let token_req = e.op.last("/token").unwrap();
    assert_eq!(token_req.form("redirect_uri"), Some(REDIRECT_URI));
    // Single use, as any other.
    assert_refused(&e.authenticate(&path, &state, &nonce).await, "flow_unknown");
}

#[actix_web::test]
async fn a_path_only_redirect_uri_gets_every_check_of_an_absolute_one() {
    let e = env("code", &[]).await;
    // Another path on the right origin: refused as a mismatch.
    let (cb, state, nonce) = e.start_login().await.parts();
    let code_and_state = cb.split_once('?').unwrap().1.to_string();
    assert_refused(
        &e.authenticate(
            &format!("/api/security/oidc/other?{code_and_state}"),
            &state,
            &nonce,
        )
        .await,
        "redirect_uri_mismatch",
    );
    // Duplicated parameters.
    let (cb, state, nonce) = e.start_login().await.parts();
    assert_refused(
        &e.authenticate(&format!("{}&code=second", path_only(&cb)), &state, &nonce)
            .await,
        "redirect_param_duplicate",
    );
    let (cb, state, nonce) = e.start_login().await.parts();
    assert_refused(
        &e.authenticate(&format!("{}#state=x", path_only(&cb)), &state, &nonce)
            .await,
        "redirect_param_duplicate",
    );
    // The state is taken from the path's query and compared.
    let (cb, state, nonce) = e.start_login().await.parts();
    let other_state = path_only(&cb).replace(&format!("state={state}"), "state=forged");
    assert_refused(
        &e.authenticate(&other_state, &state, &nonce).await,
        "state_mismatch",
    );
    // An absolute URL on another origin is still refused.
    let (cb, state, nonce) = e.start_login().await.parts();
    let foreign = cb.replace("https://kibana.example.org", "https://evil.example.org");
    assert_refused(
        &e.authenticate(&foreign, &state, &nonce).await,
        "redirect_uri_mismatch",
    );
    assert_eq!(e.op.hits("/token"), 0, "no code was exchanged");
}

#[actix_web::test]
async fn path_only_redirect_uris_that_could_escape_are_refused_before_the_flow_is_used() {
    let e = env("code", &[]).await;
    let (cb, state, nonce) = e.start_login().await.parts();
    let q = cb.split_once('?').unwrap().1.to_string();
    for bad in [
        format!("/api/security/oidc/../oidc/callback?{q}"),
        format!("/api/security/oidc/./callback?{q}"),
        format!("/api/security/oidc/callback/..?{q}"),
        format!("//kibana.example.org/api/security/oidc/callback?{q}"),
        format!("//evil.example/api/security/oidc/callback?{q}"),
        format!("/\\evil.example/api/security/oidc/callback?{q}"),
        format!("\\\\evil.example/api/security/oidc/callback?{q}"),
        format!("/api\\security/oidc/callback?{q}"),
        format!("/api/security/oidc/%2e%2e/oidc/callback?{q}"),
        format!("/%2F%2Fevil.example/api/security/oidc/callback?{q}"),
        format!("/api/security/oidc/callback%2F..?{q}"),
        format!("/https:%2F%2Fevil.example/?{q}"),
        format!("/https://evil.example/?{q}"),
        format!("/api/security/oidc/call back?{q}"),
        format!("/api/security/oidc/callback\t?{q}"),
        format!("/%09/evil.example?{q}"),
        format!("api/security/oidc/callback?{q}"),
    ] {
        assert_refused(
            &e.authenticate(&bad, &state, &nonce).await,
            "redirect_uri_invalid",
        );
    }
    // The pending login was not consumed by any of them.
    let (s, b) = e.authenticate(&path_only(&cb), &state, &nonce).await;
    assert_eq!(s, 200, "{b}");
}
