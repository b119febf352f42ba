//! The realm's own private keys for `rp.client_auth_method: private_key_jwt` (RFC 7523 client
//! assertions): parsed and checked at load, with their public JWKs (served at
//! `GET /oidc/{realm}/jwks`).

use super::SignatureAlgorithm;
use crate::secret::Secret;
use aws_lc_rs::signature::{self as lc, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use serde_json::{json, Value};
use std::fmt;

/// Longest `rp.client_auth_key_id`.
pub const MAX_CLIENT_KEY_ID_LEN: usize = 128;

/// One private key of the realm.
#[derive(Clone)]
pub struct ClientAuthKey {
    /// `kid` of the public JWK and of the assertion header (configured, or the RFC 7638
    /// thumbprint).
    pub kid: String,
    /// The algorithm it signs with (and that its JWK declares).
    pub alg: SignatureAlgorithm,
    /// The PEM text (PKCS#8, or PKCS#1 for RSA).
    pub pem: Secret<String>,
    /// The public JWK (`kty`, `use: sig`, `alg`, `kid`, and the public parameters).
    pub public_jwk: Value,
}

impl fmt::Debug for ClientAuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

enum Parsed {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        crv: &'static str,
        x: Vec<u8>,
        y: Vec<u8>,
        alg: SignatureAlgorithm,
    },
}

fn pem_body(pem: &str) -> Result<(String, Vec<u8>), String> {
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if label.is_some() {
                return Err(
                    "holds more than one PEM block; give one private key per setting".into(),
                );
            }
            label = Some(l.to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or("is not a PEM private key (no -----BEGIN line)")?;
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "is not a PEM private key (bad base64)".to_string())?;
    Ok((label, der))
}

fn parse_private(pem: &str) -> Result<Parsed, String> {
    let (label, der) = pem_body(pem)?;
    let rsa = |pair: lc::RsaKeyPair| {
        if pair.public_modulus_len() < 256 {
            return Err("is an RSA key shorter than 2048 bits".to_string());
        }
        let public = pair.public_key();
        Ok(Parsed::Rsa {
            n: public.modulus().big_endian_without_leading_zero().to_vec(),
            e: public.exponent().big_endian_without_leading_zero().to_vec(),
        })
    };
    match label.as_str() {
        "RSA PRIVATE KEY" => rsa(lc::RsaKeyPair::from_der(&der)
            .map_err(|_| "is not a valid PKCS#1 RSA private key".to_string())?),
        "PRIVATE KEY" => {
            if let Ok(pair) = lc::RsaKeyPair::from_pkcs8(&der) {
                return rsa(pair);
            }
            for (signing, crv, len, alg) in [
                (&lc::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32, SignatureAlgorithm::ES256),
                (&lc::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48, SignatureAlgorithm::ES384),
            ] {
                if let Ok(pair) = lc::EcdsaKeyPair::from_pkcs8(signing, &der) {
                    let point = pair.public_key().as_ref();
                    if point.len() != 1 + 2 * len {
                        return Err("has an unexpected EC public point".into());
                    }
                    return Ok(Parsed::Ec {
                        crv,
                        x: point[1..1 + len].to_vec(),
                        y: point[1 + len..].to_vec(),
                        alg,
                    });
                }
            }
            Err("is not an RSA, EC P-256 or EC P-384 PKCS#8 private key".into())
        }
        "EC PRIVATE KEY" => Err("is a SEC1 EC key: convert it to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem`)".into()),
        "ENCRYPTED PRIVATE KEY" => Err("is encrypted: encrypted private keys are not supported; decrypt it and protect the file by permissions".into()),
        other => Err(format!("is a PEM block of type [{}], not a private key", crate::text::Cap { max_chars: 40, control: Some('?'), ellipsis: true }.apply(other))),
    }
}

/// RFC 7638 thumbprint of the public key.
fn thumbprint(p: &Parsed) -> String {
    // Members in lexicographic order, no whitespace.
    let canonical = match p {
        Parsed::Rsa { n, e } => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            B64.encode(e),
            B64.encode(n)
        ),
        Parsed::Ec { crv, x, y, .. } => format!(
            r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
            B64.encode(x),
            B64.encode(y)
        ),
    };
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// Parse one configured key. `alg`: the configured signing algorithm, if any (default RS256
/// for RSA, the curve's ES algorithm for EC). Errors say what is wrong, never the key.
pub(super) fn parse_client_key(
    pem: Secret<String>,
    kid: Option<String>,
    alg: Option<SignatureAlgorithm>,
) -> Result<ClientAuthKey, String> {
    let parsed = parse_private(pem.expose_secret())?;
    let alg = match (&parsed, alg) {
        (Parsed::Rsa { .. }, None) => SignatureAlgorithm::RS256,
        (Parsed::Rsa { .. }, Some(a))
            if matches!(
                a,
                SignatureAlgorithm::RS256
                    | SignatureAlgorithm::RS384
                    | SignatureAlgorithm::RS512
                    | SignatureAlgorithm::PS256
                    | SignatureAlgorithm::PS384
                    | SignatureAlgorithm::PS512
            ) =>
        {
            a
        }
        (Parsed::Ec { alg, .. }, None) => *alg,
        (Parsed::Ec { alg, .. }, Some(a)) if a == *alg => a,
        (Parsed::Rsa { .. }, Some(a)) => {
            return Err(format!(
            "is an RSA key, which cannot sign {}; use RS256, RS384, RS512, PS256, PS384 or PS512",
            a.as_str()
        ))
        }
        (Parsed::Ec { alg, .. }, Some(a)) => {
            return Err(format!(
                "is an EC key for {}, which cannot sign {}",
                alg.as_str(),
                a.as_str()
            ))
        }
    };
    // The signing side must accept it too.
    let encoding = match parsed {
        Parsed::Rsa { .. } => {
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes())
        }
        Parsed::Ec { .. } => jsonwebtoken::EncodingKey::from_ec_pem(pem.expose_secret().as_bytes()),
    };
    encoding.map_err(|e| format!("cannot be used for signing: {:?}", e.kind()))?;
    let kid = kid.unwrap_or_else(|| thumbprint(&parsed));
    let mut jwk = match &parsed {
        Parsed::Rsa { n, e } => json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)}),
        Parsed::Ec { crv, x, y, .. } => {
            json!({"kty": "EC", "crv": crv, "x": B64.encode(x), "y": B64.encode(y)})
        }
    };
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(alg.as_str());
    jwk["kid"] = json!(kid);
    Ok(ClientAuthKey {
        kid,
        alg,
        pem,
        public_jwk: jwk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA1: &str = include_str!("../../tests/fixtures/keys/rsa1.pem");
    const EC256: &str = include_str!("../../tests/fixtures/keys/ec256.pem");
    const EC384: &str = include_str!("../../tests/fixtures/keys/ec384.pem");
    const ED: &str = include_str!("../../tests/fixtures/keys/ed25519.pem");

    fn parse(pem: &str, alg: Option<SignatureAlgorithm>) -> Result<ClientAuthKey, String> {
        parse_client_key(Secret::new(pem.to_string()), None, alg)
    }

    #[test]
    fn rsa_and_ec_keys_give_public_jwks_without_private_parts() {
        let k = parse(RSA1, None).unwrap();
        assert_eq!(k.alg, SignatureAlgorithm::RS256);
        assert_eq!(k.public_jwk["kty"], "RSA");
        assert!(k.public_jwk.get("d").is_none());
        assert_eq!(k.public_jwk["kid"], k.kid.as_str());
        assert_eq!(k.kid.len(), 43);
        let k = parse(RSA1, Some(SignatureAlgorithm::PS256)).unwrap();
        assert_eq!(k.public_jwk["alg"], "PS256");
        let k = parse(EC256, None).unwrap();
        assert_eq!(
            (k.alg, &k.public_jwk["crv"]),
            (SignatureAlgorithm::ES256, &json!("P-256"))
        );
        let k = parse(EC384, None).unwrap();
        assert_eq!(k.alg, SignatureAlgorithm::ES384);
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }

    #[test]
    fn unusable_keys_and_algorithms_are_refused() {
        assert!(parse(ED, None)
            .unwrap_err()
            .contains("not an RSA, EC P-256 or EC P-384"));
        assert!(parse("hello", None).unwrap_err().contains("not a PEM"));
        assert!(parse(RSA1, Some(SignatureAlgorithm::ES256))
            .unwrap_err()
            .contains("RSA key"));
        assert!(parse(EC256, Some(SignatureAlgorithm::ES384))
            .unwrap_err()
            .contains("EC key for ES256"));
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(parse(sec1, None).unwrap_err().contains("PKCS#8"));
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 §3.1's example key.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        let p = Parsed::Rsa {
            n: B64.decode(n).unwrap(),
            e: B64.decode(e).unwrap(),
        };
        assert_eq!(
            thumbprint(&p),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
