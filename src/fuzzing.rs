//! Fuzzing entry points (feature `test-util` only, never in the binary): one function per
//! `cargo fuzz` target in `fuzz/fuzz_targets/`, each taking the raw input bytes. The fuzz
//! targets call them, and `tests/fuzz_corpus.rs` runs every file of `fuzz/corpus/<target>/`
//! through the same function under `cargo test`.
//!
//! Contract: a function returns for every input, whatever it is. A panic (an `assert!` of an
//! invariant below, an index out of bounds, an overflow in a debug build) is a bug in the code
//! under test or in the invariant. Each returns a small outcome (a reason code, a count) so
//! the corpus tests can assert what some seeds must give.
//!
//! | target           | entry point under test                                                         |
//! |------------------|--------------------------------------------------------------------------------|
//! | `id_token`       | [`oidc::validate`] with a fixed key set and policy, `check_at_hash`/`check_c_hash` |
//! | `redirect_uri`   | the redirect parsing of `realm::authenticate` (`Redirect::parse`, `RedirectParts::parse`) and the target check |
//! | `config`         | [`config::load_str`]                                                           |
//! | `role_mapping`   | [`RoleMapping::parse`], its echo (`to_es_json`) and evaluation                 |
//! | `jwks`           | [`KeySet::parse`] (the OP's JWKS document) and [`KeySet::select`]              |
//! | `authorization`  | the `Authorization` header parsing of `auth::caller`, `service_tokens::parse_bearer`, `TokenSecret::parse` |

use crate::auth::caller::{decode_basic, strip_scheme};
use crate::auth::service_tokens;
use crate::config::{self, ServiceTokenEntry, SignatureAlgorithm};
use crate::oidc::{self, IdTokenPolicy, KeySet};
use crate::roles::{RoleMapper, RoleMapping, UserModel};
use crate::secret::Secret;
use crate::tokens::format::{TokenKind, TokenSecret};
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use url::Url;

// ---------------------------------------------------------------------------------------------
// id_token
// ---------------------------------------------------------------------------------------------

/// The issuer, client, nonce and time of the `id_token` target (those of `src/oidc/tests.rs`).
pub const ID_TOKEN_ISSUER: &str = "https://op.example.com";
pub const ID_TOKEN_CLIENT_ID: &str = "realm-server";
pub const ID_TOKEN_NONCE: &str = "n-0S6_WzA2Mj";
pub const ID_TOKEN_NOW: i64 = 1_700_000_000;
/// The client secret: the HMAC key of HS* tokens, and of the tokens `#sign` inputs mint.
pub const ID_TOKEN_CLIENT_SECRET: &str = "a-client-secret-of-reasonable-length-42";
/// An input starting with this line is not a token but `<header JSON>\n<payload JSON>`: the
/// target encodes both and signs them with the client secret (HMAC of the header's `HS*`
/// alg, HS256 for any other alg), so the fuzzer reaches the claim checks that a random
/// signature never passes.
pub const SIGN_MARKER: &[u8] = b"#sign\n";

/// The JWKS of the `id_token` target: `jwks/example.json` (public halves of the test keys).
const ID_TOKEN_JWKS: &str = include_str!("../jwks/example.json");

struct IdTokenFixture {
    keys: KeySet,
    policy: IdTokenPolicy,
}

fn id_token_fixture() -> &'static IdTokenFixture {
    static FIXTURE: OnceLock<IdTokenFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (keys, _warnings) =
            KeySet::parse(ID_TOKEN_JWKS.as_bytes()).expect("jwks/example.json parses");
        let mut policy = IdTokenPolicy::new(ID_TOKEN_ISSUER, ID_TOKEN_CLIENT_ID);
        policy.algorithms = vec![
            SignatureAlgorithm::RS256,
            SignatureAlgorithm::PS256,
            SignatureAlgorithm::ES256,
            SignatureAlgorithm::ES384,
            SignatureAlgorithm::ES512,
            SignatureAlgorithm::HS256,
            SignatureAlgorithm::HS384,
            SignatureAlgorithm::HS512,
        ];
        policy.client_secret = Some(Secret::new(ID_TOKEN_CLIENT_SECRET.to_string()));
        let policy = policy.with_nonce(ID_TOKEN_NONCE);
        IdTokenFixture { keys, policy }
    })
}

/// A compact JWS of `header` and `payload` (raw bytes, base64url-encoded here), HMAC-signed
/// with [`ID_TOKEN_CLIENT_SECRET`] under the hash the header's `alg` names (SHA-256 when it
/// names none).
pub fn mint_hs(header: &[u8], payload: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let alg = serde_json::from_slice::<Value>(header)
        .ok()
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
    let h = match alg.as_deref() {
        Some("HS384") => hmac::HMAC_SHA384,
        Some("HS512") => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    };
    let key = hmac::Key::new(h, ID_TOKEN_CLIENT_SECRET.as_bytes());
    let sig = hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// `id_token` target: the input is an ID token (or, after [`SIGN_MARKER`], a header and a
/// payload to sign), validated at [`ID_TOKEN_NOW`] expecting [`ID_TOKEN_NONCE`]. Returns the
/// `sub` of an accepted token, or the refusal's reason code (`not_utf8` for input that is
/// not UTF-8, which no caller of `validate` can pass).
pub fn id_token(data: &[u8]) -> Result<String, &'static str> {
    let fx = id_token_fixture();
    let minted;
    let raw = if let Some(rest) = data.strip_prefix(SIGN_MARKER) {
        let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        minted = mint_hs(header, payload);
        minted.as_str()
    } else {
        std::str::from_utf8(data).map_err(|_| "not_utf8")?
    };
    match oidc::validate(raw, &fx.policy, &fx.keys, ID_TOKEN_NOW) {
        Ok(claims) => {
            // What `validate` promises of an accepted token.
            assert_eq!(claims.iss(), ID_TOKEN_ISSUER);
            assert!(claims.aud().iter().any(|a| a == ID_TOKEN_CLIENT_ID));
            assert!(claims.aud().len() == 1 || claims.get("azp").is_some());
            assert!(!claims.sub().is_empty() && claims.sub().len() <= oidc::id_token::MAX_SUB_LEN);
            assert!(claims.exp().saturating_add(60) > ID_TOKEN_NOW);
            assert!(claims.iat().saturating_sub(60) <= ID_TOKEN_NOW);
            assert!(claims.get("nonce").is_none(), "the nonce is dropped");
            assert!(fx.policy.algorithms.contains(&claims.alg()));
            let _ = format!("{claims:?}");
            // The hash checks never panic, whatever the claims hold.
            for required in [false, true] {
                let _ = oidc::check_at_hash(&claims, "an-access-token", required);
                let _ = oidc::check_c_hash(&claims, "a-code", required);
            }
            Ok(claims.sub().to_string())
        }
        Err(e) => {
            // Display never panics, and never echoes the token.
            let shown = e.to_string();
            assert!(raw.len() < 16 || !shown.contains(raw));
            let _ = e.may_need_new_keys();
            Err(e.code())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// jwks
// ---------------------------------------------------------------------------------------------

/// `jwks` target: the input as the OP's JWKS document (`op.jwkset_path`, a file or an `https`
/// URL). Every key of an accepted set is selected for every asymmetric algorithm, with no
/// `kid`, its own `kid` and an unknown one, and a selected key verifies a junk signature.
/// Returns the number of usable keys, or the refusal's reason code.
pub fn jwks(data: &[u8]) -> Result<usize, &'static str> {
    let (set, warnings) = KeySet::parse(data).map_err(|e| {
        let _ = e.to_string();
        e.code()
    })?;
    assert!(!set.is_empty());
    assert_eq!(set.len(), set.keys().len());
    assert!(set.kids().len() <= set.len());
    let _ = (format!("{set:?}"), warnings);
    let mut kids: Vec<Option<&str>> = vec![None, Some("no-such-kid")];
    kids.extend(set.kids().into_iter().map(Some));
    for alg in SignatureAlgorithm::ALL {
        for kid in &kids {
            match set.select(*kid, alg) {
                Ok(key) => {
                    assert!(!alg.is_hmac());
                    assert!(key.fits(alg), "{alg:?} selected a key that does not fit");
                    if let (Some(want), Some(got)) = (kid, key.kid()) {
                        assert_eq!(*want, got, "{alg:?} selected another kid");
                    }
                    let sig = [0x5a_u8; 64];
                    let sig_b64 = URL_SAFE_NO_PAD.encode(sig);
                    assert!(!key.verify(alg, b"a.b", &sig_b64, &sig));
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
    Ok(set.len())
}

// ---------------------------------------------------------------------------------------------
// redirect_uri
// ---------------------------------------------------------------------------------------------

/// The `rp.redirect_uri` the `redirect_uri` target checks redirects against (the origin of
/// `tests/fixtures/open-redirects.txt`).
pub const REDIRECT_CONFIGURED: &str = "https://good.example.com/cb";

/// `redirect_uri` target: the input as the `redirect_uri` of `POST
/// /_security/oidc/authenticate`, parsed as `realm::authenticate` parses it (step 1) and
/// checked against [`REDIRECT_CONFIGURED`]. Returns the number of query and fragment
/// parameters of an accepted redirect, or the reason code of the refusal.
pub fn redirect_uri(data: &[u8]) -> Result<(usize, usize), &'static str> {
    let raw = std::str::from_utf8(data).map_err(|_| "not_utf8")?;
    let configured = Url::parse(REDIRECT_CONFIGURED).expect("a valid URL");
    match crate::realm::redirect_for_fuzzing(raw, &configured) {
        Ok((resolved, query, fragment)) => {
            // An accepted redirect goes to the configured callback, nowhere else.
            assert_eq!(resolved.scheme(), configured.scheme(), "{raw:?}");
            assert_eq!(resolved.host_str(), configured.host_str(), "{raw:?}");
            assert_eq!(resolved.port_or_known_default(), Some(443), "{raw:?}");
            assert_eq!(resolved.path(), configured.path(), "{raw:?}");
            assert_eq!(resolved.origin(), configured.origin(), "{raw:?}");
            assert!(
                !(query.contains_key("state") && fragment.contains_key("state")),
                "{raw:?}"
            );
            Ok((query.len(), fragment.len()))
        }
        Err(e) => {
            let _ = e.to_string();
            Err(e.code())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------------

/// The directory relative paths of the `config` target resolve against: the repository's
/// `config/` (so the example configuration's `../jwks/example.json` and secret files exist).
pub const CONFIG_BASE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

/// The message `config::load_str` gives when validation panicked (it catches the panic).
const CONFIG_PANIC: &str = "internal error: validating the configuration panicked";

/// Whether the `config` target skips an input: one with a string (key or value, as the YAML
/// parser the loader uses reads it, escapes resolved) that names a device, kernel or runtime
/// file: `${file:/dev/zero}` would read forever, `/dev/stdin` block. The loader reads what
/// its operator names; the fuzzer must not.
pub fn config_input_skipped(text: &str) -> bool {
    fn system_path(v: &serde_norway::Value) -> bool {
        use serde_norway::Value as V;
        match v {
            V::String(s) => ["/dev", "/proc", "/sys", "/run"]
                .iter()
                .any(|p| s.contains(p)),
            V::Sequence(items) => items.iter().any(system_path),
            V::Mapping(m) => m.iter().any(|(k, v)| system_path(k) || system_path(v)),
            V::Tagged(t) => system_path(&t.value),
            V::Null | V::Bool(_) | V::Number(_) => false,
        }
    }
    serde_norway::from_str::<serde_norway::Value>(text).is_ok_and(|doc| system_path(&doc))
}

/// `config` target: the input as a configuration file in [`CONFIG_BASE_DIR`]. Returns the
/// number of realms of a valid configuration, or the number of errors of an invalid one
/// (`Err(0)`: not UTF-8 or skipped, see [`config_input_skipped`]).
pub fn config(data: &[u8]) -> Result<usize, usize> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Err(0);
    };
    if config_input_skipped(text) {
        return Err(0);
    }
    match config::load_str(text, Path::new(CONFIG_BASE_DIR)) {
        Ok(loaded) => {
            for realm in &loaded.settings.realms {
                assert!(!realm.name.is_empty());
                let _ = IdTokenPolicy::for_realm(realm);
            }
            Ok(loaded.settings.realms.len())
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a message");
            for e in &errors.0 {
                assert!(
                    !e.message.starts_with(CONFIG_PANIC),
                    "config::load_str panicked (see the panic message above)"
                );
            }
            let _ = errors.to_string();
            Err(errors.0.len())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// role_mapping
// ---------------------------------------------------------------------------------------------

fn role_user() -> &'static UserModel {
    static USER: OnceLock<UserModel> = OnceLock::new();
    USER.get_or_init(|| {
        let mut metadata = Map::new();
        metadata.insert("oidc(email)".into(), json!("alice@example.com"));
        metadata.insert("oidc(groups)".into(), json!(["admins", "finance-team"]));
        metadata.insert("oidc(level)".into(), json!(3));
        UserModel {
            username: "alice".into(),
            dn: Some("cn=alice,ou=people,dc=example,dc=com".into()),
            groups: vec!["admins".into(), "finance-team".into()],
            metadata,
            realm_name: "oidc1".into(),
        }
    })
}

/// `role_mapping` target: the input as the JSON body of `PUT
/// /_security/role_mapping/fuzz`. An accepted mapping must echo (`to_es_json`) to a body that
/// parses to the same echo, and is evaluated for a fixed user. Returns the roles granted, or
/// the error (`"json"` when the body is not JSON).
pub fn role_mapping(data: &[u8]) -> Result<Vec<String>, String> {
    let body: Value = serde_json::from_slice(data).map_err(|_| "json".to_string())?;
    match RoleMapping::parse("fuzz", &body, "") {
        Ok(mapping) => {
            let echo = mapping.to_es_json();
            let again = RoleMapping::parse("fuzz", &echo, "")
                .unwrap_or_else(|e| panic!("the echo {echo} does not parse back: {e}"));
            assert_eq!(again.to_es_json(), echo, "the echo is not stable");
            let mapper = RoleMapper::new(vec![Arc::new(mapping)], Vec::new());
            Ok(mapper.roles_for(role_user()))
        }
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// authorization
// ---------------------------------------------------------------------------------------------

/// The service token the `authorization` target knows: name and secret.
pub const SERVICE_TOKEN_NAME: &str = "elastic/kibana/fuzz";
pub const SERVICE_TOKEN_SECRET: &str = "fuzz-service-token-secret";

/// The bearer value of the known service token (for seeds and tests).
pub fn service_token_bearer() -> String {
    let mut bytes = vec![0, 1, 0, 1];
    bytes.extend_from_slice(format!("{SERVICE_TOKEN_NAME}:{SERVICE_TOKEN_SECRET}").as_bytes());
    STANDARD_NO_PAD.encode(bytes)
}

fn service_token_table() -> &'static BTreeMap<String, ServiceTokenEntry> {
    static TABLE: OnceLock<BTreeMap<String, ServiceTokenEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, SERVICE_TOKEN_SECRET.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let entry = ServiceTokenEntry {
            secret_hash: service_tokens::parse_hash(&format!(
                "{}{hex}",
                service_tokens::HASH_PREFIX
            ))
            .expect("a valid hash"),
            privileges: BTreeSet::new(),
        };
        BTreeMap::from([(SERVICE_TOKEN_NAME.to_string(), entry)])
    })
}

/// What the `authorization` target made of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationOutcome {
    /// Not a valid header value (not visible ASCII): `Refusal::Malformed`.
    NotHeaderText,
    /// A scheme other than Basic and Bearer.
    Unsupported,
    /// Basic credentials that do not decode.
    BasicMalformed,
    /// Basic credentials: the user name (the password is checked elsewhere).
    Basic { username: String },
    /// A bearer value with a service token's prefix that does not decode as one.
    ServiceTokenMalformed,
    /// A well-formed service token: its name, and whether it is the known one.
    ServiceToken { name: String, known: bool },
    /// A bearer value of an access token's shape (a store lookup would follow).
    AccessToken,
    /// A refresh token's shape sent as a bearer (refused by the lookup).
    RefreshTokenShape,
    /// Any other bearer value (refused as malformed).
    BearerOther,
}

/// `authorization` target: the input as the value of an `Authorization` header, taken apart
/// as `auth::caller::Authenticator::authenticate` does (visible-ASCII check, `Basic`
/// credentials, `Bearer` service tokens, then access tokens), without a password check or a
/// store lookup.
pub fn authorization(data: &[u8]) -> AuthorizationOutcome {
    use AuthorizationOutcome as O;
    let Ok(value) = actix_web::http::header::HeaderValue::from_bytes(data) else {
        return O::NotHeaderText;
    };
    let Ok(value) = value.to_str() else {
        return O::NotHeaderText;
    };
    if let Some(b64) = strip_scheme(value, "Basic") {
        return match decode_basic(b64) {
            Some((username, password)) => {
                assert!(
                    !username.contains(':'),
                    "the user name ends at the first colon"
                );
                let _ = password.expose_secret().len();
                O::Basic { username }
            }
            None => O::BasicMalformed,
        };
    }
    let Some(token) = strip_scheme(value, "Bearer") else {
        return O::Unsupported;
    };
    let token = token.trim();
    if service_tokens::looks_like(token) {
        return match service_tokens::parse_bearer(token) {
            Some(presented) => {
                assert!(service_tokens::check_name(&presented.name).is_ok());
                assert_eq!(
                    presented.name,
                    format!("{}/{}", presented.account(), presented.token_name())
                );
                let _ = format!("{presented:?}");
                let known = service_tokens::verify(service_token_table(), &presented).is_some();
                O::ServiceToken {
                    name: presented.name,
                    known,
                }
            }
            None => O::ServiceTokenMalformed,
        };
    }
    if let Some(secret) = TokenSecret::parse(TokenKind::Access, token) {
        assert!(TokenSecret::parse(TokenKind::Refresh, token).is_none());
        let sealed = secret.seal(b"fuzz");
        assert_eq!(secret.open(&sealed).as_deref(), Some(&b"fuzz"[..]));
        assert_eq!(secret.lookup_hash(), secret.lookup_hash());
        assert_eq!(secret.into_string(), token);
        return O::AccessToken;
    }
    if TokenSecret::parse(TokenKind::Refresh, token).is_some() {
        return O::RefreshTokenShape;
    }
    O::BearerOther
}
