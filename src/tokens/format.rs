//! The token format: versioned prefix, 32 bytes in base64url, a lookup hash and a sealing key
//! per kind.
//!
//! Two versions are read; new tokens are version 2.
//!
//! - **Version 1** (`ora1_` / `orr1_`): 32 random bytes; the store key is a labelled SHA-256 of
//!   the token. Keys are uniformly random, so every stored token lands on a different page of
//!   each index: a batch of 64 new tokens rewrote ~64 pages per table.
//! - **Version 2** (`ora2_` / `orr2_`): the first 6 bytes are the issue time (milliseconds
//!   since the Unix epoch, big-endian), the other 26 random (208 bits); the store key is those
//!   6 bytes followed by the first 26 bytes of a labelled SHA-256 of the token. Keys of tokens
//!   issued together sort together, so a batch appends to the same few pages (durable
//!   issuance measured ~2-3× faster on redb, docs/performance.md), and a lookup still needs
//!   the whole token: the hash part is 208 bits. The holder of a token can read when it was
//!   issued (as a JWT's `iat`); nobody else learns anything new.

use crate::clock::UnixMillis;
use crate::crypto::{fill_random, labelled_hash, open_under, seal_under};
use crate::model::Hash32;
use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Bytes in a token (version 1: all random; version 2: 6 of time and 26 random).
pub const TOKEN_BYTES: usize = 32;
const ENCODED_LEN: usize = 43; // base64url of 32 bytes, no padding
/// Version 2: the leading issue-time bytes, and their base64url length (6 bytes: exactly 8
/// characters, so they decode without the rest).
const TIME_BYTES: usize = 6;
const TIME_CHARS: usize = 8;

/// Access or refresh token; each has its own prefix and hash domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// A token format version (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl TokenKind {
    /// The prefix of new tokens (version 2); a new token format gets a new prefix.
    pub fn prefix(self) -> &'static str {
        self.prefix_of(Version::V2)
    }

    fn prefix_of(self, v: Version) -> &'static str {
        match (self, v) {
            (TokenKind::Access, Version::V1) => "ora1_",
            (TokenKind::Refresh, Version::V1) => "orr1_",
            (TokenKind::Access, Version::V2) => "ora2_",
            (TokenKind::Refresh, Version::V2) => "orr2_",
        }
    }

    fn lookup_label(self, v: Version) -> &'static [u8] {
        match (self, v) {
            (TokenKind::Access, Version::V1) => b"oidc-realm/v1/access/lookup\0",
            (TokenKind::Refresh, Version::V1) => b"oidc-realm/v1/refresh/lookup\0",
            (TokenKind::Access, Version::V2) => b"oidc-realm/v2/access/lookup\0",
            (TokenKind::Refresh, Version::V2) => b"oidc-realm/v2/refresh/lookup\0",
        }
    }

    fn seal_label(self) -> &'static [u8] {
        match self {
            TokenKind::Access => b"oidc-realm/v1/access/seal\0",
            TokenKind::Refresh => b"oidc-realm/v1/refresh/seal\0",
        }
    }
}

/// A token in the clear. `Debug` is redacted.
#[derive(Debug)]
pub struct TokenSecret {
    kind: TokenKind,
    version: Version,
    text: Secret<String>,
}

impl TokenSecret {
    /// A new token (version 2) issued at `now`.
    pub fn generate(kind: TokenKind, now: UnixMillis) -> Self {
        let mut b = [0u8; TOKEN_BYTES];
        // Milliseconds since 1970 fit 6 bytes until the year 10889; earlier than 1970 is 0.
        let t = u64::try_from(now).unwrap_or(0).to_be_bytes();
        b[..TIME_BYTES].copy_from_slice(&t[8 - TIME_BYTES..]);
        fill_random(&mut b[TIME_BYTES..]);
        let text = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(b));
        Self {
            kind,
            version: Version::V2,
            text: Secret::new(text),
        }
    }

    /// Accept a presented token only if it has this kind's exact shape, in either version
    /// (cheap; before any lookup).
    pub fn parse(kind: TokenKind, text: &str) -> Option<Self> {
        let (version, rest) = [Version::V2, Version::V1]
            .into_iter()
            .find_map(|v| text.strip_prefix(kind.prefix_of(v)).map(|rest| (v, rest)))?;
        if rest.len() != ENCODED_LEN
            || !rest
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return None;
        }
        Some(Self {
            kind,
            version,
            text: Secret::new(text.to_string()),
        })
    }

    /// The key under which the store knows this token: for version 2, the issue time then
    /// 26 bytes of the hash (see the module documentation).
    pub fn lookup_hash(&self) -> Hash32 {
        let text = self.text.expose_secret();
        let hash = labelled_hash(self.kind.lookup_label(self.version), text.as_bytes());
        match self.version {
            Version::V1 => hash,
            Version::V2 => {
                let body = &text[self.kind.prefix_of(Version::V2).len()..];
                let mut key = [0u8; 32];
                // `parse` and `generate` checked the alphabet and length: the first 8
                // characters decode to exactly 6 bytes (a failure leaves zeros: the hash part
                // still has to match).
                let _ = URL_SAFE_NO_PAD.decode_slice(&body[..TIME_CHARS], &mut key[..TIME_BYTES]);
                key[TIME_BYTES..].copy_from_slice(&hash.0[..32 - TIME_BYTES]);
                Hash32(key)
            }
        }
    }

    /// Encrypt `plain` under a key only this token yields.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        seal_under(
            self.kind.seal_label(),
            self.text.expose_secret().as_bytes(),
            plain,
        )
    }

    /// Decrypt what [`seal`](Self::seal) produced; `None` if it does not open.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        open_under(
            self.kind.seal_label(),
            self.text.expose_secret().as_bytes(),
            sealed,
        )
    }

    /// The token text, to hand to the client once.
    pub fn into_string(self) -> String {
        self.text.expose_secret().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_764_000_000_000;

    fn generate(kind: TokenKind) -> TokenSecret {
        TokenSecret::generate(kind, NOW)
    }

    #[test]
    fn tokens_are_prefixed_random_and_parse_back() {
        let a = generate(TokenKind::Access);
        let b = generate(TokenKind::Access);
        assert_ne!(a.lookup_hash(), b.lookup_hash());
        let text = a.into_string();
        assert!(text.starts_with("ora2_"));
        assert_eq!(text.len(), 5 + 43);
        assert!(TokenSecret::parse(TokenKind::Access, &text).is_some());
        assert!(TokenSecret::parse(TokenKind::Refresh, &text).is_none());
        assert!(TokenSecret::parse(TokenKind::Access, &text[..text.len() - 1]).is_none());
        assert!(TokenSecret::parse(TokenKind::Access, &format!("{text}=")).is_none());
        assert!(TokenSecret::parse(TokenKind::Access, "").is_none());
        let bad = format!("ora1_{}", "é".repeat(21));
        assert!(TokenSecret::parse(TokenKind::Access, &bad).is_none());
        let bad = format!("ora2_{}", "é".repeat(21));
        assert!(TokenSecret::parse(TokenKind::Access, &bad).is_none());
        assert!(TokenSecret::parse(
            TokenKind::Access,
            "ora3_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )
        .is_none());
    }

    #[test]
    fn version_1_tokens_keep_their_lookup_hash() {
        // A token issued before version 2 is still found under the key it was stored with.
        let v1 = "ora1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let t = TokenSecret::parse(TokenKind::Access, v1).unwrap();
        assert_eq!(
            t.lookup_hash(),
            labelled_hash(b"oidc-realm/v1/access/lookup\0", v1.as_bytes())
        );
        let r = TokenSecret::parse(TokenKind::Refresh, &format!("orr1_{}", &v1[5..])).unwrap();
        assert_ne!(r.lookup_hash(), t.lookup_hash());
    }

    #[test]
    fn version_2_keys_start_with_the_issue_time_and_sort_by_it() {
        let early = generate(TokenKind::Access);
        let later = TokenSecret::generate(TokenKind::Access, NOW + 1);
        let (ke, kl) = (early.lookup_hash(), later.lookup_hash());
        assert_eq!(ke.0[..6], NOW.to_be_bytes()[2..]);
        assert!(ke.0 < kl.0, "keys sort by issue time");
        // The rest of the key is the hash: two tokens of one millisecond differ there.
        let same_ms = generate(TokenKind::Access);
        assert_eq!(same_ms.lookup_hash().0[..6], ke.0[..6]);
        assert_ne!(same_ms.lookup_hash().0[6..], ke.0[6..]);
        // The key depends on the whole token: one changed character elsewhere changes it.
        let text = early.into_string();
        let mut other = text.clone().into_bytes();
        other[30] = if other[30] == b'A' { b'B' } else { b'A' };
        let other = String::from_utf8(other).unwrap();
        let o = TokenSecret::parse(TokenKind::Access, &other).unwrap();
        assert_eq!(o.lookup_hash().0[..6], ke.0[..6]);
        assert_ne!(o.lookup_hash(), ke);
        // The same text under the version 1 prefix is another token with another key.
        let v1 = TokenSecret::parse(TokenKind::Access, &format!("ora1_{}", &text[5..])).unwrap();
        assert_ne!(v1.lookup_hash(), ke);
    }

    #[test]
    fn hash_domains_differ_between_kinds() {
        let t = generate(TokenKind::Access).into_string();
        let body = &t[5..];
        let a = TokenSecret::parse(TokenKind::Access, &t).unwrap();
        let r = TokenSecret::parse(TokenKind::Refresh, &format!("orr2_{body}")).unwrap();
        assert_ne!(a.lookup_hash(), r.lookup_hash());
    }

    #[test]
    fn seal_opens_only_with_the_same_token() {
        let a = generate(TokenKind::Access);
        let b = generate(TokenKind::Access);
        let sealed = a.seal(b"id token");
        assert_eq!(a.open(&sealed).as_deref(), Some(&b"id token"[..]));
        assert_eq!(b.open(&sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(a.open(&tampered), None);
        assert_eq!(a.open(&sealed[..5]), None);
        // A fresh nonce per sealing: the same plaintext never gives the same bytes.
        assert_ne!(a.seal(b"x"), a.seal(b"x"));
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let a = generate(TokenKind::Access);
        let dbg = format!("{a:?}");
        let text = a.into_string();
        assert!(!dbg.contains(&text[5..]));
    }
}
