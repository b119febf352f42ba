//! HTTP Basic verification against the configured users' argon2id or bcrypt hashes.
//!
//! argon2 is deliberately slow, and a facilitator authenticates on every call, so successful
//! verifications are remembered for a short time, keyed by an HMAC (with a per-process random
//! key) of the config generation, user name and password: the cache never holds a password or
//! anything that would let one be tested offline. Failures are never remembered.

use crate::config::PasswordHash;
use crate::secret::Secret;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use quick_cache::sync::Cache;
use sha2::Sha256;
use std::time::{Duration, Instant};

/// How long a successful verification is remembered.
pub const REMEMBER_FOR: Duration = Duration::from_secs(300);
const CAPACITY: usize = 10_000;

/// Verifies passwords and remembers successes.
#[derive(Debug)]
pub struct BasicVerifier {
    key: Secret<Vec<u8>>,
    remembered: Cache<[u8; 32], Instant>,
}

impl Default for BasicVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl BasicVerifier {
    pub fn new() -> Self {
        let mut key = vec![0u8; 32];
        crate::tokens::crypto::fill_random(&mut key);
        Self {
            key: Secret::new(key),
            remembered: Cache::new(CAPACITY),
        }
    }

    fn cache_key(&self, generation: u64, username: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes any key length");
        mac.update(&generation.to_be_bytes());
        mac.update(&(username.len() as u64).to_be_bytes());
        mac.update(username.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Was this exact (generation, user, password) verified recently?
    pub fn remembered(&self, generation: u64, username: &str, password: &str) -> bool {
        let k = self.cache_key(generation, username, password);
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
    pub fn remember(&self, generation: u64, username: &str, password: &str) {
        let k = self.cache_key(generation, username, password);
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
    crate::tokens::crypto::fill_random(&mut salt);
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
    fn remembered_only_for_the_same_generation_user_and_password() {
        let v = BasicVerifier::new();
        assert!(!v.remembered(1, "u", "p"));
        v.remember(1, "u", "p");
        assert!(v.remembered(1, "u", "p"));
        assert!(!v.remembered(2, "u", "p"));
        assert!(!v.remembered(1, "u", "q"));
        assert!(!v.remembered(1, "v", "p"));
        // length-prefixing: ("u", "xp") and ("ux", "p") differ
        v.remember(1, "ux", "p");
        assert!(!v.remembered(1, "u", "xp"));
    }
}
