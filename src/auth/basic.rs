//! HTTP Basic verification against the configured users' argon2id or bcrypt hashes.
//!
//! argon2 is deliberately slow, and a facilitator authenticates on every call, so successful
//! verifications are remembered for a short time, keyed by an HMAC-SHA-256 (with a
//! per-process random key) of the user name, the stored hash and the password: the cache never
//! holds a password or anything that would let one be tested offline. A configuration reload
//! that keeps a user's hash keeps its remembered success; a changed hash (a new password)
//! misses at once. Failures are never remembered.

use crate::config::PasswordHash;
use crate::secret::Secret;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use aws_lc_rs::hmac;
use quick_cache::sync::Cache;
use std::time::{Duration, Instant};

/// How long a successful verification is remembered.
pub const REMEMBER_FOR: Duration = Duration::from_secs(300);
const CAPACITY: usize = 10_000;

/// Verifies passwords and remembers successes.
pub struct BasicVerifier {
    key: hmac::Key,
    remembered: Cache<[u8; 32], Instant>,
}

impl std::fmt::Debug for BasicVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicVerifier").finish_non_exhaustive()
    }
}

impl Default for BasicVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl BasicVerifier {
    pub fn new() -> Self {
        let key = Secret::new({
            let mut k = vec![0u8; 32];
            crate::crypto::fill_random(&mut k);
            k
        });
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose_secret()),
            remembered: Cache::new(CAPACITY),
        }
    }

    fn cache_key(&self, username: &str, hash: &PasswordHash, password: &str) -> [u8; 32] {
        let stored = match hash {
            PasswordHash::Argon2id(h) | PasswordHash::Bcrypt(h) => h.as_bytes(),
        };
        let mut ctx = hmac::Context::with_key(&self.key);
        // Length-prefixed, so no two different triples give the same input.
        for part in [username.as_bytes(), stored] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Was this exact (user, stored hash, password) verified recently?
    pub fn remembered(&self, username: &str, hash: &PasswordHash, password: &str) -> bool {
        let k = self.cache_key(username, hash, password);
        match self.remembered.get(&k) {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                self.remembered.remove(&k);
                false
            }
            None => false,
        }
    }

    /// Remember a successful verification.
    pub fn remember(&self, username: &str, hash: &PasswordHash, password: &str) {
        let k = self.cache_key(username, hash, password);
        self.remembered.insert(k, Instant::now() + REMEMBER_FOR);
    }
}

/// Check `password` against `hash` (slow: call off the async workers).
pub fn verify(hash: &PasswordHash, password: &str) -> bool {
    match hash {
        PasswordHash::Argon2id(phc) => match argon2::PasswordHash::new(phc) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        },
        PasswordHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
    }
}

/// An argon2id PHC string for `password` (`oidc-realm hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    crate::crypto::fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&PasswordHash::Argon2id(h.clone()), "s3cret"));
        assert!(!verify(&PasswordHash::Argon2id(h), "s3cret "));
    }

    #[test]
    fn bcrypt_hashes_from_elasticsearch_verify() {
        let h = bcrypt::hash("changeme", 4).unwrap();
        assert!(verify(&PasswordHash::Bcrypt(h.clone()), "changeme"));
        assert!(!verify(&PasswordHash::Bcrypt(h.clone()), "changemE"));
        let y = h.replacen("$2b$", "$2y$", 1);
        assert!(verify(&PasswordHash::Bcrypt(y), "changeme"));
    }

    #[test]
    fn remembered_only_for_the_same_user_hash_and_password() {
        let v = BasicVerifier::new();
        let h1 = PasswordHash::Bcrypt(
            "$2b$04$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        );
        let h2 = PasswordHash::Bcrypt(
            "$2b$04$bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
        );
        assert!(!v.remembered("u", &h1, "p"));
        v.remember("u", &h1, "p");
        assert!(v.remembered("u", &h1, "p"));
        // A new hash (the password was changed): forgotten at once.
        assert!(!v.remembered("u", &h2, "p"));
        assert!(!v.remembered("u", &h1, "q"));
        assert!(!v.remembered("v", &h1, "p"));
        // length-prefixing: ("u", "xp") and ("ux", "p") differ
        v.remember("ux", &h1, "p");
        assert!(!v.remembered("u", &h1, "xp"));
    }
}
