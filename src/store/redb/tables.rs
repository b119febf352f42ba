//! The tables of one write transaction ([`Tables`]) and what a write task does with them;
//! the lookups readers share.

use super::error::{table_error, OpError};
use super::keys::{
    decode_bearer, decode_doc, decode_profile, expiry_key, family_key, hash_value, owner_key,
    push_name, successor, trailing_hash,
};
use super::schema::{
    Bytes, PROFILES, ROLE_MAPPINGS, TOKENS, TOKEN_EXPIRY, TOKEN_FAMILY, TOKEN_OWNER, TOKEN_REFRESH,
};
use crate::clock::UnixMillis;
use crate::model::{Hash32, Id16, Refreshed, TokenDoc};
use crate::store::logic::{invalidate_doc, owner_matches, session_matches};
use crate::store::users::UserCache;
use crate::store::{
    codec, BearerRecord, Invalidation, InvalidationCounts, RefreshOutcome, StoreError,
    StoredProfile,
};
use ::redb::{ReadableTable, Table, TableError, WriteTransaction};

pub(super) fn get_profile(
    profiles: &impl ReadableTable<&'static str, Bytes>,
    uid: &str,
) -> Result<Option<StoredProfile>, OpError> {
    match profiles.get(uid)? {
        Some(v) => Ok(Some(decode_profile(uid, v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn get_doc(
    tokens: &impl ReadableTable<Bytes, Bytes>,
    access: &Hash32,
) -> Result<Option<TokenDoc>, OpError> {
    match tokens.get(&access.0[..])? {
        Some(v) => Ok(Some(decode_doc(access, v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn get_bearer(
    tokens: &impl ReadableTable<Bytes, Bytes>,
    access: &Hash32,
    users: &UserCache,
) -> Result<Option<BearerRecord>, OpError> {
    match tokens.get(&access.0[..])? {
        Some(v) => Ok(Some(decode_bearer(access, v.value(), users)?)),
        None => Ok(None),
    }
}

pub(super) fn get_refresh(
    by_refresh: &impl ReadableTable<Bytes, Bytes>,
    refresh: &Hash32,
) -> Result<Option<Hash32>, OpError> {
    match by_refresh.get(&refresh.0[..])? {
        Some(v) => Ok(Some(hash_value(v.value())?)),
        None => Ok(None),
    }
}

/// The tables of one write transaction.
pub(super) struct Tables<'t> {
    pub(super) tokens: Table<'t, Bytes, Bytes>,
    pub(super) refresh: Table<'t, Bytes, Bytes>,
    pub(super) owner: Table<'t, Bytes, ()>,
    pub(super) family: Table<'t, Bytes, ()>,
    pub(super) expiry: Table<'t, Bytes, ()>,
    pub(super) role_mappings: Table<'t, &'static str, Bytes>,
    pub(super) profiles: Table<'t, &'static str, Bytes>,
    pub(super) records: Table<'t, Bytes, Bytes>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, OpError> {
        let open = |e: TableError| match e {
            TableError::Storage(e) => OpError::Txn(e.to_string()),
            e => OpError::Op(table_error(e)),
        };
        Ok(Tables {
            tokens: txn.open_table(TOKENS).map_err(open)?,
            refresh: txn.open_table(TOKEN_REFRESH).map_err(open)?,
            owner: txn.open_table(TOKEN_OWNER).map_err(open)?,
            family: txn.open_table(TOKEN_FAMILY).map_err(open)?,
            expiry: txn.open_table(TOKEN_EXPIRY).map_err(open)?,
            role_mappings: txn.open_table(ROLE_MAPPINGS).map_err(open)?,
            profiles: txn.open_table(PROFILES).map_err(open)?,
            records: txn.open_table(super::records::RECORDS).map_err(open)?,
        })
    }

    pub(super) fn check_new(&self, doc: &TokenDoc) -> Result<(), OpError> {
        if self.tokens.get(&doc.access_hash.0[..])?.is_some() {
            return Err(StoreError::Conflict.into());
        }
        if let Some(r) = doc.refresh_hash {
            if self.refresh.get(&r.0[..])?.is_some() {
                return Err(StoreError::Conflict.into());
            }
        }
        Ok(())
    }

    /// Write a doc that passed [`Self::check_new`], with its index entries.
    pub(super) fn put_new(&mut self, doc: &TokenDoc) -> Result<(), OpError> {
        let value = codec::encode_token(doc);
        let a = &doc.access_hash;
        self.tokens.insert(&a.0[..], value.as_slice())?;
        if let Some(r) = doc.refresh_hash {
            self.refresh.insert(&r.0[..], &a.0[..])?;
        }
        self.owner.insert(owner_key(doc).as_slice(), ())?;
        self.family.insert(&family_key(&doc.family, a)[..], ())?;
        self.expiry
            .insert(&expiry_key(doc.expires_at(), &a.0)[..], ())?;
        Ok(())
    }

    /// Rewrite an existing doc (its indexed fields are unchanged).
    pub(super) fn put_existing(&mut self, doc: &TokenDoc) -> Result<(), OpError> {
        let value = codec::encode_token(doc);
        self.tokens
            .insert(&doc.access_hash.0[..], value.as_slice())?;
        Ok(())
    }

    pub(super) fn insert_token(&mut self, doc: TokenDoc) -> Result<(), OpError> {
        self.check_new(&doc)?;
        self.put_new(&doc)
    }

    pub(super) fn refresh(
        &mut self,
        hash: &Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    ) -> Result<RefreshOutcome, OpError> {
        let Some(access) = get_refresh(&self.refresh, hash)? else {
            return Ok(RefreshOutcome::NotFound);
        };
        let Some(mut doc) = get_doc(&self.tokens, &access)? else {
            return Ok(RefreshOutcome::NotFound);
        };
        if doc.refreshed.is_some() {
            return Ok(RefreshOutcome::AlreadyRefreshed(Box::new(doc)));
        }
        if doc.refresh_invalidated {
            return Ok(RefreshOutcome::NotFound);
        }
        self.check_new(&new_doc)?;
        doc.refreshed = Some(refreshed);
        self.put_new(&new_doc)?;
        self.put_existing(&doc)?;
        Ok(RefreshOutcome::Applied)
    }

    pub(super) fn invalidate(&mut self, what: Invalidation) -> Result<InvalidationCounts, OpError> {
        let (docs, access, refresh): (Vec<TokenDoc>, bool, bool) = match what {
            Invalidation::Access(h) => (
                get_doc(&self.tokens, &h)?.into_iter().collect(),
                true,
                false,
            ),
            Invalidation::Refresh(h) => {
                let doc = match get_refresh(&self.refresh, &h)? {
                    Some(a) => get_doc(&self.tokens, &a)?,
                    None => None,
                };
                (doc.into_iter().collect(), false, true)
            }
            Invalidation::Family(f) => {
                let hashes = self.family_members(&f)?;
                let docs = self
                    .load_all(&hashes)?
                    .into_iter()
                    .filter(|d| d.family == f)
                    .collect();
                (docs, true, true)
            }
            Invalidation::Owner { realm, username } => {
                let hashes = self.owned_by(realm.as_deref(), username.as_deref())?;
                let docs = self
                    .load_all(&hashes)?
                    .into_iter()
                    .filter(|d| owner_matches(d, realm.as_deref(), username.as_deref()))
                    .collect();
                (docs, true, true)
            }
            Invalidation::OidcSession { realm, sub, sid } => {
                // The realm's records through the owner index, then the session filter (no
                // session index: back-channel logouts are rare next to bearer checks).
                let hashes = if sub.is_some() || sid.is_some() {
                    self.owned_by(Some(&realm), None)?
                } else {
                    Vec::new()
                };
                let docs = self
                    .load_all(&hashes)?
                    .into_iter()
                    .filter(|d| session_matches(d, &realm, sub.as_deref(), sid.as_deref()))
                    .collect();
                (docs, true, true)
            }
        };
        // Every record was read and decoded above; only now write.
        let mut counts = InvalidationCounts::default();
        for mut doc in docs {
            let before = counts.invalidated;
            invalidate_doc(&mut doc, access, refresh, &mut counts);
            if counts.invalidated != before {
                self.put_existing(&doc)?;
            }
        }
        Ok(counts)
    }

    /// The docs under these access hashes; index entries without a doc are skipped.
    pub(super) fn load_all(&self, hashes: &[Hash32]) -> Result<Vec<TokenDoc>, OpError> {
        let mut docs = Vec::with_capacity(hashes.len());
        for h in hashes {
            docs.extend(get_doc(&self.tokens, h)?);
        }
        Ok(docs)
    }

    pub(super) fn family_members(&self, family: &Id16) -> Result<Vec<Hash32>, OpError> {
        scan_prefix(&self.family, &family.0)
    }

    pub(super) fn owned_by(
        &self,
        realm: Option<&str>,
        username: Option<&str>,
    ) -> Result<Vec<Hash32>, OpError> {
        let mut prefix = Vec::new();
        match (realm, username) {
            (None, None) => Ok(Vec::new()),
            (Some(r), u) => {
                push_name(&mut prefix, r);
                if let Some(u) = u {
                    push_name(&mut prefix, u);
                }
                scan_prefix(&self.owner, &prefix)
            }
            (None, Some(u)) => {
                // Skip scan: jump from realm to realm, scanning only (realm, u) in each.
                let mut found = Vec::new();
                let mut from: Vec<u8> = Vec::new();
                loop {
                    let next = match self.owner.range::<&[u8]>(from.as_slice()..)?.next() {
                        Some(entry) => entry?.0.value().to_vec(),
                        None => break,
                    };
                    let realm_end = next
                        .get(..4)
                        .map(|l| 4 + u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
                        .filter(|&end| end + 4 + 32 <= next.len())
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("owner index key of {} bytes", next.len()))
                        })?;
                    prefix.clear();
                    prefix.extend_from_slice(&next[..realm_end]);
                    push_name(&mut prefix, u);
                    found.extend(scan_prefix(&self.owner, &prefix)?);
                    match successor(&next[..realm_end]) {
                        Some(s) => from = s,
                        None => break,
                    }
                }
                Ok(found)
            }
        }
    }

    pub(super) fn sweep_expired(
        &mut self,
        now: UnixMillis,
        limit: usize,
    ) -> Result<usize, OpError> {
        let end = expiry_key(now, &[0xff; 32]);
        let expired = expired_keys(&self.expiry, &end, limit)?;
        for key in &expired {
            self.expiry.remove(key.as_slice())?;
            // A key too short to hold a hash leads nowhere: dropping it is all there is to do.
            let Ok(access) = trailing_hash(key) else {
                continue;
            };
            let doc = self
                .tokens
                .get(&access.0[..])?
                .map(|v| decode_doc(&access, v.value()));
            match doc {
                None => {}
                // A stale index entry: the doc under this hash is not expired.
                Some(Ok(doc)) if doc.expires_at() > now => {}
                Some(Ok(doc)) => {
                    self.tokens.remove(&access.0[..])?;
                    if let Some(r) = doc.refresh_hash {
                        if get_refresh(&self.refresh, &r).ok().flatten() == Some(access) {
                            self.refresh.remove(&r.0[..])?;
                        }
                    }
                    self.owner.remove(owner_key(&doc).as_slice())?;
                    self.family.remove(&family_key(&doc.family, &access)[..])?;
                }
                // A record that does not decode goes all the same; its other index entries
                // then dangle, which every reader tolerates.
                Some(Err(_)) => {
                    self.tokens.remove(&access.0[..])?;
                }
            }
        }
        Ok(expired.len())
    }
}

/// The access hashes of every index key starting with `prefix`.
pub(super) fn scan_prefix(
    index: &Table<'_, Bytes, ()>,
    prefix: &[u8],
) -> Result<Vec<Hash32>, OpError> {
    let mut out = Vec::new();
    for entry in index.range::<&[u8]>(prefix..)? {
        let (key, _) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(trailing_hash(key)?);
    }
    Ok(out)
}

/// Up to `limit` keys of an expiry index up to and including `end`.
pub(super) fn expired_keys(
    index: &Table<'_, Bytes, ()>,
    end: &[u8; 40],
    limit: usize,
) -> Result<Vec<Vec<u8>>, OpError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for entry in index.range::<&[u8]>(..=&end[..])? {
        out.push(entry?.0.value().to_vec());
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}
