//! What the configuration checks of a service token entry (`service_tokens.<name>`): the
//! qualified name and the stored hash. Minting and checking tokens is `auth::service_tokens`.

use crate::secret::Secret;

/// How a stored hash starts: `sha256:<64 hex digits>`.
pub const HASH_PREFIX: &str = "sha256:";

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with(['-', '_'])
}

/// Check a qualified token name, `namespace/service/token_name`. Namespace and service are
/// lower-case letters, digits, `-` and `_`; the token name follows Elasticsearch's rule
/// (`[a-zA-Z0-9-][a-zA-Z0-9_-]{0,255}`).
pub fn check_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let [namespace, service, token] = parts[..] else {
        return Err(
            "a service token is named namespace/service/token_name, e.g. elastic/kibana/kibana-prod"
                .to_string(),
        );
    };
    if !valid_segment(namespace) || !valid_segment(service) {
        return Err("namespace and service must be 1 to 64 lower-case letters, digits, `-` or `_` (not starting with `-` or `_`), e.g. elastic/kibana".to_string());
    }
    let ok_token = !token.is_empty()
        && token.len() <= 256
        && !token.starts_with('_')
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok_token {
        return Err(
            "the token name must be 1 to 256 letters, digits, `-` or `_`, not starting with `_`"
                .to_string(),
        );
    }
    Ok(())
}

/// Parse the configured `hash` value, `sha256:<64 hex digits>`. Never echoes it.
pub fn parse_hash(s: &str) -> Result<Secret<[u8; 32]>, String> {
    let bad = || {
        "not a service token hash: expected sha256:<64 hex digits>, as printed by `oidc-realm create-service-token`".to_string()
    };
    let hexpart = s.strip_prefix(HASH_PREFIX).ok_or_else(bad)?;
    if hexpart.len() != 64 || !hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hexpart.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(Secret::new(out))
}
