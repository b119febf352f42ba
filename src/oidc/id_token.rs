//! ID-token validation: OpenID Connect Core 1.0 §3.1.3.7 (and §3.2.2.11 / §3.3.2.11 for
//! `at_hash` / `c_hash`), for compact JWS tokens only.
//!
//! Order. §3.1.3.7 lists the claim checks (steps 2–5) before the signature checks (6–8). All
//! steps must pass, so the order changes only *which* error a bad token gets. We check the
//! token's shape, header and signature first, so that no claim of an unauthenticated token is
//! ever interpreted (an `alg: none` or forged token gets `alg_not_allowed`/`bad_signature`, not
//! `iss_mismatch`), then the claims in the spec's order. Each step is commented with its number.
//!
//! Decisions:
//! - Header parameters `jku`, `x5u` and `jwk` make the token invalid (`forbidden_header`):
//!   they name key material we would never use, and an OP has no reason to send them in an ID
//!   token. `x5c` and `x5t` are ignored (never used). Keys come only from the realm's
//!   [`KeySet`], or, for HS*, from the client secret.
//! - `zip` (compression), `crit` (extensions we do not implement), `enc` (a JWE header) are
//!   refused; a 5-part token (JWE) is refused (`encrypted_token`).
//! - `typ` values naming another kind of JWT (`at+jwt`, `logout+jwt`, `secevent+jwt`) are
//!   refused, so an access token or logout token is never accepted as an ID token.
//! - JSON is parsed strictly: duplicate member names refused, depth capped (see
//!   [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH)), invalid UTF-8 refused.
//! - `sub` must be a non-empty string of at most 255 bytes (Core §2: "MUST NOT exceed 255 ASCII
//!   characters").

use super::jwks::{jwt_algorithm, truncate, KeySelectError, KeySet, MAX_KID_LEN};
use crate::config::{RealmConfig, SignatureAlgorithm};
use crate::json::{parse_strict, MAX_JSON_DEPTH};
use crate::secret::{ct_eq, Secret};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

/// Default for [`IdTokenPolicy::max_token_len`]: 64 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 64 * 1024;
/// Default for [`IdTokenPolicy::clock_skew`]: 60 s, as Elasticsearch's `allowed_clock_skew`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Longest `sub` accepted, in bytes (Core §2).
pub const MAX_SUB_LEN: usize = 255;

/// `typ` header values that name a JWT that is not an ID token (compared case-insensitively,
/// with an optional `application/` prefix, RFC 7515 §4.1.9).
const FOREIGN_TYPES: [&str; 3] = ["at+jwt", "logout+jwt", "secevent+jwt"];

/// What an ID token must satisfy. A plain struct: build it with [`IdTokenPolicy::new`] or
/// [`IdTokenPolicy::for_realm`] and set the per-request fields (`expected_nonce`).
#[derive(Debug, Clone)]
pub struct IdTokenPolicy {
    /// Required `iss` (`op.issuer`): exact, case-sensitive byte equality, no trailing-slash or
    /// other normalisation. No default.
    pub issuer: String,
    /// Our `client_id` (`rp.client_id`): must be in `aud`; must equal `azp` when `azp` is
    /// present or `aud` has several values. No default.
    pub client_id: String,
    /// The realm's allow-list of JWS `alg`s (`rp.signature_algorithm`). The token's header
    /// `alg` must be in it; an empty list accepts nothing. Default `[RS256]`.
    pub algorithms: Vec<SignatureAlgorithm>,
    /// HMAC key for `HS*` tokens (`rp.client_secret`). Used only when the token's `alg` is an
    /// HS* algorithm that is in `algorithms`; never derived from JWKS material. Default `None`
    /// (HS* tokens then fail with `hmac_secret_missing`).
    pub client_secret: Option<Secret<String>>,
    /// Symmetric tolerance applied to `exp`, `iat` and `nbf` (`allowed_clock_skew`). Default
    /// 60 s. Bounding it is the configuration's job.
    pub clock_skew: Duration,
    /// The nonce sent in the authentication request. When set, the token's `nonce` must be
    /// present and equal (constant-time). `None` (the default) skips the nonce check: only for
    /// tokens that legitimately lack one (e.g. refreshed ID tokens), never on an
    /// authentication response whose request carried a nonce.
    pub expected_nonce: Option<Secret<String>>,
    /// Longest token accepted, in bytes, checked before any base64 decoding. Default 64 KiB.
    pub max_token_len: usize,
}

impl IdTokenPolicy {
    /// A policy with the secure defaults: RS256 only, no client secret, 60 s skew, no nonce
    /// expected, 64 KiB maximum.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            algorithms: vec![SignatureAlgorithm::RS256],
            client_secret: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
            expected_nonce: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// The policy of a configured realm (`op.issuer`, `rp.client_id`,
    /// `rp.signature_algorithm`, `allowed_clock_skew`; the client secret only when an HS*
    /// algorithm is allowed). `expected_nonce` is left `None`: set it per request.
    pub fn for_realm(realm: &RealmConfig) -> Self {
        Self::from_settings(
            &realm.op.issuer,
            &realm.rp.client_id,
            &realm.rp.signature_algorithms,
            &realm.rp.client_secret,
            realm.allowed_clock_skew,
        )
    }

    /// [`IdTokenPolicy::for_realm`] from the individual settings.
    pub(crate) fn from_settings(
        issuer: &str,
        client_id: &str,
        algorithms: &[SignatureAlgorithm],
        client_secret: &Secret<String>,
        clock_skew: Duration,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            algorithms: algorithms.to_vec(),
            client_secret: algorithms
                .iter()
                .any(|a| a.is_hmac())
                .then(|| client_secret.clone()),
            clock_skew,
            expected_nonce: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// This policy, expecting `nonce`.
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.expected_nonce = Some(Secret::new(nonce.into()));
        self
    }
}

/// Why an ID token was refused. `Display` says exactly what failed, but never contains a
/// nonce, a token or part of one, a signature or a secret. Attacker-chosen strings that are
/// shown (`alg`, `kid`, `typ`, `iss`, `azp`) are length-capped and quoted with escapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    #[error("token is {len} bytes, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("malformed token: {reason}")]
    Malformed { reason: String },
    #[error("token is encrypted (JWE); only signed ID tokens (JWS) are accepted")]
    Encrypted,
    #[error("alg {alg:?} is not allowed for this realm")]
    AlgNotAllowed { alg: String },
    #[error("header parameter {param:?} is not accepted")]
    ForbiddenHeader { param: &'static str },
    #[error("typ {typ:?} is not an ID token type")]
    WrongType { typ: String },
    #[error("kid {kid:?} not in JWKS")]
    KidNotFound { kid: String },
    #[error("kid {kid:?} in JWKS is not a key for {alg}")]
    KeyAlgMismatch { kid: String, alg: &'static str },
    #[error("no key in JWKS for {alg}")]
    NoKeyForAlg { alg: &'static str },
    #[error("{count} keys in JWKS fit this {alg} token; refusing to guess")]
    AmbiguousKey { alg: &'static str, count: usize },
    #[error("{alg} token, but no client secret is configured")]
    HmacSecretMissing { alg: &'static str },
    #[error("signature verification failed")]
    BadSignature,
    #[error("required claim {claim} is missing")]
    MissingClaim { claim: &'static str },
    #[error("claim {claim} is invalid: {reason}")]
    InvalidClaim {
        claim: &'static str,
        reason: &'static str,
    },
    #[error("iss mismatch: expected {expected:?}, found {found:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("aud does not contain client_id {client_id:?}")]
    AudienceMismatch { client_id: String },
    #[error("aud has several values but azp is missing")]
    AzpMissing,
    #[error("azp mismatch: expected {expected:?}, found {found:?}")]
    AzpMismatch { expected: String, found: String },
    #[error("token expired: exp {exp} + skew {skew}s <= now {now}")]
    Expired { exp: i64, now: i64, skew: i64 },
    #[error("token issued in the future: iat {iat} - skew {skew}s > now {now}")]
    IssuedInFuture { iat: i64, now: i64, skew: i64 },
    #[error("token not yet valid: nbf {nbf} - skew {skew}s > now {now}")]
    NotYetValid { nbf: i64, now: i64, skew: i64 },
    #[error("nonce expected but the token has none")]
    NonceMissing,
    #[error("nonce does not match the one sent")]
    NonceMismatch,
    #[error("at_hash is required but missing")]
    AtHashMissing,
    #[error("at_hash does not match the access token")]
    AtHashMismatch,
    #[error("c_hash is required but missing")]
    CHashMissing,
    #[error("c_hash does not match the authorization code")]
    CHashMismatch,
}

impl IdTokenError {
    /// Stable snake_case reason code, for logs, audit events and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "token_too_long",
            Self::Malformed { .. } => "malformed",
            Self::Encrypted => "encrypted_token",
            Self::AlgNotAllowed { .. } => "alg_not_allowed",
            Self::ForbiddenHeader { .. } => "forbidden_header",
            Self::WrongType { .. } => "wrong_type",
            Self::KidNotFound { .. } => "kid_not_found",
            Self::KeyAlgMismatch { .. } => "key_alg_mismatch",
            Self::NoKeyForAlg { .. } => "no_key_for_alg",
            Self::AmbiguousKey { .. } => "ambiguous_key",
            Self::HmacSecretMissing { .. } => "hmac_secret_missing",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim { .. } => "missing_claim",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::IssuerMismatch { .. } => "iss_mismatch",
            Self::AudienceMismatch { .. } => "aud_mismatch",
            Self::AzpMissing => "azp_missing",
            Self::AzpMismatch { .. } => "azp_mismatch",
            Self::Expired { .. } => "expired",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::NonceMissing => "nonce_missing",
            Self::NonceMismatch => "nonce_mismatch",
            Self::AtHashMissing => "at_hash_missing",
            Self::AtHashMismatch => "at_hash_mismatch",
            Self::CHashMissing => "c_hash_missing",
            Self::CHashMismatch => "c_hash_mismatch",
        }
    }

    /// Whether a fresh copy of the provider's JWKS could make this token valid (an unknown
    /// `kid`, no key for the algorithm, or a signature that fails with the key we hold).
    pub fn may_need_new_keys(&self) -> bool {
        matches!(
            self,
            Self::KidNotFound { .. }
                | Self::NoKeyForAlg { .. }
                | Self::KeyAlgMismatch { .. }
                | Self::BadSignature
        )
    }

    fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }
}

impl From<KeySelectError> for IdTokenError {
    fn from(e: KeySelectError) -> Self {
        match e {
            KeySelectError::KidNotFound { kid } => Self::KidNotFound { kid },
            KeySelectError::KidWrongAlgorithm { kid, alg } => Self::KeyAlgMismatch {
                kid,
                alg: alg.as_str(),
            },
            KeySelectError::NoKeyForAlgorithm { alg } => Self::NoKeyForAlg { alg: alg.as_str() },
            KeySelectError::Ambiguous { alg, count, .. } => Self::AmbiguousKey {
                alg: alg.as_str(),
                count,
            },
            // `validate` never asks the key set for an HMAC key.
            KeySelectError::Symmetric { alg } => Self::AlgNotAllowed {
                alg: alg.as_str().to_owned(),
            },
        }
    }
}

/// The claims of a validated ID token. The raw token is not kept; `Debug` shows the typed
/// claims and only the *names* of the other claims.
#[derive(Clone)]
pub struct IdTokenClaims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    alg: SignatureAlgorithm,
    kid: Option<String>,
    claims: Map<String, Value>,
}

impl IdTokenClaims {
    /// `iss` (equal to the policy's issuer).
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// `sub`: non-empty, at most 255 bytes.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// `aud`, as a list (a single string becomes a one-element list).
    pub fn aud(&self) -> &[String] {
        &self.aud
    }

    /// `exp`, seconds since the epoch.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// `iat`, seconds since the epoch.
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// The header `alg` the signature was verified with (decides the `at_hash` hash).
    pub fn alg(&self) -> SignatureAlgorithm {
        self.alg
    }

    /// The header `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Every claim of the token except `nonce` (already checked, and of no use after).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

impl fmt::Debug for IdTokenClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenClaims")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("claim_names", &self.claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The parts of the JOSE header we act on.
pub(crate) struct Header {
    alg: SignatureAlgorithm,
    kid: Option<String>,
}

/// Which JWT a [`verify_signed`] call expects (decides the accepted header `typ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    /// An ID token: `typ` absent or `JWT`; other JWT types refused.
    IdToken,
    /// A Back-Channel Logout token: `typ` absent, `JWT` or `logout+jwt`.
    Logout,
}

/// The JOSE steps shared by ID tokens and logout tokens: size, compact JWS only, header
/// (`alg` in the realm's list, refused parameters, `typ`, `kid`), signature (HS* with the
/// client secret, other algorithms with the one JWKS key that fits), then the payload as a
/// strictly parsed JSON object. Returns the header and the authenticated claims.
pub(crate) fn verify_signed(
    raw: &str,
    policy: &IdTokenPolicy,
    keys: &KeySet,
    kind: TokenType,
) -> Result<(Header, Map<String, Value>), IdTokenError> {
    // Size cap, before anything else (and before any base64 decoding).
    if raw.len() > policy.max_token_len {
        return Err(IdTokenError::TooLong {
            len: raw.len(),
            max: policy.max_token_len,
        });
    }

    // Step 1: "If the ID Token is encrypted, decrypt it". We accept only JWS: a compact JWS
    // has exactly 3 parts; 5 parts is a JWE, which we do not accept.
    let dots = raw.bytes().filter(|&b| b == b'.').count();
    match dots {
        2 => {}
        4 => return Err(IdTokenError::Encrypted),
        _ => {
            return Err(IdTokenError::malformed(format!(
                "a compact JWS has 3 parts, this token has {}",
                dots + 1
            )))
        }
    }
    let (signing_input, signature_b64) = raw
        .rsplit_once('.')
        .ok_or_else(|| IdTokenError::malformed("no signature part"))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or_else(|| IdTokenError::malformed("no payload part"))?;

    // Steps 7 and 6: the header's `alg` must be one the realm allows; nothing in the header
    // may supply or point to key material.
    let header = parse_header(header_b64, policy, kind)?;
    let signature = b64_part(signature_b64, "signature")?;
    if signature.is_empty() {
        return Err(IdTokenError::malformed("empty signature"));
    }

    // Steps 6 and 8: verify the signature. HS* with the client secret (its UTF-8 octets),
    // never with JWKS material; every other alg with the one key `KeySet::select` finds by
    // `kid` and family.
    let verified = if header.alg.is_hmac() {
        let secret = policy
            .client_secret
            .as_ref()
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or(IdTokenError::HmacSecretMissing {
                alg: header.alg.as_str(),
            })?;
        let key = jsonwebtoken::DecodingKey::from_secret(secret.expose_secret().as_bytes());
        let alg = jwt_algorithm(header.alg).ok_or(IdTokenError::BadSignature)?;
        matches!(
            jsonwebtoken::crypto::verify(signature_b64, signing_input.as_bytes(), &key, alg),
            Ok(true)
        )
    } else {
        let key = keys.select(header.kid.as_deref(), header.alg)?;
        key.verify(
            header.alg,
            signing_input.as_bytes(),
            signature_b64,
            &signature,
        )
    };
    if !verified {
        return Err(IdTokenError::BadSignature);
    }

    // The claims, now authenticated: a JSON object, strictly parsed.
    let payload = b64_part(payload_b64, "payload")?;
    let claims = match parse_strict(&payload, MAX_JSON_DEPTH) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(IdTokenError::malformed("payload is not a JSON object")),
        Err(reason) => return Err(IdTokenError::malformed(format!("payload: {reason}"))),
    };
    Ok((header, claims))
}

/// Validate an ID token (compact JWS) under `policy`, with the OP's keys `keys`, at time
/// `now_secs` (seconds since the epoch). Pure: no I/O, no clock.
pub fn validate(
    raw: &str,
    policy: &IdTokenPolicy,
    keys: &KeySet,
    now_secs: i64,
) -> Result<IdTokenClaims, IdTokenError> {
    let (header, mut claims) = verify_signed(raw, policy, keys, TokenType::IdToken)?;

    // Step 2: `iss` must exactly match the issuer.
    let iss = required_str(&claims, "iss")?;
    if iss != policy.issuer {
        return Err(IdTokenError::IssuerMismatch {
            expected: policy.issuer.clone(),
            found: truncate(iss, 256),
        });
    }

    // Step 3: `aud` must contain our client_id. Other audiences are tolerated only under
    // steps 4 and 5 (`azp` present and equal to our client_id), as Elasticsearch does.
    let aud = audiences(&claims)?;
    if !aud.iter().any(|a| *a == policy.client_id) {
        return Err(IdTokenError::AudienceMismatch {
            client_id: policy.client_id.clone(),
        });
    }

    // Step 4: several audiences → `azp` is required.
    let azp = optional_str(&claims, "azp")?;
    if aud.len() > 1 && azp.is_none() {
        return Err(IdTokenError::AzpMissing);
    }

    // Step 5: `azp`, when present, must be our client_id.
    if let Some(azp) = azp {
        if azp != policy.client_id {
            return Err(IdTokenError::AzpMismatch {
                expected: policy.client_id.clone(),
                found: truncate(azp, 256),
            });
        }
    }

    let skew = i64::try_from(policy.clock_skew.as_secs()).unwrap_or(i64::MAX);
    let now = now_secs;

    // Step 9: the current time must be before `exp` (plus skew).
    let exp = required_int(&claims, "exp")?;
    if exp.saturating_add(skew) <= now {
        return Err(IdTokenError::Expired { exp, now, skew });
    }

    // Step 10: `iat` is required and must not be in the future (minus skew). (§3.1.3.7 also
    // allows refusing tokens issued too far in the past; `exp` bounds that here.)
    let iat = required_int(&claims, "iat")?;
    if iat.saturating_sub(skew) > now {
        return Err(IdTokenError::IssuedInFuture { iat, now, skew });
    }

    // RFC 7519 §4.1.5: `nbf`, when present, must not be in the future (minus skew).
    if let Some(nbf) = optional_int(&claims, "nbf")? {
        if nbf.saturating_sub(skew) > now {
            return Err(IdTokenError::NotYetValid { nbf, now, skew });
        }
    }

    // Step 11: when a nonce was sent, the token's `nonce` must be present and equal.
    if let Some(expected) = &policy.expected_nonce {
        let found = match claims.get("nonce") {
            None => return Err(IdTokenError::NonceMissing),
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(IdTokenError::InvalidClaim {
                    claim: "nonce",
                    reason: "must be a string",
                })
            }
        };
        if !ct_eq(found.as_bytes(), expected.expose_secret().as_bytes()) {
            return Err(IdTokenError::NonceMismatch);
        }
    }
    // Steps 12 (`acr`) and 13 (`auth_time`): we request neither `acr_values` nor `max_age`,
    // so there is nothing to check.

    // Core §2: `sub` is required, a non-empty string of at most 255 ASCII characters.
    let sub = required_str(&claims, "sub")?;
    if sub.is_empty() {
        return Err(IdTokenError::InvalidClaim {
            claim: "sub",
            reason: "must not be empty",
        });
    }
    if sub.len() > MAX_SUB_LEN {
        return Err(IdTokenError::InvalidClaim {
            claim: "sub",
            reason: "longer than 255 bytes",
        });
    }

    let iss = iss.to_owned();
    let sub = sub.to_owned();
    let aud = aud.into_iter().map(str::to_owned).collect();
    claims.remove("nonce");
    Ok(IdTokenClaims {
        iss,
        sub,
        aud,
        exp,
        iat,
        alg: header.alg,
        kid: header.kid,
        claims,
    })
}

/// Decode one base64url part strictly: no padding, no characters outside the URL-safe
/// alphabet, no non-zero trailing bits.
fn b64_part(part: &str, name: &str) -> Result<Vec<u8>, IdTokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| IdTokenError::malformed(format!("{name} is not base64url without padding")))
}

fn parse_header(
    header_b64: &str,
    policy: &IdTokenPolicy,
    kind: TokenType,
) -> Result<Header, IdTokenError> {
    let bytes = b64_part(header_b64, "header")?;
    let header = match parse_strict(&bytes, MAX_JSON_DEPTH) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(IdTokenError::malformed("header is not a JSON object")),
        Err(reason) => return Err(IdTokenError::malformed(format!("header: {reason}"))),
    };

    // Step 7: `alg` must be a string naming an algorithm in the realm's allow-list (exact,
    // case-sensitive: `none`, `None`, `NONE`, `rs256` are never accepted).
    let alg = match header.get("alg") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(IdTokenError::malformed("header alg is not a string")),
        None => return Err(IdTokenError::malformed("header has no alg")),
    };
    let alg = SignatureAlgorithm::parse(alg)
        .filter(|a| policy.algorithms.contains(a))
        .ok_or_else(|| IdTokenError::AlgNotAllowed {
            alg: truncate(alg, 32),
        })?;

    // Header parameters we refuse outright (see the module documentation).
    for param in ["jku", "x5u", "jwk", "zip", "crit", "enc"] {
        if header.contains_key(param) {
            return Err(IdTokenError::ForbiddenHeader { param });
        }
    }

    if let Some(typ) = header.get("typ") {
        let typ = typ
            .as_str()
            .ok_or_else(|| IdTokenError::malformed("header typ is not a string"))?;
        let lower = typ.to_ascii_lowercase();
        let bare = lower.strip_prefix("application/").unwrap_or(&lower);
        let accepted = kind == TokenType::Logout && bare == "logout+jwt";
        if FOREIGN_TYPES.contains(&bare) && !accepted {
            return Err(IdTokenError::WrongType {
                typ: truncate(typ, 64),
            });
        }
    }

    // `kid`: an opaque string, compared byte for byte with the JWKS; capped in length.
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() > MAX_KID_LEN => {
            return Err(IdTokenError::malformed(format!(
                "header kid is longer than {MAX_KID_LEN} bytes"
            )))
        }
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(IdTokenError::malformed("header kid is not a string")),
    };
    Ok(Header { alg, kid })
}

pub(crate) fn optional_str<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
) -> Result<Option<&'a str>, IdTokenError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(IdTokenError::InvalidClaim {
            claim,
            reason: "must be a string",
        }),
    }
}

pub(crate) fn required_str<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
) -> Result<&'a str, IdTokenError> {
    optional_str(claims, claim)?.ok_or(IdTokenError::MissingClaim { claim })
}

/// A NumericDate that must be a JSON integer fitting in i64 (a string, a float such as
/// `1e300` or `4102444800.0`, or a huge integer is refused).
pub(crate) fn optional_int(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<i64>, IdTokenError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(IdTokenError::InvalidClaim {
            claim,
            reason: "must be an integer number of seconds",
        }),
        Some(_) => Err(IdTokenError::InvalidClaim {
            claim,
            reason: "must be a number",
        }),
    }
}

pub(crate) fn required_int(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<i64, IdTokenError> {
    optional_int(claims, claim)?.ok_or(IdTokenError::MissingClaim { claim })
}

/// `aud`: a string or a non-empty array of strings.
pub(crate) fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, IdTokenError> {
    const BAD: IdTokenError = IdTokenError::InvalidClaim {
        claim: "aud",
        reason: "must be a string or a non-empty array of strings",
    };
    match claims.get("aud") {
        None => Err(IdTokenError::MissingClaim { claim: "aud" }),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().ok_or(BAD))
            .collect::<Result<Vec<_>, _>>(),
        Some(_) => Err(BAD),
    }
}

/// The left-most half of the hash of `value` with the hash function of `alg`, base64url
/// (Core §3.2.2.9 `at_hash`, §3.3.2.11 `c_hash`).
fn half_hash(alg: SignatureAlgorithm, value: &str) -> String {
    use aws_lc_rs::digest::{digest, SHA256, SHA384, SHA512};
    use SignatureAlgorithm::*;
    let function = match alg {
        HS256 | RS256 | ES256 | PS256 => &SHA256,
        HS384 | RS384 | ES384 | PS384 => &SHA384,
        // Ed25519 hashes with SHA-512 (RFC 8032); OpenID providers use it for at_hash.
        HS512 | RS512 | ES512 | PS512 | EdDSA => &SHA512,
    };
    let d = digest(function, value.as_bytes());
    let d = d.as_ref();
    URL_SAFE_NO_PAD.encode(&d[..d.len() / 2])
}

fn check_half_hash(
    claims: &IdTokenClaims,
    claim: &'static str,
    value: &str,
    required: bool,
    missing: IdTokenError,
    mismatch: IdTokenError,
) -> Result<(), IdTokenError> {
    match optional_str(&claims.claims, claim)? {
        None if required => Err(missing),
        None => Ok(()),
        Some(found) => {
            if ct_eq(found.as_bytes(), half_hash(claims.alg, value).as_bytes()) {
                Ok(())
            } else {
                Err(mismatch)
            }
        }
    }
}

/// Check the `at_hash` of a validated ID token against the access token returned with it,
/// using the hash of the token's own `alg`. `required`: `true` for the implicit flow
/// (`id_token token`), where a missing `at_hash` is an error; otherwise `at_hash` is checked
/// only when present (Elasticsearch's behaviour, es-compat §2.2 step 5).
pub fn check_at_hash(
    claims: &IdTokenClaims,
    access_token: &str,
    required: bool,
) -> Result<(), IdTokenError> {
    check_half_hash(
        claims,
        "at_hash",
        access_token,
        required,
        IdTokenError::AtHashMissing,
        IdTokenError::AtHashMismatch,
    )
}

/// Check the `c_hash` of a validated ID token against the authorization code (hybrid flow;
/// `required` when the response type is `code id_token`).
pub fn check_c_hash(
    claims: &IdTokenClaims,
    code: &str,
    required: bool,
) -> Result<(), IdTokenError> {
    check_half_hash(
        claims,
        "c_hash",
        code,
        required,
        IdTokenError::CHashMissing,
        IdTokenError::CHashMismatch,
    )
}
