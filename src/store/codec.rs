//! A compact binary form of [`TokenDoc`] for backends that store bytes. (Flow records need
//! none: both backends keep pending logins in memory.)
//!
//! JSON spells each 32-byte hash as an array of 32 numbers; this form stores the bytes. A token
//! record shrinks from about 670 to about 280 bytes and decodes several times faster, which
//! is what a bearer-token check pays on a cache miss. The user's `metadata` (arbitrary JSON)
//! is kept as JSON inside.
//!
//! Layout: a format byte ([`TOKEN_V1`]), then the fields in declaration order:
//! fixed-size ids raw, times as big-endian `i64`, strings and byte strings as a big-endian `u32`
//! length and the bytes, optional fields behind presence bits. Anything that does not parse
//! exactly (wrong format byte, short, trailing bytes, bad UTF-8) is an error, never a panic.

use super::*;

/// Format byte of a token record.
pub const TOKEN_V1: u8 = 0xd1;
/// Format byte of a token record with an OIDC session: [`TOKEN_V1`]'s layout followed by the
/// session's `sub` and a presence byte and `sid`. Written only when the record has a session,
/// so records without one keep the V1 bytes (and V1 records decode as before).
pub const TOKEN_V2: u8 = 0xd2;

const HAS_REFRESH: u8 = 1;
const HAS_REFRESH_EXPIRY: u8 = 1 << 1;
const ACCESS_INVALIDATED: u8 = 1 << 2;
const REFRESH_INVALIDATED: u8 = 1 << 3;
const HAS_REFRESHED: u8 = 1 << 4;
const HAS_SEALED: u8 = 1 << 5;
const HAS_FULL_NAME: u8 = 1 << 6;
const HAS_EMAIL: u8 = 1 << 7;

/// Why bytes did not decode.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The binary form of `doc`.
pub fn encode_token(doc: &TokenDoc) -> Vec<u8> {
    let u = &doc.user;
    let mut flags = 0;
    for (present, bit) in [
        (doc.refresh_hash.is_some(), HAS_REFRESH),
        (doc.refresh_expires_at.is_some(), HAS_REFRESH_EXPIRY),
        (doc.access_invalidated, ACCESS_INVALIDATED),
        (doc.refresh_invalidated, REFRESH_INVALIDATED),
        (doc.refreshed.is_some(), HAS_REFRESHED),
        (doc.sealed.is_some(), HAS_SEALED),
        (u.full_name.is_some(), HAS_FULL_NAME),
        (u.email.is_some(), HAS_EMAIL),
    ] {
        if present {
            flags |= bit;
        }
    }
    let mut out = Vec::with_capacity(256);
    out.push(if doc.oidc_session.is_some() {
        TOKEN_V2
    } else {
        TOKEN_V1
    });
    out.push(flags);
    out.extend_from_slice(&doc.access_hash.0);
    if let Some(r) = &doc.refresh_hash {
        out.extend_from_slice(&r.0);
    }
    out.extend_from_slice(&doc.family.0);
    out.extend_from_slice(&doc.created_at.to_be_bytes());
    out.extend_from_slice(&doc.access_expires_at.to_be_bytes());
    if let Some(t) = doc.refresh_expires_at {
        out.extend_from_slice(&t.to_be_bytes());
    }
    if let Some(r) = &doc.refreshed {
        out.extend_from_slice(&r.at.to_be_bytes());
        put_bytes(&mut out, &r.superseding);
    }
    if let Some(s) = &doc.sealed {
        put_bytes(&mut out, s);
    }
    put_bytes(&mut out, u.username.as_bytes());
    out.extend_from_slice(&(u.roles.len() as u32).to_be_bytes());
    for role in &u.roles {
        put_bytes(&mut out, role.as_bytes());
    }
    if let Some(n) = &u.full_name {
        put_bytes(&mut out, n.as_bytes());
    }
    if let Some(e) = &u.email {
        put_bytes(&mut out, e.as_bytes());
    }
    if u.metadata.is_empty() {
        put_bytes(&mut out, b"");
    } else {
        // Serializing a map of JSON values cannot fail.
        put_bytes(
            &mut out,
            &serde_json::to_vec(&u.metadata).unwrap_or_else(|_| b"{}".to_vec()),
        );
    }
    put_bytes(&mut out, u.realm.name.as_bytes());
    put_bytes(&mut out, u.realm.kind.as_bytes());
    put_bytes(&mut out, doc.client.username.as_bytes());
    put_bytes(&mut out, doc.client.realm.as_bytes());
    if let Some(session) = &doc.oidc_session {
        put_bytes(&mut out, session.sub.as_bytes());
        match &session.sid {
            Some(sid) => {
                out.push(1);
                put_bytes(&mut out, sid.as_bytes());
            }
            None => out.push(0),
        }
    }
    out
}

/// A token record from its binary form.
pub fn decode_token(bytes: &[u8]) -> Result<TokenDoc, DecodeError> {
    let mut r = Reader(bytes);
    let head = Head::read(&mut r)?;
    let has = |bit: u8| head.flags & bit != 0;
    let user = UserBytes::read(&mut r, head.flags)?.decode()?;
    let client = ClientRef {
        username: r.string()?,
        realm: r.string()?,
    };
    let oidc_session = if head.version == TOKEN_V2 {
        let sub = r.string()?;
        let sid = match r.u8()? {
            0 => None,
            1 => Some(r.string()?),
            _ => return Err(DecodeError("bad session sid marker")),
        };
        Some(OidcSession { sub, sid })
    } else {
        None
    };
    if !r.0.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(TokenDoc {
        access_hash: head.access_hash,
        refresh_hash: head.refresh_hash,
        family: head.family,
        user,
        client,
        created_at: head.created_at,
        access_expires_at: head.access_expires_at,
        refresh_expires_at: head.refresh_expires_at,
        access_invalidated: has(ACCESS_INVALIDATED),
        refresh_invalidated: has(REFRESH_INVALIDATED),
        refreshed: head.refreshed.map(|(at, superseding)| Refreshed {
            at,
            superseding: superseding.to_vec(),
        }),
        sealed: head.sealed.map(<[u8]>::to_vec),
        oidc_session,
    })
}

/// What a bearer check reads of a token record ([`decode_bearer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BearerFields {
    pub access_hash: Hash32,
    pub access_expires_at: UnixMillis,
    pub access_invalidated: bool,
}

/// The encoded user of a token record, not yet decoded: [`decode`](Self::decode) it, or use
/// [`key`](Self::key) to find a user decoded from the same bytes before.
#[derive(Debug, Clone, Copy)]
pub struct UserBytes<'a> {
    /// The record's flags that belong to the user (which optional fields are present).
    presence: u8,
    fields: &'a [u8],
}

impl<'a> UserBytes<'a> {
    /// Walk over the user's fields (checking their lengths, not their contents).
    fn read(r: &mut Reader<'a>, flags: u8) -> Result<Self, DecodeError> {
        let start = r.0;
        r.bytes()?; // username
        let count = r.u32()?;
        if count as usize > r.0.len() / 4 {
            return Err(DecodeError("role count exceeds the record"));
        }
        for _ in 0..count {
            r.bytes()?;
        }
        if flags & HAS_FULL_NAME != 0 {
            r.bytes()?;
        }
        if flags & HAS_EMAIL != 0 {
            r.bytes()?;
        }
        r.bytes()?; // metadata
        r.bytes()?; // realm name
        r.bytes()?; // realm kind
        let used = start.len() - r.0.len();
        Ok(UserBytes {
            presence: flags & (HAS_FULL_NAME | HAS_EMAIL),
            fields: &start[..used],
        })
    }

    /// Bytes that are equal for two records exactly when their users are.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + self.fields.len());
        k.push(self.presence);
        k.extend_from_slice(self.fields);
        k
    }

    /// The user these bytes encode.
    pub fn decode(&self) -> Result<UserRecord, DecodeError> {
        let mut r = Reader(self.fields);
        let has = |bit: u8| self.presence & bit != 0;
        let username = r.string()?;
        let count = r.u32()? as usize;
        // Each role takes at least its 4-byte length: a count beyond that is corrupt, not a
        // reason to allocate.
        if count > r.0.len() / 4 {
            return Err(DecodeError("role count exceeds the record"));
        }
        let mut roles = Vec::with_capacity(count);
        for _ in 0..count {
            roles.push(r.string()?);
        }
        let full_name = r.opt(has(HAS_FULL_NAME), Reader::string)?;
        let email = r.opt(has(HAS_EMAIL), Reader::string)?;
        let metadata = match r.bytes()? {
            [] => serde_json::Map::new(),
            json => {
                serde_json::from_slice(json).map_err(|_| DecodeError("metadata is not JSON"))?
            }
        };
        let realm = RealmRef {
            name: r.string()?,
            kind: r.string()?,
        };
        Ok(UserRecord {
            username,
            roles,
            full_name,
            email,
            metadata,
            realm,
        })
    }
}

/// Decode only what a bearer check needs: the access hash, expiry and invalidation, and the
/// user, which `user` turns into what the caller keeps (decoding it, or reusing a user decoded
/// from the same bytes). The refresh state, sealed data, client and session are skipped
/// unread: a record corrupt there decodes here and fails [`decode_token`].
pub fn decode_bearer<U>(
    bytes: &[u8],
    user: impl FnOnce(UserBytes<'_>) -> Result<U, DecodeError>,
) -> Result<(BearerFields, U), DecodeError> {
    let mut r = Reader(bytes);
    let head = Head::read(&mut r)?;
    let fields = BearerFields {
        access_hash: head.access_hash,
        access_expires_at: head.access_expires_at,
        access_invalidated: head.flags & ACCESS_INVALIDATED != 0,
    };
    Ok((fields, user(UserBytes::read(&mut r, head.flags)?)?))
}

/// The fields of a record before its user, borrowed from the bytes.
struct Head<'a> {
    version: u8,
    flags: u8,
    access_hash: Hash32,
    refresh_hash: Option<Hash32>,
    family: Id16,
    created_at: UnixMillis,
    access_expires_at: UnixMillis,
    refresh_expires_at: Option<UnixMillis>,
    refreshed: Option<(UnixMillis, &'a [u8])>,
    sealed: Option<&'a [u8]>,
}

impl<'a> Head<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if version != TOKEN_V1 && version != TOKEN_V2 {
            return Err(DecodeError("not a token record"));
        }
        let flags = r.u8()?;
        let has = |bit: u8| flags & bit != 0;
        let access_hash = Hash32(r.array()?);
        let refresh_hash = r.opt(has(HAS_REFRESH), |r| Ok(Hash32(r.array()?)))?;
        let family = Id16(r.array()?);
        let created_at = r.i64()?;
        let access_expires_at = r.i64()?;
        let refresh_expires_at = r.opt(has(HAS_REFRESH_EXPIRY), Reader::i64)?;
        let refreshed = r.opt(has(HAS_REFRESHED), |r| Ok((r.i64()?, r.bytes()?)))?;
        let sealed = r.opt(has(HAS_SEALED), Reader::bytes)?;
        Ok(Head {
            version,
            flags,
            access_hash,
            refresh_hash,
            family,
            created_at,
            access_expires_at,
            refresh_expires_at,
            refreshed,
            sealed,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("record too short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| DecodeError("string is not UTF-8"))
    }

    fn opt<T>(
        &mut self,
        present: bool,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if present {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{family, token};

    fn variants() -> Vec<TokenDoc> {
        let full = token(1, true, family(1), "oidc1", "alice");
        let mut bare = token(2, false, family(2), "", "");
        bare.user.roles.clear();
        bare.user.full_name = None;
        bare.user.metadata.clear();
        bare.sealed = None;
        bare.created_at = i64::MIN;
        bare.access_expires_at = -1;
        let mut busy = full.clone();
        busy.access_invalidated = true;
        busy.refresh_invalidated = true;
        busy.user.email = Some("a@example.com".into());
        busy.refreshed = Some(Refreshed {
            at: i64::MAX,
            superseding: vec![0; 300],
        });
        busy.user.username = "ü\0ser".into();
        let mut with_sid = full.clone();
        with_sid.oidc_session = Some(OidcSession {
            sub: "248289761001".into(),
            sid: Some("08a5019c-17e1-4977-8f42-65a12843ea02".into()),
        });
        let mut without_sid = bare.clone();
        without_sid.oidc_session = Some(OidcSession {
            sub: String::new(),
            sid: None,
        });
        vec![full, bare, busy, with_sid, without_sid]
    }

    /// A record written before sessions existed (format V1, built byte by byte here, not
    /// with `encode_token`) still decodes, with no session; a record without a session is
    /// still written as V1.
    #[test]
    fn v1_records_still_decode() {
        let mut v1 = vec![TOKEN_V1, 0];
        v1.extend_from_slice(&[7u8; 32]); // access hash
        v1.extend_from_slice(&[9u8; 16]); // family
        v1.extend_from_slice(&1_000i64.to_be_bytes()); // created
        v1.extend_from_slice(&2_000i64.to_be_bytes()); // access expiry
        put_bytes(&mut v1, b"alice");
        v1.extend_from_slice(&0u32.to_be_bytes()); // no roles
        put_bytes(&mut v1, b""); // no metadata
        for s in ["oidc1", "oidc", "kibana_system", "reserved"] {
            put_bytes(&mut v1, s.as_bytes());
        }
        let doc = decode_token(&v1).unwrap();
        assert_eq!(doc.user.username, "alice");
        assert_eq!(doc.client.realm, "reserved");
        assert_eq!(doc.oidc_session, None);
        assert_eq!(encode_token(&doc), v1);
        // A V2 marker on V1 bytes is short (the session is missing).
        let mut v2 = v1.clone();
        v2[0] = TOKEN_V2;
        assert!(decode_token(&v2).is_err());
    }

    #[test]
    fn tokens_round_trip_and_are_smaller_than_json() {
        for doc in variants() {
            let bytes = encode_token(&doc);
            assert_eq!(decode_token(&bytes), Ok(doc.clone()));
            let json = serde_json::to_vec(&doc).unwrap();
            assert!(
                bytes.len() < json.len() / 2 + 64,
                "{} vs {}",
                bytes.len(),
                json.len()
            );
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for doc in variants() {
            let bytes = encode_token(&doc);
            for n in 0..bytes.len() {
                assert!(decode_token(&bytes[..n]).is_err(), "prefix of {n} bytes");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_token(&longer).is_err());
            if doc.oidc_session.is_none() {
                assert_eq!(decode_token(&longer), Err(DecodeError("trailing bytes")));
            }
        }
    }

    #[test]
    fn decode_bearer_reads_what_decode_token_reads_and_refuses_a_cut_user() {
        for doc in variants() {
            let bytes = encode_token(&doc);
            let (fields, user) = decode_bearer(&bytes, |u| u.decode()).unwrap();
            assert_eq!(fields.access_hash, doc.access_hash);
            assert_eq!(fields.access_expires_at, doc.access_expires_at);
            assert_eq!(fields.access_invalidated, doc.access_invalidated);
            assert_eq!(user, doc.user);
            // Cut anywhere inside the fields it reads: an error, never a panic or a wrong user.
            let user_end = bytes.len()
                - 8
                - doc.client.username.len()
                - doc.client.realm.len()
                - doc.oidc_session.as_ref().map_or(0, |s| {
                    4 + s.sub.len() + 1 + s.sid.as_ref().map_or(0, |sid| 4 + sid.len())
                });
            for n in 0..user_end {
                assert!(
                    decode_bearer(&bytes[..n], |u| u.decode()).is_err(),
                    "cut at {n} of {}",
                    bytes.len()
                );
            }
            assert!(decode_bearer(&bytes[..user_end], |u| u.decode()).is_ok());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..600 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Some(b) = bytes.first_mut() {
                *b = TOKEN_V1;
            }
            let _ = decode_token(&bytes);
            let _ = decode_bearer(&bytes, |u| u.decode());
        }
        // A huge role count is refused before anything is allocated for it. `bare` has no
        // optional fields before the roles: tag, flags, access, family, two times, username "".
        let mut bytes = encode_token(&variants()[1]);
        let at = 1 + 1 + 32 + 16 + 8 + 8 + 4;
        assert_eq!(bytes[at..at + 4], [0, 0, 0, 0]);
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_token(&bytes),
            Err(DecodeError("role count exceeds the record"))
        );
    }
}
