//! A fake OpenID Provider for end-to-end tests of the realm's OIDC flows, plus a
//! [`Tripwire`] listener and [`realm_yaml`] / [`realm_config`] to configure a realm against it.
//!
//! The OP runs in-process on `127.0.0.1:<random port>` (an actix-web `HttpServer` spawned on
//! the test's runtime, one worker), speaks plain HTTP and serves:
//!
//! | Path | What |
//! |---|---|
//! | `/.well-known/openid-configuration` | discovery document |
//! | `/jwks` | the current public JWKS ([`FakeOp::rotate_to`], [`FakeOp::set_jwks`]) |
//! | `/authorize` | "the user logs in": `302` to `redirect_uri` with `?code=&state=` or `#id_token=&state=[&access_token=&token_type=Bearer]` |
//! | `/token` | code exchange: client auth (basic / post / jwt), single-use code, `redirect_uri`, PKCE |
//! | `/userinfo` | Bearer access token from `/token` or the implicit flow → claims JSON |
//! | `/logout` | records the query, `302` to `post_logout_redirect_uri` if given |
//!
//! Anything else gets 404 (and is logged too). Every request is logged ([`FakeOp::hits`],
//! [`FakeOp::last`], [`FakeOp::requests`]).
//!
//! Behaviour is driven by [`Knobs`] (`op.knobs`, an `Arc<Mutex<Knobs>>`; change them with
//! [`FakeOp::set`] between requests). Knobs persist until changed ([`FakeOp::reset_knobs`]),
//! and token-shaping knobs apply to every ID token minted after the change (at `/token` for the
//! code flow, at `/authorize` for the implicit flows, or by [`FakeOp::mint_id_token`]). The
//! user is captured at `/authorize` (login time).
//!
//! Time: the OP's `iat`/`exp`/`nbf` come from a [`Clock`]; by default its own manual clock at
//! [`DEFAULT_NOW`] (= the `TestApp` clock's start). Share the server's clock with
//! [`FakeOp::use_clock`] or move it with [`FakeOp::set_now`].
//!
//! Knob cheat-sheet (user-needs §2 row → knob; `op.set(|k| ...)`):
//!
//! | Row | Knobs |
//! |---|---|
//! | 1 `alg: none` | `k.unsigned("none")` / `"None"` / `"NONE"` |
//! | 2 RS/HS confusion | `k.signer = Signer::PublicKeyPem` / `PublicKeyModulus` / `ClientSecret` |
//! | 3 mixed families | `k.signer = Signer::Key(KeyChoice::Ec256); k.kid = Kid::Value("rsa1".into())` |
//! | 4 header key material, kid | `k.embed_attacker_jwk()`, `k.jku(&tripwire.url("/"))`, `k.x5u(..)`, `k.kid = Kid::Value(..)` |
//! | 5 kid storm | `k.kid = Kid::Value(random)`; `op.jwks_fetches()` |
//! | 6 JWKS fetch | `k.jwks_body`, `k.jwks_status`, `k.jwks_delay`, `k.jwks_redirect`, `k.discovery_extra` |
//! | 7 bad signatures | `k.corrupt_signature`, `k.signature = Some(literal)` |
//! | 8 nonce | `k.nonce = Param::Drop` / `Param::Replace(..)` |
//! | 9 state | `k.state = Param::Drop` / `Param::Replace(..)` |
//! | 13 identifiers | `k.user.{sub,email,name,groups,extra}` |
//! | 14 iss/aud/azp | `k.iss`, `k.aud` (string or array), `k.azp` |
//! | 15 time | `k.exp_offset` (`None` drops `exp`), `k.iat_offset`, `k.nbf_offset`, `k.claims["exp"]` |
//! | 19/20 odd tokens | `k.header` (`zip`, `typ`...), `k.duplicate_sub`, `k.id_token = Some(literal)` |
//! | at/c hash | `k.at_hash`, `k.c_hash` = `HashClaim::{Correct, Wrong, Absent}` |
//! | token endpoint | `k.token_reply = TokenReply::{invalid_grant(..), ServerError, NonJson, NoIdToken, TokenType("mac")}`, `k.token_extra`, `k.token_delay` |
//! | userinfo | `k.userinfo_reply = UserinfoReply::{SubMismatch, Jwt, ServerError}`, `k.userinfo_claims` |
//! | OP error | `k.authorize_error = Some(("access_denied".into(), "..".into()))` |
//! | client | `k.client_auth = ClientAuth::{Basic, Post, Jwt}`, `k.client_secret`, `k.require_pkce` |
//! | keys | `op.rotate_to(kid, KeyChoice::Rsa2, keep_old)`, `op.set_jwks(..)` |
//!
//! Client registration defaults: [`CLIENT_ID`], [`CLIENT_SECRET`] (contains characters that
//! RFC 6749 §2.3.1 form-encoding changes, so `client_secret_basic` done wrong is refused),
//! [`REDIRECT_URI`], `client_secret_basic`.
//!
//! ```ignore
//! #[actix_web::test]
//! async fn code_flow() {
//!     let op = FakeOp::start().await;
//!     op.use_clock(app.clock.clone());
//!     let realm = realm_config(&op, "oidc1", 0, "code", &[]);
//!     // ... prepare with the realm server → `redirect` (an op.url("/authorize?...") URL)
//!     op.set(|k| k.user.sub = "alice".into());
//!     let callback = op.browser_login(&redirect).await; // https://kibana.../callback?code=..&state=..
//!     op.set(|k| k.nonce = Param::Drop);                  // shape the ID token /token will return
//!     // ... authenticate with `callback` → expect 401
//!     assert_eq!(op.hits("/token"), 1);
//!     assert!(op.last("/token").unwrap().form("code_verifier").is_some());
//! }
//! ```
#![allow(dead_code)]

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{self as lc, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use oidc_realm::clock::{ManualClock, SharedClock};
use oidc_realm::config::{RealmConfig, SignatureAlgorithm as A};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// Default registered client id.
pub const CLIENT_ID: &str = "oidc-realm-test";
/// Default client secret. `/`, `+`, `:`, `=` and the space change under RFC 6749 §2.3.1
/// form-encoding, so a client that skips it fails `client_secret_basic`.
pub const CLIENT_SECRET: &str =
    "fake-op/secret+with:odd= chars-0123456789abcdef0123456789abcdef0123";
/// Default (and only) registered redirect URI.
pub const REDIRECT_URI: &str = "https://kibana.example.org/api/security/oidc/callback";
/// `rp.post_logout_redirect_uri` used by [`realm_yaml`].
pub const POST_LOGOUT_REDIRECT_URI: &str = "https://kibana.example.org/logged_out";
/// The OP's default time, seconds: the `TestApp` manual clock's start (1_790_000_000_000 ms).
pub const DEFAULT_NOW: i64 = 1_790_000_000;
/// `expires_in` of access tokens issued by the OP.
pub const ACCESS_TOKEN_TTL: i64 = 3600;

const RSA1: &str = include_str!("../fixtures/keys/rsa1.pem");
const RSA2: &str = include_str!("../fixtures/keys/rsa2.pem");
const ATTACKER: &str = include_str!("../fixtures/keys/attacker-rsa.pem");
const EC256: &str = include_str!("../fixtures/keys/ec256.pem");
const EC384: &str = include_str!("../fixtures/keys/ec384.pem");
const EC521: &str = include_str!("../fixtures/keys/ec521.pem");

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// One of the fixture keys in `tests/fixtures/keys/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyChoice {
    Rsa1,
    Rsa2,
    /// Never in the JWKS unless a test puts it there.
    AttackerRsa,
    Ec256,
    Ec384,
    Ec521,
}

impl KeyChoice {
    /// The default kid: `rsa1`, `rsa2`, `attacker`, `ec256`, `ec384`, `ec521`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa1 => "rsa1",
            Self::Rsa2 => "rsa2",
            Self::AttackerRsa => "attacker",
            Self::Ec256 => "ec256",
            Self::Ec384 => "ec384",
            Self::Ec521 => "ec521",
        }
    }

    pub fn pem(self) -> &'static str {
        match self {
            Self::Rsa1 => RSA1,
            Self::Rsa2 => RSA2,
            Self::AttackerRsa => ATTACKER,
            Self::Ec256 => EC256,
            Self::Ec384 => EC384,
            Self::Ec521 => EC521,
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa1 | Self::Rsa2 | Self::AttackerRsa)
    }

    /// RS256 for RSA keys, ES256/ES384/ES512 by curve.
    pub fn default_alg(self) -> A {
        match self {
            Self::Ec256 => A::ES256,
            Self::Ec384 => A::ES384,
            Self::Ec521 => A::ES512,
            _ => A::RS256,
        }
    }

    /// Whether this key can sign `alg`.
    pub fn fits(self, alg: A) -> bool {
        use A::*;
        match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => self.is_rsa(),
            ES256 | ES384 | ES512 => self.default_alg() == alg,
            HS256 | HS384 | HS512 | EdDSA => false,
        }
    }

    fn der(self) -> Vec<u8> {
        let body: String = self
            .pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        STANDARD.decode(body).expect("fixture PEM")
    }

    fn rsa(self) -> lc::RsaKeyPair {
        lc::RsaKeyPair::from_pkcs8(&self.der()).expect("RSA fixture")
    }

    fn ec(self) -> lc::EcdsaKeyPair {
        let alg = match self {
            Self::Ec256 => &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
            Self::Ec384 => &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
            _ => &lc::ECDSA_P521_SHA512_FIXED_SIGNING,
        };
        lc::EcdsaKeyPair::from_pkcs8(alg, &self.der()).expect("EC fixture")
    }

    /// The public JWK (`use: sig`, no `alg`, so one RSA key serves RS*/PS*).
    pub fn public_jwk(self, kid: Option<&str>) -> Value {
        let mut jwk = if self.is_rsa() {
            let pair = self.rsa();
            let public = pair.public_key();
            json!({"kty": "RSA", "use": "sig",
                   "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
                   "e": B64.encode(public.exponent().big_endian_without_leading_zero())})
        } else {
            let pair = self.ec();
            let point = pair.public_key().as_ref();
            let len = (point.len() - 1) / 2;
            let crv = match self {
                Self::Ec256 => "P-256",
                Self::Ec384 => "P-384",
                _ => "P-521",
            };
            json!({"kty": "EC", "use": "sig", "crv": crv,
                   "x": B64.encode(&point[1..1 + len]), "y": B64.encode(&point[1 + len..])})
        };
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    /// PEM (SubjectPublicKeyInfo) of an RSA key's public half: what anyone can download, and
    /// the HMAC key of the RS/HS confusion attack.
    pub fn rsa_public_pem(self) -> String {
        let der: PublicKeyX509Der = self.rsa().public_key().as_der().expect("SPKI");
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The RSA modulus bytes (big-endian, no leading zero).
    pub fn rsa_modulus(self) -> Vec<u8> {
        self.rsa()
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec()
    }
}

/// Sign `msg` with `key` under `alg` (an RS*/PS*/ES* algorithm the key fits).
fn sign_pem(key: KeyChoice, alg: A, msg: &[u8]) -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let enc: Option<&'static dyn lc::RsaEncoding> = match alg {
        A::RS256 => Some(&lc::RSA_PKCS1_SHA256),
        A::RS384 => Some(&lc::RSA_PKCS1_SHA384),
        A::RS512 => Some(&lc::RSA_PKCS1_SHA512),
        A::PS256 => Some(&lc::RSA_PSS_SHA256),
        A::PS384 => Some(&lc::RSA_PSS_SHA384),
        A::PS512 => Some(&lc::RSA_PSS_SHA512),
        _ => None,
    };
    match enc {
        Some(enc) => {
            let pair = key.rsa();
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(enc, &rng, msg, &mut sig).expect("RSA sign");
            sig
        }
        None => key.ec().sign(&rng, msg).expect("EC sign").as_ref().to_vec(),
    }
}

fn hmac_alg(alg: A) -> aws_lc_rs::hmac::Algorithm {
    match alg {
        A::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
        A::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
        _ => aws_lc_rs::hmac::HMAC_SHA256,
    }
}

fn sign_hmac(alg: A, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(hmac_alg(alg), key);
    aws_lc_rs::hmac::sign(&key, msg).as_ref().to_vec()
}

/// Left half of the hash of `value` under `alg`'s hash, base64url (`at_hash`, `c_hash`).
pub fn half_hash(alg: A, value: &str) -> String {
    use A::*;
    let digest: Vec<u8> = match alg {
        HS384 | RS384 | ES384 | PS384 => {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, value.as_bytes())
                .as_ref()
                .to_vec()
        }
        HS512 | RS512 | ES512 | PS512 => {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, value.as_bytes())
                .as_ref()
                .to_vec()
        }
        _ => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes())
            .as_ref()
            .to_vec(),
    };
    B64.encode(&digest[..digest.len() / 2])
}

/// S256 PKCE challenge of a verifier.
pub fn pkce_s256(verifier: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("random");
    B64.encode(buf)
}

// ---------------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------------

/// The user who "logs in" at the next `/authorize`.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// A JSON value so tests can send a string, a list, a number...
    pub groups: Option<Value>,
    /// Further claims, in the ID token and the userinfo response.
    pub extra: Map<String, Value>,
}

impl Default for User {
    fn default() -> Self {
        Self {
            sub: "00u1abcd".into(),
            email: Some("james.wong@staff.example.com".into()),
            name: Some("James Wong".into()),
            groups: Some(json!(["finance-team"])),
            extra: Map::new(),
        }
    }
}

impl User {
    /// `sub`, `email`, `name`, `groups` and the extras, as claims.
    pub fn claims(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("sub".into(), json!(self.sub));
        if let Some(v) = &self.email {
            m.insert("email".into(), json!(v));
        }
        if let Some(v) = &self.name {
            m.insert("name".into(), json!(v));
        }
        if let Some(v) = &self.groups {
            m.insert("groups".into(), v.clone());
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

/// A parameter the OP normally echoes (`state` in redirects, `nonce` in ID tokens).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Param {
    #[default]
    Echo,
    Drop,
    Replace(String),
}

impl Param {
    fn apply(&self, original: Option<&str>) -> Option<String> {
        match self {
            Self::Echo => original.map(str::to_owned),
            Self::Drop => None,
            Self::Replace(v) => Some(v.clone()),
        }
    }
}

/// `at_hash` / `c_hash` in the ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashClaim {
    /// Correct when there is something to hash (access token / code), else absent.
    Correct,
    /// A well-formed but wrong value.
    Wrong,
    Absent,
}

/// What signs the ID token. The header `alg` is [`Knobs::alg`] if set, else the signer's
/// natural one (key's default alg, `HS256`, `none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The OP's current signing key ([`FakeOp::rotate_to`]); default.
    OpKey,
    /// A given fixture key (kid: its kid in the JWKS if served, else its name).
    Key(KeyChoice),
    /// HMAC keyed with the client secret (legitimate HS* tokens).
    ClientSecret,
    /// HMAC keyed with the PEM of the OP's RSA public key (RS/HS confusion).
    PublicKeyPem,
    /// HMAC keyed with the raw RSA modulus bytes (RS/HS confusion, variant b).
    PublicKeyModulus,
    /// No signature: `header.payload.` (with `alg: none` unless [`Knobs::alg`] says otherwise).
    Unsigned,
}

/// The `kid` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Kid {
    /// The signing key's kid in the JWKS (none for HMAC / unsigned).
    #[default]
    Auto,
    Omit,
    Value(String),
}

/// How `/token` answers a valid request.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenReply {
    Normal,
    /// `status` with `{"error": error, "error_description": description}`.
    Error {
        status: u16,
        error: String,
        description: String,
    },
    /// 500 with a JSON error body.
    ServerError,
    /// 200 with a `text/html` body.
    NonJson,
    /// A normal answer without `id_token`.
    NoIdToken,
    /// A normal answer with this `token_type` (e.g. `mac`).
    TokenType(String),
    /// Anything: status, content type, body.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

impl TokenReply {
    /// 400 `invalid_grant` with `description`.
    pub fn invalid_grant(description: &str) -> Self {
        Self::Error {
            status: 400,
            error: "invalid_grant".into(),
            description: description.into(),
        }
    }
}

/// How `/userinfo` answers a valid request.
#[derive(Debug, Clone, PartialEq)]
pub enum UserinfoReply {
    Normal,
    /// `sub` differs from the ID token's.
    SubMismatch,
    /// `application/jwt`: the claims signed like an ID token (current key, RS256).
    Jwt,
    ServerError,
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// Client authentication at `/token` (the only method accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    Jwt,
    /// `private_key_jwt`: verified with [`Knobs::client_jwks`] (RS256/PS256/ES256/ES384).
    PrivateKeyJwt,
}

/// Everything a test can change. All fields public; see the module docs.
#[derive(Debug, Clone)]
pub struct Knobs {
    // --- registration ---
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    pub redirect_uris: Vec<String>,
    /// Refuse a code exchange without PKCE (default false: verified only when a
    /// `code_challenge` was sent, as ES sends none).
    pub require_pkce: bool,

    // --- login ---
    /// The user of the next `/authorize`.
    pub user: User,
    /// Answer `/authorize` with `error` / `error_description` instead of logging in.
    pub authorize_error: Option<(String, String)>,
    /// `state` in the `/authorize` redirect.
    pub state: Param,

    // --- ID token claims ---
    /// `iss` (default the issuer).
    pub iss: Option<String>,
    /// `aud`: a string or an array (default the client id).
    pub aud: Option<Value>,
    pub azp: Option<String>,
    /// `exp` = now + this (default 600). `None` drops `exp`.
    pub exp_offset: Option<i64>,
    /// `iat` = now + this (default 0).
    pub iat_offset: i64,
    /// `nbf` = now + this (default absent).
    pub nbf_offset: Option<i64>,
    pub nonce: Param,
    /// Add a second `sub` member with this value (raw JSON, duplicate key).
    pub duplicate_sub: Option<String>,
    pub at_hash: HashClaim,
    pub c_hash: HashClaim,
    /// Claims set last (a `null` removes the claim).
    pub claims: Map<String, Value>,

    // --- ID token JOSE ---
    pub signer: Signer,
    /// Header `alg` (any string, e.g. `None`); also selects the signing algorithm when it is
    /// one the signer can do.
    pub alg: Option<String>,
    pub kid: Kid,
    /// Header members set last (`jku`, `x5u`, `zip`, `typ`...; `null` removes).
    pub header: Map<String, Value>,
    /// Flip a bit in the signature.
    pub corrupt_signature: bool,
    /// The literal signature part (base64url text, or anything: `""`, 64 zero bytes
    /// encoded, a DER blob...), replacing the real signature.
    pub signature: Option<String>,
    /// Every "minted" token is this exact string (malformed-token corpus, JWE, `[]` payload):
    /// `/token`, implicit `/authorize`, [`FakeOp::mint_id_token`] and userinfo JWTs.
    pub id_token: Option<String>,

    // --- endpoints ---
    pub token_reply: TokenReply,
    /// Extra members in a normal `/token` answer (`null` removes, e.g. `access_token`).
    pub token_extra: Map<String, Value>,
    pub token_delay: Option<Duration>,
    pub userinfo_reply: UserinfoReply,
    /// Extra userinfo claims (`null` removes).
    pub userinfo_claims: Map<String, Value>,
    /// Serve this body at `/jwks` instead of the key set.
    pub jwks_body: Option<String>,
    pub jwks_status: u16,
    pub jwks_delay: Option<Duration>,
    /// Answer `/jwks` with `302 Location: <this>`.
    pub jwks_redirect: Option<String>,
    /// Members merged into the discovery document (`null` removes).
    pub discovery_extra: Map<String, Value>,
    /// The client's public JWKs (`private_key_jwt`), as registered with the OP.
    pub client_jwks: Vec<Value>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            client_auth: ClientAuth::Basic,
            redirect_uris: vec![REDIRECT_URI.into()],
            require_pkce: false,
            user: User::default(),
            authorize_error: None,
            state: Param::Echo,
            iss: None,
            aud: None,
            azp: None,
            exp_offset: Some(600),
            iat_offset: 0,
            nbf_offset: None,
            nonce: Param::Echo,
            duplicate_sub: None,
            at_hash: HashClaim::Correct,
            c_hash: HashClaim::Absent,
            claims: Map::new(),
            signer: Signer::OpKey,
            alg: None,
            kid: Kid::Auto,
            header: Map::new(),
            corrupt_signature: false,
            signature: None,
            id_token: None,
            token_reply: TokenReply::Normal,
            token_extra: Map::new(),
            token_delay: None,
            userinfo_reply: UserinfoReply::Normal,
            userinfo_claims: Map::new(),
            jwks_body: None,
            jwks_status: 200,
            jwks_delay: None,
            jwks_redirect: None,
            discovery_extra: Map::new(),
            client_jwks: Vec::new(),
        }
    }
}

impl Knobs {
    /// Sign with the attacker key and embed its public JWK in the header (CVE-2018-0114).
    pub fn embed_attacker_jwk(&mut self) {
        self.signer = Signer::Key(KeyChoice::AttackerRsa);
        self.kid = Kid::Value("attacker".into());
        self.header.insert(
            "jwk".into(),
            KeyChoice::AttackerRsa.public_jwk(Some("attacker")),
        );
    }

    /// Sign with the attacker key, `jku` pointing at `url` (e.g. a [`Tripwire`]).
    pub fn jku(&mut self, url: &str) {
        self.signer = Signer::Key(KeyChoice::AttackerRsa);
        self.kid = Kid::Value("attacker".into());
        self.header.insert("jku".into(), json!(url));
    }

    /// Sign with the attacker key, `x5u` pointing at `url`.
    pub fn x5u(&mut self, url: &str) {
        self.signer = Signer::Key(KeyChoice::AttackerRsa);
        self.kid = Kid::Value("attacker".into());
        self.header.insert("x5u".into(), json!(url));
    }

    /// `alg: <alg>` with an empty signature.
    pub fn unsigned(&mut self, alg: &str) {
        self.signer = Signer::Unsigned;
        self.alg = Some(alg.into());
    }
}

// ---------------------------------------------------------------------------------------------
// Request log
// ---------------------------------------------------------------------------------------------

/// One request the OP received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`).
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    /// Parsed `application/x-www-form-urlencoded` body (empty otherwise).
    pub form: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl RecordedRequest {
    pub fn query(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }
    pub fn form(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, &name.to_ascii_lowercase())
    }
}

// ---------------------------------------------------------------------------------------------
// Server state
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    user: User,
    used: bool,
}

#[derive(Debug)]
struct KeyState {
    /// Served in the JWKS, in order.
    jwks: Vec<(String, KeyChoice)>,
    /// Signs tokens for [`Signer::OpKey`].
    signing: (String, KeyChoice),
}

struct Shared {
    issuer: String,
    knobs: Arc<Mutex<Knobs>>,
    keys: Mutex<KeyState>,
    clock: Mutex<SharedClock>,
    grants: Mutex<HashMap<String, Grant>>,
    access_tokens: Mutex<HashMap<String, User>>,
    assertion_jtis: Mutex<HashSet<String>>,
    log: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    fn knobs(&self) -> Knobs {
        self.knobs.lock().unwrap().clone()
    }

    fn now(&self) -> i64 {
        self.clock.lock().unwrap().now_secs()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    fn jwks_json(&self) -> String {
        let keys = self.keys.lock().unwrap();
        let list: Vec<Value> = keys
            .jwks
            .iter()
            .map(|(kid, k)| k.public_jwk(Some(kid)))
            .collect();
        json!({ "keys": list }).to_string()
    }

    /// Mint an ID token under the current knobs.
    fn mint(&self, ctx: MintCtx<'_>, overrides: &Map<String, Value>) -> String {
        let k = self.knobs();
        if let Some(t) = k.id_token {
            return t;
        }
        let now = self.now();
        let (signing_kid, signing_key, jwks) = {
            let ks = self.keys.lock().unwrap();
            (ks.signing.0.clone(), ks.signing.1, ks.jwks.clone())
        };
        let kid_of = |key: KeyChoice| -> String {
            jwks.iter()
                .find(|(_, c)| *c == key)
                .map(|(kid, _)| kid.clone())
                .unwrap_or_else(|| key.name().to_owned())
        };
        let requested = k.alg.as_deref().and_then(A::parse);

        // What signs, under which alg, and the natural kid.
        enum How {
            Pem(KeyChoice, A),
            Hmac(Vec<u8>, A),
            Unsigned,
        }
        let pick_pem = |key: KeyChoice| {
            let alg = requested
                .filter(|a| key.fits(*a))
                .unwrap_or(key.default_alg());
            How::Pem(key, alg)
        };
        let pick_hmac = |bytes: Vec<u8>| {
            let alg = requested.filter(|a| a.is_hmac()).unwrap_or(A::HS256);
            How::Hmac(bytes, alg)
        };
        let rsa_for_confusion = if signing_key.is_rsa() {
            signing_key
        } else {
            KeyChoice::Rsa1
        };
        let (how, natural_kid) = match &k.signer {
            Signer::OpKey => (pick_pem(signing_key), Some(signing_kid)),
            Signer::Key(key) => (pick_pem(*key), Some(kid_of(*key))),
            Signer::ClientSecret => (pick_hmac(k.client_secret.clone().into_bytes()), None),
            Signer::PublicKeyPem => (
                pick_hmac(rsa_for_confusion.rsa_public_pem().into_bytes()),
                None,
            ),
            Signer::PublicKeyModulus => (pick_hmac(rsa_for_confusion.rsa_modulus()), None),
            Signer::Unsigned => (How::Unsigned, None),
        };
        let (alg_str, hash_alg) = match &how {
            How::Pem(_, a) | How::Hmac(_, a) => {
                (k.alg.clone().unwrap_or(a.as_str().to_owned()), *a)
            }
            How::Unsigned => (k.alg.clone().unwrap_or("none".into()), A::RS256),
        };

        // Claims.
        let mut c = Map::new();
        c.insert(
            "iss".into(),
            json!(k.iss.clone().unwrap_or(self.issuer.clone())),
        );
        for (name, v) in ctx.user.claims() {
            c.insert(name, v);
        }
        c.insert(
            "aud".into(),
            k.aud.clone().unwrap_or(json!(k.client_id.clone())),
        );
        if let Some(azp) = &k.azp {
            c.insert("azp".into(), json!(azp));
        }
        if let Some(off) = k.exp_offset {
            c.insert("exp".into(), json!(now + off));
        }
        c.insert("iat".into(), json!(now + k.iat_offset));
        if let Some(off) = k.nbf_offset {
            c.insert("nbf".into(), json!(now + off));
        }
        if let Some(n) = k.nonce.apply(ctx.nonce) {
            c.insert("nonce".into(), json!(n));
        }
        let hash_claim = |knob: &HashClaim, value: Option<&str>| match (knob, value) {
            (HashClaim::Correct, Some(v)) => Some(half_hash(hash_alg, v)),
            (HashClaim::Wrong, _) => Some(half_hash(hash_alg, "not-the-right-value")),
            _ => None,
        };
        if let Some(h) = hash_claim(&k.at_hash, ctx.access_token) {
            c.insert("at_hash".into(), json!(h));
        }
        if let Some(h) = hash_claim(&k.c_hash, ctx.code) {
            c.insert("c_hash".into(), json!(h));
        }
        merge(&mut c, &k.claims);
        merge(&mut c, overrides);
        let mut payload = Value::Object(c).to_string();
        if let Some(dup) = &k.duplicate_sub {
            payload = format!("{{\"sub\":{},{}", json!(dup), &payload[1..]);
        }

        // Header.
        let mut h = Map::new();
        h.insert("alg".into(), json!(alg_str));
        h.insert("typ".into(), json!("JWT"));
        let kid = match &k.kid {
            Kid::Auto => natural_kid,
            Kid::Omit => None,
            Kid::Value(v) => Some(v.clone()),
        };
        if let Some(kid) = kid {
            h.insert("kid".into(), json!(kid));
        }
        merge(&mut h, &k.header);

        let input = format!(
            "{}.{}",
            B64.encode(Value::Object(h).to_string()),
            B64.encode(payload)
        );
        let mut sig = match how {
            How::Pem(key, alg) => sign_pem(key, alg, input.as_bytes()),
            How::Hmac(bytes, alg) => sign_hmac(alg, &bytes, input.as_bytes()),
            How::Unsigned => Vec::new(),
        };
        if k.corrupt_signature {
            let mid = sig.len() / 2;
            if let Some(b) = sig.get_mut(mid) {
                *b ^= 0x01;
            }
        }
        let sig = k.signature.clone().unwrap_or_else(|| B64.encode(sig));
        format!("{input}.{sig}")
    }
}

#[derive(Clone, Copy)]
struct MintCtx<'a> {
    user: &'a User,
    nonce: Option<&'a str>,
    access_token: Option<&'a str>,
    code: Option<&'a str>,
}

/// Set each member of `from` in `into`; `null` removes.
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        if v.is_null() {
            into.remove(k);
        } else {
            into.insert(k.clone(), v.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The OP
// ---------------------------------------------------------------------------------------------

/// The fake OP. See the module documentation.
pub struct FakeOp {
    shared: Arc<Shared>,
    /// The knobs; prefer [`FakeOp::set`]. Never hold the lock across an `.await`.
    pub knobs: Arc<Mutex<Knobs>>,
    addr: SocketAddr,
    handle: ServerHandle,
}

impl FakeOp {
    /// Start an OP with default knobs; JWKS = rsa1, ec256, ec384, ec521 (kids = names),
    /// signing with rsa1 (RS256).
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// [`FakeOp::start`] on a given loopback address (the development OP of
    /// `examples/dev_op.rs` uses `127.0.0.1:9380`).
    pub async fn start_on(addr: &str) -> Self {
        let knobs = Arc::new(Mutex::new(Knobs::default()));
        let listener = TcpListener::bind(addr).expect("bind fake OP");
        let addr = listener.local_addr().unwrap();
        let clock: SharedClock = ManualClock::at(DEFAULT_NOW * 1000);
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            knobs: knobs.clone(),
            keys: Mutex::new(KeyState {
                jwks: [
                    KeyChoice::Rsa1,
                    KeyChoice::Ec256,
                    KeyChoice::Ec384,
                    KeyChoice::Ec521,
                ]
                .iter()
                .map(|k| (k.name().to_owned(), *k))
                .collect(),
                signing: ("rsa1".into(), KeyChoice::Rsa1),
            }),
            clock: Mutex::new(clock),
            grants: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            assertion_jtis: Mutex::new(HashSet::new()),
            log: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen fake OP")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            shared,
            knobs,
            addr,
            handle,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `issuer() + path`.
    pub fn url(&self, path: &str) -> String {
        self.shared.url(path)
    }

    /// Change knobs: `op.set(|k| k.nonce = Param::Drop)`.
    pub fn set(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.knobs.lock().unwrap());
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    pub fn reset_knobs(&self) {
        *self.knobs.lock().unwrap() = Knobs::default();
    }

    /// Take `iat`/`exp`/`nbf` from this clock (e.g. the realm server's `ManualClock`).
    pub fn use_clock(&self, clock: SharedClock) {
        *self.shared.clock.lock().unwrap() = clock;
    }

    /// Stand the OP's time at `secs` (replaces any shared clock with a private one).
    pub fn set_now(&self, secs: i64) {
        *self.shared.clock.lock().unwrap() = ManualClock::at(secs * 1000);
    }

    pub fn now_secs(&self) -> i64 {
        self.shared.now()
    }

    // --- keys ---

    /// The public JWKS currently served at `/jwks` (ignoring [`Knobs::jwks_body`]).
    pub fn jwks_json(&self) -> String {
        self.shared.jwks_json()
    }

    /// Serve `key` under `kid` and sign new tokens with it. `keep_old`: keep the previous
    /// keys in the JWKS (a rotation with overlap); otherwise the JWKS is just the new key.
    pub fn rotate_to(&self, kid: &str, key: KeyChoice, keep_old: bool) {
        let mut ks = self.shared.keys.lock().unwrap();
        if !keep_old {
            ks.jwks.clear();
        }
        ks.jwks.retain(|(k, _)| k != kid);
        ks.jwks.push((kid.to_owned(), key));
        ks.signing = (kid.to_owned(), key);
    }

    /// Serve exactly these keys (the signing key is unchanged).
    pub fn set_jwks(&self, keys: &[(&str, KeyChoice)]) {
        self.shared.keys.lock().unwrap().jwks =
            keys.iter().map(|(k, c)| (k.to_string(), *c)).collect();
    }

    /// The kid and key that sign [`Signer::OpKey`] tokens.
    pub fn signing_key(&self) -> (String, KeyChoice) {
        self.shared.keys.lock().unwrap().signing.clone()
    }

    pub fn jwks_fetches(&self) -> usize {
        self.hits("/jwks")
    }

    // --- tokens ---

    /// An ID token for the current user under the current knobs, without going through
    /// `/authorize`. `overrides`: a JSON object of claims set last (`null` removes); pass the
    /// `nonce` here (the [`Knobs::nonce`] knob applies to it: `Drop` removes it...).
    pub fn mint_id_token(&self, overrides: Value) -> String {
        let user = self.knobs().user;
        let overrides = overrides.as_object().cloned().unwrap_or_default();
        let mut nonce_free = overrides.clone();
        let nonce = nonce_free.remove("nonce");
        let token = self.shared.mint(
            MintCtx {
                user: &user,
                nonce: nonce.as_ref().and_then(Value::as_str),
                access_token: None,
                code: None,
            },
            &nonce_free,
        );
        token
    }

    /// Register an access token for `/userinfo` (as if issued to the current user).
    pub fn issue_access_token(&self) -> String {
        let at = random_token(24);
        let user = self.knobs().user;
        self.shared
            .access_tokens
            .lock()
            .unwrap()
            .insert(at.clone(), user);
        at
    }

    // --- request log ---

    /// Requests to `path` so far (`"/token"`, `"/jwks"`, ...).
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// The last request to `path`.
    pub fn last(&self, path: &str) -> Option<RecordedRequest> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests per path.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.shared.log.lock().unwrap().iter() {
            *m.entry(r.path.clone()).or_insert(0) += 1;
        }
        m
    }

    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    // --- browser ---

    /// What a browser does with an authorization URL: GET it (no redirects followed) and
    /// return the `Location` (the `redirect_uri` the facilitator receives). Panics unless
    /// the answer is a redirect.
    pub async fn browser_login(&self, authorization_url: &str) -> String {
        let resp = http_client()
            .get(authorization_url)
            .send()
            .await
            .expect("GET authorization URL");
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| v.to_str().expect("ASCII Location").to_owned());
        match location {
            Some(l) if status.is_redirection() => l,
            _ => panic!(
                "authorization request answered {status}, not a redirect: {}",
                resp.text().await.unwrap_or_default()
            ),
        }
    }

    /// Stop the server.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The redirect an implicit-flow OP would send: [`REDIRECT_URI`]`#` + the form-encoded
/// `params` (e.g. `[("id_token", &op.mint_id_token(..)), ("state", &state)]`). For tests
/// that skip `/authorize`.
pub fn fragment_redirect(params: &[(&str, &str)]) -> String {
    let frag = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{REDIRECT_URI}#{frag}")
}

/// A reqwest client for plain-http loopback tests: no redirects, no proxy, short timeout.
/// (Installs aws-lc-rs as the process's rustls provider if none is, as reqwest needs one.)
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

fn pairs(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap())
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

fn raw(status: u16, content_type: &str, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap())
        .content_type(content_type.to_owned())
        .body(body)
}

async fn handle(req: HttpRequest, body: web::Bytes, st: web::Data<Shared>) -> HttpResponse {
    let body = String::from_utf8_lossy(&body).into_owned();
    let is_form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let rec = RecordedRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        raw_query: req.query_string().to_owned(),
        query: pairs(req.query_string()),
        form: if is_form { pairs(&body) } else { Vec::new() },
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    st.log.lock().unwrap().push(rec.clone());
    match rec.path.as_str() {
        "/.well-known/openid-configuration" => discovery(&st),
        "/jwks" => jwks(&st).await,
        "/authorize" => authorize(&st, &rec),
        "/token" => token(&st, &rec).await,
        "/userinfo" => userinfo(&st, &rec),
        "/logout" => logout(&rec),
        _ => HttpResponse::NotFound().body("fake OP: no such endpoint"),
    }
}

fn discovery(st: &Shared) -> HttpResponse {
    let k = st.knobs();
    let mut doc = json!({
        "issuer": st.issuer,
        "authorization_endpoint": st.url("/authorize"),
        "token_endpoint": st.url("/token"),
        "userinfo_endpoint": st.url("/userinfo"),
        "jwks_uri": st.url("/jwks"),
        "end_session_endpoint": st.url("/logout"),
        "response_types_supported": ["code", "id_token", "id_token token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported":
            ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "HS256"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "client_secret_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name", "groups"],
    });
    merge(doc.as_object_mut().unwrap(), &k.discovery_extra);
    HttpResponse::Ok().json(doc)
}

async fn jwks(st: &Shared) -> HttpResponse {
    let k = st.knobs();
    if let Some(d) = k.jwks_delay {
        actix_web::rt::time::sleep(d).await;
    }
    if let Some(target) = &k.jwks_redirect {
        return HttpResponse::Found()
            .insert_header(("Location", target.as_str()))
            .finish();
    }
    let body = k.jwks_body.clone().unwrap_or_else(|| st.jwks_json());
    raw(k.jwks_status, "application/json", body)
}

fn authorize(st: &Shared, rec: &RecordedRequest) -> HttpResponse {
    let k = st.knobs();
    let q = |n: &str| rec.query(n).map(str::to_owned);
    let (Some(client_id), Some(redirect_uri)) = (q("client_id"), q("redirect_uri")) else {
        return oauth_error(
            400,
            "invalid_request",
            "client_id and redirect_uri are required",
        );
    };
    if client_id != k.client_id {
        return oauth_error(400, "invalid_client", "unknown client_id");
    }
    if !k.redirect_uris.contains(&redirect_uri) {
        return oauth_error(400, "invalid_request", "redirect_uri is not registered");
    }
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return oauth_error(400, "invalid_request", "redirect_uri is not a URL");
    };
    let response_type = q("response_type").unwrap_or_default();
    let implicit = response_type != "code";
    let state = k.state.apply(rec.query("state"));
    let redirect = |target: &mut url::Url, params: Vec<(&str, String)>| {
        let mut params = params;
        if let Some(s) = &state {
            params.push(("state", s.clone()));
        }
        if implicit {
            let frag = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            target.set_fragment(Some(&frag));
        } else {
            target.query_pairs_mut().extend_pairs(params);
        }
        HttpResponse::Found()
            .insert_header(("Location", target.as_str()))
            .finish()
    };
    let error = |target: &mut url::Url, e: &str, d: &str| {
        redirect(
            target,
            vec![("error", e.to_owned()), ("error_description", d.to_owned())],
        )
    };

    if let Some((e, d)) = &k.authorize_error {
        return error(&mut target, e, d);
    }
    if !matches!(
        response_type.as_str(),
        "code" | "id_token" | "id_token token"
    ) {
        return error(
            &mut target,
            "unsupported_response_type",
            "response_type not supported",
        );
    }
    let scope = q("scope").unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return error(&mut target, "invalid_scope", "the openid scope is required");
    }
    let nonce = q("nonce");
    if implicit && nonce.is_none() {
        return error(
            &mut target,
            "invalid_request",
            "nonce is required in the implicit flow",
        );
    }
    let user = k.user.clone();
    if !implicit {
        let code = random_token(24);
        st.grants.lock().unwrap().insert(
            code.clone(),
            Grant {
                client_id,
                redirect_uri,
                nonce,
                code_challenge: q("code_challenge"),
                code_challenge_method: q("code_challenge_method"),
                user,
                used: false,
            },
        );
        return redirect(&mut target, vec![("code", code)]);
    }
    let access_token = (response_type == "id_token token").then(|| {
        let at = random_token(24);
        st.access_tokens
            .lock()
            .unwrap()
            .insert(at.clone(), user.clone());
        at
    });
    let id_token = st.mint(
        MintCtx {
            user: &user,
            nonce: nonce.as_deref(),
            access_token: access_token.as_deref(),
            code: None,
        },
        &Map::new(),
    );
    let mut params = vec![("id_token", id_token)];
    if let Some(at) = access_token {
        params.push(("access_token", at));
        params.push(("token_type", "Bearer".into()));
        params.push(("expires_in", ACCESS_TOKEN_TTL.to_string()));
    }
    redirect(&mut target, params)
}

/// RFC 6749 §2.3.1: `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The `Authorization: Basic` header RFC 6749 §2.3.1 prescribes for these credentials.
pub fn basic_auth_header(client_id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            form_encode(client_id),
            form_encode(secret)
        ))
    )
}

/// Check client authentication; `Err` says why (sent as a 401 `invalid_client`).
fn authenticate_client(st: &Shared, k: &Knobs, rec: &RecordedRequest) -> Result<(), String> {
    let bad = |why: &str| Err(why.to_owned());
    match k.client_auth {
        ClientAuth::Basic => {
            let Some(h) = rec.header("authorization") else {
                return bad("client_secret_basic: no Authorization header");
            };
            let Some(b64) = h.strip_prefix("Basic ") else {
                return bad("client_secret_basic: not Basic");
            };
            let Some(decoded) = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
            else {
                return bad("client_secret_basic: bad base64");
            };
            let Some((id, secret)) = decoded.split_once(':') else {
                return bad("client_secret_basic: no colon");
            };
            if form_decode(id) != k.client_id || form_decode(secret) != k.client_secret {
                return bad("client_secret_basic: wrong client id or secret");
            }
            if rec.form("client_secret").is_some() {
                return bad("more than one client authentication method");
            }
        }
        ClientAuth::Post => {
            if rec.header("authorization").is_some() {
                return bad("client_secret_post: unexpected Authorization header");
            }
            if rec.form("client_id") != Some(k.client_id.as_str())
                || rec.form("client_secret") != Some(k.client_secret.as_str())
            {
                return bad("client_secret_post: wrong client id or secret");
            }
        }
        ClientAuth::Jwt => {
            if rec.form("client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return bad("client_secret_jwt: wrong client_assertion_type");
            }
            let Some(assertion) = rec.form("client_assertion") else {
                return bad("client_secret_jwt: no client_assertion");
            };
            if let Some(id) = rec.form("client_id") {
                if id != k.client_id {
                    return bad("client_secret_jwt: client_id mismatch");
                }
            }
            if let Err(why) = verify_client_assertion(st, k, assertion) {
                return bad(&format!("client_secret_jwt: {why}"));
            }
        }
        ClientAuth::PrivateKeyJwt => {
            if rec.header("authorization").is_some() || rec.form("client_secret").is_some() {
                return bad("more than one client authentication method");
            }
            if rec.form("client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return bad("private_key_jwt: wrong client_assertion_type");
            }
            let Some(assertion) = rec.form("client_assertion") else {
                return bad("private_key_jwt: no client_assertion");
            };
            if let Err(why) = verify_private_key_assertion(st, k, assertion) {
                return bad(&format!("private_key_jwt: {why}"));
            }
        }
    }
    Ok(())
}

/// A `private_key_jwt` assertion: signature by the registered JWK named by its `kid`, then
/// the claims as for `client_secret_jwt` (`aud` the token endpoint, `iss`/`sub` the client,
/// `exp` ahead, `jti` never seen).
fn verify_private_key_assertion(st: &Shared, k: &Knobs, assertion: &str) -> Result<(), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err("not a compact JWS".into());
    };
    let header: Value = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad header")?;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = k
        .client_jwks
        .iter()
        .find(|j| j["kid"].as_str() == Some(kid))
        .ok_or("unknown kid")?;
    let sig = B64.decode(s).map_err(|_| "bad signature encoding")?;
    let msg = format!("{h}.{p}");
    let b = |m: &str| {
        B64.decode(jwk[m].as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let ok = match header["alg"].as_str() {
        Some(alg @ ("RS256" | "PS256")) => lc::RsaPublicKeyComponents {
            n: b("n"),
            e: b("e"),
        }
        .verify(
            if alg == "RS256" {
                &lc::RSA_PKCS1_2048_8192_SHA256
            } else {
                &lc::RSA_PSS_2048_8192_SHA256
            },
            msg.as_bytes(),
            &sig,
        )
        .is_ok(),
        Some(alg @ ("ES256" | "ES384")) => {
            let mut point = vec![4u8];
            point.extend(b("x"));
            point.extend(b("y"));
            let v = if alg == "ES256" {
                &lc::ECDSA_P256_SHA256_FIXED
            } else {
                &lc::ECDSA_P384_SHA384_FIXED
            };
            lc::UnparsedPublicKey::new(v, &point)
                .verify(msg.as_bytes(), &sig)
                .is_ok()
        }
        _ => return Err("alg not supported".into()),
    };
    if !ok {
        return Err("bad signature".into());
    }
    let claims: Value = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad payload")?;
    if claims["aud"].as_str() != Some(&st.url("/token")) {
        return Err("aud must be the token endpoint".into());
    }
    if claims["iss"].as_str() != Some(&k.client_id) || claims["sub"].as_str() != Some(&k.client_id)
    {
        return Err("iss and sub must be the client id".into());
    }
    match (claims["exp"].as_i64(), claims["iat"].as_i64()) {
        (Some(exp), Some(iat)) if exp > st.now() - 60 && exp - iat <= 300 => {}
        _ => return Err("exp missing, past or too far".into()),
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?;
    if !st.assertion_jtis.lock().unwrap().insert(jti.to_owned()) {
        return Err("jti replayed".into());
    }
    Ok(())
}

fn verify_client_assertion(st: &Shared, k: &Knobs, assertion: &str) -> Result<(), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err("not a compact JWS".into());
    };
    let header: Value = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad header")?;
    let alg = header["alg"]
        .as_str()
        .and_then(A::parse)
        .filter(|a| a.is_hmac())
        .ok_or("alg must be HS256/384/512")?;
    let sig = B64.decode(s).map_err(|_| "bad signature encoding")?;
    let key = aws_lc_rs::hmac::Key::new(hmac_alg(alg), k.client_secret.as_bytes());
    aws_lc_rs::hmac::verify(&key, format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "bad signature")?;
    let claims: Value = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad payload")?;
    let token_endpoint = st.url("/token");
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == token_endpoint,
        Value::Array(a) => a.iter().any(|v| v.as_str() == Some(&token_endpoint)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud must be {token_endpoint}"));
    }
    if claims["iss"].as_str() != Some(&k.client_id) || claims["sub"].as_str() != Some(&k.client_id)
    {
        return Err("iss and sub must be the client id".into());
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > st.now() - 60 => {}
        _ => return Err("exp missing or past".into()),
    }
    if let Some(jti) = claims["jti"].as_str() {
        if !st.assertion_jtis.lock().unwrap().insert(jti.to_owned()) {
            return Err("jti replayed".into());
        }
    }
    Ok(())
}

async fn token(st: &Shared, rec: &RecordedRequest) -> HttpResponse {
    let k = st.knobs();
    if let Some(d) = k.token_delay {
        actix_web::rt::time::sleep(d).await;
    }
    if rec.method != "POST" {
        return oauth_error(405, "invalid_request", "POST only");
    }
    if let Err(why) = authenticate_client(st, &k, rec) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"fake-op\""))
            .json(json!({"error": "invalid_client", "error_description": why}));
    }
    if rec.form("grant_type") != Some("authorization_code") {
        return oauth_error(400, "unsupported_grant_type", "only authorization_code");
    }
    let Some(code) = rec.form("code") else {
        return oauth_error(400, "invalid_request", "code is missing");
    };
    let grant = {
        let mut grants = st.grants.lock().unwrap();
        match grants.get_mut(code) {
            None => return oauth_error(400, "invalid_grant", "unknown code"),
            Some(g) if g.used => return oauth_error(400, "invalid_grant", "code already used"),
            Some(g) => {
                g.used = true;
                g.clone()
            }
        }
    };
    if grant.client_id != k.client_id {
        return oauth_error(400, "invalid_grant", "code issued to another client");
    }
    if rec.form("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return oauth_error(400, "invalid_grant", "redirect_uri mismatch");
    }
    match (&grant.code_challenge, rec.form("code_verifier")) {
        (None, None) if k.require_pkce => {
            return oauth_error(400, "invalid_grant", "PKCE required")
        }
        (None, None) => {}
        (None, Some(_)) => {
            return oauth_error(400, "invalid_grant", "code_verifier without code_challenge")
        }
        (Some(_), None) => return oauth_error(400, "invalid_grant", "code_verifier missing"),
        (Some(challenge), Some(verifier)) => {
            let computed = match grant.code_challenge_method.as_deref() {
                Some("S256") => pkce_s256(verifier),
                Some("plain") | None => verifier.to_owned(),
                Some(_) => String::new(),
            };
            if computed != *challenge {
                return oauth_error(400, "invalid_grant", "PKCE verification failed");
            }
        }
    }

    let access_token = random_token(24);
    st.access_tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), grant.user.clone());
    let id_token = st.mint(
        MintCtx {
            user: &grant.user,
            nonce: grant.nonce.as_deref(),
            access_token: Some(&access_token),
            code: Some(code),
        },
        &Map::new(),
    );
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL,
        "id_token": id_token,
    });
    let obj = body.as_object_mut().unwrap();
    match &k.token_reply {
        TokenReply::Normal => {}
        TokenReply::Error {
            status,
            error,
            description,
        } => return oauth_error(*status, error, description),
        TokenReply::ServerError => {
            return oauth_error(500, "server_error", "the fake OP is having a bad day")
        }
        TokenReply::NonJson => {
            return raw(200, "text/html", "<html><body>Oops</body></html>".into())
        }
        TokenReply::NoIdToken => {
            obj.remove("id_token");
        }
        TokenReply::TokenType(t) => {
            obj.insert("token_type".into(), json!(t));
        }
        TokenReply::Raw {
            status,
            content_type,
            body,
        } => return raw(*status, content_type, body.clone()),
    }
    merge(obj, &k.token_extra);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

fn userinfo(st: &Shared, rec: &RecordedRequest) -> HttpResponse {
    let k = st.knobs();
    let user = rec
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| st.access_tokens.lock().unwrap().get(t.trim()).cloned());
    let Some(user) = user else {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .finish();
    };
    let mut claims = user.claims();
    merge(&mut claims, &k.userinfo_claims);
    match &k.userinfo_reply {
        UserinfoReply::Normal => HttpResponse::Ok().json(Value::Object(claims)),
        UserinfoReply::SubMismatch => {
            claims.insert("sub".into(), json!(format!("not-{}", user.sub)));
            HttpResponse::Ok().json(Value::Object(claims))
        }
        UserinfoReply::Jwt => {
            let jwt = st.mint(
                MintCtx {
                    user: &user,
                    nonce: None,
                    access_token: None,
                    code: None,
                },
                &claims,
            );
            raw(200, "application/jwt", jwt)
        }
        UserinfoReply::ServerError => raw(500, "text/plain", "internal error".into()),
        UserinfoReply::Raw {
            status,
            content_type,
            body,
        } => raw(*status, content_type, body.clone()),
    }
}

fn logout(rec: &RecordedRequest) -> HttpResponse {
    match rec.query("post_logout_redirect_uri") {
        Some(target) => {
            let mut url = match url::Url::parse(target) {
                Ok(u) => u,
                Err(_) => return HttpResponse::BadRequest().body("bad post_logout_redirect_uri"),
            };
            if let Some(state) = rec.query("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            HttpResponse::Found()
                .insert_header(("Location", url.as_str()))
                .finish()
        }
        None => HttpResponse::Ok().body("logged out"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tripwire
// ---------------------------------------------------------------------------------------------

/// A loopback TCP listener that counts every connection (HTTP or not) and answers each with
/// `200` and the attacker's JWKS, as a malicious `jku`/`x5u`/`jwks_uri` target would. Runs
/// on its own thread; stops when dropped.
pub struct Tripwire {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Tripwire {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tripwire");
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let body =
            json!({"keys": [KeyChoice::AttackerRsa.public_jwk(Some("attacker"))]}).to_string();
        let (h, r, s) = (hits.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                r.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or("").to_owned());
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            addr,
            hits,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// First line of each connection's first read (`GET /keys HTTP/1.1`, or TLS garbage).
    pub fn request_lines(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag before counting this connection.
        let _ = TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------------------------------------
// Realm configuration
// ---------------------------------------------------------------------------------------------

fn yaml_scalar(v: &str) -> String {
    if v.starts_with('[') || v.parse::<i64>().is_ok() || v == "true" || v == "false" {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// A realm block (indented to sit under `realms:`) for `op` with the default client: flat
/// dotted keys, the client secret as a literal (accepted with a warning), `op.jwkset_path` =
/// the OP's `/jwks` URL. `extra` adds keys or replaces existing ones; an empty value removes
/// the key. Values starting with `[`, integers and booleans are written bare, anything else
/// single-quoted.
pub fn realm_yaml(
    op: &FakeOp,
    name: &str,
    order: i64,
    response_type: &str,
    extra: &[(&str, &str)],
) -> String {
    let k = op.knobs();
    let mut keys: Vec<(String, String)> = vec![
        ("order".into(), order.to_string()),
        ("rp.client_id".into(), k.client_id.clone()),
        ("rp.client_secret".into(), k.client_secret.clone()),
        ("rp.redirect_uri".into(), REDIRECT_URI.into()),
        ("rp.response_type".into(), response_type.into()),
        (
            "rp.post_logout_redirect_uri".into(),
            POST_LOGOUT_REDIRECT_URI.into(),
        ),
        ("op.issuer".into(), op.issuer()),
        ("op.authorization_endpoint".into(), op.url("/authorize")),
        ("op.token_endpoint".into(), op.url("/token")),
        ("op.userinfo_endpoint".into(), op.url("/userinfo")),
        ("op.endsession_endpoint".into(), op.url("/logout")),
        ("op.jwkset_path".into(), op.url("/jwks")),
        ("claims.principal".into(), "sub".into()),
        ("claims.groups".into(), "groups".into()),
        ("claims.name".into(), "name".into()),
        ("claims.mail".into(), "email".into()),
    ];
    for (key, value) in extra {
        keys.retain(|(k, _)| k != key);
        if !value.is_empty() {
            keys.push((key.to_string(), value.to_string()));
        }
    }
    let mut s = format!("  {name}:\n");
    for (key, value) in keys {
        s.push_str(&format!("    {key}: {}\n", yaml_scalar(&value)));
    }
    s
}

/// A whole configuration file with these realm blocks (and one API user, `facilitator`).
pub fn config_yaml(realm_blocks: &[String]) -> String {
    let mut s = String::from(
        "users:\n  facilitator:\n    password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$Iy2ZDXnjzi7xO+E5+Km8AQ$l5/SzYuTfWaQz+6X7eh3Q/CmES4gLfVg1Fl0jkpgzvE\"\n    privileges: [manage_oidc, manage_token]\nrealms:\n",
    );
    for b in realm_blocks {
        s.push_str(b);
    }
    s
}

/// [`realm_yaml`] loaded through `oidc_realm::config::load_str` (base dir = the system temp
/// dir); panics with the loader's errors if it does not load.
pub fn realm_config(
    op: &FakeOp,
    name: &str,
    order: i64,
    response_type: &str,
    extra: &[(&str, &str)],
) -> RealmConfig {
    let yaml = config_yaml(&[realm_yaml(op, name, order, response_type, extra)]);
    let loaded = oidc_realm::config::load_str(&yaml, &std::env::temp_dir())
        .unwrap_or_else(|e| panic!("realm does not load:\n{e}\n---\n{yaml}"));
    loaded
        .settings
        .realms
        .into_iter()
        .find(|r| r.name == name)
        .expect("realm in loaded settings")
}
