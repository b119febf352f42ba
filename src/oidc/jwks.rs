//! JSON Web Key Sets (RFC 7517): an immutable snapshot of the OP's public signing keys.
//!
//! Parsing is tolerant as RFC 7517 §5 asks: a key of an unknown `kty`, curve or `alg`, a key
//! marked for encryption, or a malformed key is skipped with a warning naming its `kid`; only a
//! set that is not JSON, is too large, or leaves no usable signing key is an error. Symmetric
//! (`oct`) keys are always skipped: HMAC ID tokens are verified with the client secret only.
//!
//! Key selection ([`KeySet::select`]) matches the token's `kid` **and** the algorithm family
//! (`kty`, curve, and the key's own `alg` if it declares one) and never guesses between several
//! candidates.

use crate::config::SignatureAlgorithm;
use aws_lc_rs::signature::{self as lc, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::fmt;

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Largest number of entries in `keys` (usable or not).
pub const MAX_KEYS: usize = 100;
/// Longest `kid` accepted, in bytes, in a JWKS and in a token header.
pub const MAX_KID_LEN: usize = 256;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 8192;

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("JWKS is not valid JSON: {reason}")]
    NotJson { reason: String },
    #[error("JWKS is not an object with a \"keys\" array")]
    NoKeysArray,
    #[error("JWKS has {count} keys, more than the {max} allowed")]
    TooManyKeys { count: usize, max: usize },
    #[error("JWKS has no usable signing key ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
}

impl JwksError {
    /// Stable snake_case reason code.
    pub fn code(&self) -> &'static str {
        match self {
            JwksError::TooLarge { .. } => "jwks_too_large",
            JwksError::NotJson { .. } => "jwks_not_json",
            JwksError::NoKeysArray => "jwks_no_keys_array",
            JwksError::TooManyKeys { .. } => "jwks_too_many_keys",
            JwksError::NoUsableKey { .. } => "jwks_no_usable_key",
        }
    }
}

/// Why [`KeySet::select`] found no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySelectError {
    /// No key carries this `kid`.
    #[error("kid {kid:?} not in JWKS")]
    KidNotFound { kid: String },
    /// Keys with this `kid` exist, but none is of the family (or declared `alg`) of `alg`.
    #[error("kid {kid:?} in JWKS is not a key for {}", alg.as_str())]
    KidWrongAlgorithm {
        kid: String,
        alg: SignatureAlgorithm,
    },
    /// The token has no `kid` and the set has no key for `alg`.
    #[error("no key in JWKS for {}", alg.as_str())]
    NoKeyForAlgorithm { alg: SignatureAlgorithm },
    /// Several keys fit (e.g. no `kid` in the token and several keys of the family).
    #[error("{count} keys in JWKS fit a {} token{}; refusing to guess", alg.as_str(), if *kid_given { " with this kid" } else { " without kid" })]
    Ambiguous {
        alg: SignatureAlgorithm,
        count: usize,
        kid_given: bool,
    },
    /// HMAC algorithms never use JWKS material.
    #[error("{} is verified with the client secret, never with JWKS keys", alg.as_str())]
    Symmetric { alg: SignatureAlgorithm },
}

/// Elliptic curves accepted for ECDSA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

impl EcCurve {
    fn parse(crv: &str) -> Option<Self> {
        match crv {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    /// Bytes of one coordinate (and of `r`/`s` in a JWS signature).
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The only JWS algorithm for this curve (RFC 7518 §3.4).
    fn algorithm(self) -> SignatureAlgorithm {
        match self {
            Self::P256 => SignatureAlgorithm::ES256,
            Self::P384 => SignatureAlgorithm::ES384,
            Self::P521 => SignatureAlgorithm::ES512,
        }
    }

    fn verification(self) -> &'static lc::EcdsaVerificationAlgorithm {
        match self {
            Self::P256 => &lc::ECDSA_P256_SHA256_FIXED,
            Self::P384 => &lc::ECDSA_P384_SHA384_FIXED,
            Self::P521 => &lc::ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// What a usable key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// `kty: RSA`: RS256/384/512, PS256/384/512.
    Rsa { bits: usize },
    /// `kty: EC` on a NIST curve: ES256/384/512 (one algorithm per curve).
    Ec(EcCurve),
    /// `kty: OKP`, `crv: Ed25519`: `EdDSA` (RFC 8037), when the realm lists it.
    Ed25519,
}

/// One usable public signing key.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when it declares one of ours.
    alg: Option<SignatureAlgorithm>,
    family: KeyFamily,
    material: Material,
}

#[derive(Clone)]
enum Material {
    /// A `jsonwebtoken` key (RSA components, or an uncompressed EC point for P-256/P-384).
    Jwt(DecodingKey),
    /// Uncompressed point of a P-521 key (`jsonwebtoken` 10 has no ES512; aws-lc-rs verifies).
    P521(Vec<u8>),
    /// Ed25519 public key bytes (aws-lc-rs verifies).
    Ed25519(Vec<u8>),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` the key declares, if any.
    pub fn declared_alg(&self) -> Option<SignatureAlgorithm> {
        self.alg
    }

    /// Key type and size/curve.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// Whether this key may verify a signature made with `alg`: same family (and curve), and
    /// the key's declared `alg`, if any, equal to `alg`.
    pub fn fits(&self, alg: SignatureAlgorithm) -> bool {
        family_fits(self.family, alg) && self.alg.is_none_or(|declared| declared == alg)
    }

    /// Verify `signature` (already base64url-decoded; `signature_b64` is the same bytes as
    /// found in the token) over `message`. The caller has checked [`Key::fits`].
    pub(crate) fn verify(
        &self,
        alg: SignatureAlgorithm,
        message: &[u8],
        signature_b64: &str,
        signature: &[u8],
    ) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.material {
            Material::Jwt(key) => match jwt_algorithm(alg) {
                Some(jalg) => {
                    matches!(
                        jsonwebtoken::crypto::verify(signature_b64, message, key, jalg),
                        Ok(true)
                    )
                }
                None => false,
            },
            Material::P521(point) => lc::ECDSA_P521_SHA512_FIXED
                .verify_sig(point, message, signature)
                .is_ok(),
            Material::Ed25519(x) => lc::ED25519.verify_sig(x, message, signature).is_ok(),
        }
    }
}

/// Whether keys of `family` can verify `alg` at all.
fn family_fits(family: KeyFamily, alg: SignatureAlgorithm) -> bool {
    match family {
        KeyFamily::Rsa { .. } => matches!(
            alg,
            SignatureAlgorithm::RS256
                | SignatureAlgorithm::RS384
                | SignatureAlgorithm::RS512
                | SignatureAlgorithm::PS256
                | SignatureAlgorithm::PS384
                | SignatureAlgorithm::PS512
        ),
        KeyFamily::Ec(curve) => curve.algorithm() == alg,
        KeyFamily::Ed25519 => alg == SignatureAlgorithm::EdDSA,
    }
}

/// The `jsonwebtoken` algorithm for one of ours; `None` for ES512, which `jsonwebtoken` 10
/// lacks, and EdDSA (aws-lc-rs verifies both directly).
pub(crate) fn jwt_algorithm(alg: SignatureAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        SignatureAlgorithm::HS256 => Algorithm::HS256,
        SignatureAlgorithm::HS384 => Algorithm::HS384,
        SignatureAlgorithm::HS512 => Algorithm::HS512,
        SignatureAlgorithm::RS256 => Algorithm::RS256,
        SignatureAlgorithm::RS384 => Algorithm::RS384,
        SignatureAlgorithm::RS512 => Algorithm::RS512,
        SignatureAlgorithm::PS256 => Algorithm::PS256,
        SignatureAlgorithm::PS384 => Algorithm::PS384,
        SignatureAlgorithm::PS512 => Algorithm::PS512,
        SignatureAlgorithm::ES256 => Algorithm::ES256,
        SignatureAlgorithm::ES384 => Algorithm::ES384,
        SignatureAlgorithm::ES512 | SignatureAlgorithm::EdDSA => return None,
    })
}

/// An immutable snapshot of the OP's usable signing keys.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parse a JWKS document. Returns the usable keys and one warning per skipped entry (each
    /// naming the entry's `kid`, or its index when it has none).
    pub fn parse(bytes: &[u8]) -> Result<(KeySet, Vec<String>), JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                len: bytes.len(),
                max: MAX_JWKS_BYTES,
            });
        }
        // A JWKS is two levels of objects/arrays plus, at most, `x5c`/`key_ops` arrays.
        let doc =
            crate::json::parse_strict(bytes, 8).map_err(|reason| JwksError::NotJson { reason })?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys {
                count: entries.len(),
                max: MAX_KEYS,
            });
        }
        let mut keys = Vec::new();
        let mut warnings = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match parse_key(entry) {
                Ok(key) => keys.push(key),
                Err(reason) => {
                    let name = match entry.get("kid").and_then(Value::as_str) {
                        Some(kid) => format!("kid {:?}", truncate(kid, MAX_KID_LEN)),
                        None => format!("key #{index} (no kid)"),
                    };
                    warnings.push(format!("JWKS {name} skipped: {reason}"));
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey {
                skipped: warnings.len(),
            });
        }
        Ok((KeySet { keys }, warnings))
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The `kid`s of the usable keys, in document order (keys without `kid` are left out).
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(Key::kid).collect()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true for a parsed set; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The one key that may verify a token signed with `alg` whose header carries `kid`.
    ///
    /// - `kid` given: the keys with exactly that `kid` (byte equality, no normalisation) that
    ///   [fit](Key::fits) `alg`; one → it, none → `KidNotFound`/`KidWrongAlgorithm`, several →
    ///   `Ambiguous`. Fallback: when no key has that `kid` and the set holds exactly one key
    ///   that fits `alg` and that key has no `kid`, that key is used (the single candidate).
    /// - no `kid`: all keys that fit `alg`; exactly one → it, otherwise an error.
    /// - HMAC `alg`: always `Symmetric` (HMAC uses the client secret, never JWKS material).
    pub fn select(
        &self,
        kid: Option<&str>,
        alg: SignatureAlgorithm,
    ) -> Result<&Key, KeySelectError> {
        if alg.is_hmac() {
            return Err(KeySelectError::Symmetric { alg });
        }
        let fitting: Vec<&Key> = self.keys.iter().filter(|k| k.fits(alg)).collect();
        match kid {
            Some(kid) => {
                let same_kid: Vec<&Key> = fitting
                    .iter()
                    .copied()
                    .filter(|k| k.kid() == Some(kid))
                    .collect();
                match same_kid.as_slice() {
                    [key] => Ok(key),
                    [] => {
                        if let [only] = fitting.as_slice() {
                            if only.kid().is_none() {
                                return Ok(only);
                            }
                        }
                        if self.keys.iter().any(|k| k.kid() == Some(kid)) {
                            Err(KeySelectError::KidWrongAlgorithm {
                                kid: kid.to_owned(),
                                alg,
                            })
                        } else {
                            Err(KeySelectError::KidNotFound {
                                kid: truncate(kid, MAX_KID_LEN),
                            })
                        }
                    }
                    several => Err(KeySelectError::Ambiguous {
                        alg,
                        count: several.len(),
                        kid_given: true,
                    }),
                }
            }
            None => match fitting.as_slice() {
                [key] => Ok(key),
                [] => Err(KeySelectError::NoKeyForAlgorithm { alg }),
                several => Err(KeySelectError::Ambiguous {
                    alg,
                    count: several.len(),
                    kid_given: false,
                }),
            },
        }
    }
}

/// At most `max` characters of `s`, `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    crate::text::Cap {
        max_chars: max,
        control: None,
        ellipsis: true,
    }
    .apply(s)
}

fn str_member<'a>(entry: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    match entry.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    }
}

fn b64_member(entry: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = str_member(entry, name)?.ok_or_else(|| format!("\"{name}\" is missing"))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("\"{name}\" is not base64url"))
}

/// One JWKS entry to a usable key, or the reason it is skipped.
fn parse_key(entry: &Value) -> Result<Key, String> {
    if !entry.is_object() {
        return Err("entry is not an object".into());
    }
    let kid = str_member(entry, "kid")?;
    if let Some(kid) = kid {
        if kid.len() > MAX_KID_LEN {
            return Err(format!("kid longer than {MAX_KID_LEN} bytes"));
        }
    }
    match str_member(entry, "use")? {
        None | Some("sig") => {}
        Some("enc") => return Err("\"use\" is \"enc\": never used to verify signatures".into()),
        Some(other) => return Err(format!("unknown \"use\" {:?}", truncate(other, 32))),
    }
    if let Some(ops) = entry.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verify {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let kty = str_member(entry, "kty")?.ok_or("\"kty\" is missing")?;
    let declared = str_member(entry, "alg")?;
    let (family, material) = match kty {
        "RSA" => {
            let n = b64_member(entry, "n")?;
            let e = b64_member(entry, "e")?;
            let n_trimmed = strip_leading_zeros(&n);
            let e_trimmed = strip_leading_zeros(&e);
            // Bits of the modulus: its byte length less the leading zero bits of its first byte
            // (0 for an empty or all-zero `n`).
            let bits =
                n_trimmed.len() * 8 - n_trimmed.first().map_or(0, |b| b.leading_zeros() as usize);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "RSA modulus of {bits} bits (accepted: {MIN_RSA_BITS}..={MAX_RSA_BITS})"
                ));
            }
            if e_trimmed.is_empty()
                || e_trimmed.len() > 4
                || e_trimmed[e_trimmed.len() - 1] & 1 == 0
            {
                return Err("RSA exponent is not a small odd number".into());
            }
            (
                KeyFamily::Rsa { bits },
                Material::Jwt(DecodingKey::from_rsa_raw_components(n_trimmed, e_trimmed)),
            )
        }
        "EC" => {
            let crv = str_member(entry, "crv")?.ok_or("\"crv\" is missing")?;
            let curve = EcCurve::parse(crv)
                .ok_or_else(|| format!("unsupported curve {:?}", truncate(crv, 32)))?;
            let x = b64_member(entry, "x")?;
            let y = b64_member(entry, "y")?;
            let len = curve.coordinate_len();
            if x.len() != len || y.len() != len {
                return Err(format!("{crv} coordinates must be {len} bytes each"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            // Refuse points that are not on the curve now, rather than at every verification.
            lc::ParsedPublicKey::new(curve.verification(), &point)
                .map_err(|_| format!("point is not on {crv}"))?;
            let material = match curve {
                EcCurve::P521 => Material::P521(point),
                _ => Material::Jwt(DecodingKey::from_ec_der(&point)),
            };
            (KeyFamily::Ec(curve), material)
        }
        "OKP" => {
            let crv = str_member(entry, "crv")?.ok_or("\"crv\" is missing")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported OKP curve {:?}", truncate(crv, 32)));
            }
            let x = b64_member(entry, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 \"x\" must be 32 bytes".into());
            }
            if declared.is_some_and(|a| a != "EdDSA") {
                return Err(format!(
                    "\"alg\" {:?} does not fit an Ed25519 key",
                    truncate(declared.unwrap_or(""), 32)
                ));
            }
            (KeyFamily::Ed25519, Material::Ed25519(x))
        }
        "oct" => {
            return Err(
                "symmetric key: HMAC tokens are verified with the client secret only".into(),
            )
        }
        other => return Err(format!("unsupported kty {:?}", truncate(other, 32))),
    };
    let alg = match (family, declared) {
        (_, None) => None,
        (_, Some(a)) => {
            let alg = SignatureAlgorithm::parse(a)
                .ok_or_else(|| format!("unsupported alg {:?}", truncate(a, 32)))?;
            if !family_fits(family, alg) {
                return Err(format!("\"alg\" {a} does not fit a {kty} key of this kind"));
            }
            Some(alg)
        }
    };
    Ok(Key {
        kid: kid.map(str::to_owned),
        alg,
        family,
        material,
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
