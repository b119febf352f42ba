//! Users decoded from stored token records, kept so that the tokens of one user share one
//! decoded [`UserRecord`]: a bearer lookup that misses the bearer cache reads the record's
//! user bytes and, when a record with the same bytes was decoded before, takes that user
//! instead of decoding them again (no metadata JSON to parse, nothing to allocate). The cache
//! is keyed by the encoded bytes themselves, so two users share an entry only when their
//! stored bytes are equal; it is bounded in bytes.

use super::codec::{DecodeError, UserBytes};
use crate::model::UserRecord;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::mem::size_of;
use std::sync::Arc;

/// What an entry costs besides the key's bytes and the user's heap data: the key's `Vec`, the
/// `Arc` and its record, and the cache's own slot.
const ENTRY_COST: u64 =
    (size_of::<Vec<u8>>() + 2 * size_of::<usize>() + size_of::<UserRecord>()) as u64 + 96;

#[derive(Debug, Clone, Copy, Default)]
struct UserWeighter;

impl Weighter<Vec<u8>, Arc<UserRecord>> for UserWeighter {
    fn weight(&self, key: &Vec<u8>, user: &Arc<UserRecord>) -> u64 {
        ENTRY_COST + key.len() as u64 + user.estimated_heap()
    }
}

/// Decoded users by their stored bytes, up to a number of (estimated) bytes.
#[derive(Debug)]
pub struct UserCache {
    users: Cache<Vec<u8>, Arc<UserRecord>, UserWeighter>,
}

impl UserCache {
    /// A cache of at most `max_bytes` (estimated); 0 keeps nothing.
    pub fn new(max_bytes: u64) -> Self {
        let estimated_items = (max_bytes / (ENTRY_COST * 2)).max(16) as usize;
        UserCache {
            users: Cache::with_weighter(estimated_items, max_bytes, UserWeighter),
        }
    }

    /// The user `bytes` encode: one decoded before from equal bytes, or decoded now (and kept).
    pub fn get_or_decode(&self, bytes: UserBytes<'_>) -> Result<Arc<UserRecord>, DecodeError> {
        let key = bytes.key();
        if let Some(user) = self.users.get(&key[..]) {
            return Ok(user);
        }
        let user = Arc::new(bytes.decode()?);
        self.users.insert(key, user.clone());
        Ok(user)
    }

    /// How many users are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::{decode_bearer, encode_token};
    use crate::store::conformance::{family, token};

    fn user_of(cache: &UserCache, bytes: &[u8]) -> Arc<UserRecord> {
        decode_bearer(bytes, |u| cache.get_or_decode(u)).unwrap().1
    }

    #[test]
    fn equal_users_share_one_decoded_record_and_different_ones_do_not() {
        let cache = UserCache::new(1 << 20);
        let a1 = token(1, true, family(1), "oidc1", "alice");
        let mut a2 = token(2, false, family(2), "oidc1", "alice");
        a2.user = a1.user.clone();
        let b = token(3, true, family(3), "oidc1", "bob");
        let mut a_named = a1.clone();
        a_named.user.full_name = Some("Alice".into());
        let first = user_of(&cache, &encode_token(&a1));
        let second = user_of(&cache, &encode_token(&a2));
        assert!(Arc::ptr_eq(&first, &second), "alice decoded twice");
        assert_eq!(*first, a1.user);
        let bob = user_of(&cache, &encode_token(&b));
        assert_eq!(*bob, b.user);
        // One field more (a presence bit and its bytes) is another user.
        let named = user_of(&cache, &encode_token(&a_named));
        assert_eq!(*named, a_named.user);
        assert!(!Arc::ptr_eq(&first, &named));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_full_name_and_an_email_with_the_same_bytes_are_different_users() {
        // The presence bits are part of the key: the same string as full name or as email.
        let cache = UserCache::new(1 << 20);
        let mut named = token(1, true, family(1), "oidc1", "alice");
        named.user.full_name = Some("x@example.com".into());
        named.user.email = None;
        let mut mailed = named.clone();
        mailed.user.full_name = None;
        mailed.user.email = Some("x@example.com".into());
        assert_eq!(*user_of(&cache, &encode_token(&named)), named.user);
        assert_eq!(*user_of(&cache, &encode_token(&mailed)), mailed.user);
    }

    #[test]
    fn the_cache_is_bounded_and_a_zero_bound_keeps_nothing() {
        let cache = UserCache::new(64 << 10);
        for n in 0..2_000u32 {
            let doc = token(n, true, family(n), "oidc1", &format!("user{n}"));
            assert_eq!(*user_of(&cache, &encode_token(&doc)), doc.user);
        }
        assert!(cache.len() < 2_000, "{}", cache.len());
        let none = UserCache::new(0);
        let doc = token(1, true, family(1), "oidc1", "alice");
        assert_eq!(*user_of(&none, &encode_token(&doc)), doc.user);
    }
}
