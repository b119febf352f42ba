//! The domain records: who a token stands for, who created it, and the stored token pair.
//! The token service works with them and every [`Store`](crate::store::Store) backend
//! persists them; they belong to neither.

use crate::clock::UnixMillis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// SHA-256 of a token or of a flow's state: the only form in which tokens are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash32(pub [u8; 32]);

impl fmt::Debug for Hash32 {
    // A short prefix is enough to correlate log lines; never the whole hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Hash32({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A random 128-bit identifier (token families).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id16(pub [u8; 16]);

impl fmt::Debug for Id16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// A realm as Elasticsearch names it in `authentication_realm` / `lookup_realm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmRef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The user a token stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub realm: RealmRef,
}

impl UserRecord {
    /// An estimate of the heap memory this user owns (its strings, roles and metadata), for
    /// caches bounded in bytes; the record's own inline size is the caller's to add.
    pub fn estimated_heap(&self) -> u64 {
        use std::mem::size_of;
        heap_str(&self.username)
            + self.full_name.as_deref().map_or(0, heap_str)
            + self.email.as_deref().map_or(0, heap_str)
            + self
                .roles
                .iter()
                .map(|r| size_of::<String>() as u64 + heap_str(r))
                .sum::<u64>()
            + heap_str(&self.realm.name)
            + heap_str(&self.realm.kind)
            + map_heap(&self.metadata)
    }
}

/// Heap bytes of a string's buffer, rounded to the allocator's 16-byte size classes.
fn heap_str(s: &str) -> u64 {
    (s.len() as u64).next_multiple_of(16)
}

/// Heap bytes of a JSON value's own allocations and of its children (the value itself is
/// counted by its container).
fn value_heap(v: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match v {
        Value::String(s) => heap_str(s),
        Value::Array(a) => a
            .iter()
            .map(|v| std::mem::size_of::<Value>() as u64 + value_heap(v))
            .sum(),
        Value::Object(m) => map_heap(m),
        _ => 0,
    }
}

/// An insertion-ordered map: per member its key, its value, a hash and an index slot.
fn map_heap(m: &serde_json::Map<String, serde_json::Value>) -> u64 {
    use std::mem::size_of;
    m.iter()
        .map(|(k, v)| {
            (size_of::<String>() + size_of::<serde_json::Value>() + 2 * size_of::<usize>()) as u64
                + heap_str(k)
                + value_heap(v)
        })
        .sum()
}

/// Who created a token pair: only this caller may refresh it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRef {
    pub username: String,
    pub realm: String,
}

/// The first refresh of a pair: when, and the new pair sealed with a key derived from the
/// refresh token (so a repeat within the window can return the same pair, and the store alone
/// cannot reveal it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refreshed {
    pub at: UnixMillis,
    pub superseding: Vec<u8>,
}

/// A token pair: an access token and, except for `client_credentials`, a refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenDoc {
    pub access_hash: Hash32,
    pub refresh_hash: Option<Hash32>,
    /// Shared by every pair descending from one login through refreshes.
    pub family: Id16,
    pub user: UserRecord,
    pub client: ClientRef,
    pub created_at: UnixMillis,
    pub access_expires_at: UnixMillis,
    pub refresh_expires_at: Option<UnixMillis>,
    pub access_invalidated: bool,
    pub refresh_invalidated: bool,
    pub refreshed: Option<Refreshed>,
    /// Data for OIDC logout (realm, the OP's ID token), sealed with a key derived from the
    /// access token.
    pub sealed: Option<Vec<u8>>,
    /// The provider's session of an OIDC login (its ID token's `sub` and `sid`), kept by every
    /// pair refreshed from it, for Back-Channel Logout. `None` for other grants and for
    /// records written before it existed.
    #[serde(default)]
    pub oidc_session: Option<OidcSession>,
}

/// The provider's session behind an OIDC login (Back-Channel Logout 1.0 selects logins by
/// these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSession {
    /// The ID token's `sub`.
    pub sub: String,
    /// The ID token's `sid`, when the provider sent one.
    pub sid: Option<String>,
}

impl TokenDoc {
    /// When the record is of no further use and may be swept.
    pub fn expires_at(&self) -> UnixMillis {
        self.access_expires_at
            .max(self.refresh_expires_at.unwrap_or(i64::MIN))
    }
}
