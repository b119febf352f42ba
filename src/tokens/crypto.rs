//! Token format, hashing and sealing.

use crate::secret::Secret;
use crate::store::{Hash32, Id16};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{Context, SHA256};
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

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    // The OS RNG failing is not a condition a server can recover from or work around safely.
    aws_lc_rs::rand::fill(buf).expect("the operating system's random generator failed");
}

/// A random 128-bit id.
pub fn random_id() -> Id16 {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    Id16(b)
}

/// `n` random bytes as base64url without padding (state, nonce, PKCE verifier, ids).
pub fn random_urlsafe(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 of the concatenation of `parts` (aws-lc-rs): the crate's one digest helper.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// SHA-256 of `label || text`: the form in which a secret (token, state) is stored.
pub fn labelled_hash(label: &[u8], text: &[u8]) -> Hash32 {
    Hash32(sha256(&[label, text]))
}

fn aead_key(label: &[u8], secret: &[u8]) -> LessSafeKey {
    let k = sha256(&[label, secret]);
    // A 32-byte key is always valid for AES-256-GCM.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).expect("AES-256 key length"))
}

/// Encrypt `plain` under a key derived from `secret` with `label` (AES-256-GCM, fresh random
/// nonce): `nonce || ciphertext || tag`. Only a holder of `secret` can open it.
pub fn seal_under(label: &[u8], secret: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut buf = plain.to_vec();
    aead_key(label, secret)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .expect("AES-GCM sealing of an in-memory buffer");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Decrypt what [`seal_under`] produced; `None` if it does not open.
pub fn open_under(label: &[u8], secret: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ct.to_vec();
    let plain = aead_key(label, secret)
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .ok()?;
    Some(plain.to_vec())
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
