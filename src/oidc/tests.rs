//! Tests of `oidc::jwks` and `oidc::id_token`: one negative test (at least) per check, the
//! pitfalls of user-needs §2 rows 1–4, 7, 8, 14, 15, 19, 20, the shared malformed-token corpus,
//! and positive tests per algorithm. Keys: `tests/fixtures/keys/` (see its README); public
//! JWKS entries are derived from them here. Tokens are minted with `jsonwebtoken::encode`, or
//! by hand (`mint`) where the test needs bytes `encode` would never produce.

use super::*;
use crate::config::SignatureAlgorithm as A;
use crate::secret::Secret;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{self as lc, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

const ISS: &str = "https://op.example.com";
const CLIENT: &str = "realm-server";
const NOW: i64 = 1_700_000_000;
const NONCE: &str = "n-0S6_WzA2Mj";
const CLIENT_SECRET: &str = "a-client-secret-of-reasonable-length-42";

const RSA1: &str = include_str!("../../tests/fixtures/keys/rsa1.pem");
const RSA2: &str = include_str!("../../tests/fixtures/keys/rsa2.pem");
const ATTACKER: &str = include_str!("../../tests/fixtures/keys/attacker-rsa.pem");
const EC256: &str = include_str!("../../tests/fixtures/keys/ec256.pem");
const EC384: &str = include_str!("../../tests/fixtures/keys/ec384.pem");
const EC521: &str = include_str!("../../tests/fixtures/keys/ec521.pem");
const ED25519: &str = include_str!("../../tests/fixtures/keys/ed25519.pem");
const CORPUS: &str = include_str!("../../tests/fixtures/malformed-tokens.txt");

// ---------------------------------------------------------------------------------------------
// Key and token helpers
// ---------------------------------------------------------------------------------------------

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn rsa_pair(pem: &str) -> lc::RsaKeyPair {
    lc::RsaKeyPair::from_pkcs8(&pem_der(pem)).unwrap()
}

fn ec_signing(alg: A) -> &'static lc::EcdsaSigningAlgorithm {
    match alg {
        A::ES256 => &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
        A::ES384 => &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
        A::ES512 => &lc::ECDSA_P521_SHA512_FIXED_SIGNING,
        _ => unreachable!(),
    }
}

fn ec_pair(pem: &str, alg: A) -> lc::EcdsaKeyPair {
    lc::EcdsaKeyPair::from_pkcs8(ec_signing(alg), &pem_der(pem)).unwrap()
}

/// (n, e) of an RSA private key, big-endian without leading zeros.
fn rsa_n_e(pem: &str) -> (Vec<u8>, Vec<u8>) {
    let pair = rsa_pair(pem);
    let public = pair.public_key();
    (
        public.modulus().big_endian_without_leading_zero().to_vec(),
        public.exponent().big_endian_without_leading_zero().to_vec(),
    )
}

/// PEM (SubjectPublicKeyInfo) of an RSA key's public half: what an attacker can download.
fn rsa_public_pem(pem: &str) -> String {
    let pair = rsa_pair(pem);
    let der: PublicKeyX509Der = pair.public_key().as_der().unwrap();
    to_pem("PUBLIC KEY", der.as_ref())
}

fn rsa_jwk(pem: &str, kid: Option<&str>) -> Value {
    let (n, e) = rsa_n_e(pem);
    let mut jwk = json!({"kty": "RSA", "use": "sig", "n": B64.encode(n), "e": B64.encode(e)});
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

fn ec_jwk(pem: &str, alg: A, kid: &str) -> Value {
    let pair = ec_pair(pem, alg);
    let point = pair.public_key().as_ref();
    let len = (point.len() - 1) / 2;
    let crv = match alg {
        A::ES256 => "P-256",
        A::ES384 => "P-384",
        _ => "P-521",
    };
    json!({"kty": "EC", "crv": crv, "kid": kid,
           "x": B64.encode(&point[1..1 + len]), "y": B64.encode(&point[1 + len..])})
}

fn ed_jwk(kid: &str) -> Value {
    let pair = lc::Ed25519KeyPair::from_pkcs8(&pem_der(ED25519)).unwrap();
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
           "x": B64.encode(pair.public_key().as_ref())})
}

fn key_set(keys: Vec<Value>) -> KeySet {
    let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
    let (set, warnings) = KeySet::parse(&doc).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    set
}

/// The OP's JWKS used by most tests: two RSA keys (rotation), P-256, P-384, P-521.
fn op_keys() -> KeySet {
    key_set(vec![
        rsa_jwk(RSA1, Some("rsa1")),
        rsa_jwk(RSA2, Some("rsa2")),
        ec_jwk(EC256, A::ES256, "ec1"),
        ec_jwk(EC384, A::ES384, "ec384"),
        ec_jwk(EC521, A::ES512, "ec521"),
    ])
}

/// What signs a hand-minted token.
#[derive(Clone, Copy)]
enum Signer<'a> {
    /// A PKCS#8 PEM private key (RSA or EC, by the token's alg).
    Pem(&'a str),
    /// Raw HMAC key bytes.
    Hmac(&'a [u8]),
}

fn sign(alg: &str, signer: Signer<'_>, msg: &[u8]) -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    match signer {
        Signer::Hmac(secret) => {
            let h = match alg {
                "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
                "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
                _ => aws_lc_rs::hmac::HMAC_SHA256,
            };
            aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(h, secret), msg)
                .as_ref()
                .to_vec()
        }
        Signer::Pem(pem) => {
            let alg = A::parse(alg).unwrap();
            let rsa: Option<&'static dyn lc::RsaEncoding> = match alg {
                A::RS256 => Some(&lc::RSA_PKCS1_SHA256),
                A::RS384 => Some(&lc::RSA_PKCS1_SHA384),
                A::RS512 => Some(&lc::RSA_PKCS1_SHA512),
                A::PS256 => Some(&lc::RSA_PSS_SHA256),
                A::PS384 => Some(&lc::RSA_PSS_SHA384),
                A::PS512 => Some(&lc::RSA_PSS_SHA512),
                _ => None,
            };
            match rsa {
                Some(enc) => {
                    let pair = rsa_pair(pem);
                    let mut sig = vec![0; pair.public_modulus_len()];
                    pair.sign(enc, &rng, msg, &mut sig).unwrap();
                    sig
                }
                None if alg == A::EdDSA => lc::Ed25519KeyPair::from_pkcs8(&pem_der(pem))
                    .unwrap()
                    .sign(msg)
                    .as_ref()
                    .to_vec(),
                None => ec_pair(pem, alg).sign(&rng, msg).unwrap().as_ref().to_vec(),
            }
        }
    }
}

/// A compact JWS from a header object and raw payload bytes, signed with `signer` under the
/// header's `alg`.
fn mint_raw(header: &Value, payload: &[u8], signer: Signer<'_>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(payload)
    );
    let sig = sign(header["alg"].as_str().unwrap(), signer, input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

fn mint(header: &Value, claims: &Value, signer: Signer<'_>) -> String {
    mint_raw(header, &serde_json::to_vec(claims).unwrap(), signer)
}

/// A hand-made token with an arbitrary header and payload and a literal signature part.
fn unsigned(header: &str, payload: &str, signature: &str) -> String {
    format!("{}.{}.{signature}", B64.encode(header), B64.encode(payload))
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": CLIENT, "exp": NOW + 600, "iat": NOW - 10,
           "nonce": NONCE})
}

fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn policy(algs: &[A]) -> IdTokenPolicy {
    let mut p = IdTokenPolicy::new(ISS, CLIENT).with_nonce(NONCE);
    p.algorithms = algs.to_vec();
    p
}

fn rs256(claims: &Value) -> String {
    mint(
        &json!({"alg": "RS256", "kid": "rsa1"}),
        claims,
        Signer::Pem(RSA1),
    )
}

fn check(token: &str, policy: &IdTokenPolicy) -> Result<IdTokenClaims, IdTokenError> {
    validate(token, policy, &op_keys(), NOW)
}

fn rs256_check(claims: &Value) -> Result<IdTokenClaims, IdTokenError> {
    check(&rs256(claims), &policy(&[A::RS256]))
}

#[track_caller]
fn assert_code(result: Result<IdTokenClaims, IdTokenError>, code: &str) -> IdTokenError {
    match result {
        Ok(c) => panic!("expected {code}, token was accepted: {c:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e}");
            e
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Positive
// ---------------------------------------------------------------------------------------------

#[test]
fn rs256_token_from_jsonwebtoken_is_accepted() {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    let c = check(&token, &policy(&[A::RS256])).unwrap();
    assert_eq!(c.iss(), ISS);
    assert_eq!(c.sub(), "alice");
    assert_eq!(c.aud(), [CLIENT.to_string()]);
    assert_eq!(c.exp(), NOW + 600);
    assert_eq!(c.iat(), NOW - 10);
    assert_eq!(c.alg(), A::RS256);
    assert_eq!(c.kid(), Some("rsa1"));
    assert_eq!(c.get("sub"), Some(&json!("alice")));
    assert!(c.get("nonce").is_none(), "nonce is consumed, not kept");
}

#[test]
fn every_algorithm_jsonwebtoken_mints_is_accepted() {
    use jsonwebtoken::{Algorithm as J, EncodingKey};
    let cases: Vec<(J, A, &str, EncodingKey)> = vec![
        (
            J::RS384,
            A::RS384,
            "rsa1",
            EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap(),
        ),
        (
            J::RS512,
            A::RS512,
            "rsa2",
            EncodingKey::from_rsa_pem(RSA2.as_bytes()).unwrap(),
        ),
        (
            J::PS256,
            A::PS256,
            "rsa1",
            EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap(),
        ),
        (
            J::PS384,
            A::PS384,
            "rsa1",
            EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap(),
        ),
        (
            J::PS512,
            A::PS512,
            "rsa2",
            EncodingKey::from_rsa_pem(RSA2.as_bytes()).unwrap(),
        ),
        (
            J::ES256,
            A::ES256,
            "ec1",
            EncodingKey::from_ec_pem(EC256.as_bytes()).unwrap(),
        ),
        (
            J::ES384,
            A::ES384,
            "ec384",
            EncodingKey::from_ec_pem(EC384.as_bytes()).unwrap(),
        ),
        (
            J::HS256,
            A::HS256,
            "",
            EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        ),
        (
            J::HS384,
            A::HS384,
            "",
            EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        ),
        (
            J::HS512,
            A::HS512,
            "",
            EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        ),
    ];
    for (jalg, alg, kid, key) in cases {
        let mut header = jsonwebtoken::Header::new(jalg);
        header.kid = (!kid.is_empty()).then(|| kid.to_string());
        let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
        let mut p = policy(&[alg]);
        p.client_secret = Some(Secret::new(CLIENT_SECRET.to_string()));
        let c = check(&token, &p).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(c.alg(), alg);
    }
}

#[test]
fn es512_is_accepted() {
    // jsonwebtoken 10 has no ES512: minted and verified with aws-lc-rs.
    let token = mint(
        &json!({"alg": "ES512", "kid": "ec521"}),
        &claims(),
        Signer::Pem(EC521),
    );
    check(&token, &policy(&[A::ES512])).unwrap();
}

fn ed_keys() -> KeySet {
    let mut entries = vec![rsa_jwk(RSA1, Some("rsa1")), ed_jwk("ed")];
    // An Ed25519 key without a declared alg is usable too.
    let mut bare = ed_jwk("ed-bare");
    bare.as_object_mut().unwrap().remove("alg");
    entries.push(bare);
    key_set(entries)
}

#[test]
fn eddsa_is_accepted_when_the_realm_lists_it() {
    let token = mint(
        &json!({"alg": "EdDSA", "kid": "ed"}),
        &claims(),
        Signer::Pem(ED25519),
    );
    let c = validate(&token, &policy(&[A::RS256, A::EdDSA]), &ed_keys(), NOW).unwrap();
    assert_eq!(c.alg(), A::EdDSA);
    let bare = mint(
        &json!({"alg": "EdDSA", "kid": "ed-bare"}),
        &claims(),
        Signer::Pem(ED25519),
    );
    validate(&bare, &policy(&[A::EdDSA]), &ed_keys(), NOW).unwrap();
    // at_hash of an EdDSA token is the left half of SHA-512 (as oidc-provider computes it).
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, b"access");
    let at_hash = B64.encode(&d.as_ref()[..32]);
    let with_hash = mint(
        &json!({"alg": "EdDSA", "kid": "ed"}),
        &claims_with(json!({ "at_hash": at_hash })),
        Signer::Pem(ED25519),
    );
    let c = validate(&with_hash, &policy(&[A::EdDSA]), &ed_keys(), NOW).unwrap();
    check_at_hash(&c, "access", true).unwrap();
    assert_eq!(
        check_at_hash(&c, "other", true).unwrap_err().code(),
        "at_hash_mismatch"
    );
}

#[test]
fn eddsa_is_refused_unless_listed_and_with_a_bad_signature_or_key() {
    let token = mint(
        &json!({"alg": "EdDSA", "kid": "ed"}),
        &claims(),
        Signer::Pem(ED25519),
    );
    // Not in the realm's list (the default is RS256 only).
    assert_code(
        validate(&token, &policy(&[A::RS256]), &ed_keys(), NOW),
        "alg_not_allowed",
    );
    // Tampered payload: the signature no longer verifies.
    let (head, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = B64.encode(serde_json::to_vec(&claims_with(json!({"sub": "mallory"}))).unwrap());
    assert_code(
        validate(
            &format!("{head}.{other}.{sig}"),
            &policy(&[A::EdDSA]),
            &ed_keys(),
            NOW,
        ),
        "bad_signature",
    );
    // An EdDSA header naming an RSA key.
    let wrong_kid = mint(
        &json!({"alg": "EdDSA", "kid": "rsa1"}),
        &claims(),
        Signer::Pem(ED25519),
    );
    assert_code(
        validate(&wrong_kid, &policy(&[A::EdDSA]), &ed_keys(), NOW),
        "key_alg_mismatch",
    );
    // An RS256 header naming the Ed25519 key.
    let rs_on_ed = mint(
        &json!({"alg": "RS256", "kid": "ed"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(
        validate(&rs_on_ed, &policy(&[A::RS256, A::EdDSA]), &ed_keys(), NOW),
        "key_alg_mismatch",
    );
}

#[test]
fn realm_with_several_algorithms_accepts_each() {
    let p = policy(&[A::RS256, A::ES256, A::PS256]);
    check(&rs256(&claims()), &p).unwrap();
    check(
        &mint(
            &json!({"alg": "ES256", "kid": "ec1"}),
            &claims(),
            Signer::Pem(EC256),
        ),
        &p,
    )
    .unwrap();
    check(
        &mint(
            &json!({"alg": "PS256", "kid": "rsa2"}),
            &claims(),
            Signer::Pem(RSA2),
        ),
        &p,
    )
    .unwrap();
}

#[test]
fn key_rotation_selects_by_kid() {
    let p = policy(&[A::RS256]);
    check(&rs256(&claims()), &p).unwrap();
    let t2 = mint(
        &json!({"alg": "RS256", "kid": "rsa2"}),
        &claims(),
        Signer::Pem(RSA2),
    );
    check(&t2, &p).unwrap();
    // Signed by rsa1 but claiming rsa2: the kid decides the key, and the signature fails.
    let wrong = mint(
        &json!({"alg": "RS256", "kid": "rsa2"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(check(&wrong, &p), "bad_signature");
}

#[test]
fn token_without_kid_uses_the_single_candidate_key() {
    let p = policy(&[A::RS256]);
    let no_kid = mint(&json!({"alg": "RS256"}), &claims(), Signer::Pem(RSA1));
    // The only RSA key of the set, without kid.
    let set = key_set(vec![rsa_jwk(RSA1, None), ec_jwk(EC256, A::ES256, "ec1")]);
    validate(&no_kid, &p, &set, NOW).unwrap();
    // The only RSA key of the set, with a kid.
    let set = key_set(vec![
        rsa_jwk(RSA1, Some("rsa1")),
        ec_jwk(EC256, A::ES256, "ec1"),
    ]);
    validate(&no_kid, &p, &set, NOW).unwrap();
    // A token kid, and one kid-less key that fits: that key is the single candidate.
    let set = key_set(vec![rsa_jwk(RSA1, None)]);
    let with_kid = mint(
        &json!({"alg": "RS256", "kid": "k9"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    validate(&with_kid, &p, &set, NOW).unwrap();
}

#[test]
fn token_without_kid_and_several_keys_of_the_family_is_ambiguous() {
    let no_kid = mint(&json!({"alg": "RS256"}), &claims(), Signer::Pem(RSA1));
    assert_code(check(&no_kid, &policy(&[A::RS256])), "ambiguous_key");
    // Two kid-less RSA keys: a token with a kid does not pick one either.
    let set = key_set(vec![rsa_jwk(RSA1, None), rsa_jwk(RSA2, None)]);
    let with_kid = mint(
        &json!({"alg": "RS256", "kid": "x"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(
        validate(&with_kid, &policy(&[A::RS256]), &set, NOW),
        "kid_not_found",
    );
}

#[test]
fn typ_jwt_and_ignored_x5t_are_fine() {
    let t = mint(
        &json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT", "x5t": "abc"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    check(&t, &policy(&[A::RS256])).unwrap();
}

#[test]
fn policy_defaults_are_secure() {
    let p = IdTokenPolicy::new(ISS, CLIENT);
    assert_eq!(p.algorithms, vec![A::RS256]);
    assert!(p.client_secret.is_none());
    assert!(p.expected_nonce.is_none());
    assert_eq!(p.clock_skew, Duration::from_secs(60));
    assert_eq!(p.max_token_len, 64 * 1024);
}

#[test]
fn realm_policy_carries_the_client_secret_only_for_hs_algorithms() {
    let secret = Secret::new(CLIENT_SECRET.to_string());
    let skew = Duration::from_secs(30);
    let p = IdTokenPolicy::from_settings(ISS, CLIENT, &[A::RS256, A::ES256], &secret, skew);
    assert!(p.client_secret.is_none());
    assert_eq!(p.algorithms, vec![A::RS256, A::ES256]);
    assert_eq!(p.clock_skew, skew);
    assert!(p.expected_nonce.is_none());
    // So an HS256 token signed with the client secret fails on an RS256 realm even if the
    // allow-list were widened later without the secret.
    let mut widened = p.clone();
    widened.algorithms.push(A::HS256);
    assert_code(
        check(
            &hs256_with(CLIENT_SECRET.as_bytes()),
            &widened.with_nonce(NONCE),
        ),
        "hmac_secret_missing",
    );
    let p = IdTokenPolicy::from_settings(ISS, CLIENT, &[A::HS256], &secret, skew);
    assert_eq!(p.client_secret, Some(secret));
    check(&hs256_with(CLIENT_SECRET.as_bytes()), &p.with_nonce(NONCE)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Pitfall 1: alg none
// ---------------------------------------------------------------------------------------------

#[test]
fn alg_none_in_any_case_is_refused_even_with_every_algorithm_allowed() {
    let payload = serde_json::to_string(&claims()).unwrap();
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        for sig in ["", "c2ln"] {
            let t = unsigned(&format!(r#"{{"alg":"{alg}"}}"#), &payload, sig);
            let mut p = policy(&A::ALL);
            p.client_secret = Some(Secret::new(CLIENT_SECRET.into()));
            let e = assert_code(check(&t, &p), "alg_not_allowed");
            assert!(e.to_string().contains(&format!("{alg:?}")), "{e}");
        }
    }
}

#[test]
fn alg_that_is_not_a_string_or_absent_or_wrong_case_is_refused() {
    let payload = serde_json::to_string(&claims()).unwrap();
    let p = policy(&[A::RS256]);
    assert_code(
        check(&unsigned(r#"{"alg":256}"#, &payload, "c2ln"), &p),
        "malformed",
    );
    assert_code(
        check(&unsigned(r#"{"alg":null}"#, &payload, "c2ln"), &p),
        "malformed",
    );
    assert_code(
        check(&unsigned(r#"{"kid":"rsa1"}"#, &payload, "c2ln"), &p),
        "malformed",
    );
    assert_code(
        check(&unsigned(r#"{"alg":"rs256"}"#, &payload, "c2ln"), &p),
        "alg_not_allowed",
    );
    // An algorithm we support but the realm does not allow.
    let es = mint(
        &json!({"alg": "ES256", "kid": "ec1"}),
        &claims(),
        Signer::Pem(EC256),
    );
    assert_code(check(&es, &p), "alg_not_allowed");
    // An empty allow-list allows nothing.
    assert_code(check(&rs256(&claims()), &policy(&[])), "alg_not_allowed");
}

// ---------------------------------------------------------------------------------------------
// Pitfall 2: RS/HS confusion
// ---------------------------------------------------------------------------------------------

fn hs256_with(secret: &[u8]) -> String {
    mint(
        &json!({"alg": "HS256", "kid": "rsa1"}),
        &claims(),
        Signer::Hmac(secret),
    )
}

#[test]
fn hs256_on_an_rs256_realm_is_refused_whatever_the_key() {
    let mut p = policy(&[A::RS256]);
    // Even with the client secret at hand: HS* is not in the allow-list.
    p.client_secret = Some(Secret::new(CLIENT_SECRET.into()));
    let public_pem = rsa_public_pem(RSA1);
    let (n, _) = rsa_n_e(RSA1);
    for secret in [public_pem.as_bytes(), &n, CLIENT_SECRET.as_bytes()] {
        assert_code(check(&hs256_with(secret), &p), "alg_not_allowed");
    }
}

#[test]
fn hs256_never_uses_jwks_material_even_when_allowed() {
    let mut p = policy(&[A::RS256, A::HS256]);
    p.client_secret = Some(Secret::new(CLIENT_SECRET.into()));
    let public_pem = rsa_public_pem(RSA1);
    let (n, _) = rsa_n_e(RSA1);
    let n_b64 = B64.encode(&n);
    for secret in [public_pem.as_bytes(), &n, n_b64.as_bytes()] {
        assert_code(check(&hs256_with(secret), &p), "bad_signature");
    }
    // Only the client secret verifies.
    check(&hs256_with(CLIENT_SECRET.as_bytes()), &p).unwrap();
}

#[test]
fn hs256_without_a_configured_client_secret_is_refused() {
    let p = policy(&[A::HS256]);
    assert_code(check(&hs256_with(b""), &p), "hmac_secret_missing");
    let mut p = policy(&[A::HS256]);
    p.client_secret = Some(Secret::new(String::new()));
    assert_code(check(&hs256_with(b""), &p), "hmac_secret_missing");
}

// ---------------------------------------------------------------------------------------------
// Pitfall 3: mixed-family allow-list
// ---------------------------------------------------------------------------------------------

#[test]
fn kid_of_a_key_of_another_family_is_refused() {
    let p = policy(&[A::RS256, A::ES256]);
    // ES256 token whose kid names the RSA key.
    let es = mint(
        &json!({"alg": "ES256", "kid": "rsa1"}),
        &claims(),
        Signer::Pem(EC256),
    );
    let e = assert_code(check(&es, &p), "key_alg_mismatch");
    assert_eq!(
        e.to_string(),
        r#"kid "rsa1" in JWKS is not a key for ES256"#
    );
    // RS256 token whose kid names the EC key.
    let rs = mint(
        &json!({"alg": "RS256", "kid": "ec1"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(check(&rs, &p), "key_alg_mismatch");
    // ES256 token naming the P-384 key (same kty, other curve).
    let es = mint(
        &json!({"alg": "ES256", "kid": "ec384"}),
        &claims(),
        Signer::Pem(EC256),
    );
    assert_code(check(&es, &policy(&[A::ES256])), "key_alg_mismatch");
}

#[test]
fn key_declaring_another_alg_is_not_used() {
    let mut jwk = rsa_jwk(RSA1, Some("rsa1"));
    jwk["alg"] = json!("RS256");
    let set = key_set(vec![jwk]);
    let ps = mint(
        &json!({"alg": "PS256", "kid": "rsa1"}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(
        validate(&ps, &policy(&[A::PS256]), &set, NOW),
        "key_alg_mismatch",
    );
    let rs = rs256(&claims());
    validate(&rs, &policy(&[A::RS256]), &set, NOW).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Pitfall 4: key material in the header, kid injection
// ---------------------------------------------------------------------------------------------

#[test]
fn embedded_jwk_signed_by_an_attacker_is_refused() {
    let attacker = rsa_jwk(ATTACKER, None);
    for header in [
        json!({"alg": "RS256", "jwk": attacker}),
        json!({"alg": "RS256", "kid": "rsa1", "jwk": attacker}),
    ] {
        let t = mint(&header, &claims(), Signer::Pem(ATTACKER));
        let e = assert_code(check(&t, &policy(&[A::RS256])), "forbidden_header");
        assert_eq!(e.to_string(), r#"header parameter "jwk" is not accepted"#);
    }
}

#[test]
fn jku_and_x5u_are_refused_and_nothing_is_fetched() {
    // This module has no I/O at all (no HTTP client, no file access): the only thing to
    // assert is the refusal, which happens even when the OP's own key signed the token.
    for (param, url) in [
        ("jku", "http://127.0.0.1:9/keys"),
        ("x5u", "http://169.254.169.254/"),
    ] {
        let header = json!({"alg": "RS256", "kid": "rsa1", param: url});
        for signer in [Signer::Pem(RSA1), Signer::Pem(ATTACKER)] {
            let t = mint(&header, &claims(), signer);
            let e = assert_code(check(&t, &policy(&[A::RS256])), "forbidden_header");
            assert!(e.to_string().contains(param), "{e}");
            assert!(!e.to_string().contains(url), "{e}");
        }
    }
}

#[test]
fn x5c_is_never_used() {
    // An attacker's "certificate chain" is ignored; the kid decides the key.
    let der = pem_der(&rsa_public_pem(ATTACKER));
    let header = json!({"alg": "RS256", "kid": "rsa1", "x5c": [STANDARD.encode(der)]});
    let t = mint(&header, &claims(), Signer::Pem(ATTACKER));
    assert_code(check(&t, &policy(&[A::RS256])), "bad_signature");
    let header =
        json!({"alg": "RS256", "x5c": [STANDARD.encode(pem_der(&rsa_public_pem(ATTACKER)))]});
    let t = mint(&header, &claims(), Signer::Pem(ATTACKER));
    assert_code(check(&t, &policy(&[A::RS256])), "ambiguous_key");
}

#[test]
fn hostile_kids_are_opaque_and_bounded() {
    let p = policy(&[A::RS256]);
    for kid in [
        "../../../../dev/null",
        "' OR '1'='1",
        "rsa1\0",
        "RSA1",
        "rsa1 ",
        "\u{202e}1asr",
    ] {
        let t = mint(
            &json!({"alg": "RS256", "kid": kid}),
            &claims(),
            Signer::Pem(RSA1),
        );
        let e = assert_code(check(&t, &p), "kid_not_found");
        assert_eq!(e.to_string(), format!("kid {kid:?} not in JWKS"));
    }
    let long = "k".repeat(10 * 1024);
    let t = mint(
        &json!({"alg": "RS256", "kid": long}),
        &claims(),
        Signer::Pem(RSA1),
    );
    let e = assert_code(check(&t, &p), "malformed");
    assert!(
        e.to_string().contains("kid is longer than 256 bytes"),
        "{e}"
    );
    let t = mint(
        &json!({"alg": "RS256", "kid": 7}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(check(&t, &p), "malformed");
}

// ---------------------------------------------------------------------------------------------
// Pitfall 7: ECDSA signatures
// ---------------------------------------------------------------------------------------------

/// P-256 group order.
const P256_N: &str = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";

fn es256_token_with_signature(sig: &[u8]) -> String {
    let good = mint(
        &json!({"alg": "ES256", "kid": "ec1"}),
        &claims(),
        Signer::Pem(EC256),
    );
    let input = good.rsplit_once('.').unwrap().0;
    format!("{input}.{}", B64.encode(sig))
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a fixed-size signature.
fn to_der(fixed: &[u8]) -> Vec<u8> {
    fn int(bytes: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn ecdsa_psychic_and_malformed_signatures_are_refused() {
    let p = policy(&[A::ES256]);
    let good = mint(
        &json!({"alg": "ES256", "kid": "ec1"}),
        &claims(),
        Signer::Pem(EC256),
    );
    check(&good, &p).unwrap();
    let sig = B64.decode(good.rsplit_once('.').unwrap().1).unwrap();
    assert_eq!(sig.len(), 64);

    let n = (0..32)
        .map(|i| u8::from_str_radix(&P256_N[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    let r_is_n = [n.as_slice(), &sig[32..]].concat();
    let s_is_n = [&sig[..32], n.as_slice()].concat();
    let r_max = [[0xFF; 32].as_slice(), &sig[32..]].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("64 zero bytes", vec![0; 64]),
        ("DER of r=0,s=0", B64.decode("MAYCAQACAQA").unwrap()),
        ("DER of the valid signature", to_der(&sig)),
        ("r = n", r_is_n),
        ("s = n", s_is_n),
        ("r = 2^256-1", r_max),
        ("truncated", sig[..63].to_vec()),
        ("one byte more", [sig.as_slice(), &[0]].concat()),
    ];
    for (what, bad) in cases {
        let e = check(&es256_token_with_signature(&bad), &p).expect_err(what);
        assert_eq!(e.code(), "bad_signature", "{what}: {e}");
    }
}

#[test]
fn tampered_or_foreign_signatures_are_refused() {
    let p = policy(&[A::RS256]);
    let forged = mint(
        &json!({"alg": "RS256", "kid": "rsa1"}),
        &claims(),
        Signer::Pem(ATTACKER),
    );
    assert_code(check(&forged, &p), "bad_signature");
    // Payload swapped after signing.
    let good = rs256(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let other = B64.encode(serde_json::to_vec(&claims_with(json!({"sub": "admin"}))).unwrap());
    assert_code(
        check(&format!("{}.{other}.{}", parts[0], parts[2]), &p),
        "bad_signature",
    );
    // Signature of another token.
    let sig_other = rs256(&claims_with(json!({"sub": "bob"})));
    let sig_other = sig_other.rsplit_once('.').unwrap().1;
    assert_code(
        check(&format!("{}.{}.{sig_other}", parts[0], parts[1]), &p),
        "bad_signature",
    );
    // Empty signature with a valid alg.
    assert_code(
        check(&format!("{}.{}.", parts[0], parts[1]), &p),
        "malformed",
    );
}

// ---------------------------------------------------------------------------------------------
// Pitfall 14: issuer and audience
// ---------------------------------------------------------------------------------------------

#[test]
fn issuer_must_match_exactly() {
    for iss in [
        "https://op.example.com/",
        "https://OP.example.com",
        "http://op.example.com",
        "https://op.example.com.evil.net",
        "https://op.example.com/tenant-b",
        "",
    ] {
        let e = assert_code(
            rs256_check(&claims_with(json!({ "iss": iss }))),
            "iss_mismatch",
        );
        assert_eq!(
            e.to_string(),
            format!("iss mismatch: expected {ISS:?}, found {iss:?}")
        );
    }
    assert_code(
        rs256_check(&claims_with(json!({"iss": null}))),
        "missing_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"iss": [ISS]}))),
        "invalid_claim",
    );
}

#[test]
fn audience_must_contain_client_id_and_azp_must_fit() {
    let e = assert_code(
        rs256_check(&claims_with(json!({"aud": "other-client"}))),
        "aud_mismatch",
    );
    assert_eq!(
        e.to_string(),
        format!("aud does not contain client_id {CLIENT:?}")
    );
    assert_code(
        rs256_check(&claims_with(json!({"aud": ["other-client"]}))),
        "aud_mismatch",
    );
    assert_code(
        rs256_check(&claims_with(json!({"aud": "REALM-SERVER"}))),
        "aud_mismatch",
    );
    // Several audiences: azp required, and must be us.
    assert_code(
        rs256_check(&claims_with(json!({"aud": [CLIENT, "other"]}))),
        "azp_missing",
    );
    assert_code(
        rs256_check(&claims_with(
            json!({"aud": [CLIENT, "other"], "azp": "other"}),
        )),
        "azp_mismatch",
    );
    rs256_check(&claims_with(
        json!({"aud": [CLIENT, "other"], "azp": CLIENT}),
    ))
    .unwrap();
    // azp present with a single audience must still be us.
    assert_code(
        rs256_check(&claims_with(json!({"azp": "other"}))),
        "azp_mismatch",
    );
    rs256_check(&claims_with(json!({"aud": [CLIENT], "azp": CLIENT}))).unwrap();
    // Shapes.
    assert_code(
        rs256_check(&claims_with(json!({"aud": null}))),
        "missing_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"aud": []}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"aud": [CLIENT, 1]}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"aud": 1}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"azp": 1}))),
        "invalid_claim",
    );
}

// ---------------------------------------------------------------------------------------------
// Pitfall 15: time claims
// ---------------------------------------------------------------------------------------------

#[test]
fn exp_is_required_integral_and_in_the_future_within_skew() {
    let skew = 60;
    let e = assert_code(
        rs256_check(&claims_with(json!({"exp": NOW - skew - 1}))),
        "expired",
    );
    assert_eq!(
        e,
        IdTokenError::Expired {
            exp: NOW - skew - 1,
            now: NOW,
            skew
        }
    );
    assert_code(
        rs256_check(&claims_with(json!({"exp": NOW - skew}))),
        "expired",
    );
    rs256_check(&claims_with(json!({"exp": NOW - skew + 1}))).unwrap();
    assert_code(
        rs256_check(&claims_with(json!({"exp": null}))),
        "missing_claim",
    );
    for bad in [
        json!("4102444800"),
        json!(4102444800.0),
        json!(1e300),
        json!(u64::MAX),
        json!(true),
        json!([NOW + 600]),
    ] {
        let e = assert_code(
            rs256_check(&claims_with(json!({ "exp": bad }))),
            "invalid_claim",
        );
        assert!(e.to_string().starts_with("claim exp is invalid"), "{e}");
    }
    // 2^64 parses as a float.
    let raw = format!(
        r#"{{"iss":"{ISS}","sub":"a","aud":"{CLIENT}","iat":{NOW},"nonce":"{NONCE}","exp":18446744073709551616}}"#
    );
    let t = mint_raw(
        &json!({"alg": "RS256", "kid": "rsa1"}),
        raw.as_bytes(),
        Signer::Pem(RSA1),
    );
    assert_code(check(&t, &policy(&[A::RS256])), "invalid_claim");
    // Zero skew: exp == now is expired.
    let mut p = policy(&[A::RS256]);
    p.clock_skew = Duration::ZERO;
    assert_code(
        check(&rs256(&claims_with(json!({"exp": NOW}))), &p),
        "expired",
    );
    check(
        &rs256(&claims_with(json!({"exp": NOW + 1, "iat": NOW}))),
        &p,
    )
    .unwrap();
    // Extreme values do not overflow.
    rs256_check(&claims_with(json!({"exp": i64::MAX}))).unwrap();
    assert_code(
        rs256_check(&claims_with(json!({"exp": i64::MIN}))),
        "expired",
    );
}

#[test]
fn iat_is_required_and_not_in_the_future() {
    let e = assert_code(
        rs256_check(&claims_with(json!({"iat": NOW + 3600}))),
        "issued_in_future",
    );
    assert!(
        e.to_string().contains(&format!("iat {}", NOW + 3600)),
        "{e}"
    );
    assert_code(
        rs256_check(&claims_with(json!({"iat": NOW + 61}))),
        "issued_in_future",
    );
    rs256_check(&claims_with(json!({"iat": NOW + 60}))).unwrap();
    assert_code(
        rs256_check(&claims_with(json!({"iat": null}))),
        "missing_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"iat": "1700000000"}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"iat": 1.5}))),
        "invalid_claim",
    );
    rs256_check(&claims_with(json!({"iat": i64::MIN}))).unwrap();
}

#[test]
fn nbf_when_present_is_checked() {
    let e = assert_code(
        rs256_check(&claims_with(json!({"nbf": NOW + 60 + 1}))),
        "not_yet_valid",
    );
    assert_eq!(
        e,
        IdTokenError::NotYetValid {
            nbf: NOW + 61,
            now: NOW,
            skew: 60
        }
    );
    rs256_check(&claims_with(json!({"nbf": NOW + 60}))).unwrap();
    rs256_check(&claims_with(json!({"nbf": NOW - 1000}))).unwrap();
    assert_code(
        rs256_check(&claims_with(json!({"nbf": "soon"}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"nbf": 1e300}))),
        "invalid_claim",
    );
}

// ---------------------------------------------------------------------------------------------
// Pitfall 8: nonce
// ---------------------------------------------------------------------------------------------

#[test]
fn nonce_is_required_and_equal_when_expected() {
    assert_code(
        rs256_check(&claims_with(json!({"nonce": null}))),
        "nonce_missing",
    );
    let e = assert_code(
        rs256_check(&claims_with(json!({"nonce": "n-from-another-prepare"}))),
        "nonce_mismatch",
    );
    let msg = e.to_string();
    assert!(!msg.contains(NONCE) && !msg.contains("another"), "{msg}");
    assert_code(
        rs256_check(&claims_with(json!({"nonce": ""}))),
        "nonce_mismatch",
    );
    assert_code(
        rs256_check(&claims_with(json!({"nonce": 42}))),
        "invalid_claim",
    );
    // Prefix / suffix of the right nonce.
    assert_code(
        rs256_check(&claims_with(json!({"nonce": &NONCE[1..]}))),
        "nonce_mismatch",
    );
    assert_code(
        rs256_check(&claims_with(json!({"nonce": format!("{NONCE}x")}))),
        "nonce_mismatch",
    );
    // No nonce expected (e.g. a refreshed ID token): absence is fine.
    let mut p = policy(&[A::RS256]);
    p.expected_nonce = None;
    check(&rs256(&claims_with(json!({"nonce": null}))), &p).unwrap();
}

// ---------------------------------------------------------------------------------------------
// sub
// ---------------------------------------------------------------------------------------------

#[test]
fn sub_is_a_required_non_empty_string_of_at_most_255_bytes() {
    assert_code(
        rs256_check(&claims_with(json!({"sub": null}))),
        "missing_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"sub": ""}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"sub": 42}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"sub": ["alice"]}))),
        "invalid_claim",
    );
    assert_code(
        rs256_check(&claims_with(json!({"sub": "a".repeat(256)}))),
        "invalid_claim",
    );
    rs256_check(&claims_with(json!({"sub": "a".repeat(255)}))).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Pitfalls 19, 20: structure, size, JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_claims_and_header_members_are_refused() {
    let raw = format!(
        r#"{{"iss":"{ISS}","sub":"alice","aud":"{CLIENT}","exp":{},"iat":{NOW},"nonce":"{NONCE}","sub":"admin"}}"#,
        NOW + 600
    );
    let t = mint_raw(
        &json!({"alg": "RS256", "kid": "rsa1"}),
        raw.as_bytes(),
        Signer::Pem(RSA1),
    );
    let e = assert_code(check(&t, &policy(&[A::RS256])), "malformed");
    assert!(
        e.to_string().contains(r#"duplicate member name "sub""#),
        "{e}"
    );
    // Duplicate alg in the header.
    let t = unsigned(r#"{"alg":"RS256","alg":"none"}"#, &raw, "c2ln");
    let e = assert_code(check(&t, &policy(&[A::RS256])), "malformed");
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn payload_must_be_a_json_object() {
    for payload in [
        "[]",
        "null",
        "\"str\"",
        "42",
        "true",
        "",
        "{",
        "{}x",
        "\u{feff}{}",
    ] {
        let t = mint_raw(
            &json!({"alg": "RS256", "kid": "rsa1"}),
            payload.as_bytes(),
            Signer::Pem(RSA1),
        );
        assert_code(check(&t, &policy(&[A::RS256])), "malformed");
    }
    // Invalid UTF-8 in a signed payload.
    let t = mint_raw(
        &json!({"alg": "RS256", "kid": "rsa1"}),
        b"{\"sub\":\"\xff\"}",
        Signer::Pem(RSA1),
    );
    assert_code(check(&t, &policy(&[A::RS256])), "malformed");
}

#[test]
fn deeply_nested_payload_is_refused() {
    let mut c = claims();
    let mut deep = json!("x");
    for _ in 0..20 {
        deep = json!([deep]);
    }
    c["groups"] = deep;
    let e = assert_code(rs256_check(&c), "malformed");
    assert!(e.to_string().contains("nested deeper"), "{e}");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let t = mint_raw(
        &json!({"alg": "RS256", "kid": "rsa1"}),
        nested.as_bytes(),
        Signer::Pem(RSA1),
    );
    assert_code(check(&t, &policy(&[A::RS256])), "malformed");
    // Moderate nesting is fine.
    let mut c = claims();
    c["realm_access"] = json!({"roles": ["a", {"b": ["c"]}]});
    rs256_check(&c).unwrap();
}

#[test]
fn compression_crit_and_jwe_headers_are_refused() {
    let p = policy(&[A::RS256]);
    for (extra, param) in [
        (json!({"zip": "DEF"}), "zip"),
        (json!({"crit": ["exp"], "exp": 1}), "crit"),
        (json!({"crit": []}), "crit"),
        (json!({"enc": "A256GCM"}), "enc"),
    ] {
        let mut header = json!({"alg": "RS256", "kid": "rsa1"});
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        let t = mint(&header, &claims(), Signer::Pem(RSA1));
        let e = assert_code(check(&t, &p), "forbidden_header");
        assert_eq!(e, IdTokenError::ForbiddenHeader { param });
    }
}

#[test]
fn foreign_token_types_are_refused() {
    for typ in ["at+jwt", "application/at+JWT", "logout+jwt", "secevent+jwt"] {
        let t = mint(
            &json!({"alg": "RS256", "kid": "rsa1", "typ": typ}),
            &claims(),
            Signer::Pem(RSA1),
        );
        assert_code(check(&t, &policy(&[A::RS256])), "wrong_type");
    }
    let t = mint(
        &json!({"alg": "RS256", "kid": "rsa1", "typ": 1}),
        &claims(),
        Signer::Pem(RSA1),
    );
    assert_code(check(&t, &policy(&[A::RS256])), "malformed");
}

#[test]
fn part_count_is_exactly_three() {
    let p = policy(&[A::RS256]);
    let good = rs256(&claims());
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn";
    assert_code(check(jwe, &p), "encrypted_token");
    assert_code(check(&format!("{good}.x.y"), &p), "encrypted_token");
    assert_code(check(&format!("{good}.x"), &p), "malformed");
    let two = good.rsplit_once('.').unwrap().0;
    assert_code(check(two, &p), "malformed");
    assert_code(check("", &p), "malformed");
    assert_code(check("abc", &p), "malformed");
    assert_code(check("..", &p), "malformed");
}

#[test]
fn oversized_tokens_are_refused_before_decoding() {
    let p = policy(&[A::RS256]);
    let big = format!("{}.{}.c2ln", "e".repeat(1024 * 1024), "e".repeat(10));
    let e = assert_code(check(&big, &p), "token_too_long");
    assert!(e.to_string().contains("more than the 65536 allowed"), "{e}");
    let dots = ".".repeat(100_000);
    assert_code(check(&dots, &p), "token_too_long");
    // With the cap lifted, they are still refused, quickly and without panicking.
    let mut roomy = policy(&[A::RS256]);
    roomy.max_token_len = 32 * 1024 * 1024;
    let started = std::time::Instant::now();
    assert_code(check(&dots, &roomy), "malformed");
    assert!(check(&big, &roomy).is_err());
    let sixteen = "A".repeat(16 * 1024 * 1024);
    assert!(check(&format!("{sixteen}.{sixteen}.c2ln"), &roomy).is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    // A claim of 1 MB: over the default cap.
    let t = rs256(&claims_with(json!({"blob": "x".repeat(1024 * 1024)})));
    assert_code(check(&t, &p), "token_too_long");
    // Exactly at the cap is allowed through to the next checks.
    let t = rs256(&claims());
    let mut exact = policy(&[A::RS256]);
    exact.max_token_len = t.len();
    check(&t, &exact).unwrap();
    exact.max_token_len = t.len() - 1;
    assert_code(check(&t, &exact), "token_too_long");
}

#[test]
fn base64_must_be_strict_url_safe_without_padding() {
    let p = policy(&[A::RS256]);
    let good = rs256(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!("{}!.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0].replace('-', "+"), parts[1], parts[2]) + "+/",
        format!(" {}.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}\n", parts[0], parts[1], parts[2]),
    ] {
        assert_code(check(&bad, &p), "malformed");
    }
    // Non-canonical trailing bits in the header ("e30" is "{}"; "e31" has stray bits).
    assert_code(
        check(&format!("e31.{}.{}", parts[1], parts[2]), &p),
        "malformed",
    );
    // Header not UTF-8 / not an object.
    for header in [
        &b"{\"alg\":\"RS256\xff\"}"[..],
        b"[]",
        b"\"RS256\"",
        b"null",
    ] {
        let t = format!("{}.{}.{}", B64.encode(header), parts[1], parts[2]);
        assert_code(check(&t, &p), "malformed");
    }
}

#[test]
fn every_line_of_the_malformed_token_corpus_is_refused() {
    // Keys the corpus tokens name: kid "ec1" for the ES256 vectors, so they reach the crypto.
    let p = policy(&[A::RS256, A::ES256]);
    let mut comment = "";
    let mut seen = 0;
    for line in CORPUS.lines() {
        if line.starts_with('#') {
            comment = line;
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        seen += 1;
        let result = check(line, &p);
        let e = match result {
            Ok(c) => panic!("corpus token accepted ({comment}): {c:?}"),
            Err(e) => e,
        };
        let expected = if comment.contains("alg none") || comment.contains("alg None") {
            Some("alg_not_allowed")
        } else if comment.contains("jwk") || comment.contains("jku") || comment.contains("x5u") {
            Some("forbidden_header")
        } else if comment.contains("all-zero") || comment.contains("DER-encoded") {
            Some("bad_signature")
        } else if comment.contains("10 KB") {
            Some("malformed")
        } else {
            None
        };
        if let Some(code) = expected {
            assert_eq!(e.code(), code, "{comment}: {e}");
        }
        let msg = e.to_string();
        assert!(
            !msg.contains("c2ln") && !msg.contains(NONCE),
            "{comment}: {msg}"
        );
    }
    assert!(seen >= 25, "corpus has {seen} tokens");
}

// ---------------------------------------------------------------------------------------------
// Error messages and Debug never leak
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_never_echo_nonce_token_signature_or_secret() {
    let mut p = policy(&[A::RS256, A::HS256]);
    p.client_secret = Some(Secret::new(CLIENT_SECRET.into()));
    let tokens = vec![
        rs256(&claims_with(json!({"nonce": "attacker-nonce-value"}))),
        rs256(&claims_with(json!({"nonce": null}))),
        rs256(&claims_with(json!({"exp": NOW - 1000}))),
        rs256(&claims_with(json!({"iss": "https://evil"}))),
        mint(
            &json!({"alg": "RS256", "kid": "rsa1"}),
            &claims(),
            Signer::Pem(ATTACKER),
        ),
        hs256_with(b"wrong secret"),
        mint(
            &json!({"alg": "RS256", "kid": "nope"}),
            &claims(),
            Signer::Pem(RSA1),
        ),
    ];
    for t in tokens {
        let e = check(&t, &p).unwrap_err();
        let shown = format!("{e} {e:?}");
        let (input, sig) = t.rsplit_once('.').unwrap();
        for secret in [NONCE, "attacker-nonce-value", CLIENT_SECRET, sig, input] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    // The policy's Debug redacts the secret and the nonce.
    let shown = format!("{p:?}");
    assert!(
        !shown.contains(CLIENT_SECRET) && !shown.contains(NONCE),
        "{shown}"
    );
}

#[test]
fn claims_debug_shows_no_token_and_no_nonce() {
    let t = rs256(&claims_with(json!({"email": "alice@example.com"})));
    let c = check(&t, &policy(&[A::RS256])).unwrap();
    let shown = format!("{c:?}");
    assert!(
        shown.contains("alice") && shown.contains("email"),
        "{shown}"
    );
    assert!(
        !shown.contains("alice@example.com"),
        "claim values are not shown: {shown}"
    );
    assert!(!shown.contains(NONCE), "{shown}");
    for part in t.split('.') {
        assert!(!shown.contains(part), "{shown}");
    }
}

#[test]
fn every_error_has_a_distinct_snake_case_code() {
    let errors = [
        IdTokenError::TooLong { len: 0, max: 0 },
        IdTokenError::Malformed {
            reason: String::new(),
        },
        IdTokenError::Encrypted,
        IdTokenError::AlgNotAllowed { alg: String::new() },
        IdTokenError::ForbiddenHeader { param: "jku" },
        IdTokenError::WrongType { typ: String::new() },
        IdTokenError::KidNotFound { kid: String::new() },
        IdTokenError::KeyAlgMismatch {
            kid: String::new(),
            alg: "RS256",
        },
        IdTokenError::NoKeyForAlg { alg: "RS256" },
        IdTokenError::AmbiguousKey {
            alg: "RS256",
            count: 2,
        },
        IdTokenError::HmacSecretMissing { alg: "HS256" },
        IdTokenError::BadSignature,
        IdTokenError::MissingClaim { claim: "exp" },
        IdTokenError::InvalidClaim {
            claim: "exp",
            reason: "",
        },
        IdTokenError::IssuerMismatch {
            expected: String::new(),
            found: String::new(),
        },
        IdTokenError::AudienceMismatch {
            client_id: String::new(),
        },
        IdTokenError::AzpMissing,
        IdTokenError::AzpMismatch {
            expected: String::new(),
            found: String::new(),
        },
        IdTokenError::Expired {
            exp: 0,
            now: 0,
            skew: 0,
        },
        IdTokenError::IssuedInFuture {
            iat: 0,
            now: 0,
            skew: 0,
        },
        IdTokenError::NotYetValid {
            nbf: 0,
            now: 0,
            skew: 0,
        },
        IdTokenError::NonceMissing,
        IdTokenError::NonceMismatch,
        IdTokenError::AtHashMissing,
        IdTokenError::AtHashMismatch,
        IdTokenError::CHashMissing,
        IdTokenError::CHashMismatch,
    ];
    let codes: std::collections::BTreeSet<&str> = errors.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), errors.len());
    for c in codes {
        assert!(
            c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// at_hash / c_hash
// ---------------------------------------------------------------------------------------------

#[test]
fn at_hash_and_c_hash_match_the_spec_examples() {
    // OpenID Connect Core 1.0, Appendix A.4 / A.6 (RS256).
    let access_token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    let code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";
    let c = rs256_check(&claims_with(json!({
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "c_hash": "LDktKdoQak3Pk0cnXxCltA",
    })))
    .unwrap();
    check_at_hash(&c, access_token, true).unwrap();
    check_c_hash(&c, code, true).unwrap();
    assert_code(
        check_at_hash(&c, "another-token", true).map(|_| c.clone()),
        "at_hash_mismatch",
    );
    assert_code(
        check_c_hash(&c, "another-code", false).map(|_| c.clone()),
        "c_hash_mismatch",
    );
}

#[test]
fn at_hash_required_only_when_asked() {
    let c = rs256_check(&claims()).unwrap();
    check_at_hash(&c, "token", false).unwrap();
    assert_code(
        check_at_hash(&c, "token", true).map(|_| c.clone()),
        "at_hash_missing",
    );
    assert_code(
        check_c_hash(&c, "code", true).map(|_| c.clone()),
        "c_hash_missing",
    );
    let c = rs256_check(&claims_with(json!({"at_hash": 5}))).unwrap();
    assert_code(
        check_at_hash(&c, "token", false).map(|_| c.clone()),
        "invalid_claim",
    );
}

#[test]
fn at_hash_uses_the_hash_of_the_token_alg() {
    let access_token = "an-access-token";
    let h384 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, access_token.as_bytes());
    let at_hash = B64.encode(&h384.as_ref()[..24]);
    let t = mint(
        &json!({"alg": "RS384", "kid": "rsa1"}),
        &claims_with(json!({ "at_hash": at_hash })),
        Signer::Pem(RSA1),
    );
    let c = check(&t, &policy(&[A::RS384])).unwrap();
    check_at_hash(&c, access_token, true).unwrap();
    // The SHA-256 half would be wrong for RS384.
    let h256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    let t = mint(
        &json!({"alg": "RS384", "kid": "rsa1"}),
        &claims_with(json!({ "at_hash": B64.encode(&h256.as_ref()[..16]) })),
        Signer::Pem(RSA1),
    );
    let c = check(&t, &policy(&[A::RS384])).unwrap();
    assert_code(
        check_at_hash(&c, access_token, true).map(|_| c.clone()),
        "at_hash_mismatch",
    );
}

// ---------------------------------------------------------------------------------------------
// JWKS
// ---------------------------------------------------------------------------------------------

fn parse_keys(keys: Vec<Value>) -> Result<(KeySet, Vec<String>), JwksError> {
    KeySet::parse(&serde_json::to_vec(&json!({ "keys": keys })).unwrap())
}

#[test]
fn jwks_skips_unusable_keys_with_a_warning_naming_the_kid() {
    let (n, e) = rsa_n_e(RSA1);
    let mut enc = rsa_jwk(RSA2, Some("enc-key"));
    enc["use"] = json!("enc");
    let mut oaep = rsa_jwk(RSA2, Some("oaep"));
    oaep["alg"] = json!("RSA-OAEP");
    oaep.as_object_mut().unwrap().remove("use");
    let mut wrong_alg = rsa_jwk(RSA2, Some("rsa-says-es256"));
    wrong_alg["alg"] = json!("ES256");
    let mut encrypt_only = rsa_jwk(RSA2, Some("ops-encrypt"));
    encrypt_only["key_ops"] = json!(["encrypt"]);
    let mut bad_point = ec_jwk(EC256, A::ES256, "off-curve");
    bad_point["y"] = bad_point["x"].clone();
    let cases = vec![
        (
            json!({"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AAAA"}),
            "pq",
        ),
        (
            json!({"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"}),
            "k1",
        ),
        (
            json!({"kty": "OKP", "kid": "ed448", "crv": "Ed448", "x": "AA"}),
            "ed448",
        ),
        (
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            "hmac",
        ),
        (
            json!({"kty": "RSA", "kid": "bad-n", "n": "!!", "e": B64.encode(&e)}),
            "bad-n",
        ),
        (
            json!({"kty": "RSA", "kid": "small", "n": B64.encode(&n[..128]), "e": "AQAB"}),
            "small",
        ),
        (
            json!({"kty": "RSA", "kid": "even-e", "n": B64.encode(&n), "e": "Ag"}),
            "even-e",
        ),
        (
            json!({"kty": "RSA", "kid": "empty-n", "n": "", "e": "AQAB"}),
            "empty-n",
        ),
        (
            json!({"kty": "RSA", "kid": "zero-n", "n": "AAAA", "e": "AQAB"}),
            "zero-n",
        ),
        (
            json!({"kty": "RSA", "kid": "no-e", "n": B64.encode(&n)}),
            "no-e",
        ),
        (
            json!({"kty": "EC", "kid": "short-x", "crv": "P-256", "x": "AAAA", "y": "AAAA"}),
            "short-x",
        ),
        (json!({"kid": "no-kty"}), "no-kty"),
        (json!({"kty": "RSA", "kid": 5}), "key #"),
        (json!("not an object"), "key #"),
        (enc, "enc-key"),
        (oaep, "oaep"),
        (wrong_alg, "rsa-says-es256"),
        (encrypt_only, "ops-encrypt"),
        (bad_point, "off-curve"),
    ];
    let mut keys: Vec<Value> = cases.iter().map(|(k, _)| k.clone()).collect();
    keys.push(rsa_jwk(RSA1, Some("rsa1")));
    let (set, warnings) = parse_keys(keys).unwrap();
    assert_eq!(set.kids(), ["rsa1"]);
    assert_eq!(warnings.len(), cases.len(), "{warnings:#?}");
    for ((_, name), warning) in cases.iter().zip(&warnings) {
        assert!(warning.contains(name), "{name}: {warning}");
    }
    assert!(
        warnings.iter().any(|w| w.contains("never used to verify")),
        "{warnings:#?}"
    );
}

#[test]
fn jwks_without_a_usable_key_or_of_a_bad_shape_is_an_error() {
    let mut enc = rsa_jwk(RSA1, Some("rsa1"));
    enc["use"] = json!("enc");
    assert_eq!(
        parse_keys(vec![enc]).unwrap_err(),
        JwksError::NoUsableKey { skipped: 1 }
    );
    assert_eq!(parse_keys(vec![]).unwrap_err().code(), "jwks_no_usable_key");
    assert_eq!(
        KeySet::parse(b"not json").unwrap_err().code(),
        "jwks_not_json"
    );
    assert_eq!(KeySet::parse(b"[]").unwrap_err(), JwksError::NoKeysArray);
    assert_eq!(
        KeySet::parse(br#"{"keys":{}}"#).unwrap_err(),
        JwksError::NoKeysArray
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[],"keys":[]}"#)
            .unwrap_err()
            .code(),
        "jwks_not_json"
    );
    let huge = vec![b' '; jwks::MAX_JWKS_BYTES + 1];
    assert_eq!(KeySet::parse(&huge).unwrap_err().code(), "jwks_too_large");
    let many: Vec<Value> = (0..=jwks::MAX_KEYS).map(|_| json!({})).collect();
    assert_eq!(
        parse_keys(many).unwrap_err(),
        JwksError::TooManyKeys {
            count: jwks::MAX_KEYS + 1,
            max: jwks::MAX_KEYS
        }
    );
}

#[test]
fn enc_keys_are_never_used_to_verify() {
    let mut enc = rsa_jwk(RSA1, Some("rsa1"));
    enc["use"] = json!("enc");
    let (set, warnings) = parse_keys(vec![enc, rsa_jwk(RSA2, Some("rsa2"))]).unwrap();
    assert_eq!(warnings.len(), 1);
    assert_code(
        validate(&rs256(&claims()), &policy(&[A::RS256]), &set, NOW),
        "kid_not_found",
    );
    // Without a kid, the remaining (sig) key is the single candidate, and it did not sign.
    let no_kid = mint(&json!({"alg": "RS256"}), &claims(), Signer::Pem(RSA1));
    assert_code(
        validate(&no_kid, &policy(&[A::RS256]), &set, NOW),
        "bad_signature",
    );
}

#[test]
fn select_matches_kid_and_family_and_never_guesses() {
    let set = key_set(vec![
        rsa_jwk(RSA1, Some("a")),
        rsa_jwk(RSA2, Some("a")),
        ec_jwk(EC256, A::ES256, "a"),
        ec_jwk(EC384, A::ES384, "p384"),
        ed_jwk("ed"),
    ]);
    assert_eq!(set.len(), 5);
    assert_eq!(set.kids(), ["a", "a", "a", "p384", "ed"]);
    assert!(matches!(
        set.select(Some("a"), A::RS256),
        Err(KeySelectError::Ambiguous {
            count: 2,
            kid_given: true,
            ..
        })
    ));
    let ec = set.select(Some("a"), A::ES256).unwrap();
    assert_eq!(ec.family(), KeyFamily::Ec(jwks::EcCurve::P256));
    assert_eq!(set.select(None, A::ES384).unwrap().kid(), Some("p384"));
    assert!(matches!(
        set.select(Some("p384"), A::ES512),
        Err(KeySelectError::KidWrongAlgorithm { .. })
    ));
    assert!(matches!(
        set.select(None, A::ES512),
        Err(KeySelectError::NoKeyForAlgorithm { alg: A::ES512 })
    ));
    assert_eq!(
        set.select(Some("zz"), A::PS256).unwrap_err().to_string(),
        r#"kid "zz" not in JWKS"#
    );
    assert!(matches!(
        set.select(Some("a"), A::HS256),
        Err(KeySelectError::Symmetric { .. })
    ));
    // The Ed25519 key is selected for EdDSA only.
    let ed = set.keys().iter().find(|k| k.kid() == Some("ed")).unwrap();
    assert_eq!(ed.family(), KeyFamily::Ed25519);
    for alg in A::ALL {
        assert_eq!(ed.fits(alg), alg == A::EdDSA, "{alg:?}");
        assert_eq!(set.select(Some("ed"), alg).is_ok(), alg == A::EdDSA);
    }
    assert_eq!(set.select(None, A::EdDSA).unwrap().kid(), Some("ed"));
}

#[test]
fn jwks_key_debug_shows_no_key_material() {
    let set = key_set(vec![rsa_jwk(RSA1, Some("rsa1"))]);
    let (n, _) = rsa_n_e(RSA1);
    let shown = format!("{set:?}");
    assert!(shown.contains("rsa1") && shown.contains("2048"), "{shown}");
    assert!(!shown.contains(&B64.encode(&n)[..20]), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// Mutations: never a panic
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (no extra dependency), so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

#[test]
fn mutated_tokens_are_refused_without_panicking() {
    let p = policy(&[A::RS256, A::ES256, A::HS256]);
    let keys = op_keys();
    let seeds = [
        rs256(&claims()),
        mint(
            &json!({"alg": "ES256", "kid": "ec1"}),
            &claims(),
            Signer::Pem(EC256),
        ),
    ];
    let alphabet = b"AZaz09-_.=+/!{}\"\\ \0\xff";
    let mut rng = Lcg(0x5eed);
    for seed in &seeds {
        for _ in 0..1500 {
            let mut bytes = seed.clone().into_bytes();
            for _ in 0..1 + rng.next() % 4 {
                let i = rng.next() % bytes.len();
                match rng.next() % 4 {
                    0 => bytes[i] = alphabet[rng.next() % alphabet.len()],
                    1 => {
                        bytes.remove(i);
                    }
                    2 => bytes.insert(i, alphabet[rng.next() % alphabet.len()]),
                    _ => bytes.truncate(i),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let mutated = String::from_utf8_lossy(&bytes);
            if mutated == seed.as_str() {
                continue;
            }
            // A mutation may only survive if it left the signed bytes and signature intact
            // (e.g. it was undone); anything accepted must decode to the seed's claims.
            if let Ok(c) = validate(&mutated, &p, &keys, NOW) {
                assert_eq!(c.sub(), "alice", "{mutated}");
            }
        }
    }
}

#[test]
fn mutated_jwks_entries_never_panic() {
    let values = [
        json!(null),
        json!(""),
        json!("AAAA"),
        json!("!!"),
        json!(0),
        json!(-1),
        json!(1e300),
        json!([]),
        json!({}),
        json!("RSA"),
        json!("EC"),
        json!("OKP"),
        json!("P-521"),
        json!("sig"),
        json!(["verify"]),
    ];
    let members = [
        "kty", "kid", "use", "alg", "crv", "n", "e", "x", "y", "key_ops",
    ];
    let base = [
        rsa_jwk(RSA1, Some("rsa1")),
        ec_jwk(EC256, A::ES256, "ec1"),
        ec_jwk(EC521, A::ES512, "ec521"),
        ed_jwk("ed"),
    ];
    let mut rng = Lcg(7);
    for _ in 0..2000 {
        let mut jwk = base[rng.next() % base.len()].clone();
        for _ in 0..1 + rng.next() % 3 {
            let member = members[rng.next() % members.len()];
            jwk[member] = values[rng.next() % values.len()].clone();
        }
        if let Ok((set, _)) = parse_keys(vec![jwk]) {
            for alg in A::ALL {
                let _ = set.select(None, alg);
                let _ = set.select(Some("rsa1"), alg);
            }
        }
    }
}
