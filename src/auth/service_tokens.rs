//! Service account tokens, in Elasticsearch's format: the bearer string is the unpadded
//! base64 of `00 01 00 01` (magic, type, reserved, version) followed by
//! `namespace/service/token_name:secret`. Kibana sends one as
//! `Authorization: Bearer <token>` when configured with `elasticsearch.serviceAccountToken`.
//!
//! The configuration keeps only the SHA-256 of the secret (`sha256:<hex>`): the secret is
//! 256 random bits, so a fast hash is as strong as a slow one, and checking a token costs
//! microseconds, not an argon2 verification.

pub use crate::config::service_tokens::{check_name, parse_hash, HASH_PREFIX};
use crate::config::ServiceTokenEntry;
use crate::secret::{ct_eq, Secret};
use base64::alphabet::STANDARD as STANDARD_ALPHABET;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::collections::BTreeMap;

/// The four bytes every service token starts with.
const PREFIX: [u8; 4] = [0, 1, 0, 1];
/// The first 30 bits of `PREFIX` in base64 (the sixth character also depends on the name):
/// a bearer value starting with this is a service token, not an access token (whose text
/// starts with `ora2_` or `ora1_`).
pub const BEARER_PREFIX: &str = "AAEAA";
/// The realm Elasticsearch reports for service accounts.
pub const SERVICE_ACCOUNT_REALM: &str = "_service_account";
/// The token source Elasticsearch reports for tokens not kept in its index.
pub const TOKEN_SOURCE: &str = "_service_account_file";
/// Longest bearer value looked at (a name of 3 × 256 characters and a secret fit).
const MAX_BEARER_LEN: usize = 2048;

/// Base64 that accepts the token with or without padding, as Elasticsearch does.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD_ALPHABET,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A presented service token: its qualified name and its secret.
#[derive(Debug)]
pub struct Presented {
    /// `namespace/service/token_name`.
    pub name: String,
    secret: Secret<String>,
}

impl Presented {
    /// `namespace/service`: the service account, the caller's username.
    pub fn account(&self) -> &str {
        self.name.rsplit_once('/').map_or("", |(a, _)| a)
    }

    /// The token's own name (the last segment).
    pub fn token_name(&self) -> &str {
        self.name.rsplit_once('/').map_or("", |(_, t)| t)
    }
}

fn sha256(secret: &str) -> [u8; 32] {
    crate::crypto::sha256(&[secret.as_bytes()])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token for `name`: (the bearer string, to hand out once; the `hash` value for the
/// configuration).
pub fn generate(name: &str) -> Result<(String, String), String> {
    check_name(name)?;
    let secret = crate::crypto::random_urlsafe(32);
    let mut bytes = PREFIX.to_vec();
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(b':');
    bytes.extend_from_slice(secret.as_bytes());
    let bearer = STANDARD_NO_PAD.encode(&bytes);
    Ok((bearer, format!("{HASH_PREFIX}{}", hex(&sha256(&secret)))))
}

/// Whether a bearer value has a service token's shape (cheap; no decoding).
pub fn looks_like(bearer: &str) -> bool {
    bearer.starts_with(BEARER_PREFIX)
}

/// Decode a bearer value as a service token; `None` if it is not one.
pub fn parse_bearer(bearer: &str) -> Option<Presented> {
    if !looks_like(bearer) || bearer.len() > MAX_BEARER_LEN {
        return None;
    }
    let raw = Secret::new(LENIENT.decode(bearer).ok()?);
    let rest = raw.expose_secret().strip_prefix(&PREFIX)?;
    let text = std::str::from_utf8(rest).ok()?;
    let (name, secret) = text.split_once(':')?;
    check_name(name).ok()?;
    if secret.is_empty() {
        return None;
    }
    Some(Presented {
        name: name.to_string(),
        secret: Secret::new(secret.to_string()),
    })
}

/// The configured entry for a presented token if its secret matches. Unknown names cost the
/// same hash and comparison as known ones, so timing does not reveal which names exist.
pub fn verify<'a>(
    tokens: &'a BTreeMap<String, ServiceTokenEntry>,
    presented: &Presented,
) -> Option<&'a ServiceTokenEntry> {
    let got = sha256(presented.secret.expose_secret());
    let entry = tokens.get(&presented.name);
    let expected = entry.map_or([0u8; 32], |e| *e.secret_hash.expose_secret());
    let matches = ct_eq(&got, &expected);
    entry.filter(|_| matches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn entry(hash: &str) -> ServiceTokenEntry {
        ServiceTokenEntry {
            secret_hash: parse_hash(hash).unwrap(),
            privileges: BTreeSet::new(),
        }
    }

    #[test]
    fn generated_token_round_trips_and_verifies() {
        let (bearer, hash) = generate("elastic/kibana/kibana-prod").unwrap();
        assert!(bearer.starts_with(BEARER_PREFIX), "{bearer}");
        assert!(!bearer.ends_with('='));
        let p = parse_bearer(&bearer).unwrap();
        assert_eq!(p.name, "elastic/kibana/kibana-prod");
        assert_eq!(p.account(), "elastic/kibana");
        assert_eq!(p.token_name(), "kibana-prod");
        let mut map = BTreeMap::new();
        map.insert(p.name.clone(), entry(&hash));
        assert!(verify(&map, &p).is_some());
        // Padded form accepted too (Java's decoder does).
        let padded = format!("{bearer}{}", "=".repeat((4 - bearer.len() % 4) % 4));
        assert!(parse_bearer(&padded).is_some());
    }

    #[test]
    fn wrong_secret_or_unknown_name_refused() {
        let (bearer, hash) = generate("elastic/kibana/a").unwrap();
        let (other, _) = generate("elastic/kibana/a").unwrap();
        let mut map = BTreeMap::new();
        map.insert("elastic/kibana/a".to_string(), entry(&hash));
        assert!(verify(&map, &parse_bearer(&other).unwrap()).is_none());
        let (unknown, _) = generate("elastic/kibana/b").unwrap();
        assert!(verify(&map, &parse_bearer(&unknown).unwrap()).is_none());
        assert!(verify(&map, &parse_bearer(&bearer).unwrap()).is_some());
    }

    #[test]
    fn malformed_bearers_are_not_service_tokens() {
        for bad in [
            "",
            "ora1_abc",
            "AAEAA",
            "AAEAAQ!!!!",
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01elastic/kibana/t"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01elastic/kibana/t:"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01elastic/kibana:secret"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x02elastic/kibana/t:secret"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01Elastic/kibana/t:secret"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01elastic/kibana/_t:secret"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01elastic/kibana/t\n:secret"),
            &STANDARD_NO_PAD.encode(b"\0\x01\0\x01\xff\xfe/k/t:secret"),
            &format!("AAEAAQ{}", "A".repeat(4000)),
        ] {
            assert!(parse_bearer(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_hashes_checked() {
        assert!(check_name("elastic/kibana/kibana-prod_1").is_ok());
        for bad in [
            "kibana",
            "elastic/kibana",
            "a/b/c/d",
            "Elastic/kibana/x",
            "elastic//x",
            "elastic/kibana/",
            "elastic/kibana/_x",
            "elastic/kibana/x.y",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(parse_hash(&format!("sha256:{}", "ab".repeat(32))).is_ok());
        for bad in [
            "ab".repeat(32),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}", "zz".repeat(32)),
            format!("SHA256:{}", "ab".repeat(32)),
        ] {
            let e = parse_hash(&bad).unwrap_err();
            assert!(!e.contains(&bad), "{e}");
        }
    }

    #[test]
    fn presented_debug_hides_the_secret() {
        let (bearer, _) = generate("elastic/kibana/a").unwrap();
        let p = parse_bearer(&bearer).unwrap();
        let text = format!("{p:?}");
        let secret = p.secret.expose_secret().clone();
        assert!(!text.contains(&secret), "{text}");
    }
}
