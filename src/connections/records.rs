//! What the connections service stores, and how it is sealed: every record that holds a
//! secret (a connection's client secret, a pending authorization's PKCE verifier, a grant's
//! tokens) is AES-256-GCM under `connection_encryption.key`, with the record's identity as
//! associated data, so a record copied to another key (another user, another connection)
//! does not open.

use crate::clock::UnixMillis;
use crate::config::{ConnectionClientAuth, ConnectionMode, ConnectionSettings};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Store kinds (see `Store::get_record`, `Store::put_once`).
pub const KIND_CONNECTION: &str = "connection";
pub const KIND_GRANT: &str = "connection_grant";
pub const KIND_STATE: &str = "connection_state";
/// A refresh in progress (any node): `{"expires_at": <ms>}` under the grant's key.
pub const KIND_LEASE: &str = "connection_refresh_lease";

const LABEL: &[u8] = b"oidc-realm connections v1";

/// The key of a user's grant at `connection`: `<connection>/<len realm>:<realm>/<username>`
/// (unambiguous; every grant of a connection starts with `<connection>/`).
pub fn grant_key(connection: &str, realm: &str, username: &str) -> String {
    format!("{connection}/{}:{realm}/{username}", realm.len())
}

/// The (realm, user name) of a grant key under `connection/`.
pub fn grant_owner(key: &str) -> Option<(String, String)> {
    let rest = key.split_once('/')?.1;
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let realm = rest.get(..len)?;
    let username = rest.get(len..)?.strip_prefix('/')?;
    Some((realm.to_string(), username.to_string()))
}

/// Associated data of a record: its kind and key.
pub fn ad(kind: &str, key: &str) -> Vec<u8> {
    let mut v = kind.as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(key.as_bytes());
    v
}

/// Seal with the current key; `None` when no key is configured.
pub fn seal(settings: &ConnectionSettings, plain: &[u8], ad: &[u8]) -> Option<Vec<u8>> {
    let key = settings.key.as_ref()?;
    Some(crate::crypto::seal_under_ad(
        LABEL,
        key.expose_secret().as_bytes(),
        plain,
        ad,
    ))
}

/// Open with the current key, then the previous one: the plain text and whether the previous
/// key opened it (the record should be sealed again).
pub fn open(settings: &ConnectionSettings, sealed: &[u8], ad: &[u8]) -> Option<(Vec<u8>, bool)> {
    if let Some(k) = &settings.key {
        if let Some(p) =
            crate::crypto::open_under_ad(LABEL, k.expose_secret().as_bytes(), sealed, ad)
        {
            return Some((p, false));
        }
    }
    let k = settings.previous_key.as_ref()?;
    crate::crypto::open_under_ad(LABEL, k.expose_secret().as_bytes(), sealed, ad).map(|p| (p, true))
}

/// A connection defined through the API, as stored (JSON); the client secret sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredConnection {
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    /// base64url of the sealed client secret.
    pub client_secret_sealed: String,
    pub client_auth: ConnectionClientAuth,
    pub pkce: bool,
    pub mode: ConnectionMode,
}

/// A pending authorization (sealed as a whole, keyed by the state's hash).
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub connection: String,
    pub realm: String,
    pub username: String,
    /// The facilitator that started it (`<realm>/<user name>`).
    pub facilitator: String,
    pub verifier: Option<String>,
    pub expires_at: UnixMillis,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("connection", &self.connection)
            .field("realm", &self.realm)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A user's grant at a service (sealed as a whole).
#[derive(Clone, Serialize, Deserialize)]
pub struct GrantDoc {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: Option<String>,
    /// When the access token expires (`None`: the service did not say).
    pub expires_at: Option<UnixMillis>,
    pub scope: Option<String>,
    pub created_at: UnixMillis,
    pub refreshed_at: Option<UnixMillis>,
}

impl fmt::Debug for GrantDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantDoc")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn settings(key: &str, previous: Option<&str>) -> ConnectionSettings {
        ConnectionSettings {
            key: Some(Secret::new(key.to_string())),
            previous_key: previous.map(|p| Secret::new(p.to_string())),
            defined: Default::default(),
        }
    }

    #[test]
    fn grant_keys_round_trip() {
        let k = grant_key("docs", "oidc/1", "a/b:c");
        assert!(k.starts_with("docs/"));
        assert_eq!(
            grant_owner(&k),
            Some(("oidc/1".to_string(), "a/b:c".to_string()))
        );
        assert_eq!(grant_owner("docs/x"), None);
    }

    #[test]
    fn records_open_only_with_their_key_and_identity() {
        let s = settings("k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1", None);
        let a = ad(KIND_GRANT, &grant_key("docs", "r", "alice"));
        let b = ad(KIND_GRANT, &grant_key("docs", "r", "bob"));
        let sealed = seal(&s, b"tokens", &a).unwrap();
        assert_eq!(open(&s, &sealed, &a).unwrap(), (b"tokens".to_vec(), false));
        assert!(open(&s, &sealed, &b).is_none());
        // Rotation: the old key opens as "previous".
        let rotated = settings(
            "k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2",
            Some("k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1"),
        );
        assert_eq!(
            open(&rotated, &sealed, &a).unwrap(),
            (b"tokens".to_vec(), true)
        );
        let dropped = settings("k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2", None);
        assert!(open(&dropped, &sealed, &a).is_none());
        assert!(seal(&ConnectionSettings::default(), b"x", &a).is_none());
    }
}
