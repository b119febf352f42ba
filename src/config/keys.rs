//! Which keys exist, and the errors for those that do not (with "did you mean") or that
//! oidc-realm recognises from Elasticsearch but cannot honour.

use super::ctx::Ctx;
use serde_norway::Value;

pub(super) const HTTP_KEYS: &[&str] = &["bind", "tls.certificate", "tls.key", "max_body"];
pub(super) const DATA_KEYS: &[&str] = &[
    "path",
    "cache_size",
    "backend",
    "url",
    "password",
    "schema",
    "pool_size",
    "tls_ca",
    "cache_ttl",
    "insecure_plaintext",
];
pub(super) const TOKEN_KEYS: &[&str] = &[
    "enabled",
    "timeout",
    "refresh_timeout",
    "refresh_reuse",
    "cache_size",
];
pub(super) const COMPAT_KEYS: &[&str] = &["product_header", "version"];
pub(super) const LIMIT_KEYS: &[&str] = &[
    "pending_logins_per_caller",
    "pending_logins",
    "requests_per_caller",
    "requests_per_address",
    "password_checks_per_second",
    "password_checks_burst",
];
pub(super) const METRICS_KEYS: &[&str] = &["bind"];
pub(super) const AUDIT_KEYS: &[&str] = &["path", "max_size", "max_files"];
pub(super) const SERVICE_TOKEN_KEYS: &[&str] = &["hash", "privileges"];
pub(super) const LOG_KEYS: &[&str] = &["format", "level"];
pub(super) const USER_KEYS: &[&str] =
    &["password_hash", "privileges", "roles", "full_name", "email"];
pub(super) const TOP_SECTIONS: &[&str] = &[
    "http",
    "data",
    "token",
    "log",
    "compatibility",
    "limits",
    "metrics",
    "audit",
    "users",
    "service_tokens",
    "realms",
    "connections",
    "connection_encryption",
];

/// Every Elasticsearch OIDC realm setting oidc-realm honours, plus `rp.pkce`.
pub(super) const REALM_KEYS: &[&str] = &[
    "order",
    "enabled",
    "rp.client_id",
    "rp.client_secret",
    "rp.redirect_uri",
    "rp.response_type",
    "rp.requested_scopes",
    "rp.signature_algorithm",
    "rp.post_logout_redirect_uri",
    "rp.client_auth_method",
    "rp.client_auth_jwt_signature_algorithm",
    "rp.pkce",
    "rp.client_auth_key",
    "rp.client_auth_key_id",
    "rp.client_auth_key_2",
    "rp.client_auth_key_2_id",
    "rp.backchannel_logout",
    "op.issuer",
    "op.authorization_endpoint",
    "op.token_endpoint",
    "op.userinfo_endpoint",
    "op.endsession_endpoint",
    "op.jwkset_path",
    "op.jwkset_reload_interval",
    "op.jwkset_min_refetch_interval",
    "op.discovery",
    "op.discovery_url",
    "claims.principal",
    "claims.groups",
    "claims.name",
    "claims.mail",
    "claims.dn",
    "claim_patterns.principal",
    "claim_patterns.groups",
    "claim_patterns.name",
    "claim_patterns.mail",
    "claim_patterns.dn",
    "populate_user_metadata",
    "allowed_clock_skew",
    "http.connect_timeout",
    "http.connection_read_timeout",
    "http.socket_timeout",
    "http.max_connections",
    "http.max_endpoint_connections",
    "http.connection_pool_ttl",
    "http.tcp.keep_alive",
    "http.proxy.host",
    "http.proxy.port",
    "http.proxy.scheme",
    "ssl.certificate_authorities",
    "ssl.verification_mode",
    "ssl.supported_protocols",
    "ssl.cipher_suites",
    "ssl.key",
    "ssl.certificate",
];

/// Elasticsearch realm settings oidc-realm knows but cannot honour: the error says what to
/// do instead. Matched by exact key or by prefix (ending in `.`).
const UNSUPPORTED_REALM_KEYS: &[(&str, &str)] = &[
    (
        "authorization_realms",
        "not supported: oidc-realm has no other realms to delegate authorization to; remove it and grant roles with role mappings (rules on the realm's username, groups, metadata)",
    ),
    (
        "ssl.truststore.",
        "JKS/PKCS#12 trust stores are not supported: convert to PEM (e.g. `keytool -exportcert -rfc -keystore truststore.p12 -alias ca -file ca.pem`) and use ssl.certificate_authorities",
    ),
    (
        "ssl.keystore.",
        "JKS/PKCS#12 key stores are not supported: convert to PEM (e.g. `openssl pkcs12 -in keystore.p12 -nodes -nokeys -out client.crt` and `... -nocerts -out client.key`) and use ssl.certificate and ssl.key",
    ),
    (
        "ssl.secure_key_passphrase",
        "encrypted private keys are not supported: decrypt the key (`openssl pkey -in client.key -out client-plain.key`), protect the file by permissions, and remove this setting",
    ),
    (
        "ssl.key_passphrase",
        "encrypted private keys are not supported: decrypt the key (`openssl pkey -in client.key -out client-plain.key`), protect the file by permissions, and remove this setting",
    ),
];

/// Check every key; record an error for each unknown or unsupported one.
pub(super) fn check_known(ctx: &mut Ctx) {
    let leaves: Vec<(String, Vec<String>, Value, Vec<String>)> = ctx
        .leaves
        .values()
        .map(|l| {
            (
                l.path.clone(),
                l.segs.clone(),
                l.value.clone(),
                l.raw.clone(),
            )
        })
        .collect();
    for (path, segs, value, raw) in leaves {
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let loc = ctx.raw_location(&raw);
        match segs[0] {
            "http" | "data" | "token" | "log" | "compatibility" | "limits" | "metrics"
            | "audit"
                if segs.len() == 1 =>
            {
                if value != Value::Null {
                    ctx.error_at(&path, "expected a mapping", loc);
                }
            }
            "http" => check_in(ctx, &path, &segs[1..].join("."), HTTP_KEYS, "http.", loc),
            "data" => check_in(ctx, &path, &segs[1..].join("."), DATA_KEYS, "data.", loc),
            "token" => check_in(ctx, &path, &segs[1..].join("."), TOKEN_KEYS, "token.", loc),
            "log" => check_in(ctx, &path, &segs[1..].join("."), LOG_KEYS, "log.", loc),
            "compatibility" => check_in(
                ctx,
                &path,
                &segs[1..].join("."),
                COMPAT_KEYS,
                "compatibility.",
                loc,
            ),
            "limits" => check_in(ctx, &path, &segs[1..].join("."), LIMIT_KEYS, "limits.", loc),
            "metrics" => check_in(
                ctx,
                &path,
                &segs[1..].join("."),
                METRICS_KEYS,
                "metrics.",
                loc,
            ),
            "audit" => check_in(ctx, &path, &segs[1..].join("."), AUDIT_KEYS, "audit.", loc),
            "connection_encryption" if segs.len() == 1 => {
                if value != Value::Null {
                    ctx.error_at(&path, "expected a mapping", loc);
                }
            }
            "connection_encryption" => check_in(
                ctx,
                &path,
                &segs[1..].join("."),
                super::connections::ENCRYPTION_KEYS,
                "connection_encryption.",
                loc,
            ),
            "connections" if segs.len() == 2 => {
                if value != Value::Null {
                    ctx.error_at(
                        &path,
                        "a connection must be a mapping of settings (authorization_endpoint, token_endpoint, client_id, ...)",
                        loc,
                    );
                }
            }
            "connections" if segs.len() > 2 => {
                let rel = segs[2..].join(".");
                check_in(
                    ctx,
                    &path,
                    &rel,
                    super::connections::CONNECTION_KEYS,
                    "",
                    loc,
                );
            }
            "users" | "realms" | "service_tokens" | "connections" if segs.len() == 1 => {
                if value != Value::Null {
                    ctx.error_at(&path, "expected a mapping of names", loc);
                }
            }
            "users" if segs.len() == 2 => {
                if value != Value::Null {
                    ctx.error_at(
                        &path,
                        "a user must be a mapping with password_hash and privileges",
                        loc,
                    );
                }
            }
            "users" => {
                let rel = segs[2..].join(".");
                if rel == "password" {
                    ctx.error_at(
                        &path,
                        "plain-text passwords are not accepted: run `oidc-realm hash-password` and put its output in password_hash",
                        loc,
                    );
                } else {
                    check_in(ctx, &path, &rel, USER_KEYS, "", loc);
                }
            }
            "service_tokens" if segs.len() == 2 => {
                if value != Value::Null {
                    ctx.error_at(
                        &path,
                        "a service token must be a mapping with hash and privileges",
                        loc,
                    );
                }
            }
            "service_tokens" => {
                let rel = segs[2..].join(".");
                check_in(ctx, &path, &rel, SERVICE_TOKEN_KEYS, "", loc);
            }
            "realms" if segs.len() == 2 => {
                if value != Value::Null {
                    ctx.error_at(&path, "a realm must be a mapping of settings", loc);
                }
            }
            "realms" => {
                let rel = segs[2..].join(".");
                if let Some((_, why)) = UNSUPPORTED_REALM_KEYS
                    .iter()
                    .find(|(k, _)| rel == *k || (k.ends_with('.') && rel.starts_with(k)))
                {
                    ctx.error_at(&path, *why, loc);
                } else {
                    check_in(ctx, &path, &rel, REALM_KEYS, "", loc);
                }
            }
            "xpack" => {
                let msg = if path.starts_with("xpack.security.authc.realms.") {
                    "only OpenID Connect realms are supported (xpack.security.authc.realms.oidc.<name>.*)".to_string()
                } else {
                    "unknown key: of Elasticsearch's xpack.* settings only xpack.security.authc.realms.oidc.<name>.* and xpack.security.authc.token.{enabled,timeout,refresh_timeout} are understood".to_string()
                };
                ctx.error_at(&path, msg, loc);
            }
            _ => {
                let top_keys: Vec<String> = TOP_SECTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .chain(HTTP_KEYS.iter().map(|k| format!("http.{k}")))
                    .chain(DATA_KEYS.iter().map(|k| format!("data.{k}")))
                    .chain(TOKEN_KEYS.iter().map(|k| format!("token.{k}")))
                    .chain(LOG_KEYS.iter().map(|k| format!("log.{k}")))
                    .chain(COMPAT_KEYS.iter().map(|k| format!("compatibility.{k}")))
                    .chain(LIMIT_KEYS.iter().map(|k| format!("limits.{k}")))
                    .chain(METRICS_KEYS.iter().map(|k| format!("metrics.{k}")))
                    .chain(AUDIT_KEYS.iter().map(|k| format!("audit.{k}")))
                    .collect();
                let refs: Vec<&str> = top_keys.iter().map(String::as_str).collect();
                let msg = match suggest(&path, &refs).or_else(|| suggest(segs[0], TOP_SECTIONS)) {
                    Some(s) => format!("unknown key; did you mean `{s}`?"),
                    None => format!(
                        "unknown key; top-level sections are {}",
                        TOP_SECTIONS.join(", ")
                    ),
                };
                ctx.error_at(&path, msg, loc);
            }
        }
    }
}

fn check_in(
    ctx: &mut Ctx,
    path: &str,
    rel: &str,
    known: &[&str],
    prefix: &str,
    loc: Option<(usize, usize)>,
) {
    if known.contains(&rel) {
        return;
    }
    // A key that is a section of known keys given a scalar (`rp: x`).
    if known.iter().any(|k| k.starts_with(&format!("{rel}."))) {
        ctx.error_at(path, "expected a mapping", loc);
        return;
    }
    let msg = match suggest(rel, known) {
        Some(s) => format!("unknown key; did you mean `{prefix}{s}`?"),
        None if known.len() <= 8 => format!(
            "unknown key; known keys here are {}",
            known
                .iter()
                .map(|k| format!("{prefix}{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "unknown key (see docs/configuration.md for every key)".to_string(),
    };
    ctx.error_at(path, msg, loc);
}

/// The nearest known key, if near enough: small edit distance, or same last segment
/// (`client_id` → `rp.client_id`).
pub(super) fn suggest<'a>(rel: &str, known: &[&'a str]) -> Option<&'a str> {
    let last = rel.rsplit('.').next().unwrap_or(rel);
    let best = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(rel, k), *k))
        .min_by_key(|(d, k)| (*d, *k))?;
    let limit = (rel.len() / 4).clamp(2, 4);
    if best.0 <= limit {
        return Some(best.1);
    }
    let by_last: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| k.rsplit('.').next() == Some(last))
        .collect();
    if by_last.len() == 1 {
        return Some(by_last[0]);
    }
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(rel, k), *k))
        .filter(|(s, _)| *s >= 0.93)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses() {
        assert_eq!(suggest("rp.clientid", REALM_KEYS), Some("rp.client_id"));
        assert_eq!(suggest("client_id", REALM_KEYS), Some("rp.client_id"));
        assert_eq!(suggest("op.jwks_path", REALM_KEYS), Some("op.jwkset_path"));
        assert_eq!(
            suggest("claims.principle", REALM_KEYS),
            Some("claims.principal")
        );
        assert_eq!(suggest("completely.different", REALM_KEYS), None);
    }
}
