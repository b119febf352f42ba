//! The pitfall table, row by row: every row of `shared/research/user-needs.md` §2 ("Top 20
//! security pitfalls and CVEs — with concrete test inputs") has a test here named after it
//! (`row_NN_<short_name>`), which sends that row's bad inputs through HTTP (the real
//! `configure()`, the in-process fake OP of `tests/common/fake_op.rs`) and asserts the refusal
//! *and* its reason: the status, Elasticsearch's error type and the `reason_code` (or the
//! OAuth/Elasticsearch reason text where there is no code). Some rows are also covered by
//! longer scenario tests elsewhere (`oidc_login.rs`, `api_tokens.rs`, `hardening_*.rs`); this
//! file keeps the whole table in one place.
//!
//! Parts of a row that cannot apply to oidc-realm say so in a `// row NN ...: not applicable
//! because ...` comment next to the row's test.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::fake_op::*;
use common::login::*;
use common::*;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Elasticsearch's generic reason for every failed OIDC login.
const AUTHN_FAILED: &str =
    "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// This file's logins do not name the realm in the authenticate body.
impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn authenticate(&self, redirect_uri: &str, state: &str, nonce: &str) -> (u16, Value) {
        let (s, _, b) = self
            .authenticate_full(FACILITATOR, redirect_uri, state, nonce, None)
            .await;
        (s, b)
    }

    async fn prepared(&self, realm: &str) -> (String, String) {
        let (s, p) = self.prepare(json!({ "realm": realm })).await;
        assert_eq!(s, 200, "{p}");
        (
            p["state"].as_str().unwrap().to_string(),
            p["nonce"].as_str().unwrap().to_string(),
        )
    }

    /// A whole code-flow (or implicit-flow, through `/authorize`) login under the current knobs.
    async fn login(&self) -> (u16, Value) {
        let l = self.start_login().await;
        self.authenticate(&l.callback, &l.state, &l.nonce).await
    }

    /// An implicit-flow login (realm `oidc1`, response type `id_token`) whose ID token is
    /// `mint(op, nonce)`, delivered in the fragment as the OP would.
    async fn implicit(&self, mint: impl FnOnce(&FakeOp, &str) -> String) -> (u16, Value) {
        let (state, nonce) = self.prepared("oidc1").await;
        let token = mint(&self.op, &nonce);
        let redirect = fragment_redirect(&[("id_token", &token), ("state", &state)]);
        self.authenticate(&redirect, &state, &nonce).await
    }

    /// [`Env::implicit`] with the OP's token under the current knobs.
    async fn implicit_op(&self) -> (u16, Value) {
        self.implicit(|op, nonce| op.mint_id_token(json!({ "nonce": nonce })))
            .await
    }
}

/// A refused login: 401, Elasticsearch's generic body, and this reason code.
#[track_caller]
fn assert_refused(resp: &(u16, Value), code: &str) {
    let (s, b) = resp;
    assert_eq!(b["error"]["reason_code"], code, "{b}");
    assert_eq!(*s, 401, "{b}");
    assert_eq!(b["error"]["type"], "security_exception", "{b}");
    assert_eq!(b["error"]["reason"], AUTHN_FAILED, "{b}");
    assert_eq!(b["status"], 401, "{b}");
}

/// A 400 of Elasticsearch's shape with this exception type whose reason contains `reason`.
#[track_caller]
fn assert_400(resp: &(u16, Value), kind: &str, reason: &str) {
    let (s, b) = resp;
    assert_eq!(*s, 400, "{b}");
    assert_eq!(b["error"]["type"], kind, "{b}");
    assert!(
        b["error"]["reason"].as_str().unwrap_or("").contains(reason),
        "expected a reason containing {reason:?}: {b}"
    );
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS with this header and payload (raw bytes: may be anything), HMAC-SHA-256
/// signed with the client secret: a token an HS256 realm accepts as authentic, so that what
/// comes after the signature check (payload parsing) is reached.
fn hs256(header: &str, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, CLIENT_SECRET.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a valid ID token for the fake OP's default client at the OP's time.
fn good_claims(op: &FakeOp, nonce: &str) -> Map<String, Value> {
    let now = op.now_secs();
    json!({
        "iss": op.issuer(), "sub": "alice", "aud": CLIENT_ID,
        "exp": now + 600, "iat": now, "nonce": nonce,
    })
    .as_object()
    .unwrap()
    .clone()
}

fn config_of(blocks: &[String]) -> Result<oidc_realm::config::Loaded, String> {
    oidc_realm::config::load_str(&config_yaml(blocks), &std::env::temp_dir())
        .map_err(|e| e.to_string())
}

/// The least of three runs of `f`: a time bound that scheduling noise on a shared machine
/// does not break.
fn fastest<T>(mut f: impl FnMut() -> T) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Rows 1–4: algorithms and keys
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn row_01_alg_none_is_refused_and_never_configurable() {
    let e = env("code", &[]).await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        e.op.set(|k| k.unsigned(alg));
        assert_refused(&e.login().await, "alg_not_allowed");
    }
    // With a signature part that is not empty either.
    e.op.set(|k| {
        k.unsigned("none");
        k.signature = Some(b64(b"sig"));
    });
    assert_refused(&e.login().await, "alg_not_allowed");
    // No realm can be configured to accept it.
    for algs in ["[none]", "[RS256, none]", "[NONE]"] {
        let block = realm_yaml(
            &e.op,
            "oidc1",
            0,
            "code",
            &[("rp.signature_algorithm", algs)],
        );
        let err = config_of(&[block]).unwrap_err();
        assert!(
            err.contains("unsigned ID tokens are never accepted"),
            "{algs}: {err}"
        );
    }
    e.op.reset_knobs();
    assert_eq!(e.login().await.0, 200, "a signed token still logs in");
}

#[actix_web::test]
async fn row_02_rs_hs_algorithm_confusion() {
    // An RS256-only realm refuses HS256 however it is keyed.
    let e = env("code", &[]).await;
    for signer in [
        Signer::PublicKeyPem,
        Signer::PublicKeyModulus,
        Signer::ClientSecret,
    ] {
        e.op.set(|k| k.signer = signer.clone());
        assert_refused(&e.login().await, "alg_not_allowed");
    }
    // A realm that allows HS256 next to RS256 keys HMAC with the client secret only, never with
    // JWKS material: the public-key-keyed tokens fail their signature, the secret-keyed one
    // passes.
    let e = env("code", &[("rp.signature_algorithm", "[RS256, HS256]")]).await;
    for signer in [Signer::PublicKeyPem, Signer::PublicKeyModulus] {
        e.op.set(|k| k.signer = signer.clone());
        assert_refused(&e.login().await, "bad_signature");
    }
    e.op.set(|k| k.signer = Signer::ClientSecret);
    assert_eq!(e.login().await.0, 200);
}

#[actix_web::test]
async fn row_03_mixed_family_allowlist_matches_kid_and_key_type() {
    let e = env("code", &[("rp.signature_algorithm", "[RS256, ES256]")]).await;
    // ES256 signature naming the RSA key, RS256 signature naming the EC key.
    e.op.set(|k| {
        k.signer = Signer::Key(KeyChoice::Ec256);
        k.kid = Kid::Value("rsa1".into());
    });
    assert_refused(&e.login().await, "key_alg_mismatch");
    e.op.set(|k| {
        k.signer = Signer::OpKey;
        k.kid = Kid::Value("ec256".into());
    });
    assert_refused(&e.login().await, "key_alg_mismatch");
    // An ES384 key named for an ES256 token: the curve counts too.
    e.op.set(|k| {
        k.signer = Signer::Key(KeyChoice::Ec256);
        k.kid = Kid::Value("ec384".into());
    });
    assert_refused(&e.login().await, "key_alg_mismatch");
    // Both families work when kid and key agree.
    e.op.set(|k| {
        k.signer = Signer::Key(KeyChoice::Ec256);
        k.kid = Kid::Auto;
    });
    assert_eq!(e.login().await.0, 200);
    e.op.reset_knobs();
    assert_eq!(e.login().await.0, 200);
}

#[actix_web::test]
async fn row_04_key_material_in_the_header_and_kid_injection() {
    let e = env("code", &[]).await;
    let tripwire = Tripwire::start();
    let fetches = |e: &FakeOp| e.jwks_fetches();
    // Embedded jwk, jku and x5u: refused before any key is looked at; nothing fetched.
    e.op.set(|k| k.embed_attacker_jwk());
    assert_refused(&e.login().await, "forbidden_header");
    for (param, path) in [("jku", "/keys"), ("x5u", "/cert.pem")] {
        let url = tripwire.url(path);
        e.op.reset_knobs();
        e.op.set(|k| match param {
            "jku" => k.jku(&url),
            _ => k.x5u(&url),
        });
        assert_refused(&e.login().await, "forbidden_header");
    }
    // x5c is ignored: the attacker key "certified" in it is not used, the JWKS key is.
    e.op.reset_knobs();
    e.op.set(|k| {
        k.signer = Signer::Key(KeyChoice::AttackerRsa);
        k.kid = Kid::Value("rsa1".into());
        k.header
            .insert("x5c".into(), json!([STANDARD.encode(b"attacker cert")]));
    });
    assert_refused(&e.login().await, "bad_signature");
    // kid is an opaque map key, capped in length.
    for (kid, code) in [
        ("../../../../dev/null".to_string(), "kid_not_found"),
        ("' OR '1'='1".to_string(), "kid_not_found"),
        ("k".repeat(256), "kid_not_found"),
        ("k".repeat(257), "malformed"),
        ("k".repeat(10_000), "malformed"),
    ] {
        e.op.reset_knobs();
        e.op.set(|k| k.kid = Kid::Value(kid.clone()));
        assert_refused(&e.login().await, code);
    }
    assert_eq!(tripwire.hits(), 0, "{:?}", tripwire.request_lines());
    // Only the configured JWKS URL was ever fetched (once at the first login; the unknown kids
    // all came within one refetch interval, so at most one more).
    assert!(fetches(&e.op) <= 2, "{:?}", e.op.counts());
    assert!(e
        .op
        .requests()
        .iter()
        .all(|r| ["/authorize", "/token", "/userinfo", "/jwks"].contains(&r.path.as_str())));
    e.op.reset_knobs();
    assert_eq!(e.login().await.0, 200);
}

// ---------------------------------------------------------------------------------------------
// Rows 5–7: JWKS fetching and signatures
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn row_05_unknown_kid_storm_fetches_the_jwks_at_most_once_per_interval() {
    let e = env("id_token", &[]).await;
    assert_eq!(e.implicit_op().await.0, 200);
    assert_eq!(e.op.jwks_fetches(), 1);
    e.t.advance(Duration::from_secs(31));

    // 200 logins with random kids, 100 of them at once.
    let mut flows = Vec::new();
    for i in 0..100 {
        let (state, nonce) = e.prepared("oidc1").await;
        e.op.set(|k| k.kid = Kid::Value(format!("storm-{i}-{}", "x".repeat(i % 7))));
        let token = e.op.mint_id_token(json!({ "nonce": nonce }));
        flows.push((
            fragment_redirect(&[("id_token", &token), ("state", &state)]),
            state,
            nonce,
        ));
    }
    let results = futures_util::future::join_all(
        flows
            .iter()
            .map(|(redirect, state, nonce)| e.authenticate(redirect, state, nonce)),
    )
    .await;
    for r in &results {
        assert_refused(r, "kid_not_found");
    }
    for i in 0..100 {
        e.op.set(|k| k.kid = Kid::Value(format!("sequential-{i}")));
        assert_refused(&e.implicit_op().await, "kid_not_found");
    }
    assert_eq!(
        e.op.jwks_fetches(),
        2,
        "one refetch for the whole storm: {:?}",
        e.op.counts()
    );
    // The cached keys were kept: a valid token logs in without another fetch.
    e.op.reset_knobs();
    assert_eq!(e.implicit_op().await.0, 200);
    assert_eq!(e.op.jwks_fetches(), 2);
    // The next interval allows one more fetch, no more.
    e.t.advance(Duration::from_secs(31));
    for i in 0..20 {
        e.op.set(|k| k.kid = Kid::Value(format!("later-{i}")));
        assert_refused(&e.implicit_op().await, "kid_not_found");
    }
    assert_eq!(e.op.jwks_fetches(), 3);
}

#[actix_web::test]
async fn row_06_jwks_fetch_ssrf_redirects_size_and_time() {
    // Plain http to a non-loopback host is refused when the configuration is read, for the
    // JWKS and every other OP endpoint: nothing is ever fetched from it.
    let op = FakeOp::start().await;
    for key in [
        "op.jwkset_path",
        "op.token_endpoint",
        "op.userinfo_endpoint",
        "op.authorization_endpoint",
    ] {
        let block = realm_yaml(
            &op,
            "oidc1",
            0,
            "code",
            &[(key, "http://jwks.example.invalid/keys")],
        );
        let err = config_of(&[block]).unwrap_err();
        assert!(err.contains(key), "{key}: {err}");
        assert!(err.to_lowercase().contains("https"), "{key}: {err}");
    }
    op.stop().await;

    let e = env("id_token", &[("http.socket_timeout", "1s")]).await;
    let tripwire = Tripwire::start();
    let last_error = |status: &Value| {
        status["realms"]["oidc1"]["jwks"]["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // A JWKS URL that redirects (to a metadata-like target) is not followed.
    let target = tripwire.url("/latest/meta-data/");
    e.op.set(|k| k.jwks_redirect = Some(target.clone()));
    assert_refused(&e.implicit_op().await, "jwks_unavailable");
    assert!(
        last_error(&e.status().await).contains("redirect"),
        "{}",
        e.status().await
    );
    assert_eq!(tripwire.hits(), 0, "the redirect was followed");

    // A JWKS larger than 1 MiB is refused without being kept.
    e.t.advance(Duration::from_secs(31));
    e.op.set(|k| {
        k.jwks_redirect = None;
        k.jwks_body = Some(format!(
            "{{\"keys\":[],\"pad\":\"{}\"}}",
            "a".repeat(2 << 20)
        ));
    });
    assert_refused(&e.implicit_op().await, "jwks_unavailable");
    assert!(
        last_error(&e.status().await).contains("larger than"),
        "{}",
        e.status().await
    );

    // A JWKS endpoint that never answers: the socket timeout (1 s here) ends the wait.
    e.t.advance(Duration::from_secs(31));
    e.op.set(|k| {
        k.jwks_body = None;
        k.jwks_delay = Some(Duration::from_secs(30));
    });
    let started = Instant::now();
    assert_refused(&e.implicit_op().await, "jwks_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Once keys are loaded, a failing refetch (redirect, oversize, timeout) keeps them.
    e.t.advance(Duration::from_secs(31));
    e.op.reset_knobs();
    assert_eq!(e.implicit_op().await.0, 200);
    let fetches = e.op.jwks_fetches();
    e.t.advance(Duration::from_secs(31));
    e.op.set(|k| k.jwks_redirect = Some(target.clone()));
    e.op.set(|k| k.kid = Kid::Value("rotated-away".into()));
    assert_refused(&e.implicit_op().await, "kid_not_found");
    assert_eq!(e.op.jwks_fetches(), fetches + 1);
    e.op.set(|k| k.kid = Kid::Auto);
    assert_eq!(e.implicit_op().await.0, 200, "the last good keys were kept");
    assert_eq!(tripwire.hits(), 0);
}

// row 06 (discovery document whose `jwks_uri` is http:// or redirects): not applicable because
// oidc-realm, like Elasticsearch's OIDC realm, reads no discovery document: every OP endpoint
// is configured explicitly and checked by the test above when the configuration is read.

/// The DER encoding (RFC 3279 `Ecdsa-Sig-Value`) of a raw `r || s` ECDSA signature.
fn der_ecdsa(raw: &[u8]) -> Vec<u8> {
    fn int(x: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        if v.is_empty() || v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[actix_web::test]
async fn row_07_psychic_and_malformed_ecdsa_signatures() {
    let e = env("id_token", &[("rp.signature_algorithm", "ES256")]).await;
    e.op.set(|k| k.signer = Signer::Key(KeyChoice::Ec256));
    assert_eq!(e.implicit_op().await.0, 200);
    // P-256 group order n.
    let n: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut r_is_n = n.to_vec();
    r_is_n.extend([0u8; 31].iter().chain([1u8].iter()));
    let signatures = [
        // CVE-2022-21449: r = s = 0.
        b64(&[0u8; 64]),
        // The same as DER: SEQUENCE { INTEGER 0, INTEGER 0 }.
        "MAYCAQACAQA".to_string(),
        // r = n (out of range), s = 1.
        b64(&r_is_n),
        // r, s ≥ n.
        b64(&[0xffu8; 64]),
        // Wrong length.
        b64(&[1u8; 63]),
        b64(&[1u8; 65]),
    ];
    for sig in signatures {
        e.op.set(|k| k.signature = Some(sig.clone()));
        assert_refused(&e.implicit_op().await, "bad_signature");
    }
    // A valid signature DER-encoded instead of raw r || s (JWS requires the raw form).
    e.op.set(|k| k.signature = None);
    let resp = e
        .implicit(|op, nonce| {
            let token = op.mint_id_token(json!({ "nonce": nonce }));
            let (input, sig) = token.rsplit_once('.').unwrap();
            let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert_eq!(raw.len(), 64);
            format!("{input}.{}", b64(&der_ecdsa(&raw)))
        })
        .await;
    assert_refused(&resp, "bad_signature");
    // An empty signature is no signature.
    e.op.set(|k| k.signature = Some(String::new()));
    assert_refused(&e.implicit_op().await, "malformed");
    e.op.set(|k| k.signature = None);
    assert_eq!(e.implicit_op().await.0, 200);
}

// ---------------------------------------------------------------------------------------------
// Rows 8–11: nonce, state, redirects, allow-lists
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn row_08_nonce_missing_foreign_or_replayed() {
    let e = env("code", &[]).await;
    // (a) The ID token carries no nonce though prepare sent one.
    e.op.set(|k| k.nonce = Param::Drop);
    assert_refused(&e.login().await, "nonce_missing");
    // (b) The nonce of another prepare.
    e.op.reset_knobs();
    let first = e.start_login().await;
    let (_, other_nonce) = e.prepared("oidc1").await;
    e.op.set(|k| k.nonce = Param::Replace(other_nonce.clone()));
    assert_refused(
        &e.authenticate(&first.callback, &first.state, &first.nonce)
            .await,
        "nonce_mismatch",
    );
    // The facilitator presenting a nonce other than the prepared one.
    e.op.reset_knobs();
    let l = e.start_login().await;
    assert_refused(
        &e.authenticate(&l.callback, &l.state, &other_nonce).await,
        "nonce_mismatch",
    );
    // A non-string nonce claim.
    e.op.set(|k| {
        k.claims.insert("nonce".into(), json!(12345));
    });
    assert_refused(&e.login().await, "invalid_claim");

    // (c) The same ID token and nonce twice: the nonce (and its state) are single-use; the
    // token replayed into a new login fails on that login's nonce.
    let e = env("id_token", &[]).await;
    let (state, nonce) = e.prepared("oidc1").await;
    let token = e.op.mint_id_token(json!({ "nonce": nonce }));
    let redirect = fragment_redirect(&[("id_token", &token), ("state", &state)]);
    assert_eq!(e.authenticate(&redirect, &state, &nonce).await.0, 200);
    assert_refused(
        &e.authenticate(&redirect, &state, &nonce).await,
        "flow_unknown",
    );
    let (state2, nonce2) = e.prepared("oidc1").await;
    let replayed = fragment_redirect(&[("id_token", &token), ("state", &state2)]);
    assert_refused(
        &e.authenticate(&replayed, &state2, &nonce2).await,
        "nonce_mismatch",
    );
}

// row 08 (refreshed ID tokens may lack a nonce): not applicable because oidc-realm never
// refreshes at the OP: it validates exactly one ID token per login, always an authentication
// response whose request carried a nonce, so the nonce check is never skipped.

#[actix_web::test]
async fn row_09_state_missing_foreign_mismatched_or_replayed() {
    let e = env_with(|op| {
        vec![
            realm_config(op, "oidc1", 0, "code", &[]),
            realm_config(op, "oidc2", 1, "code", &[]),
        ]
    })
    .await;
    // (a) No state in the OP's redirect; no state in the request.
    e.op.set(|k| k.state = Param::Drop);
    assert_refused(&e.login().await, "state_missing");
    e.op.reset_knobs();
    let l = e.start_login().await;
    let (s, b) = e
        .call(
            post_json(
                "/_security/oidc/authenticate",
                json!({"redirect_uri": l.callback, "nonce": l.nonce}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_400(
        &(s, b),
        "action_request_validation_exception",
        "state parameter is missing",
    );
    // (b) The state of another prepare.
    let other = e.start_login().await;
    assert_refused(
        &e.authenticate(&l.callback, &other.state, &other.nonce)
            .await,
        "state_mismatch",
    );
    // The OP redirect's state replaced by another value.
    e.op.set(|k| k.state = Param::Replace("forged-state".into()));
    let forged = e.start_login().await;
    assert_refused(
        &e.authenticate(&forged.callback, &forged.state, &forged.nonce)
            .await,
        "state_mismatch",
    );
    e.op.reset_knobs();
    // (c) The right state with the wrong redirect_uri, realm or caller.
    let mismatch = e.start_login().await;
    let wrong_path_m = mismatch.callback.replace(
        "/api/security/oidc/callback",
        "/api/security/oidc/elsewhere",
    );
    assert_refused(
        &e.authenticate(&wrong_path_m, &mismatch.state, &mismatch.nonce)
            .await,
        "redirect_uri_mismatch",
    );
    let (s, p) = e.prepare(json!({"realm": "oidc2"})).await;
    assert_eq!(s, 200);
    let cb2 = e.op.browser_login(p["redirect"].as_str().unwrap()).await;
    let (st2, n2) = (p["state"].as_str().unwrap(), p["nonce"].as_str().unwrap());
    let (s, _, b) = e
        .authenticate_full(FACILITATOR, &cb2, st2, n2, Some("oidc1"))
        .await;
    assert_refused(&(s, b), "flow_other_realm");
    let (s, _, b) = e
        .authenticate_full(OTHER_FACILITATOR, &cb2, st2, n2, None)
        .await;
    assert_refused(&(s, b), "flow_other_caller");
    // Neither burnt the login: its facilitator finishes it, for its realm...
    let (s, _, b) = e
        .authenticate_full(FACILITATOR, &cb2, st2, n2, Some("oidc2"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["authentication_realm"]["name"], "oidc2");
    // (d) ...once.
    let (s, _, b) = e
        .authenticate_full(FACILITATOR, &cb2, st2, n2, Some("oidc2"))
        .await;
    assert_refused(&(s, b), "flow_unknown");
    // The first login of this test is still pending and still works.
    assert_eq!(e.authenticate(&l.callback, &l.state, &l.nonce).await.0, 200);
    assert_refused(
        &e.authenticate(&l.callback, &l.state, &l.nonce).await,
        "flow_unknown",
    );
}

#[actix_web::test]
async fn row_10_open_redirect_targets_are_never_followed_or_echoed() {
    let e = env("code", &[]).await;
    let corpus = include_str!("fixtures/open-redirects.txt");
    let mut targets: Vec<String> = corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    // The row's own list, against the configured https://kibana.example.org origin.
    targets.extend(
        [
            "//evil.com",
            "/\\evil.com",
            "/%5Cevil.com",
            "/%09/evil.com",
            "%2f%5cevil.com",
            "https://evil.com\\.kibana.example.org",
            "https://kibana.example.org@evil.com",
            "https://a@b@evil.com/",
            "https://kibana.example.org/..;/x",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://kibana.example.org.evil.com",
            "http://kibana.example.org/api/security/oidc/callback",
            "https://kibana.example.org/api/security/oidc/callback/..;/x",
            "https://kibana.example.org:8443/api/security/oidc/callback",
        ]
        .map(str::to_string),
    );
    for target in &targets {
        let l = e.start_login().await;
        let code_and_state = l.callback.split_once('?').unwrap().1;
        let forged = format!("{target}?{code_and_state}");
        let (s, b) = e.authenticate(&forged, &l.state, &l.nonce).await;
        let code = b["error"]["reason_code"].as_str().unwrap_or("");
        assert!(
            ["redirect_uri_invalid", "redirect_uri_mismatch"].contains(&code),
            "{target}: {b}"
        );
        assert_refused(&(s, b.clone()), code);
        assert!(!b.to_string().contains("evil"), "echoed: {b}");
    }
    assert_eq!(e.op.hits("/token"), 0, "no code was exchanged");

    // No request can name where the browser goes: prepare has no target_link_uri, logout no
    // post_logout_redirect_uri (Elasticsearch's parsers refuse unknown fields).
    let (s, b) = e
        .prepare(json!({"realm": "oidc1", "target_link_uri": "https://evil.com"}))
        .await;
    assert_400(
        &(s, b.clone()),
        "x_content_parse_exception",
        "unknown field [target_link_uri]",
    );
    assert!(!b.to_string().contains("evil"), "{b}");
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    let access = b["access_token"].as_str().unwrap().to_string();
    let logout =
        |body: Value| post_json("/_security/oidc/logout", body).insert_header(basic(FACILITATOR));
    let (s, b) = e
        .call(logout(
            json!({"token": access, "post_logout_redirect_uri": "https://evil.com"}),
        ))
        .await;
    assert_400(
        &(s, b),
        "x_content_parse_exception",
        "unknown field [post_logout_redirect_uri]",
    );
    // The logout redirect carries the configured post-logout URI, exactly.
    let (s, out) = e.call(logout(json!({ "token": access }))).await;
    assert_eq!(s, 200, "{out}");
    let url = url::Url::parse(out["redirect"].as_str().unwrap()).unwrap();
    let post: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "post_logout_redirect_uri")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(post, vec![POST_LOGOUT_REDIRECT_URI.to_string()]);
    assert!(url.as_str().starts_with(&e.op.url("/logout?")));
}

// row 10 (in-app post-login redirects, `target_link_uri`): not applicable because oidc-realm
// keeps no return URL: prepare takes no `target_link_uri` (refused above), the facilitator
// (Kibana) decides where the user goes after login, and logout uses only the configured
// `rp.post_logout_redirect_uri`.

#[actix_web::test]
async fn row_11_domain_suffix_lookalikes_do_not_match() {
    // oidc-realm has no email-domain allow-list (Elasticsearch neither); the places where an
    // operator restricts a domain are role-mapping wildcards and claim patterns. Both match
    // at the `@`, not at a bare suffix.
    let e = env("code", &[("claims.principal", "email")]).await;
    e.put_mapping(
        "corp",
        json!({"enabled": true, "roles": ["corp_user"],
               "rules": {"field": {"username": "*@example.com"}}}),
    )
    .await;
    for (email, roles) in [
        ("alice@example.com", json!(["corp_user"])),
        ("alice@evilexample.com", json!([])),
        ("alice@example.com.evil.net", json!([])),
        ("example.com:443@evil.net", json!([])),
        ("alice@example.com@evil.net", json!([])),
    ] {
        e.op.set(|k| k.user.email = Some(email.into()));
        let (s, b) = e.login().await;
        assert_eq!(s, 200, "{email}: {b}");
        assert_eq!(b["username"], email);
        assert_eq!(b["authentication"]["roles"], roles, "{email}");
    }
    // An anchored claim pattern refuses the look-alikes outright.
    let e = env(
        "code",
        &[
            ("claims.principal", "email"),
            ("claim_patterns.principal", r"^([^@]+)@example\.com$"),
        ],
    )
    .await;
    for email in [
        "alice@evilexample.com",
        "alice@example.com.evil.net",
        "alice@example.com:443@evil.net",
    ] {
        e.op.set(|k| k.user.email = Some(email.into()));
        assert_refused(&e.login().await, "principal_missing");
    }
    e.op.set(|k| k.user.email = Some("alice@example.com".into()));
    let (s, b) = e.login().await;
    assert_eq!((s, b["username"].clone()), (200, json!("alice")), "{b}");
}

// row 11 (an `email_domain`/`.example.com` allow-list): not applicable because oidc-realm has
// no domain allow-list setting; the equivalent restrictions (role-mapping wildcards, claim
// patterns) are tested above.

// ---------------------------------------------------------------------------------------------
// Rows 12–15: patterns, identifiers, iss/aud, time
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn row_12_unanchored_patterns_in_role_rules_and_claim_patterns() {
    let e = env("code", &[]).await;
    for (name, value, role) in [
        ("admins", "/admins/", "admin"),
        ("devops", "/dev|ops/", "devops"),
        ("corp", "corp.example", "corp"),
        ("redos", "/(a+)+b/", "redos"),
    ] {
        e.put_mapping(
            name,
            json!({"enabled": true, "roles": [role], "rules": {"field": {"groups": value}}}),
        )
        .await;
    }
    // Role-mapping regexes match the whole value (Lucene semantics); a string without `*` or
    // slashes is a literal, its `.` included.
    for (groups, roles) in [
        (json!(["not-admins-really"]), json!([])),
        (json!(["admins"]), json!(["admin"])),
        (json!(["devil", "laptops"]), json!([])),
        (json!(["dev"]), json!(["devops"])),
        (json!(["corpXexample"]), json!([])),
        (json!(["corp.example"]), json!(["corp"])),
    ] {
        e.op.set(|k| k.user.groups = Some(groups.clone()));
        let (s, b) = e.login().await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["authentication"]["roles"], roles, "{groups}");
    }
    // A catastrophic-backtracking pattern against 50 KB: linear-time engine.
    e.op.set(|k| {
        k.user.groups = Some(json!([]));
        k.userinfo_claims
            .insert("groups".into(), json!(["a".repeat(50_000)]));
    });
    let started = Instant::now();
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!([]));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // claim_patterns follow Elasticsearch (searched, not whole-value): every pattern that is
    // not anchored is warned about when the configuration is read...
    for (pattern, warning) in [
        ("(admins)", "is not anchored"),
        (r"([^@]+)@corp\.example", "is not anchored"),
        ("^(dev)|(ops)$", "top-level `|`"),
    ] {
        let block = realm_yaml(
            &e.op,
            "oidc1",
            0,
            "code",
            &[("claim_patterns.principal", pattern)],
        );
        let loaded = config_of(&[block]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("claim_patterns.principal") && w.contains(warning)),
            "{pattern}: {:?}",
            loaded.warnings
        );
    }
    let block = realm_yaml(
        &e.op,
        "oidc1",
        0,
        "code",
        &[("claim_patterns.principal", r"^([^@]+)@corp\.example$")],
    );
    let loaded = config_of(&[block]).unwrap();
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.contains("claim_patterns.principal")),
        "{:?}",
        loaded.warnings
    );
    // A catastrophic-backtracking claim pattern against 50 KB: linear time too.
    let e2 = env(
        "code",
        &[
            ("claim_patterns.groups", "^((a+)+)$"),
            ("claims.groups", "groups"),
        ],
    )
    .await;
    e2.op.set(|k| {
        k.user.groups = Some(json!([]));
        k.userinfo_claims
            .insert("groups".into(), json!([format!("{}!", "a".repeat(50_000))]));
    });
    let started = Instant::now();
    let (s, b) = e2.login().await;
    assert_eq!(s, 200, "{b}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // ...and an anchored one with an escaped dot refuses the look-alike.
    let e = env(
        "code",
        &[
            ("claims.principal", "email"),
            ("claim_patterns.principal", r"^([^@]+)@corp\.example$"),
        ],
    )
    .await;
    e.op.set(|k| k.user.email = Some("alice@corpXexample".into()));
    assert_refused(&e.login().await, "principal_missing");
}

#[actix_web::test]
async fn row_13_identifier_tricks_are_not_normalised_into_a_match() {
    let e = env("code", &[]).await;
    e.put_mapping(
        "by_name",
        json!({"enabled": true, "roles": ["admin_by_name"],
               "rules": {"field": {"username": "admin"}}}),
    )
    .await;
    e.put_mapping(
        "by_group",
        json!({"enabled": true, "roles": ["admin_by_group"],
               "rules": {"field": {"groups": "admin"}}}),
    )
    .await;
    // `sub` is case-sensitive and kept as sent.
    e.op.set(|k| {
        k.user.groups = None;
        k.user.sub = "Admin".into();
    });
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "Admin");
    assert_eq!(b["authentication"]["roles"], json!([]));
    e.op.set(|k| k.user.sub = "admin".into());
    let (_, b) = e.login().await;
    assert_eq!(b["authentication"]["roles"], json!(["admin_by_name"]));
    // Whitespace, look-alike Unicode and a list in one string are never trimmed, folded or split.
    e.op.set(|k| k.user.sub = "someone".into());
    for groups in [
        json!([" admin"]),
        json!(["admin "]),
        json!(["ａｄｍｉｎ"]),
        json!(["admin\u{200b}"]),
        json!("admin,superuser"),
        json!(["admin,superuser"]),
    ] {
        e.op.set(|k| k.user.groups = Some(groups.clone()));
        let (s, b) = e.login().await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["authentication"]["roles"], json!([]), "{groups}");
    }
    e.op.set(|k| k.user.groups = Some(json!(["admin"])));
    let (_, b) = e.login().await;
    assert_eq!(b["authentication"]["roles"], json!(["admin_by_group"]));
    // `email_verified` as the string "false" is kept as a string, never read as a boolean.
    e.op.set(|k| {
        k.user.extra.insert("email_verified".into(), json!("false"));
    });
    let (_, b) = e.login().await;
    assert_eq!(
        b["authentication"]["metadata"]["oidc(email_verified)"],
        json!("false"),
        "{b}"
    );

    // A double `@` against an anchored mail pattern: one `@` exactly.
    let e = env(
        "code",
        &[
            ("claims.principal", "email"),
            ("claim_patterns.principal", r"^([^@]+)@corp\.com$"),
        ],
    )
    .await;
    for email in ["a@evil.com@corp.com", "admin@corp.com ", "Admin@Corp.com"] {
        e.op.set(|k| k.user.email = Some(email.into()));
        assert_refused(&e.login().await, "principal_missing");
    }
}

// row 13 (`email_verified` must be boolean `true` when required; case-folding of emails):
// not applicable because oidc-realm, like Elasticsearch, has no "require a verified email"
// setting and never normalises a claim: the test above shows the values are kept verbatim.

#[actix_web::test]
async fn row_14_issuer_audience_and_azp_confusion() {
    let e = env("code", &[]).await;
    let issuer = e.op.issuer();
    type Knob = Box<dyn Fn(&mut Knobs)>;
    let cases: Vec<(Knob, &str)> = vec![
        (
            Box::new(|k: &mut Knobs| k.aud = Some(json!("other-client"))),
            "aud_mismatch",
        ),
        (
            Box::new(|k: &mut Knobs| k.aud = Some(json!(["other-client", "another"]))),
            "aud_mismatch",
        ),
        (
            Box::new(|k: &mut Knobs| k.aud = Some(json!([CLIENT_ID, "other"]))),
            "azp_missing",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.aud = Some(json!([CLIENT_ID, "other"]));
                k.azp = Some("other".into());
            }),
            "azp_mismatch",
        ),
        (
            Box::new(|k: &mut Knobs| k.azp = Some("other".into())),
            "azp_mismatch",
        ),
        (
            Box::new(|k: &mut Knobs| k.aud = Some(json!([]))),
            "invalid_claim",
        ),
        (
            Box::new(|k: &mut Knobs| k.aud = Some(json!(42))),
            "invalid_claim",
        ),
        (
            Box::new(move |k: &mut Knobs| k.iss = Some(format!("{issuer}/"))),
            "iss_mismatch",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.iss = Some("https://login.example.com/other-tenant/v2.0".into())
            }),
            "iss_mismatch",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("iss".into(), Value::Null);
            }),
            "missing_claim",
        ),
    ];
    for (knob, code) in cases {
        e.op.reset_knobs();
        e.op.set(|k| knob(k));
        assert_refused(&e.login().await, code);
    }
    // Case matters in iss.
    e.op.reset_knobs();
    let upper = e.op.issuer().replace("http://", "HTTP://");
    e.op.set(|k| k.iss = Some(upper));
    assert_refused(&e.login().await, "iss_mismatch");
    // Several audiences with azp = our client id: accepted (Core §3.1.3.7 steps 3–5).
    e.op.reset_knobs();
    e.op.set(|k| {
        k.aud = Some(json!([CLIENT_ID, "other"]));
        k.azp = Some(CLIENT_ID.into());
    });
    assert_eq!(e.login().await.0, 200);
}

// row 14 (multi-tenant `{tenantid}` issuer templating): not applicable because oidc-realm has
// no issuer templating; `op.issuer` is compared byte for byte (tested above).

#[actix_web::test]
async fn row_15_time_claims() {
    let e = env("code", &[]).await;
    type Knob = Box<dyn Fn(&mut Knobs)>;
    let cases: Vec<(Knob, &str)> = vec![
        // exp = now - skew - 1 (skew 60 s).
        (
            Box::new(|k: &mut Knobs| k.exp_offset = Some(-61)),
            "expired",
        ),
        (
            Box::new(|k: &mut Knobs| k.exp_offset = Some(-60)),
            "expired",
        ),
        // nbf = now + skew + 1.
        (
            Box::new(|k: &mut Knobs| k.nbf_offset = Some(61)),
            "not_yet_valid",
        ),
        // iat an hour ahead.
        (
            Box::new(|k: &mut Knobs| k.iat_offset = 3600),
            "issued_in_future",
        ),
        (
            Box::new(|k: &mut Knobs| k.exp_offset = None),
            "missing_claim",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("iat".into(), Value::Null);
            }),
            "missing_claim",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("exp".into(), json!("4102444800"));
            }),
            "invalid_claim",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("exp".into(), json!(4102444800.5));
            }),
            "invalid_claim",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("exp".into(), json!(1e300));
            }),
            "invalid_claim",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("exp".into(), json!(u64::MAX));
            }),
            "invalid_claim",
        ),
        (
            Box::new(|k: &mut Knobs| {
                k.claims.insert("nbf".into(), json!("0"));
            }),
            "invalid_claim",
        ),
    ];
    for (knob, code) in cases {
        e.op.reset_knobs();
        e.op.set(|k| knob(k));
        assert_refused(&e.login().await, code);
    }
    // Inside the skew, in both directions: accepted.
    for knob in [
        Box::new(|k: &mut Knobs| k.exp_offset = Some(-59)) as Knob,
        Box::new(|k: &mut Knobs| k.nbf_offset = Some(60)),
        Box::new(|k: &mut Knobs| k.iat_offset = 60),
    ] {
        e.op.reset_knobs();
        e.op.set(|k| knob(k));
        assert_eq!(e.login().await.0, 200);
    }
    // The skew is bounded: at most 5 minutes.
    let block = realm_yaml(&e.op, "oidc1", 0, "code", &[("allowed_clock_skew", "6m")]);
    let err = config_of(&[block]).unwrap_err();
    assert!(err.contains("must be at most 5m"), "{err}");
    let block = realm_yaml(&e.op, "oidc1", 0, "code", &[("allowed_clock_skew", "5m")]);
    assert!(config_of(&[block]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Rows 16–17: single-use artefacts and refresh reuse
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn row_16_single_use_code_and_logout_token_shapes() {
    let e = env("code", &[]).await;
    let l = e.start_login().await;
    assert_eq!(e.authenticate(&l.callback, &l.state, &l.nonce).await.0, 200);
    // (d) The same code and state again: the login is gone, the code is not sent again.
    assert_refused(
        &e.authenticate(&l.callback, &l.state, &l.nonce).await,
        "flow_unknown",
    );
    assert_eq!(e.op.hits("/token"), 1);
    // The used code under a fresh login's state: exchanged once more, refused by the OP, and
    // no token is issued.
    let (state2, nonce2) = e.prepared("oidc1").await;
    let code = url::Url::parse(&l.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let forged = format!(
        "{REDIRECT_URI}?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &state2)
            .finish()
    );
    assert_refused(
        &e.authenticate(&forged, &state2, &nonce2).await,
        "token_endpoint_rejected",
    );
    assert_eq!(e.op.hits("/token"), 2);
    // (c, inverted) A logout token (typ logout+jwt, an `events` claim) is never an ID token.
    e.op.set(|k| {
        k.header.insert("typ".into(), json!("logout+jwt"));
        k.claims.insert(
            "events".into(),
            json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        );
    });
    assert_refused(&e.login().await, "wrong_type");
    e.op.set(|k| {
        k.header.insert("typ".into(), json!("application/at+jwt"));
    });
    assert_refused(&e.login().await, "wrong_type");
}

// row 16 (a)–(c) (back-channel logout tokens: replayed, carrying a nonce, an ID token posted as
// one): not applicable because oidc-realm has no back-channel logout endpoint (Elasticsearch
// neither; `POST /_security/oidc/logout` takes oidc-realm's own access token). Row 16 (d)'s
// "revoke tokens previously issued from the code" is the OP's duty (RFC 6749 §4.1.2); the
// relying party sees only the OP's refusal, tested above.

#[actix_web::test]
async fn row_17_refresh_token_reuse() {
    let e = env("code", &[]).await;
    let grant = || {
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}),
        )
        .insert_header(basic(FACILITATOR))
    };
    let (s, first) = e.call(grant()).await;
    assert_eq!(s, 200, "{first}");
    let refresh = first["refresh_token"].as_str().unwrap().to_string();
    // (a) Twice within the 30 s window by the same client: the same new pair, as
    // Elasticsearch answers concurrent browser tabs.
    let (s, r1) = e.refresh(FACILITATOR, &refresh).await;
    assert_eq!(s, 200, "{r1}");
    e.t.advance(Duration::from_secs(29));
    let (s, r2) = e.refresh(FACILITATOR, &refresh).await;
    assert_eq!(s, 200, "{r2}");
    assert_eq!(r1["access_token"], r2["access_token"]);
    assert_eq!(r1["refresh_token"], r2["refresh_token"]);
    // (c) By another client: refused.
    let (s, b) = e.refresh(OTHER_FACILITATOR, &refresh).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "tokens must be refreshed by the creating client"})
        )
    );
    // (b) After the window: refused, and the whole family is revoked (a stolen refresh token
    // is detected).
    let new_access = r1["access_token"].as_str().unwrap().to_string();
    assert_eq!(e.whoami(&new_access).await.0, 200);
    e.t.advance(Duration::from_secs(2));
    let (s, b) = e.refresh(FACILITATOR, &refresh).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "token has already been refreshed more than 30 seconds in the past"})
        )
    );
    let (s, b) = e.whoami(&new_access).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");
    let (s, b) = e
        .refresh(FACILITATOR, r1["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "token has been invalidated"})
        )
    );
    // (d) After an invalidation.
    let (_, second) = e.call(grant()).await;
    let refresh2 = second["refresh_token"].as_str().unwrap();
    let (s, b) = e
        .call(
            delete_json(
                "/_security/oauth2/token",
                json!({ "refresh_token": refresh2 }),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = e.refresh(FACILITATOR, refresh2).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "token has been invalidated"})
        )
    );
    // (d) After an OIDC logout.
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = e
        .call(
            post_json(
                "/_security/oidc/logout",
                json!({"token": b["access_token"], "refresh_token": b["refresh_token"]}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = e
        .refresh(FACILITATOR, b["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (s, r["error_description"].clone()),
        (400, json!("token has been invalidated"))
    );
    // An unknown refresh token.
    let (s, r) = e.refresh(FACILITATOR, "orr1_not-a-real-token").await;
    assert_eq!(
        (s, r["error"].clone()),
        (400, json!("invalid_grant")),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------------------
// Row 18: one constant-time helper
// ---------------------------------------------------------------------------------------------

// The tokenizer is tests/common/rust_src.rs (shared with tests/reason_codes.rs): comments
// dropped, string, byte-string, raw-string and char literals told apart (so a literal
// `"token"` never names anything), `#[cfg(test)]` items removed, and adjacent punctuation
// glued into operators (`==`, `!=`, `::`, ...).
use common::rust_src::{glue, rust_files, test_module_files, tokenize, Tok, Token};

/// The tokens of `src` this scan reads: without `#[cfg(test)]` items, operators glued.
fn lex(src: &str) -> Vec<Token> {
    glue(common::rust_src::without_test_items(tokenize(src)))
}

/// Words that mark a value as a state, nonce, secret, token, code or hash (or password,
/// PKCE verifier): a `snake_case` identifier is sensitive when one of its `_`-separated words
/// is one of these, optionally plural.
const SENSITIVE_WORDS: [&str; 8] = [
    "state", "nonce", "secret", "token", "code", "hash", "password", "verifier",
];

/// Methods whose result compared with `==` is not the value itself (a length, a flag).
const NOT_A_VALUE: [&str; 8] = [
    "len", "is_empty", "count", "is_some", "is_none", "is_ok", "is_err", "capacity",
];

/// Methods that compare like `==` (a method call on a sensitive value is flagged as `==` is).
const EQ_METHODS: [&str; 4] = ["eq", "ne", "eq_ignore_ascii_case", "cmp"];

fn is_sensitive_name(name: &str) -> bool {
    let snake = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    snake
        && name.split('_').any(|w| {
            let w = w.strip_suffix('s').filter(|_| w.len() > 4).unwrap_or(w);
            SENSITIVE_WORDS.contains(&w)
        })
}

fn punct(t: &Token) -> Option<&'static str> {
    match &t.tok {
        Tok::Punct(p) => Some(p),
        _ => None,
    }
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

const STOP_PUNCT: [&str; 16] = [
    ",", ";", "&&", "||", "=", "=>", "|", "+=", "-=", "==", "!=", "<", ">", "<=", ">=", ":",
];
const STOP_WORDS: [&str; 9] = [
    "if", "while", "return", "let", "match", "in", "else", "break", "for",
];

/// The operand left of the token at `op`: back to the enclosing bracket, a separator or a
/// keyword.
fn left_operand(toks: &[Token], op: usize) -> std::ops::Range<usize> {
    let mut depth = 0i32;
    let mut i = op;
    while i > 0 {
        let t = &toks[i - 1];
        match punct(t) {
            Some(")" | "]" | "}") => depth += 1,
            Some("(" | "[" | "{") if depth == 0 => break,
            Some("(" | "[" | "{") => depth -= 1,
            Some(p) if depth == 0 && STOP_PUNCT.contains(&p) => break,
            _ => {}
        }
        if depth == 0 && ident(Some(t)).is_some_and(|w| STOP_WORDS.contains(&w)) {
            break;
        }
        i -= 1;
    }
    i..op
}

/// The operand right of the token at `op`: forward to the closing bracket, a separator or a
/// block.
fn right_operand(toks: &[Token], op: usize) -> std::ops::Range<usize> {
    let mut depth = 0i32;
    let mut i = op + 1;
    while i < toks.len() {
        let t = &toks[i];
        match punct(t) {
            Some("(" | "[") => depth += 1,
            Some("{") if depth == 0 => break,
            Some("{") => depth += 1,
            Some(")" | "]" | "}") if depth == 0 => break,
            Some(")" | "]" | "}") => depth -= 1,
            Some(p) if depth == 0 && STOP_PUNCT.contains(&p) => break,
            _ => {}
        }
        if depth == 0 && ident(Some(t)).is_some_and(|w| STOP_WORDS.contains(&w) || w == "as") {
            break;
        }
        i += 1;
    }
    op + 1..i
}

/// The sensitive value names in an operand: `snake_case` identifiers that are values, not
/// functions, macros, paths or containers of a field (`secrets.caller` names `caller`;
/// `params.state.expose_secret()` names `state`).
fn sensitive_values(toks: &[Token], r: std::ops::Range<usize>) -> Vec<String> {
    let mut out = Vec::new();
    for j in r.clone() {
        let Some(name) = ident(toks.get(j)) else {
            continue;
        };
        let next = toks.get(j + 1).and_then(punct);
        if matches!(next, Some("(" | "!" | "::")) {
            continue;
        }
        // `name.field` where `field` is not called: `name` only holds the value.
        if next == Some(".")
            && ident(toks.get(j + 2)).is_some()
            && toks.get(j + 3).and_then(punct) != Some("(")
        {
            continue;
        }
        if is_sensitive_name(name) {
            out.push(name.to_string());
        }
    }
    // Whatever its name, the content of a `Secret` is secret.
    if toks[r.clone()]
        .windows(2)
        .any(|w| ident(Some(&w[0])) == Some("expose_secret") && punct(&w[1]) == Some("("))
    {
        out.push("expose_secret()".to_string());
    }
    out
}

/// The operand is a length, count or flag of something, not its value.
fn not_a_value(toks: &[Token], r: &std::ops::Range<usize>) -> bool {
    let slice = &toks[r.clone()];
    let n = slice.len();
    (n == 1 && slice[0].tok == Tok::Num)
        || (n >= 4
            && punct(&slice[n - 4]) == Some(".")
            && ident(Some(&slice[n - 3])).is_some_and(|m| NOT_A_VALUE.contains(&m))
            && punct(&slice[n - 2]) == Some("(")
            && punct(&slice[n - 1]) == Some(")"))
}

fn render(toks: &[Token], r: std::ops::Range<usize>) -> String {
    toks[r]
        .iter()
        .map(|t| match &t.tok {
            Tok::Ident(s) => s.clone(),
            Tok::Str(_) | Tok::Char => "\"…\"".to_string(),
            Tok::Num => "N".to_string(),
            Tok::Punct(p) => p.to_string(),
            Tok::Lifetime(_) => "'_".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One comparison of a sensitive value that does not go through `ct_eq`.
#[derive(Debug)]
struct Finding {
    file: String,
    line: usize,
    text: String,
}

/// Every `==`, `!=` and `.eq(`/`.ne(`/`.eq_ignore_ascii_case(`/`.cmp(` whose operands name a
/// sensitive value.
fn scan_comparisons(file: &str, toks: &[Token]) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in 0..toks.len() {
        let (left, right) = match punct(&toks[i]) {
            Some("==" | "!=") => (left_operand(toks, i), right_operand(toks, i)),
            Some(".")
                if ident(toks.get(i + 1)).is_some_and(|m| EQ_METHODS.contains(&m))
                    && toks.get(i + 2).and_then(punct) == Some("(") =>
            {
                // Receiver, and the call's argument list.
                let arg = right_operand(toks, i + 2);
                (left_operand(toks, i), arg)
            }
            _ => continue,
        };
        if not_a_value(toks, &left) || not_a_value(toks, &right) {
            continue;
        }
        let mut names = sensitive_values(toks, left.clone());
        names.extend(sensitive_values(toks, right.clone()));
        if names.is_empty() {
            continue;
        }
        out.push(Finding {
            file: file.to_string(),
            line: toks[i].line,
            text: format!(
                "{}  {}  {}   (names: {})",
                render(toks, left),
                render(toks, i..i + 1),
                render(toks, right),
                names.join(", ")
            ),
        });
    }
    out
}

/// Structs that derive `PartialEq` over a field holding raw secret material (a sensitive name
/// typed `String`, `Vec<u8>` or a byte array, bare or in an `Option`): `==` on the struct would
/// compare that field in variable time.
fn scan_derives(file: &str, toks: &[Token]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 < toks.len() {
        let derive = punct(&toks[i]) == Some("#")
            && punct(&toks[i + 1]) == Some("[")
            && ident(toks.get(i + 2)) == Some("derive");
        if !derive {
            i += 1;
            continue;
        }
        let mut j = i + 3;
        let mut partial_eq = false;
        while j < toks.len() && punct(&toks[j]) != Some("]") {
            partial_eq |= ident(toks.get(j)) == Some("PartialEq");
            j += 1;
        }
        // The item: skip other attributes and `pub`, find `struct Name {`.
        let mut k = j;
        while k < toks.len() && ident(toks.get(k)) != Some("struct") && punct(&toks[k]) != Some("{")
        {
            if matches!(ident(toks.get(k)), Some("enum" | "fn" | "impl" | "type")) {
                break;
            }
            k += 1;
        }
        if !partial_eq || ident(toks.get(k)) != Some("struct") {
            i = j;
            continue;
        }
        let name = ident(toks.get(k + 1)).unwrap_or("?").to_string();
        let Some(open) =
            (k..toks.len()).find(|&x| matches!(punct(&toks[x]), Some("{" | ";" | "(")))
        else {
            break;
        };
        if punct(&toks[open]) != Some("{") {
            i = open;
            continue;
        }
        // Fields: `name : Type ,` at depth 1.
        let mut depth = 0;
        let mut x = open;
        while x < toks.len() {
            match punct(&toks[x]) {
                Some("{" | "(" | "[" | "<") => depth += 1,
                Some(">>") => depth -= 2,
                Some("}" | ")" | "]" | ">") => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Some(":") if depth == 1 => {
                    if let Some(field) = ident(toks.get(x - 1)).filter(|f| is_sensitive_name(f)) {
                        let ty: Vec<String> = toks[x + 1..]
                            .iter()
                            .take_while(|t| punct(t) != Some(","))
                            .take(8)
                            .map(|t| match &t.tok {
                                Tok::Ident(s) => s.clone(),
                                Tok::Punct(p) => p.to_string(),
                                _ => "N".to_string(),
                            })
                            .collect();
                        let ty = ty.join("");
                        let raw = ["String", "Vec<u8>", "Option<String>", "Option<Vec<u8>>"]
                            .contains(&ty.as_str())
                            || ty.starts_with("[u8;");
                        if raw {
                            out.push(Finding {
                                file: file.to_string(),
                                line: toks[x].line,
                                text: format!(
                                    "#[derive(PartialEq)] struct {name} {{ {field}: {ty} }}"
                                ),
                            });
                        }
                    }
                }
                _ => {}
            }
            x += 1;
        }
        i = x;
    }
    out
}

/// Comparisons that name a sensitive value but compare nothing secret, each with the reason.
/// An entry matches a finding of its file whose text contains its snippet; an entry that no
/// longer matches anything fails the test, so the list cannot go stale.
const CT_ALLOW: [(&str, &str, &str); 0] = [];

/// Files that are not request-path code.
const CT_SKIP_FILES: [(&str, &str); 1] = [(
    "src/store/conformance.rs",
    "the store conformance suite: compiled into the library so that tests/ and other stores \
     can run it, it compares expected and actual records in assertions, never on a request path",
)];

/// Row 18, the static half: a scan of `src/` at test time.
///
/// What it flags (after dropping comments, string/char literals, `#[cfg(test)]` items and
/// `#[cfg(test)] mod x;` files):
/// 1. `a == b`, `a != b`, `a.eq(b)`, `a.ne(b)`, `a.eq_ignore_ascii_case(b)`, `a.cmp(b)`
///    where an operand names a sensitive value: a `snake_case` identifier one of whose words
///    is state, nonce, secret, token, code, hash, password or verifier (plural too), used as
///    a value (not a function, macro or path; for `x.field` the field is the value), or
///    that reads a `Secret` (`.expose_secret()`), whatever the variable is called. A
///    comparison of a length/count/flag (`.len()`, `.is_empty()`, ... or a number literal) is
///    not flagged: lengths are not secret.
/// 2. `#[derive(PartialEq)]` structs with such a field typed `String`, `Vec<u8>`, `[u8; N]`
///    (or an `Option` of those): `==` on them compares the secret in variable time.
/// 3. Any constant-time primitive other than the helper: `subtle`, `ConstantTimeEq`,
///    `verify_slices_are_equal`, `constant_time_eq`, or `.ct_eq(` outside `src/secret.rs`.
///
/// Not covered (documented limits): comparisons by `match` on a literal, `starts_with`-like
/// methods, map lookups (by design: tokens are looked up by their SHA-256 hash), and values
/// whose names do not say what they are.
#[test]
fn row_18_every_secret_comparison_goes_through_ct_eq() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let paths = rust_files(&root.join("src"));
    let files: Vec<(PathBuf, String)> = paths
        .iter()
        .map(|p| (p.clone(), std::fs::read_to_string(p).unwrap()))
        .collect();
    let test_files = test_module_files(&files);
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };

    let mut findings = Vec::new();
    let mut other_primitives = Vec::new();
    let mut scanned = 0;
    for (path, src) in &files {
        let name = rel(path);
        if test_files.contains(path) || CT_SKIP_FILES.iter().any(|(f, _)| *f == name) {
            continue;
        }
        scanned += 1;
        let toks = lex(src);
        findings.extend(scan_comparisons(&name, &toks));
        findings.extend(scan_derives(&name, &toks));
        if name != "src/secret.rs" {
            for (k, t) in toks.iter().enumerate() {
                let bad = match &t.tok {
                    Tok::Ident(s) => {
                        [
                            "subtle",
                            "ConstantTimeEq",
                            "verify_slices_are_equal",
                            "constant_time_eq",
                        ]
                        .contains(&s.as_str())
                            || (s == "ct_eq" && k > 0 && punct(&toks[k - 1]) == Some("."))
                    }
                    _ => false,
                };
                if bad {
                    other_primitives.push(format!("{name}:{}", t.line));
                }
            }
        }
    }
    assert!(scanned > 40, "the scan found too few files: {scanned}");
    assert!(
        other_primitives.is_empty(),
        "constant-time comparison outside the one helper (use oidc_realm::secret::ct_eq): {other_primitives:?}"
    );

    let mut used = vec![false; CT_ALLOW.len()];
    let unexplained: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            match CT_ALLOW
                .iter()
                .position(|(file, snippet, _)| f.file == *file && f.text.contains(snippet))
            {
                Some(k) => {
                    used[k] = true;
                    false
                }
                None => true,
            }
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "comparisons of a state, nonce, secret, token, code or hash that do not go through \
         oidc_realm::secret::ct_eq (use ct_eq, or add an entry with its reason to CT_ALLOW in \
         tests/pitfalls.rs):\n{}",
        unexplained
            .iter()
            .map(|f| format!("  {}:{}: {}", f.file, f.line, f.text))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stale: Vec<(&str, &str)> = CT_ALLOW
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((file, snippet, _), _)| (*file, *snippet))
        .collect();
    assert!(
        stale.is_empty(),
        "CT_ALLOW entries that match nothing any more (remove them from tests/pitfalls.rs): {stale:?}"
    );

    // The helper is the one in src/secret.rs and the security-relevant comparisons use it.
    let secret = std::fs::read_to_string(root.join("src/secret.rs")).unwrap();
    assert!(secret.contains("pub fn ct_eq(a: &[u8], b: &[u8]) -> bool"));
    for (file, at_least) in [
        ("src/realm/mod.rs", 2),           // state, nonce of the pending login
        ("src/oidc/id_token.rs", 2),       // ID-token nonce, at_hash/c_hash
        ("src/auth/service_tokens.rs", 1), // service token secret hash
    ] {
        let src = std::fs::read_to_string(root.join(file)).unwrap();
        let calls = lex(&src)
            .windows(2)
            .filter(|w| ident(Some(&w[0])) == Some("ct_eq") && punct(&w[1]) == Some("("))
            .count();
        assert!(
            calls >= at_least,
            "{file}: {calls} ct_eq calls, expected ≥ {at_least}"
        );
    }
}

/// The scanner itself: what it must flag and what it must not.
#[test]
fn row_18_the_scan_flags_what_it_should() {
    let src = r#"
        fn f(params: P, secrets: S, token: &str, cfg: C) {
            if redirect_state == params.state { }               // flagged
            if !ct_eq(a.as_bytes(), b.as_bytes()) { }            // the helper
            if secrets.caller != *caller { }                    // a caller, not a secret
            if token.len() != 48 { }                            // a length
            if tokens == 1 { }                                  // a count
            let ok = client_secret.expose_secret().eq(other);    // flagged
            if cfg.rp.response_type == ResponseType::Code { }   // an enum variant
            let s = "token == nonce";                           // a literal
            // refresh_token == x                               (a comment)
            x.filter(|h| h.access_hash == wanted);               // flagged
            if t.eq_ignore_ascii_case(expected_nonce) { }        // flagged
            if found != expected.expose_secret().as_str() { }  // flagged: a Secret's content
            if !ct_eq(found.as_bytes(), expected.expose_secret().as_bytes()) { }
            if state.expose_secret().is_empty() { }            // not a comparison
            if pw.expose_secret().len() > 1024 { }             // a length
        }
        #[cfg(test)]
        mod tests { fn g() { assert!(nonce == other_nonce); } }
        #[derive(Clone, PartialEq)]
        pub struct Pair { pub access_token: String, pub id: u8 }
        #[derive(PartialEq)]
        struct Safe { secret: Secret<String> }
    "#;
    let toks = lex(src);
    let found: Vec<String> = scan_comparisons("x.rs", &toks)
        .into_iter()
        .chain(scan_derives("x.rs", &toks))
        .map(|f| format!("{}: {}", f.line, f.text))
        .collect();
    let lines: Vec<usize> = found
        .iter()
        .map(|f| f.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 8, 12, 13, 14, 22], "{found:#?}");
}

// ---------------------------------------------------------------------------------------------
// Rows 19–20: resource exhaustion and malformed input
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn row_19_compression_nesting_and_size() {
    // An HS256 implicit realm: tokens signed here with the client secret are authentic, so
    // their payload is parsed and its bounds are what refuses them.
    let e = env("id_token", &[("rp.signature_algorithm", "HS256")]).await;
    let good = e
        .implicit(|op, nonce| {
            hs256(
                HS256_HEADER,
                Value::Object(good_claims(op, nonce)).to_string().as_bytes(),
            )
        })
        .await;
    assert_eq!(good.0, 200, "{}", good.1);
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    type Mint = Box<dyn Fn(&FakeOp, &str) -> String>;
    let cases: Vec<(&str, Mint, &str)> = vec![
        (
            "zip: DEF",
            Box::new(|op, nonce| {
                hs256(
                    r#"{"alg":"HS256","zip":"DEF"}"#,
                    Value::Object(good_claims(op, nonce)).to_string().as_bytes(),
                )
            }),
            "forbidden_header",
        ),
        (
            "JWE (5 parts)",
            Box::new(|_, _| "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d".into()),
            "encrypted_token",
        ),
        (
            "10,000 nested arrays in the payload",
            Box::new(move |op, nonce| {
                let claims = Value::Object(good_claims(op, nonce)).to_string();
                let payload = format!(
                    "{},\"deep\":{}}}",
                    &claims[..claims.len() - 1],
                    deep(10_000)
                );
                hs256(HS256_HEADER, payload.as_bytes())
            }),
            "malformed",
        ),
        (
            "10,000 nested arrays in the header",
            Box::new(move |op, nonce| {
                hs256(
                    &format!("{{\"alg\":\"HS256\",\"x\":{}}}", deep(10_000)),
                    Value::Object(good_claims(op, nonce)).to_string().as_bytes(),
                )
            }),
            "malformed",
        ),
        (
            "17 levels (one past the cap)",
            Box::new(move |op, nonce| {
                let mut c = good_claims(op, nonce);
                c.insert("deep".into(), serde_json::from_str(&deep(16)).unwrap());
                hs256(HS256_HEADER, Value::Object(c).to_string().as_bytes())
            }),
            "malformed",
        ),
        (
            "60,000 dots",
            Box::new(|_, _| ".".repeat(60_000)),
            "malformed",
        ),
    ];
    for (name, mint, code) in cases {
        let started = Instant::now();
        let resp = e.implicit(|op, nonce| mint(op, nonce)).await;
        assert_eq!(resp.1["error"]["reason_code"], code, "{name}");
        assert_refused(&resp, code);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    // A request body over http.max_body (64 KiB here) is refused before it is read as JSON.
    let (state, nonce) = e.prepared("oidc1").await;
    let huge = fragment_redirect(&[("id_token", &"a".repeat(1 << 20)), ("state", &state)]);
    let (s, b) = e.authenticate(&huge, &state, &nonce).await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["error"]["type"], "content_too_long_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], "body_too_large", "{b}");

    // The code flow, where the OP's token response carries the token: the 64 KiB token cap
    // and the 1 MiB response cap.
    let e = env("code", &[("rp.signature_algorithm", "HS256")]).await;
    let many_claims = {
        let mut c = good_claims(&e.op, "n");
        for i in 0..10_000 {
            c.insert(format!("c{i}"), json!(i));
        }
        hs256(HS256_HEADER, Value::Object(c).to_string().as_bytes())
    };
    let big_claim = {
        let mut c = good_claims(&e.op, "n");
        c.insert("big".into(), json!("x".repeat(1 << 20)));
        hs256(HS256_HEADER, Value::Object(c).to_string().as_bytes())
    };
    for (name, token, code) in [
        ("100,000 dots", ".".repeat(100_000), "token_too_long"),
        ("10,000 claims", many_claims, "token_too_long"),
        ("1 MB single claim", big_claim, "response_too_large"),
        ("1 MB token", "a".repeat(1_000_000), "token_too_long"),
        ("16 MB token", "a".repeat(16 << 20), "response_too_large"),
    ] {
        e.op.set(|k| k.id_token = Some(token));
        let started = Instant::now();
        let resp = e.login().await;
        assert_eq!(resp.1["error"]["reason_code"], code, "{name}");
        assert_refused(&resp, code);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            started.elapsed()
        );
    }

    // The validation itself, without HTTP: every bounded refusal well under 50 ms.
    let keys = oidc_realm::oidc::KeySet::parse(e.op.jwks_json().as_bytes())
        .unwrap()
        .0;
    let policy = oidc_realm::oidc::IdTokenPolicy::new(e.op.issuer(), CLIENT_ID);
    let now = e.op.now_secs();
    for token in [
        "a".repeat(16 << 20),
        ".".repeat(60_000),
        format!(
            "{}.e30.c2ln",
            b64(format!("{{\"alg\":\"RS256\",\"x\":{}}}", deep(20_000)).as_bytes())
        ),
    ] {
        let took = fastest(|| oidc_realm::oidc::validate(&token, &policy, &keys, now).is_err());
        assert!(oidc_realm::oidc::validate(&token, &policy, &keys, now).is_err());
        assert!(
            took < Duration::from_millis(50),
            "{} bytes: {took:?}",
            token.len()
        );
    }
}

#[actix_web::test]
async fn row_20_malformed_tokens_and_redirects_never_500() {
    // The fixture corpus (truncated base64, bad characters, padding, invalid UTF-8, `alg` as a
    // number, empty parts...): 401 with a validation reason, never a 5xx.
    let e = env("id_token", &[]).await;
    let corpus = include_str!("fixtures/malformed-tokens.txt");
    let allowed = [
        "malformed",
        "alg_not_allowed",
        "forbidden_header",
        "encrypted_token",
        "token_too_long",
        "kid_not_found",
        "bad_signature",
        "redirect_param_missing",
    ];
    for line in corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let resp = e.implicit(|_, _| line.to_string()).await;
        let code = resp.1["error"]["reason_code"].as_str().unwrap_or("");
        assert!(
            allowed.contains(&code),
            "{}: {}",
            &line[..line.len().min(80)],
            resp.1
        );
        assert_refused(&resp, code);
    }

    // Authentic (HS256) tokens whose payload is not a claims object.
    let e = env("id_token", &[("rp.signature_algorithm", "HS256")]).await;
    let payloads: Vec<Vec<u8>> = vec![
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"str\"".to_vec(),
        b"42".to_vec(),
        b"{".to_vec(),
        b"{\"sub\":\"\xff\xfe\"}".to_vec(),
        Vec::new(),
    ];
    for payload in payloads {
        let resp = e.implicit(|_, _| hs256(HS256_HEADER, &payload)).await;
        assert_refused(&resp, "malformed");
    }
    // Duplicate claims: which `sub` would count?
    let resp = e
        .implicit(|op, nonce| {
            let claims = Value::Object(good_claims(op, nonce)).to_string();
            hs256(
                HS256_HEADER,
                format!("{{\"sub\":\"admin\",{}", &claims[1..]).as_bytes(),
            )
        })
        .await;
    assert_refused(&resp, "malformed");
    // `alg` as a number, `kid` as an object.
    for header in [r#"{"alg":256}"#, r#"{"alg":"HS256","kid":{"a":1}}"#] {
        let resp = e
            .implicit(|op, nonce| {
                hs256(
                    header,
                    Value::Object(good_claims(op, nonce)).to_string().as_bytes(),
                )
            })
            .await;
        assert_refused(&resp, "malformed");
    }
    // Strict base64url: padding or a standard-alphabet character in any part.
    let resp = e
        .implicit(|op, nonce| {
            let t = hs256(
                HS256_HEADER,
                Value::Object(good_claims(op, nonce)).to_string().as_bytes(),
            );
            format!("{t}=")
        })
        .await;
    assert_refused(&resp, "malformed");

    // CR/LF in the redirect: refused; no answer carries a Set-Cookie or a CR/LF in a header.
    let e = env("code", &[]).await;
    let l = e.start_login().await;
    let q = l.callback.split_once('?').unwrap().1.to_string();
    for bad in [
        format!("{REDIRECT_URI}%0d%0aSet-Cookie:x=y?{q}"),
        format!("https://kibana.example.org/%0D%0ALocation:%20https://evil.com?{q}"),
        format!("/api/security/oidc/callback%0d%0aSet-Cookie:x=y?{q}"),
        format!("{REDIRECT_URI}?{q}&x=%0d%0aSet-Cookie:x=y"),
    ] {
        let (s, headers, b) = e
            .authenticate_full(FACILITATOR, &bad, &l.state, &l.nonce, None)
            .await;
        assert_eq!(s, 401, "{bad}: {b}");
        assert!(!headers.contains_key("set-cookie"), "{bad}");
        for (name, v) in headers.iter() {
            assert!(
                !v.as_bytes().iter().any(|c| *c == b'\r' || *c == b'\n'),
                "{name}: {v:?}"
            );
        }
        assert!(!b.to_string().contains("Set-Cookie"), "{b}");
    }
    // No cookie is ever set, on success either (oidc-realm keeps no browser session).
    let l = e.start_login().await;
    let (s, headers, b) = e
        .authenticate_full(FACILITATOR, &l.callback, &l.state, &l.nonce, None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(!headers.contains_key("set-cookie"));

    // Sealed blobs (pending logins, refresh results, logout data) use a fresh random AEAD
    // nonce every time: the same plaintext under the same key never repeats.
    use oidc_realm::crypto::{open_under, seal_under};
    let a = seal_under(b"label", b"the-state", b"the same plaintext");
    let b = seal_under(b"label", b"the-state", b"the same plaintext");
    assert_ne!(a[..12], b[..12], "repeated AES-GCM nonce");
    assert_ne!(a, b);
    assert_eq!(
        open_under(b"label", b"the-state", &a).as_deref(),
        Some(&b"the same plaintext"[..])
    );
}

// row 20 (cookies without HttpOnly/Secure/SameSite): not applicable because oidc-realm sets no
// cookie at all (asserted above); the browser session is the facilitator's (Kibana's).
