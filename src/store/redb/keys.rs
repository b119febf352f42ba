//! Key and value encodings: time-ordered keys, the index keys (owner, family, expiry), and the
//! `tokens` and `profiles` values.

use crate::clock::UnixMillis;
use crate::model::{Hash32, Id16, TokenDoc};
use crate::store::users::UserCache;
use crate::store::{codec, BearerRecord, StoreError, StoredProfile};

pub(super) fn time_key(t: UnixMillis) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn expiry_key(t: UnixMillis, hash: &[u8; 32]) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&time_key(t));
    k[8..].copy_from_slice(hash);
    k
}

pub(super) fn family_key(family: &Id16, access: &Hash32) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..16].copy_from_slice(&family.0);
    k[16..].copy_from_slice(&access.0);
    k
}

pub(super) fn push_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

pub(super) fn owner_key(doc: &TokenDoc) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 32 + doc.user.realm.name.len() + doc.user.username.len());
    push_name(&mut k, &doc.user.realm.name);
    push_name(&mut k, &doc.user.username);
    k.extend_from_slice(&doc.access_hash.0);
    k
}

/// The access hash at the end of an index key.
pub(super) fn trailing_hash(key: &[u8]) -> Result<Hash32, StoreError> {
    key.len()
        .checked_sub(32)
        .and_then(|at| key[at..].try_into().ok())
        .map(Hash32)
        .ok_or_else(|| StoreError::Corrupt(format!("index key of {} bytes", key.len())))
}

pub(super) fn hash_value(bytes: &[u8]) -> Result<Hash32, StoreError> {
    bytes
        .try_into()
        .map(Hash32)
        .map_err(|_| StoreError::Corrupt(format!("hash value of {} bytes", bytes.len())))
}

pub(super) fn decode_doc(key: &Hash32, bytes: &[u8]) -> Result<TokenDoc, StoreError> {
    let doc = codec::decode_token(bytes).map_err(|e| corrupt_record(key, e))?;
    check_record_key(key, &doc.access_hash)?;
    Ok(doc)
}

/// What a bearer check reads of the `tokens` value under `key`, its user from `users`.
pub(super) fn decode_bearer(
    key: &Hash32,
    bytes: &[u8],
    users: &UserCache,
) -> Result<BearerRecord, StoreError> {
    let (fields, user) = codec::decode_bearer(bytes, |u| users.get_or_decode(u))
        .map_err(|e| corrupt_record(key, e))?;
    check_record_key(key, &fields.access_hash)?;
    Ok(BearerRecord {
        expires_at: fields.access_expires_at,
        invalidated: fields.access_invalidated,
        user,
    })
}

fn corrupt_record(key: &Hash32, e: codec::DecodeError) -> StoreError {
    StoreError::Corrupt(format!("token record {key:?}: {e}"))
}

/// A store integrity check: the access hash a record holds against the key it was found
/// under, in constant time like every comparison of a token's hash.
fn check_record_key(key: &Hash32, held: &Hash32) -> Result<(), StoreError> {
    if crate::secret::ct_eq(&held.0, &key.0) {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "token record {key:?} holds access hash {held:?}"
        )))
    }
}

/// A `profiles` value: the version, then the record.
pub(super) fn encode_profile(seq_no: u64, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + json.len());
    v.extend_from_slice(&seq_no.to_be_bytes());
    v.extend_from_slice(json);
    v
}

pub(super) fn decode_profile(uid: &str, bytes: &[u8]) -> Result<StoredProfile, StoreError> {
    let (seq, json) = bytes.split_first_chunk::<8>().ok_or_else(|| {
        StoreError::Corrupt(format!("profile record {uid:?} of {} bytes", bytes.len()))
    })?;
    Ok(StoredProfile {
        seq_no: u64::from_be_bytes(*seq),
        json: json.to_vec(),
    })
}

/// The smallest byte string greater than every string starting with `prefix`.
pub(super) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [i64::MIN, -5_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(time_key(w[0]) < time_key(w[1]), "{} vs {}", w[0], w[1]);
        }
    }

    #[test]
    fn successor_bounds_a_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff, 0xff]), None);
        let s = successor(b"\0\0\0\x03abc").unwrap();
        assert!(b"\0\0\0\x03abc\0\0\0\x01u".as_slice() < s.as_slice());
        assert!(b"\0\0\0\x03abd".as_slice() >= s.as_slice());
    }

    #[test]
    fn trailing_hash_rejects_short_keys() {
        assert!(matches!(
            trailing_hash(&[0; 31]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(trailing_hash(&[7; 40]).unwrap(), Hash32([7; 32]));
    }
}
