//! Self-tests of the fake OpenID Provider (`tests/common/fake_op.rs`), over HTTP with
//! reqwest, and of its ID tokens against `oidc_realm::oidc::id_token::validate`: every good
//! token must verify, every evil knob must produce a token `validate` refuses.

mod common;

use common::fake_op::*;
use oidc_realm::config::{ClientAuthMethod, JwksSource, ResponseType, SignatureAlgorithm as A};
use oidc_realm::oidc::{
    check_at_hash, validate, IdTokenClaims, IdTokenError, IdTokenPolicy, KeySet,
};
use oidc_realm::secret::Secret;
use serde_json::{json, Value};

const STATE: &str = "st-4dbrihtIAt3wBTwo6DxK";
const NONCE: &str = "nc-WaBPH0KqPVdG5HHdSxPRj";
const VERIFIER: &str = "a-pkce-verifier-of-at-least-43-characters-long-0123";

fn keys(op: &FakeOp) -> KeySet {
    KeySet::parse(op.jwks_json().as_bytes())
        .expect("JWKS parses")
        .0
}

fn policy(op: &FakeOp) -> IdTokenPolicy {
    IdTokenPolicy::new(op.issuer(), CLIENT_ID).with_nonce(NONCE)
}

fn check(op: &FakeOp, token: &str, policy: &IdTokenPolicy) -> Result<IdTokenClaims, IdTokenError> {
    validate(token, policy, &keys(op), op.now_secs())
}

#[track_caller]
fn assert_refused(result: Result<IdTokenClaims, IdTokenError>, code: &str, what: &str) {
    match result {
        Ok(c) => panic!("{what}: token accepted: {c:?}"),
        Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
    }
}

fn authorization_url(op: &FakeOp, response_type: &str, pkce: bool) -> String {
    let mut u = url::Url::parse(&op.url("/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", response_type)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid email")
        .append_pair("state", STATE)
        .append_pair("nonce", NONCE)
        .append_pair("login_hint", "jwong");
    if pkce {
        u.query_pairs_mut()
            .append_pair("code_challenge", &pkce_s256(VERIFIER))
            .append_pair("code_challenge_method", "S256");
    }
    u.into()
}

/// Parameters of the query (`?`) or fragment (`#`) of a redirect.
fn params(location: &str, fragment: bool) -> Vec<(String, String)> {
    let u = url::Url::parse(location).unwrap();
    let part = if fragment { u.fragment() } else { u.query() };
    url::form_urlencoded::parse(part.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param(ps: &[(String, String)], name: &str) -> Option<String> {
    ps.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Log in (code flow) and return the code.
async fn login_code(op: &FakeOp, pkce: bool) -> String {
    let loc = op.browser_login(&authorization_url(op, "code", pkce)).await;
    param(&params(&loc, false), "code").expect("code in redirect")
}

/// POST /token with a form and optional Authorization header; (status, JSON or Null).
async fn post_token(op: &FakeOp, form: &[(&str, &str)], auth: Option<&str>) -> (u16, Value) {
    let mut req = http_client().post(op.url("/token")).form(form);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn basic() -> String {
    basic_auth_header(CLIENT_ID, CLIENT_SECRET)
}

fn code_form<'a>(code: &'a str, verifier: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
    ];
    if let Some(v) = verifier {
        f.push(("code_verifier", v));
    }
    f
}

/// A client_secret_jwt assertion signed with `secret`, audience `aud`.
fn client_assertion(op: &FakeOp, secret: &str, aud: &str, jti: &str) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let claims = json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": aud, "jti": jti,
                        "iat": op.now_secs(), "exp": op.now_secs() + 60});
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn send(op: &FakeOp, form: Vec<(String, String)>) -> (u16, Value) {
    let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post_token(op, &f, None).await
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn discovery_and_jwks_are_served() {
    let op = FakeOp::start().await;
    let c = http_client();
    let doc: Value = c
        .get(op.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], json!(op.issuer()));
    assert_eq!(doc["jwks_uri"], json!(op.url("/jwks")));
    assert_eq!(doc["token_endpoint"], json!(op.url("/token")));
    assert!(op.issuer().starts_with("http://127.0.0.1:"));

    let body = c
        .get(op.url("/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, op.jwks_json());
    let set = KeySet::parse(body.as_bytes()).unwrap().0;
    assert_eq!(set.kids(), vec!["rsa1", "ec256", "ec384", "ec521"]);
    assert_eq!(op.jwks_fetches(), 1);
    assert_eq!(op.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(op.counts().len(), 2);

    // Knobs: broken JWKS body, discovery overrides.
    op.set(|k| {
        k.jwks_body = Some("not json".into());
        k.jwks_status = 503;
        k.discovery_extra
            .insert("jwks_uri".into(), json!("http://169.254.169.254/"));
    });
    let r = c.get(op.url("/jwks")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.text().await.unwrap(), "not json");
    let doc: Value = c
        .get(op.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["jwks_uri"], "http://169.254.169.254/");
    assert_eq!(op.jwks_fetches(), 2);
}

#[actix_web::test]
async fn authorize_redirects_with_code_and_state_and_records_the_request() {
    let op = FakeOp::start().await;
    let loc = op
        .browser_login(&authorization_url(&op, "code", true))
        .await;
    assert!(loc.starts_with(&format!("{REDIRECT_URI}?code=")), "{loc}");
    let ps = params(&loc, false);
    assert_eq!(param(&ps, "state").as_deref(), Some(STATE));
    assert!(param(&ps, "code").unwrap().len() >= 32);

    let rec = op.last("/authorize").unwrap();
    assert_eq!(rec.method, "GET");
    assert_eq!(rec.query("response_type"), Some("code"));
    assert_eq!(rec.query("nonce"), Some(NONCE));
    assert_eq!(rec.query("login_hint"), Some("jwong"));
    assert_eq!(rec.query("code_challenge_method"), Some("S256"));
    assert_eq!(
        rec.query("code_challenge"),
        Some(pkce_s256(VERIFIER).as_str())
    );

    // State knobs and the OP error redirect.
    op.set(|k| k.state = Param::Replace("other".into()));
    let loc = op
        .browser_login(&authorization_url(&op, "code", false))
        .await;
    assert_eq!(
        param(&params(&loc, false), "state").as_deref(),
        Some("other")
    );
    op.set(|k| k.state = Param::Drop);
    let loc = op
        .browser_login(&authorization_url(&op, "code", false))
        .await;
    assert_eq!(param(&params(&loc, false), "state"), None);
    op.set(|k| {
        k.state = Param::Echo;
        k.authorize_error = Some(("access_denied".into(), "The user said no".into()));
    });
    let loc = op
        .browser_login(&authorization_url(&op, "code", false))
        .await;
    let ps = params(&loc, false);
    assert_eq!(param(&ps, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        param(&ps, "error_description").as_deref(),
        Some("The user said no")
    );
    assert_eq!(param(&ps, "state").as_deref(), Some(STATE));
    assert_eq!(param(&ps, "code"), None);

    // Unregistered redirect_uri: no redirect at all.
    let bad = authorization_url(&op, "code", false).replace("kibana.example.org", "evil.example");
    let r = http_client().get(bad).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(op.hits("/authorize"), 5);
}

#[actix_web::test]
async fn token_with_basic_auth_and_pkce_returns_a_valid_id_token_once() {
    let op = FakeOp::start().await;
    let code = login_code(&op, true).await;

    // Wrong or missing verifier: refused (a code is burnt by any exchange that passes client
    // authentication, so each attempt logs in again).
    let (s, body) = post_token(
        &op,
        &code_form(&code, Some("wrong-verifier")),
        Some(&basic()),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let code = login_code(&op, true).await;
    let (s, body) = post_token(&op, &code_form(&code, None), Some(&basic())).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));

    // Wrong client auth does not burn the code.
    let code = login_code(&op, true).await;
    let form = code_form(&code, Some(VERIFIER));
    let wrong = basic_auth_header(CLIENT_ID, "wrong-secret");
    let (s, body) = post_token(&op, &form, Some(&wrong)).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    // The secret sent without RFC 6749 §2.3.1 form-encoding is refused too.
    let unencoded = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{CLIENT_ID}:{CLIENT_SECRET}")
        )
    );
    let (s, _) = post_token(&op, &form, Some(&unencoded)).await;
    assert_eq!(s, 401);
    let (s, _) = post_token(&op, &form, None).await;
    assert_eq!(s, 401);

    let (s, body) = post_token(&op, &form, Some(&basic())).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], json!(ACCESS_TOKEN_TTL));
    let at = body["access_token"].as_str().unwrap();
    let claims = check(&op, body["id_token"].as_str().unwrap(), &policy(&op)).unwrap();
    assert_eq!(claims.sub(), "00u1abcd");
    assert_eq!(claims.kid(), Some("rsa1"));
    assert_eq!(
        claims.get("email"),
        Some(&json!("james.wong@staff.example.com"))
    );
    assert_eq!(claims.get("groups"), Some(&json!(["finance-team"])));
    check_at_hash(&claims, at, true).unwrap();

    let rec = op.last("/token").unwrap();
    assert_eq!(rec.header("Authorization"), Some(basic().as_str()));
    assert_eq!(rec.form("code_verifier"), Some(VERIFIER));

    // Replay.
    let (s, body) = post_token(&op, &form, Some(&basic())).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));

    // Userinfo with the access token.
    let c = http_client();
    let ui: Value = c
        .get(op.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui["sub"], "00u1abcd");
    assert_eq!(ui["name"], "James Wong");
    let r = c
        .get(op.url("/userinfo"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[actix_web::test]
async fn token_with_client_secret_post() {
    let op = FakeOp::start().await;
    op.set(|k| k.client_auth = ClientAuth::Post);
    let code = login_code(&op, false).await;
    let mut form = code_form(&code, None);
    form.push(("client_id", CLIENT_ID));
    form.push(("client_secret", "wrong"));
    let (s, body) = post_token(&op, &form, None).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    form.pop();
    form.push(("client_secret", CLIENT_SECRET));
    // Basic is not the configured method.
    let (s, _) = post_token(&op, &form, Some(&basic())).await;
    assert_eq!(s, 401);
    let (s, body) = post_token(&op, &form, None).await;
    assert_eq!(s, 200, "{body}");
    check(&op, body["id_token"].as_str().unwrap(), &policy(&op)).unwrap();
}

#[actix_web::test]
async fn token_with_client_secret_jwt() {
    let op = FakeOp::start().await;
    op.set(|k| k.client_auth = ClientAuth::Jwt);
    let code = login_code(&op, false).await;
    let token_endpoint = op.url("/token");
    let jwt_form = |assertion: &str| -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = code_form(&code, None)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        f.push((
            "client_assertion_type".into(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        f.push(("client_assertion".into(), assertion.to_owned()));
        f
    };
    let wrong_aud = client_assertion(&op, CLIENT_SECRET, &op.issuer(), "j1");
    let (s, body) = send(&op, jwt_form(&wrong_aud)).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    let wrong_key = client_assertion(&op, "not-the-secret", &token_endpoint, "j2");
    assert_eq!(send(&op, jwt_form(&wrong_key)).await.0, 401);
    let good = client_assertion(&op, CLIENT_SECRET, &token_endpoint, "j3");
    let (s, body) = send(&op, jwt_form(&good)).await;
    assert_eq!(s, 200, "{body}");
    check(&op, body["id_token"].as_str().unwrap(), &policy(&op)).unwrap();
    // The same assertion (same jti) again: refused.
    let code2 = login_code(&op, false).await;
    let mut f = jwt_form(&good);
    f[1].1 = code2;
    assert_eq!(send(&op, f).await.0, 401);
}

#[actix_web::test]
async fn token_endpoint_failure_knobs() {
    let op = FakeOp::start().await;
    let cases: Vec<(TokenReply, u16)> = vec![
        (TokenReply::invalid_grant("The code is bad"), 400),
        (TokenReply::ServerError, 500),
        (TokenReply::NonJson, 200),
        (TokenReply::NoIdToken, 200),
        (TokenReply::TokenType("mac".into()), 200),
    ];
    for (reply, status) in cases {
        op.set(|k| k.token_reply = reply.clone());
        let code = login_code(&op, false).await;
        let resp = http_client()
            .post(op.url("/token"))
            .header("Authorization", basic())
            .form(&code_form(&code, None))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{reply:?}");
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match reply {
            TokenReply::Error { .. } => {
                assert_eq!(body["error"], "invalid_grant");
                assert_eq!(body["error_description"], "The code is bad");
            }
            TokenReply::NonJson => assert!(body.is_null() && text.contains("<html>")),
            TokenReply::NoIdToken => {
                assert!(body.get("id_token").is_none() && body["access_token"].is_string())
            }
            TokenReply::TokenType(_) => assert_eq!(body["token_type"], "mac"),
            _ => {}
        }
    }
}

#[actix_web::test]
async fn userinfo_knobs() {
    let op = FakeOp::start().await;
    let at = op.issue_access_token();
    let get = || {
        http_client()
            .get(op.url("/userinfo"))
            .bearer_auth(&at)
            .send()
    };

    op.set(|k| {
        k.userinfo_claims
            .insert("department".into(), json!("finance"));
    });
    let ui: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(
        (ui["sub"].as_str(), ui["department"].as_str()),
        (Some("00u1abcd"), Some("finance"))
    );

    op.set(|k| k.userinfo_reply = UserinfoReply::SubMismatch);
    let ui: Value = get().await.unwrap().json().await.unwrap();
    assert_ne!(ui["sub"], "00u1abcd");

    op.set(|k| k.userinfo_reply = UserinfoReply::Jwt);
    let r = get().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/jwt");
    let jwt = r.text().await.unwrap();
    let claims = check(&op, &jwt, &IdTokenPolicy::new(op.issuer(), CLIENT_ID)).unwrap();
    assert_eq!(claims.get("department"), Some(&json!("finance")));

    op.set(|k| k.userinfo_reply = UserinfoReply::ServerError);
    assert_eq!(get().await.unwrap().status().as_u16(), 500);
    assert_eq!(op.hits("/userinfo"), 4);
}

#[actix_web::test]
async fn implicit_flows_put_the_id_token_in_the_fragment() {
    let op = FakeOp::start().await;
    let loc = op
        .browser_login(&authorization_url(&op, "id_token", false))
        .await;
    assert!(
        loc.starts_with(&format!("{REDIRECT_URI}#id_token=")),
        "{loc}"
    );
    let ps = params(&loc, true);
    assert_eq!(param(&ps, "state").as_deref(), Some(STATE));
    assert_eq!(param(&ps, "access_token"), None);
    let claims = check(&op, &param(&ps, "id_token").unwrap(), &policy(&op)).unwrap();
    assert_eq!(claims.get("at_hash"), None);

    let loc = op
        .browser_login(&authorization_url(&op, "id_token token", false))
        .await;
    let ps = params(&loc, true);
    assert_eq!(param(&ps, "token_type").as_deref(), Some("Bearer"));
    let at = param(&ps, "access_token").unwrap();
    let claims = check(&op, &param(&ps, "id_token").unwrap(), &policy(&op)).unwrap();
    check_at_hash(&claims, &at, true).unwrap();

    for (knob, code) in [
        (HashClaim::Wrong, "at_hash_mismatch"),
        (HashClaim::Absent, "at_hash_missing"),
    ] {
        op.set(|k| k.at_hash = knob);
        let loc = op
            .browser_login(&authorization_url(&op, "id_token token", false))
            .await;
        let ps = params(&loc, true);
        let claims = check(&op, &param(&ps, "id_token").unwrap(), &policy(&op)).unwrap();
        let at = param(&ps, "access_token").unwrap();
        assert_eq!(check_at_hash(&claims, &at, true).unwrap_err().code(), code);
    }

    // The same shape without /authorize.
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    let loc = fragment_redirect(&[("id_token", &t), ("state", STATE)]);
    let ps = params(&loc, true);
    assert_eq!(param(&ps, "id_token").as_deref(), Some(t.as_str()));
    assert_eq!(param(&ps, "state").as_deref(), Some(STATE));

    // The implicit error redirect goes in the fragment.
    op.set(|k| k.authorize_error = Some(("login_required".into(), "no session".into())));
    let loc = op
        .browser_login(&authorization_url(&op, "id_token", false))
        .await;
    assert_eq!(
        param(&params(&loc, true), "error").as_deref(),
        Some("login_required")
    );
}

#[actix_web::test]
async fn logout_is_recorded() {
    let op = FakeOp::start().await;
    let r = http_client()
        .get(format!(
            "{}?id_token_hint=abc&post_logout_redirect_uri={}&state=s9",
            op.url("/logout"),
            form_encode(POST_LOGOUT_REDIRECT_URI)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("{POST_LOGOUT_REDIRECT_URI}?state=s9").as_str()
    );
    let rec = op.last("/logout").unwrap();
    assert_eq!(rec.query("id_token_hint"), Some("abc"));
    assert_eq!(op.hits("/logout"), 1);
    assert_eq!(op.hits("/nowhere"), 0);
}

// ---------------------------------------------------------------------------------------------
// Minted tokens against the real validator
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn minted_tokens_verify_for_each_algorithm() {
    let op = FakeOp::start().await;
    let p = policy(&op);
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    assert_eq!(check(&op, &t, &p).unwrap().alg(), A::RS256);

    let cases = [
        (KeyChoice::Rsa1, "RS384", A::RS384),
        (KeyChoice::Rsa1, "RS512", A::RS512),
        (KeyChoice::Rsa1, "PS256", A::PS256),
        (KeyChoice::Ec256, "ES256", A::ES256),
        (KeyChoice::Ec384, "ES384", A::ES384),
        (KeyChoice::Ec521, "ES512", A::ES512),
    ];
    for (key, alg, a) in cases {
        op.set(|k| {
            k.signer = Signer::Key(key);
            k.alg = Some(alg.into());
        });
        let t = op.mint_id_token(json!({"nonce": NONCE, "department": "finance"}));
        let mut p = policy(&op);
        p.algorithms = vec![a];
        let c = check(&op, &t, &p).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!((c.alg(), c.kid()), (a, Some(key.name())));
        assert_eq!(c.get("department"), Some(&json!("finance")));
    }

    // HS256 keyed with the client secret: valid where the realm allows HS256.
    op.set(|k| {
        k.signer = Signer::ClientSecret;
        k.alg = None;
    });
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    let mut p = policy(&op);
    p.algorithms = vec![A::HS256];
    p.client_secret = Some(Secret::new(CLIENT_SECRET.to_owned()));
    assert_eq!(check(&op, &t, &p).unwrap().alg(), A::HS256);
    // ...and refused by an RS256 realm.
    assert_refused(
        check(&op, &t, &policy(&op)),
        "alg_not_allowed",
        "HS256 vs RS256 realm",
    );

    // User knobs.
    op.reset_knobs();
    op.set(|k| {
        k.user.sub = "alice".into();
        k.user.email = None;
        k.user.groups = Some(json!("admin,superuser"));
        k.user.extra.insert("email_verified".into(), json!("false"));
    });
    let c = check(&op, &op.mint_id_token(json!({"nonce": NONCE})), &p_rs(&op)).unwrap();
    assert_eq!(c.sub(), "alice");
    assert_eq!(c.get("email"), None);
    assert_eq!(c.get("groups"), Some(&json!("admin,superuser")));
    assert_eq!(c.get("email_verified"), Some(&json!("false")));
}

fn p_rs(op: &FakeOp) -> IdTokenPolicy {
    policy(op)
}

#[actix_web::test]
async fn every_evil_knob_makes_a_token_validate_refuses() {
    let op = FakeOp::start().await;
    let trip = Tripwire::start();
    let trip_url = trip.url("/keys");
    let slashed = format!("{}/", op.issuer());
    type Knob = Box<dyn Fn(&mut Knobs)>;
    let cases: Vec<(&str, Knob, &str)> = vec![
        (
            "alg none",
            Box::new(|k| k.unsigned("none")),
            "alg_not_allowed",
        ),
        (
            "alg None",
            Box::new(|k| k.unsigned("None")),
            "alg_not_allowed",
        ),
        (
            "alg NONE",
            Box::new(|k| k.unsigned("NONE")),
            "alg_not_allowed",
        ),
        (
            "HS256 with RSA public PEM",
            Box::new(|k| k.signer = Signer::PublicKeyPem),
            "alg_not_allowed",
        ),
        (
            "HS256 with RSA modulus",
            Box::new(|k| k.signer = Signer::PublicKeyModulus),
            "alg_not_allowed",
        ),
        (
            "HS256 with client secret",
            Box::new(|k| k.signer = Signer::ClientSecret),
            "alg_not_allowed",
        ),
        // HS256 header but claims the RSA key's kid.
        (
            "HS256 with PEM, kid rsa1",
            Box::new(|k| {
                k.signer = Signer::PublicKeyPem;
                k.kid = Kid::Value("rsa1".into());
            }),
            "alg_not_allowed",
        ),
        (
            "wrong iss",
            Box::new(|k| k.iss = Some("https://evil.example.com".into())),
            "iss_mismatch",
        ),
        (
            "iss trailing slash",
            Box::new(move |k| k.iss = Some(slashed.clone())),
            "iss_mismatch",
        ),
        (
            "other aud",
            Box::new(|k| k.aud = Some(json!("another-client"))),
            "aud_mismatch",
        ),
        (
            "aud array, no azp",
            Box::new(|k| k.aud = Some(json!([CLIENT_ID, "other"]))),
            "azp_missing",
        ),
        (
            "wrong azp",
            Box::new(|k| {
                k.aud = Some(json!([CLIENT_ID, "other"]));
                k.azp = Some("other".into());
            }),
            "azp_mismatch",
        ),
        (
            "expired",
            Box::new(|k| {
                k.exp_offset = Some(-61);
                k.iat_offset = -600;
            }),
            "expired",
        ),
        ("no exp", Box::new(|k| k.exp_offset = None), "missing_claim"),
        (
            "iat in the future",
            Box::new(|k| {
                k.iat_offset = 3600;
                k.exp_offset = Some(7200);
            }),
            "issued_in_future",
        ),
        (
            "nbf in the future",
            Box::new(|k| k.nbf_offset = Some(61)),
            "not_yet_valid",
        ),
        (
            "no nonce",
            Box::new(|k| k.nonce = Param::Drop),
            "nonce_missing",
        ),
        (
            "wrong nonce",
            Box::new(|k| k.nonce = Param::Replace("from-another-prepare".into())),
            "nonce_mismatch",
        ),
        (
            "unknown kid",
            Box::new(|k| k.kid = Kid::Value("nope".into())),
            "kid_not_found",
        ),
        (
            "path kid",
            Box::new(|k| k.kid = Kid::Value("../../../../dev/null".into())),
            "kid_not_found",
        ),
        (
            "rsa2 not in JWKS",
            Box::new(|k| k.signer = Signer::Key(KeyChoice::Rsa2)),
            "kid_not_found",
        ),
        (
            "attacker key with rsa1 kid",
            Box::new(|k| {
                k.signer = Signer::Key(KeyChoice::AttackerRsa);
                k.kid = Kid::Value("rsa1".into());
            }),
            "bad_signature",
        ),
        (
            "embedded jwk",
            Box::new(|k| k.embed_attacker_jwk()),
            "forbidden_header",
        ),
        (
            "jku",
            Box::new(move |k| k.jku(&trip_url)),
            "forbidden_header",
        ),
        (
            "x5u",
            Box::new(|k| k.x5u("http://169.254.169.254/")),
            "forbidden_header",
        ),
        (
            "zip",
            Box::new(|k| {
                k.header.insert("zip".into(), json!("DEF"));
            }),
            "forbidden_header",
        ),
        (
            "bad signature",
            Box::new(|k| k.corrupt_signature = true),
            "bad_signature",
        ),
        (
            "duplicate sub",
            Box::new(|k| k.duplicate_sub = Some("admin".into())),
            "malformed",
        ),
        (
            "ES256 with kid of an RSA key",
            Box::new(|k| {
                k.signer = Signer::Key(KeyChoice::Ec256);
                k.kid = Kid::Value("rsa1".into());
            }),
            "alg_not_allowed",
        ),
        (
            "typ logout+jwt",
            Box::new(|k| {
                k.header.insert("typ".into(), json!("logout+jwt"));
            }),
            "wrong_type",
        ),
    ];
    for (what, knob, code) in cases {
        op.reset_knobs();
        op.set(|k| knob(k));
        let token = op.mint_id_token(json!({"nonce": NONCE}));
        assert_refused(check(&op, &token, &policy(&op)), code, what);
    }

    // Without knobs the same mint is accepted (the cases above fail for their knob only).
    op.reset_knobs();
    check(
        &op,
        &op.mint_id_token(json!({"nonce": NONCE})),
        &policy(&op),
    )
    .unwrap();

    // No kid with a single RSA key in the JWKS is fine; ES256 with kid of an RSA key in an
    // RS256+ES256 realm is refused for the key mismatch.
    op.set(|k| k.kid = Kid::Omit);
    check(
        &op,
        &op.mint_id_token(json!({"nonce": NONCE})),
        &policy(&op),
    )
    .unwrap();
    op.set(|k| {
        k.kid = Kid::Value("rsa1".into());
        k.signer = Signer::Key(KeyChoice::Ec256);
    });
    let mut p = policy(&op);
    p.algorithms = vec![A::RS256, A::ES256];
    assert_refused(
        check(&op, &op.mint_id_token(json!({"nonce": NONCE})), &p),
        "key_alg_mismatch",
        "mixed family",
    );

    assert_eq!(trip.hits(), 0, "jku must cause no request");
    // The knobs really produced what they claim.
    op.reset_knobs();
    op.set(|k| k.embed_attacker_jwk());
    let t = op.mint_id_token(json!({}));
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["jwk"]["kty"], "RSA");
    assert_eq!(header["kid"], "attacker");
    op.set(|k| k.unsigned("none"));
    assert!(op.mint_id_token(json!({})).ends_with('.'));
}

#[actix_web::test]
async fn time_knobs_follow_the_shared_clock() {
    let op = FakeOp::start().await;
    assert_eq!(op.now_secs(), DEFAULT_NOW);
    let clock = oidc_realm::clock::ManualClock::at(1_800_000_000_000);
    op.use_clock(clock.clone());
    let c = check(
        &op,
        &op.mint_id_token(json!({"nonce": NONCE})),
        &policy(&op),
    )
    .unwrap();
    assert_eq!((c.iat(), c.exp()), (1_800_000_000, 1_800_000_600));
    clock.advance(std::time::Duration::from_secs(10));
    assert_eq!(op.now_secs(), 1_800_000_010);
    op.set_now(5);
    assert_eq!(op.now_secs(), 5);
}

#[actix_web::test]
async fn rotation_changes_the_jwks_and_the_signing_key() {
    let op = FakeOp::start().await;
    let old = op.mint_id_token(json!({"nonce": NONCE}));
    let before = keys(&op);

    op.rotate_to("rsa2-2026", KeyChoice::Rsa2, false);
    let after = keys(&op);
    assert_eq!(after.kids(), vec!["rsa2-2026"]);
    assert_eq!(op.signing_key(), ("rsa2-2026".to_owned(), KeyChoice::Rsa2));
    let new = op.mint_id_token(json!({"nonce": NONCE}));
    let now = op.now_secs();
    assert_eq!(
        validate(&new, &policy(&op), &after, now).unwrap().kid(),
        Some("rsa2-2026")
    );
    assert_refused(
        validate(&new, &policy(&op), &before, now),
        "kid_not_found",
        "new token, old JWKS",
    );
    assert_refused(
        validate(&old, &policy(&op), &after, now),
        "kid_not_found",
        "old token, new JWKS",
    );

    // Overlapping rotation keeps the old key.
    op.rotate_to("ec-next", KeyChoice::Ec256, true);
    assert_eq!(keys(&op).kids(), vec!["rsa2-2026", "ec-next"]);
    let mut p = policy(&op);
    p.algorithms = vec![A::RS256, A::ES256];
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    assert_eq!(check(&op, &t, &p).unwrap().alg(), A::ES256);
    check(&op, &new, &p).unwrap();

    // The served JWKS follows, and fetches are counted.
    let body = http_client()
        .get(op.url("/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, op.jwks_json());
    op.set_jwks(&[("only", KeyChoice::Rsa1)]);
    assert_eq!(keys(&op).kids(), vec!["only"]);
    assert_eq!(op.jwks_fetches(), 1);
}

#[actix_web::test]
async fn tripwire_counts_hits() {
    let trip = Tripwire::start();
    assert_eq!(trip.hits(), 0);
    let r = http_client().get(trip.url("/keys")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["keys"][0]["kid"], "attacker");
    assert_eq!(trip.hits(), 1);
    assert_eq!(trip.request_lines(), vec!["GET /keys HTTP/1.1".to_owned()]);
}

#[actix_web::test]
async fn realm_yaml_loads() {
    let op = FakeOp::start().await;
    let r = realm_config(&op, "oidc1", 0, "code", &[]);
    assert_eq!(r.name, "oidc1");
    assert_eq!(r.order, 0);
    assert_eq!(r.rp.client_id, CLIENT_ID);
    assert_eq!(r.rp.client_secret.expose_secret(), CLIENT_SECRET);
    assert_eq!(r.rp.redirect_uri.as_str(), REDIRECT_URI);
    assert_eq!(r.rp.response_type, ResponseType::Code);
    assert_eq!(r.op.issuer, op.issuer());
    match &r.op.jwkset {
        JwksSource::Url(u) => assert_eq!(u.as_str(), op.url("/jwks")),
        other => panic!("{other:?}"),
    }

    let r = realm_config(
        &op,
        "oidc2",
        3,
        "id_token token",
        &[
            ("rp.client_auth_method", "client_secret_jwt"),
            ("op.userinfo_endpoint", ""),
            ("rp.signature_algorithm", "[RS256, ES256]"),
        ],
    );
    assert_eq!(r.rp.response_type, ResponseType::IdTokenToken);
    assert_eq!(r.rp.client_auth_method, ClientAuthMethod::ClientSecretJwt);
    assert!(r.op.userinfo_endpoint.is_none());
    assert_eq!(r.rp.signature_algorithms, vec![A::RS256, A::ES256]);

    // Two realms in one file.
    let yaml = config_yaml(&[
        realm_yaml(&op, "a", 0, "code", &[]),
        realm_yaml(&op, "b", 1, "id_token", &[]),
    ]);
    let loaded = oidc_realm::config::load_str(&yaml, &std::env::temp_dir()).unwrap();
    assert_eq!(loaded.settings.realms.len(), 2);
    assert!(
        loaded.warnings.iter().any(|w| w.contains("client_secret")),
        "{:?}",
        loaded.warnings
    );
}

#[actix_web::test]
async fn pkce_can_be_required_and_a_verifier_needs_a_challenge() {
    let op = FakeOp::start().await;
    // A verifier without a challenge.
    let code = login_code(&op, false).await;
    let (s, _) = post_token(&op, &code_form(&code, Some(VERIFIER)), Some(&basic())).await;
    assert_eq!(s, 400);
    // No PKCE at all: fine by default (ES sends none), refused when required.
    let code = login_code(&op, false).await;
    assert_eq!(
        post_token(&op, &code_form(&code, None), Some(&basic()))
            .await
            .0,
        200
    );
    op.set(|k| k.require_pkce = true);
    let code = login_code(&op, false).await;
    assert_eq!(
        post_token(&op, &code_form(&code, None), Some(&basic()))
            .await
            .0,
        400
    );
    // Wrong redirect_uri at the exchange.
    let code = login_code(&op, true).await;
    let mut form = code_form(&code, Some(VERIFIER));
    form[2].1 = "https://kibana.example.org/other";
    assert_eq!(post_token(&op, &form, Some(&basic())).await.0, 400);
}

#[actix_web::test]
async fn raw_token_signature_and_jwks_redirect_knobs() {
    let op = FakeOp::start().await;
    // A literal ID token through the code flow.
    op.set(|k| k.id_token = Some("a.b.c.d.e".into()));
    let code = login_code(&op, false).await;
    let (s, body) = post_token(&op, &code_form(&code, None), Some(&basic())).await;
    assert_eq!((s, body["id_token"].as_str()), (200, Some("a.b.c.d.e")));
    assert_refused(
        check(&op, "a.b.c.d.e", &policy(&op)),
        "encrypted_token",
        "JWE",
    );

    // ES256 "psychic signature": 64 zero bytes.
    op.reset_knobs();
    op.set(|k| {
        k.signer = Signer::Key(KeyChoice::Ec256);
        k.signature = Some(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            [0u8; 64],
        ));
    });
    let mut p = policy(&op);
    p.algorithms = vec![A::ES256];
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    assert_refused(check(&op, &t, &p), "bad_signature", "zero ECDSA signature");
    op.set(|k| k.signature = Some(String::new()));
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    assert!(t.ends_with('.'));
    assert_refused(check(&op, &t, &p), "malformed", "empty signature");

    // exp as a string, via the claims knob.
    op.reset_knobs();
    op.set(|k| {
        k.claims.insert("exp".into(), json!("1790000600"));
    });
    let t = op.mint_id_token(json!({"nonce": NONCE}));
    assert_refused(check(&op, &t, &policy(&op)), "invalid_claim", "string exp");

    // JWKS redirect.
    op.set(|k| k.jwks_redirect = Some("http://169.254.169.254/latest".into()));
    let r = http_client().get(op.url("/jwks")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], "http://169.254.169.254/latest");
}
