//! `connections.<name>.*` (third-party OAuth 2.0 services that facilitators act at for their
//! users, see docs/connections.md) and `connection_encryption.*` (the key that seals client
//! secrets, PKCE verifiers and grants at rest). The checks of one definition are shared with
//! the management API (`PUT /_oauth/connections/{name}`), which gives the same messages.

use super::ctx::Ctx;
use crate::secret::Secret;
use std::collections::{BTreeMap, BTreeSet};
use url::Url;

/// Keys of one `connections.<name>` entry.
pub(super) const CONNECTION_KEYS: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "redirect_uri",
    "scopes",
    "client_id",
    "client_secret",
    "client_auth_method",
    "insecure_disable_pkce",
    "mode",
];

/// Keys of `connection_encryption`.
pub(super) const ENCRYPTION_KEYS: &[&str] = &["key", "previous_key"];

/// Shortest accepted encryption key (characters): e.g. `openssl rand -base64 32` gives 44.
pub const MIN_KEY_CHARS: usize = 32;

/// `connection_encryption.*` and `connections.*`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    /// `connection_encryption.key`: seals everything written from now on.
    pub key: Option<Secret<String>>,
    /// `connection_encryption.previous_key`: still opens records sealed before a rotation
    /// (they are sealed again with `key` when next written).
    pub previous_key: Option<Secret<String>>,
    /// `connections.<name>`: read-only through the API.
    pub defined: BTreeMap<String, ConnectionDef>,
}

/// How the client authenticates at the token (and revocation) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

impl ConnectionClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            other => Err(format!(
                "unknown client authentication method [{}]; use client_secret_basic or client_secret_post",
                super::ctx::shown(other)
            )),
        }
    }
}

/// One grant per user, or one grant (authorized by an administrator) for every user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMode {
    PerUser,
    Shared,
}

impl ConnectionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerUser => "per_user",
            Self::Shared => "shared",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "per_user" => Ok(Self::PerUser),
            "shared" => Ok(Self::Shared),
            other => Err(format!(
                "unknown mode [{}]; use per_user or shared",
                super::ctx::shown(other)
            )),
        }
    }
}

/// A third-party OAuth 2.0 service and oidc-realm's client there. Its endpoints are given,
/// or discovered from `issuer` (RFC 8414 metadata, else OpenID Connect discovery); a given
/// endpoint wins over a discovered one. At least `issuer`, or both the authorization and
/// token endpoints, are set.
#[derive(Debug, Clone)]
pub struct ConnectionDef {
    pub issuer: Option<Url>,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    /// Where the service sends the browser back (the facilitator's page, registered at the
    /// service).
    pub redirect_uri: Url,
    pub scopes: Vec<String>,
    pub client_id: String,
    /// Never returned by the API, never logged (`Secret`'s `Debug` is redacted).
    pub client_secret: Secret<String>,
    pub client_auth: ConnectionClientAuth,
    /// PKCE S256, on unless `insecure_disable_pkce`.
    pub pkce: bool,
    pub mode: ConnectionMode,
}

/// A connection name: 1 to 64 lower-case letters, digits, `-` and `_`, starting with a letter
/// or digit (so it never collides with `_callback` and other `_` endpoints).
pub fn check_connection_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.starts_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid connection name [{}]: 1 to 64 lower-case letters, digits, `-` or `_`, not starting with `-` or `_`",
            super::ctx::shown(name)
        ))
    }
}

/// An endpoint oidc-realm calls or sends browsers to: absolute, `https` (or `http` to a
/// loopback host), no fragment, no user info.
pub fn check_endpoint(s: &str) -> Result<Url, String> {
    let u = Url::parse(s.trim())
        .map_err(|e| format!("not a valid URL (\"{}\"): {e}", super::ctx::shown(s)))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "must be an https URL (http only to a loopback host): \"{}\"",
                super::ctx::shown(s)
            ))
        }
    }
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "must not have a fragment or user info: \"{}\"",
            super::ctx::shown(s)
        ));
    }
    Ok(u)
}

/// A scope token (RFC 6749 §3.3: printable ASCII without space, `"` and `\`).
pub fn check_scope(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    {
        Ok(())
    } else {
        Err(format!("invalid scope [{}]", super::ctx::shown(s)))
    }
}

pub(super) fn connection_settings(ctx: &mut Ctx) -> ConnectionSettings {
    let key = encryption_key(ctx, "connection_encryption.key");
    let previous_key = encryption_key(ctx, "connection_encryption.previous_key");
    if previous_key.is_some() && key.is_none() && !ctx.has_error_under("connection_encryption") {
        ctx.error(
            "connection_encryption.previous_key",
            "previous_key needs connection_encryption.key (the key that seals from now on)",
        );
    }
    let names: BTreeSet<String> = ctx
        .leaves
        .values()
        .filter(|l| l.segs.len() >= 2 && l.segs[0] == "connections")
        .map(|l| l.segs[1].clone())
        .collect();
    let mut defined = BTreeMap::new();
    for name in names {
        let base = format!("connections.{name}");
        if ctx.value(&base).is_some() {
            // A scalar instead of a mapping: reported by the key check.
            continue;
        }
        if let Some(def) = connection(ctx, &name, &base) {
            defined.insert(name, def);
        }
    }
    if ctx.any_under("connections")
        && key.is_none()
        && !ctx.has_error_under("connection_encryption")
    {
        ctx.error(
            "connection_encryption.key",
            format!(
                "The configuration setting [connection_encryption.key] is required when connections are defined: a secret of at least {MIN_KEY_CHARS} characters, e.g. ${{file:/run/secrets/connection_key}} holding the output of `openssl rand -base64 32`"
            ),
        );
    }
    ConnectionSettings {
        key,
        previous_key,
        defined,
    }
}

fn encryption_key(ctx: &mut Ctx, path: &str) -> Option<Secret<String>> {
    let k = ctx.secret(path)?;
    if k.expose_secret().chars().count() < MIN_KEY_CHARS {
        ctx.error(
            path,
            format!("too short: the key must have at least {MIN_KEY_CHARS} characters (e.g. `openssl rand -base64 32`)"),
        );
        return None;
    }
    Some(k)
}

fn connection(ctx: &mut Ctx, name: &str, base: &str) -> Option<ConnectionDef> {
    let mut ok = true;
    if let Err(why) = check_connection_name(name) {
        ctx.error(base, why);
        ok = false;
    }
    let url = |ctx: &mut Ctx, key: &str, required: bool| -> Option<Option<Url>> {
        let path = format!("{base}.{key}");
        match ctx.string(&path) {
            None if required => {
                if !ctx.has_error_under(&path) {
                    ctx.required(&path);
                }
                None
            }
            None => Some(None),
            Some(s) => match check_endpoint(&s) {
                Ok(u) => Some(Some(u)),
                Err(why) => {
                    ctx.error(&path, why);
                    None
                }
            },
        }
    };
    let issuer = url(ctx, "issuer", false);
    let has_issuer = ctx.value(&format!("{base}.issuer")).is_some();
    let authorization_endpoint = url(ctx, "authorization_endpoint", !has_issuer);
    let token_endpoint = url(ctx, "token_endpoint", !has_issuer);
    let redirect_uri = url(ctx, "redirect_uri", true).flatten();
    let revocation_endpoint = url(ctx, "revocation_endpoint", false);
    let scopes_key = format!("{base}.scopes");
    let scopes = match ctx.list(&scopes_key) {
        None if ctx.has_error_under(&scopes_key) => None,
        None => Some(Vec::new()),
        Some(list) => {
            let mut good = true;
            for s in &list {
                if let Err(why) = check_scope(s) {
                    ctx.error(&scopes_key, why);
                    good = false;
                }
            }
            good.then_some(list)
        }
    };
    let client_id = ctx.req_string(&format!("{base}.client_id"));
    let secret_key = format!("{base}.client_secret");
    let client_secret = ctx.secret(&secret_key);
    if client_secret.is_none() && ctx.value(&secret_key).is_none() {
        ctx.required(&secret_key);
    }
    let auth_key = format!("{base}.client_auth_method");
    let client_auth = match ctx.string(&auth_key) {
        None if ctx.has_error_under(&auth_key) => None,
        None => Some(ConnectionClientAuth::ClientSecretBasic),
        Some(s) => match ConnectionClientAuth::parse(s.trim()) {
            Ok(a) => Some(a),
            Err(why) => {
                ctx.error(&auth_key, why);
                None
            }
        },
    };
    let mode_key = format!("{base}.mode");
    let mode = match ctx.string(&mode_key) {
        None if ctx.has_error_under(&mode_key) => None,
        None => Some(ConnectionMode::PerUser),
        Some(s) => match ConnectionMode::parse(s.trim()) {
            Ok(m) => Some(m),
            Err(why) => {
                ctx.error(&mode_key, why);
                None
            }
        },
    };
    let pkce_key = format!("{base}.insecure_disable_pkce");
    let disable_pkce = ctx.bool(&pkce_key, false);
    if disable_pkce == Some(true) {
        ctx.warn(
            &pkce_key,
            "PKCE is off for this connection: a stolen authorization code can be redeemed by whoever holds it",
        );
    }
    if !ok {
        return None;
    }
    Some(ConnectionDef {
        issuer: issuer?,
        authorization_endpoint: authorization_endpoint?,
        token_endpoint: token_endpoint?,
        revocation_endpoint: revocation_endpoint?,
        redirect_uri: redirect_uri?,
        scopes: scopes?,
        client_id: client_id?,
        client_secret: client_secret?,
        client_auth: client_auth?,
        pkce: !disable_pkce?,
        mode: mode?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    /// A directory of its own per call (tests run in parallel and rewrite the key file).
    fn dir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("oidc-realm-conn-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("conn.key"), "0123456789abcdef0123456789abcdef-key\n").unwrap();
        d
    }

    const GOOD: &str = r#"
users:
  fac:
    password_hash: "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
    privileges: [use_connections, read_connections]
connection_encryption:
  key: ${file:conn.key}
connections:
  docs:
    authorization_endpoint: https://docs.example.com/oauth/authorize
    token_endpoint: https://docs.example.com/oauth/token
    revocation_endpoint: https://docs.example.com/oauth/revoke
    redirect_uri: https://app.example.com/connections/callback
    scopes: [read, write]
    client_id: app
    client_secret: ${file:conn.key}
    client_auth_method: client_secret_post
"#;

    #[test]
    fn a_good_connection_loads() {
        let l = load_str(GOOD, &dir()).unwrap();
        let c = &l.settings.connections;
        assert!(c.key.is_some());
        let d = &c.defined["docs"];
        assert_eq!(d.scopes, ["read", "write"]);
        assert_eq!(d.client_auth, ConnectionClientAuth::ClientSecretPost);
        assert_eq!(d.mode, ConnectionMode::PerUser);
        assert!(d.pkce);
        assert!(!format!("{d:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn every_mistake_is_reported_with_its_key() {
        let yaml = GOOD
            .replace(
                "https://docs.example.com/oauth/token",
                "http://docs.example.com/t",
            )
            .replace("client_secret_post", "private_key_jwt")
            .replace(
                "    client_id: app\n",
                "    client_id: app\n    mode: everyone\n    scope: x\n",
            )
            .replace("  key: ${file:conn.key}", "  key: short");
        let e = load_str(&yaml, &dir()).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "connections.docs.token_endpoint",
            "connections.docs.client_auth_method",
            "connections.docs.mode",
            "connections.docs.scope",
            "connection_encryption.key",
        ] {
            assert!(paths.contains(&want), "{want} missing in {e}");
        }
    }

    #[test]
    fn an_issuer_replaces_the_endpoints() {
        let yaml = GOOD
            .replace(
                "    authorization_endpoint: https://docs.example.com/oauth/authorize\n    token_endpoint: https://docs.example.com/oauth/token\n",
                "    issuer: https://docs.example.com\n",
            );
        let l = load_str(&yaml, &dir()).unwrap();
        let d = &l.settings.connections.defined["docs"];
        assert_eq!(
            d.issuer.as_ref().unwrap().as_str(),
            "https://docs.example.com/"
        );
        assert!(d.authorization_endpoint.is_none() && d.token_endpoint.is_none());
        // Neither: both endpoints are required.
        let none = GOOD.replace(
            "    authorization_endpoint: https://docs.example.com/oauth/authorize\n",
            "",
        );
        let e = load_str(&none, &dir()).unwrap_err();
        assert!(
            e.to_string()
                .contains("connections.docs.authorization_endpoint"),
            "{e}"
        );
    }

    #[test]
    fn connections_need_the_encryption_key_and_required_keys() {
        let yaml = GOOD
            .replace("connection_encryption:\n  key: ${file:conn.key}\n", "")
            .replace(
                "    redirect_uri: https://app.example.com/connections/callback\n",
                "",
            );
        let e = load_str(&yaml, &dir()).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"connection_encryption.key"), "{e}");
        assert!(paths.contains(&"connections.docs.redirect_uri"), "{e}");
        let bad_name = GOOD.replace("  docs:", "  _Docs:");
        let e = load_str(&bad_name, &dir()).unwrap_err();
        assert!(e.to_string().contains("invalid connection name"), "{e}");
    }
}
