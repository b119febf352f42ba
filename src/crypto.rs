//! The crate's cryptography, all on aws-lc-rs: randomness, SHA-2 digests, labelled hashes
//! and authenticated sealing. Token formats (`tokens::format`) and password hashing
//! (`auth::basic`) build on it.

use crate::model::{Hash32, Id16};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{Context, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

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

/// A 128-bit id that sorts by `now`: 6 bytes of milliseconds since the Unix epoch
/// (big-endian), then 80 random bits. Store keys made of such ids are appended together
/// instead of landing on random pages (token families: `tokens::TokenService::issue`).
pub fn time_ordered_id(now: crate::clock::UnixMillis) -> Id16 {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&u64::try_from(now).unwrap_or(0).to_be_bytes()[2..]);
    fill_random(&mut b[6..]);
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
    seal_under_ad(label, secret, plain, &[])
}

/// Decrypt what [`seal_under`] produced; `None` if it does not open.
pub fn open_under(label: &[u8], secret: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    open_under_ad(label, secret, sealed, &[])
}

/// [`seal_under`] with associated data: `ad` is authenticated, not stored; the record opens
/// only with the same `ad` (e.g. the owner a record belongs to, so a copy moved to another
/// owner fails to open).
pub fn seal_under_ad(label: &[u8], secret: &[u8], plain: &[u8], ad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut buf = plain.to_vec();
    aead_key(label, secret)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(ad), &mut buf)
        .expect("AES-GCM sealing of an in-memory buffer");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Decrypt what [`seal_under_ad`] produced with the same `ad`; `None` if it does not open.
pub fn open_under_ad(label: &[u8], secret: &[u8], sealed: &[u8], ad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ct.to_vec();
    let plain = aead_key(label, secret)
        .open_in_place(nonce, Aad::from(ad), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod ad_tests {
    use super::*;

    #[test]
    fn associated_data_must_match() {
        let sealed = seal_under_ad(b"l", b"k", b"plain", b"conn\0alice");
        assert_eq!(
            open_under_ad(b"l", b"k", &sealed, b"conn\0alice").as_deref(),
            Some(b"plain".as_slice())
        );
        assert_eq!(open_under_ad(b"l", b"k", &sealed, b"conn\0bob"), None);
        assert_eq!(open_under_ad(b"l", b"other", &sealed, b"conn\0alice"), None);
        assert_eq!(open_under(b"l", b"k", &sealed), None);
        // The plain variants are the empty-ad case.
        let plain = seal_under(b"l", b"k", b"x");
        assert_eq!(
            open_under_ad(b"l", b"k", &plain, b"").as_deref(),
            Some(b"x".as_slice())
        );
    }
}
