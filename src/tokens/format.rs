//! The token format: versioned prefix, 256 random bits in base64url, a lookup hash and a
//! sealing key per kind.

use crate::crypto::{fill_random, labelled_hash, open_under, seal_under};
use crate::model::Hash32;
use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Random bytes in a token: 256 bits.
pub const TOKEN_BYTES: usize = 32;
const ENCODED_LEN: usize = 43; // base64url of 32 bytes, no padding

/// Access or refresh token; each has its own prefix and hash domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    /// The version prefix; a new token format gets a new prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Access => "ora1_",
            TokenKind::Refresh => "orr1_",
        }
    }

    fn lookup_label(self) -> &'static [u8] {
        match self {
            TokenKind::Access => b"oidc-realm/v1/access/lookup\0",
            TokenKind::Refresh => b"oidc-realm/v1/refresh/lookup\0",
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
    text: Secret<String>,
}

impl TokenSecret {
    /// A new random token.
    pub fn generate(kind: TokenKind) -> Self {
        let mut b = [0u8; TOKEN_BYTES];
        fill_random(&mut b);
        let text = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(b));
        Self {
            kind,
            text: Secret::new(text),
        }
    }

    /// Accept a presented token only if it has this kind's exact shape (cheap; before any
    /// lookup).
    pub fn parse(kind: TokenKind, text: &str) -> Option<Self> {
        let rest = text.strip_prefix(kind.prefix())?;
        if rest.len() != ENCODED_LEN
            || !rest
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return None;
        }
        Some(Self {
            kind,
            text: Secret::new(text.to_string()),
        })
    }

    /// The key under which the store knows this token.
    pub fn lookup_hash(&self) -> Hash32 {
        labelled_hash(
            self.kind.lookup_label(),
            self.text.expose_secret().as_bytes(),
        )
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

    #[test]
    fn tokens_are_prefixed_random_and_parse_back() {
        let a = TokenSecret::generate(TokenKind::Access);
        let b = TokenSecret::generate(TokenKind::Access);
        assert_ne!(a.lookup_hash(), b.lookup_hash());
        let text = a.into_string();
        assert!(text.starts_with("ora1_"));
        assert_eq!(text.len(), 5 + 43);
        assert!(TokenSecret::parse(TokenKind::Access, &text).is_some());
        assert!(TokenSecret::parse(TokenKind::Refresh, &text).is_none());
        assert!(TokenSecret::parse(TokenKind::Access, &text[..text.len() - 1]).is_none());
        assert!(TokenSecret::parse(TokenKind::Access, &format!("{text}=")).is_none());
        assert!(TokenSecret::parse(TokenKind::Access, "").is_none());
        let bad = format!("ora1_{}", "é".repeat(21));
        assert!(TokenSecret::parse(TokenKind::Access, &bad).is_none());
    }

    #[test]
    fn hash_domains_differ_between_kinds() {
        let t = TokenSecret::generate(TokenKind::Access).into_string();
        let body = &t[5..];
        let a = TokenSecret::parse(TokenKind::Access, &t).unwrap();
        let r = TokenSecret::parse(TokenKind::Refresh, &format!("orr1_{body}")).unwrap();
        assert_ne!(a.lookup_hash(), r.lookup_hash());
    }

    #[test]
    fn seal_opens_only_with_the_same_token() {
        let a = TokenSecret::generate(TokenKind::Access);
        let b = TokenSecret::generate(TokenKind::Access);
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
        let a = TokenSecret::generate(TokenKind::Access);
        let dbg = format!("{a:?}");
        let text = a.into_string();
        assert!(!dbg.contains(&text[5..]));
    }
}
