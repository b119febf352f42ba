//! The embedded default backend: redb, with group commit.
//!
//! # Layout
//!
//! All keys are byte strings; hashes and ids are stored raw, times as big-endian `i64` with the
//! sign bit flipped (so byte order is time order, negative times included).
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | [`SCHEMA_VERSION`] |
//! | `tokens` | access hash | the [`TokenDoc`], in the binary form of [`codec`] |
//! | `token_refresh` | refresh hash | access hash |
//! | `token_owner` | `len realm ++ realm ++ len username ++ username ++ access hash` | `()` |
//! | `token_family` | `family ++ access hash` | `()` |
//! | `token_expiry` | `expires_at ++ access hash` | `()` |
//! | `role_mappings` | mapping name (UTF-8) | the mapping's API JSON body |
//! | `profiles` | profile uid (UTF-8) | `seq_no` (big-endian `u64`) `++` the profile record (JSON) |
//!
//! (`len` is a big-endian `u32`, so any byte may appear in a name.) The owner index is keyed
//! realm first: `(realm, username)` and `realm` are prefix scans, `username` alone is a skip
//! scan that visits each realm once. The indexed fields of a doc never change after insert
//! (refresh and invalidation only touch flags), so updates rewrite the `tokens` value only.
//!
//! # Writes
//!
//! Every write runs on one writer thread, fed by a channel. It takes the first waiting task,
//! drains up to [`MAX_BATCH`] more, runs them in order inside one write transaction and
//! commits with `Durability::Immediate`, and only then answers each caller. A task that fails on its own (a `Conflict`, a corrupt
//! record) does so before writing anything, so the other tasks of its batch still commit; a
//! storage failure (or a panic) aborts the batch and every task of it gets `Unavailable`.
//! `refresh` is atomic because nothing else writes in between. Closing (or dropping) the store
//! lets the writer finish every queued task before it stops.
//!
//! Reads (`get_by_access`, `get_by_refresh`) open a read transaction on the caller's thread:
//! they never wait for the writer.
//!
//! # Flows
//!
//! Pending logins are not written to the file: they live in memory (single-use, limited per
//! caller and in total, removed when expired; see `memory::FlowTable`). A restart loses them,
//! which the contract allows (the user logs in again), and a login then costs one durable
//! commit (its tokens) instead of three commits.

use super::codec;
use super::memory::{invalidate_doc, owner_matches, FlowTable};
use super::*;
use ::redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, StorageError, Table,
    TableDefinition, TableError, WriteTransaction,
};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

type Bytes = &'static [u8];

const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
const TOKENS: TableDefinition<Bytes, Bytes> = TableDefinition::new("tokens");
const TOKEN_REFRESH: TableDefinition<Bytes, Bytes> = TableDefinition::new("token_refresh");
const TOKEN_OWNER: TableDefinition<Bytes, ()> = TableDefinition::new("token_owner");
const TOKEN_FAMILY: TableDefinition<Bytes, ()> = TableDefinition::new("token_family");
const TOKEN_EXPIRY: TableDefinition<Bytes, ()> = TableDefinition::new("token_expiry");
/// Added after schema version 1 without a version bump: a new table only, created (empty) by
/// [`Tables::open`] when an older file is opened.
const ROLE_MAPPINGS: TableDefinition<&str, Bytes> = TableDefinition::new("role_mappings");
/// Added after schema version 1 without a version bump, like `role_mappings`.
const PROFILES: TableDefinition<&str, Bytes> = TableDefinition::new("profiles");

const SCHEMA_KEY: &str = "schema_version";

/// The most tasks committed together.
pub const MAX_BATCH: usize = 256;

/// See the module documentation.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    tasks: Mutex<Option<mpsc::Sender<Box<dyn Task>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    flows: FlowTable,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Open the store at `path`, creating it (and its parent directories) if missing. A file
    /// that was not closed cleanly is recovered by redb itself (which may take a while on a
    /// large file); no integrity check runs otherwise. A file written by a newer, unknown
    /// schema version is refused.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let shown = path.display().to_string();
        // redb runs its recovery pass on a file it has just created too; only an existing
        // file that was not closed cleanly is worth a warning.
        let existed = path.exists();
        let db = Database::builder()
            .set_repair_callback(move |session| {
                if existed {
                    tracing::warn!(
                        file = %shown,
                        progress = session.progress(),
                        "store file was not closed cleanly; recovering"
                    );
                }
            })
            .create(path)
            .map_err(|e| open_error(path, e))?;
        init_schema(&db, path)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start store writer: {e}")))?;
        Ok(RedbStore {
            db,
            path: path.to_owned(),
            tasks: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            flows: FlowTable::default(),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting writes, finish the queued ones and stop the writer thread. Blocks until
    /// then (one batch: milliseconds). Reads keep working; later writes get `Unavailable`.
    /// Dropping the store does the same.
    pub fn close(&self) {
        drop(lock(&self.tasks).take());
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }

    /// Hand `f` to the writer and wait for its result, committed durably.
    async fn submit<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>) -> Result<T, OpError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task = Box::new(PendingTask {
            run: Some(f),
            result: None,
            reply,
        });
        {
            let tasks = lock(&self.tasks);
            let sender = tasks
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("store closed".into()))?;
            sender
                .send(task)
                .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Opening and the schema

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let file = path.display();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "store file {file} is already open (by another oidc-realm process?)"
        )),
        DatabaseError::Storage(StorageError::Corrupted(why)) => StoreError::Corrupt(format!(
            "store file {file} is not a usable redb file: {why}"
        )),
        e => StoreError::Unavailable(format!("cannot open store file {file}: {e}")),
    }
}

/// Write the schema version into a new file, check it in an existing one, migrate an older one,
/// and make sure every table exists (so readers never meet a missing table).
fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let file = path.display();
    let txn = db.begin_write().map_err(unavailable)?;
    {
        let mut meta = txn.open_table(META).map_err(table_error)?;
        let found = meta
            .get(SCHEMA_KEY)
            .map_err(unavailable)?
            .map(|v| v.value());
        match found {
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Unavailable(format!(
                    "store file {file} has schema version {v}, newer than the version {SCHEMA_VERSION} \
                     this build knows: run a newer oidc-realm, or point it to another file"
                )));
            }
            Some(v) => {
                migrate(&txn, v).map_err(|e| match e {
                    StoreError::Unavailable(why) => StoreError::Unavailable(format!(
                        "store file {file}: migration from schema version {v} failed: {why}"
                    )),
                    e => e,
                })?;
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(unavailable)?;
            }
            None => {
                let others = txn
                    .list_tables()
                    .map_err(unavailable)?
                    .filter(|t| ::redb::TableHandle::name(t) != "meta")
                    .count();
                if others > 0 {
                    return Err(StoreError::Corrupt(format!(
                        "store file {file} holds tables but no schema version; refusing to use it"
                    )));
                }
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(unavailable)?;
            }
        }
    }
    Tables::open(&txn).map_err(|e| match e {
        OpError::Op(e) => e,
        OpError::Txn(why) => StoreError::Unavailable(why),
    })?;
    txn.commit().map_err(unavailable)
}

/// Bring a file from schema version `from` up to [`SCHEMA_VERSION`] inside the opening
/// transaction (so a failed migration leaves the file as it was).
///
/// Version 1 is the first schema: nothing older exists. When the schema changes, bump
/// [`SCHEMA_VERSION`] and add one step per old version here, applied in order, e.g.
/// `if version == 1 { migrate_1_to_2(txn)?; version = 2; }`.
fn migrate(_txn: &WriteTransaction, from: u32) -> Result<(), StoreError> {
    Err(StoreError::Unavailable(format!(
        "no migration from schema version {from}"
    )))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a task on the writer failed.
enum OpError {
    /// This task alone failed, before writing anything; the rest of the batch goes on.
    Op(StoreError),
    /// The transaction can no longer be trusted: the whole batch is aborted.
    Txn(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Op(e)
    }
}

impl From<StorageError> for OpError {
    fn from(e: StorageError) -> Self {
        OpError::Txn(e.to_string())
    }
}

fn unavailable(e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn table_error(e: TableError) -> StoreError {
    match e {
        TableError::Storage(e) => unavailable(e),
        e => StoreError::Corrupt(format!("unexpected table layout: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and values

fn time_key(t: UnixMillis) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn expiry_key(t: UnixMillis, hash: &[u8; 32]) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&time_key(t));
    k[8..].copy_from_slice(hash);
    k
}

fn family_key(family: &Id16, access: &Hash32) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..16].copy_from_slice(&family.0);
    k[16..].copy_from_slice(&access.0);
    k
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn owner_key(doc: &TokenDoc) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 32 + doc.user.realm.name.len() + doc.user.username.len());
    push_name(&mut k, &doc.user.realm.name);
    push_name(&mut k, &doc.user.username);
    k.extend_from_slice(&doc.access_hash.0);
    k
}

/// The access hash at the end of an index key.
fn trailing_hash(key: &[u8]) -> Result<Hash32, StoreError> {
    key.len()
        .checked_sub(32)
        .and_then(|at| key[at..].try_into().ok())
        .map(Hash32)
        .ok_or_else(|| StoreError::Corrupt(format!("index key of {} bytes", key.len())))
}

fn hash_value(bytes: &[u8]) -> Result<Hash32, StoreError> {
    bytes
        .try_into()
        .map(Hash32)
        .map_err(|_| StoreError::Corrupt(format!("hash value of {} bytes", bytes.len())))
}

fn decode_doc(key: &Hash32, bytes: &[u8]) -> Result<TokenDoc, StoreError> {
    let doc = codec::decode_token(bytes)
        .map_err(|e| StoreError::Corrupt(format!("token record {key:?}: {e}")))?;
    if doc.access_hash != *key {
        return Err(StoreError::Corrupt(format!(
            "token record {key:?} holds access hash {:?}",
            doc.access_hash
        )));
    }
    Ok(doc)
}

/// A `profiles` value: the version, then the record.
fn encode_profile(seq_no: u64, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + json.len());
    v.extend_from_slice(&seq_no.to_be_bytes());
    v.extend_from_slice(json);
    v
}

fn decode_profile(uid: &str, bytes: &[u8]) -> Result<StoredProfile, StoreError> {
    let (seq, json) = bytes.split_first_chunk::<8>().ok_or_else(|| {
        StoreError::Corrupt(format!("profile record {uid:?} of {} bytes", bytes.len()))
    })?;
    Ok(StoredProfile {
        seq_no: u64::from_be_bytes(*seq),
        json: json.to_vec(),
    })
}

fn get_profile(
    profiles: &impl ReadableTable<&'static str, Bytes>,
    uid: &str,
) -> Result<Option<StoredProfile>, OpError> {
    match profiles.get(uid)? {
        Some(v) => Ok(Some(decode_profile(uid, v.value())?)),
        None => Ok(None),
    }
}

fn get_doc(
    tokens: &impl ReadableTable<Bytes, Bytes>,
    access: &Hash32,
) -> Result<Option<TokenDoc>, OpError> {
    match tokens.get(&access.0[..])? {
        Some(v) => Ok(Some(decode_doc(access, v.value())?)),
        None => Ok(None),
    }
}

fn get_refresh(
    by_refresh: &impl ReadableTable<Bytes, Bytes>,
    refresh: &Hash32,
) -> Result<Option<Hash32>, OpError> {
    match by_refresh.get(&refresh.0[..])? {
        Some(v) => Ok(Some(hash_value(v.value())?)),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

impl RedbStore {
    fn read<T>(
        &self,
        f: impl FnOnce(&::redb::ReadTransaction) -> Result<T, OpError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        f(&txn).map_err(|e| match e {
            OpError::Op(e) => e,
            OpError::Txn(why) => StoreError::Unavailable(why),
        })
    }
}

fn open_read(
    txn: &::redb::ReadTransaction,
    def: TableDefinition<Bytes, Bytes>,
) -> Result<::redb::ReadOnlyTable<Bytes, Bytes>, OpError> {
    txn.open_table(def).map_err(|e| OpError::Op(table_error(e)))
}

// ---------------------------------------------------------------------------------------------
// The writer

/// The tables of one write transaction.
struct Tables<'t> {
    tokens: Table<'t, Bytes, Bytes>,
    refresh: Table<'t, Bytes, Bytes>,
    owner: Table<'t, Bytes, ()>,
    family: Table<'t, Bytes, ()>,
    expiry: Table<'t, Bytes, ()>,
    role_mappings: Table<'t, &'static str, Bytes>,
    profiles: Table<'t, &'static str, Bytes>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, OpError> {
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
        })
    }

    fn check_new(&self, doc: &TokenDoc) -> Result<(), OpError> {
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
    fn put_new(&mut self, doc: &TokenDoc) -> Result<(), OpError> {
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
    fn put_existing(&mut self, doc: &TokenDoc) -> Result<(), OpError> {
        let value = codec::encode_token(doc);
        self.tokens
            .insert(&doc.access_hash.0[..], value.as_slice())?;
        Ok(())
    }

    fn insert_token(&mut self, doc: TokenDoc) -> Result<(), OpError> {
        self.check_new(&doc)?;
        self.put_new(&doc)
    }

    fn refresh(
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

    fn invalidate(&mut self, what: Invalidation) -> Result<InvalidationCounts, OpError> {
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
    fn load_all(&self, hashes: &[Hash32]) -> Result<Vec<TokenDoc>, OpError> {
        let mut docs = Vec::with_capacity(hashes.len());
        for h in hashes {
            docs.extend(get_doc(&self.tokens, h)?);
        }
        Ok(docs)
    }

    fn family_members(&self, family: &Id16) -> Result<Vec<Hash32>, OpError> {
        scan_prefix(&self.family, &family.0)
    }

    fn owned_by(
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

    fn sweep_expired(&mut self, now: UnixMillis, limit: usize) -> Result<usize, OpError> {
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
fn scan_prefix(index: &Table<'_, Bytes, ()>, prefix: &[u8]) -> Result<Vec<Hash32>, OpError> {
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
fn expired_keys(
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

/// The smallest byte string greater than every string starting with `prefix`.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// A write task on its way through the writer.
trait Task: Send {
    /// Run inside the batch's transaction, keeping the result. `Err`: abort the batch.
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), String>;
    /// Answer the caller: the kept result, or `Unavailable` if the batch failed.
    fn finish(self: Box<Self>, batch_failure: Option<&str>);
}

struct PendingTask<T, F> {
    run: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Task for PendingTask<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Tables<'_>) -> Result<T, OpError> + Send + 'static,
{
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), String> {
        let Some(run) = self.run.take() else {
            return Ok(());
        };
        match run(tables) {
            Ok(v) => self.result = Some(Ok(v)),
            Err(OpError::Op(e)) => self.result = Some(Err(e)),
            Err(OpError::Txn(why)) => return Err(why),
        }
        Ok(())
    }

    fn finish(self: Box<Self>, batch_failure: Option<&str>) {
        let result = match (batch_failure, self.result) {
            (None, Some(result)) => result,
            (Some(why), _) => Err(StoreError::Unavailable(why.to_owned())),
            (None, None) => Err(StoreError::Unavailable("write task did not run".into())),
        };
        // The caller may have gone away; its write stands all the same.
        let _ = self.reply.send(result);
    }
}

fn writer_loop(db: &Database, tasks: &mpsc::Receiver<Box<dyn Task>>) {
    // `recv` keeps returning queued tasks after the store dropped its sender: all are done.
    while let Ok(first) = tasks.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match tasks.try_recv() {
                Ok(task) => batch.push(task),
                Err(_) => break,
            }
        }
        // A panic in a task (a bug) fails its batch, not every write to come.
        let failure =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_batch(db, &mut batch)))
                .unwrap_or_else(|_| Err("store write batch panicked".into()))
                .err();
        if let Some(why) = &failure {
            tracing::error!(tasks = batch.len(), "store write batch failed: {why}");
        }
        for task in batch {
            task.finish(failure.as_deref());
        }
    }
}

/// Run every task of `batch` in one transaction and commit it.
fn run_batch(db: &Database, batch: &mut [Box<dyn Task>]) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| e.to_string())?;
    let ran = (|| {
        let mut tables = Tables::open(&txn).map_err(|e| match e {
            OpError::Op(e) => e.to_string(),
            OpError::Txn(why) => why,
        })?;
        for task in batch.iter_mut() {
            task.run(&mut tables)?;
        }
        Ok(())
    })();
    match ran {
        Ok(()) => txn.commit().map_err(|e| format!("commit failed: {e}")),
        Err(why) => {
            if let Err(e) = txn.abort() {
                tracing::error!("aborting store write batch failed: {e}");
            }
            Err(why)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The trait

#[async_trait]
impl Store for RedbStore {
    async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError> {
        self.submit(move |t| t.insert_token(doc)).await
    }

    async fn get_by_access(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.read(|txn| get_doc(&open_read(txn, TOKENS)?, hash))
    }

    async fn get_by_refresh(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.read(
            |txn| match get_refresh(&open_read(txn, TOKEN_REFRESH)?, hash)? {
                Some(access) => get_doc(&open_read(txn, TOKENS)?, &access),
                None => Ok(None),
            },
        )
    }

    async fn refresh(
        &self,
        hash: &Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    ) -> Result<RefreshOutcome, StoreError> {
        let hash = *hash;
        self.submit(move |t| t.refresh(&hash, refreshed, new_doc))
            .await
    }

    async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, StoreError> {
        self.submit(move |t| t.invalidate(what)).await
    }

    async fn insert_flow_within(
        &self,
        state_hash: &Hash32,
        flow: FlowRecord,
        limits: &FlowLimits,
        now: UnixMillis,
    ) -> Result<FlowInsert, StoreError> {
        Ok(self.flows.insert(state_hash, flow, limits, now))
    }

    async fn take_flow_if(
        &self,
        state_hash: &Hash32,
        now: UnixMillis,
        condition: &FlowCondition,
    ) -> Result<FlowTake, StoreError> {
        Ok(self.flows.take_if(state_hash, now, condition))
    }

    async fn sweep_expired(&self, now: UnixMillis, limit: usize) -> Result<usize, StoreError> {
        let tokens = self.submit(move |t| t.sweep_expired(now, limit)).await?;
        Ok(tokens + self.flows.sweep(now, limit - tokens))
    }

    async fn put_role_mapping(&self, name: &str, json: Vec<u8>) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.submit(move |t| {
            let previous = t
                .role_mappings
                .insert(name.as_str(), json.as_slice())?
                .is_some();
            Ok(!previous)
        })
        .await
    }

    async fn get_role_mappings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(ROLE_MAPPINGS)
                .map_err(|e| OpError::Op(table_error(e)))?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    async fn delete_role_mapping(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.submit(move |t| Ok(t.role_mappings.remove(name.as_str())?.is_some()))
            .await
    }

    async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
        self.read(|txn| {
            let table = txn
                .open_table(PROFILES)
                .map_err(|e| OpError::Op(table_error(e)))?;
            get_profile(&table, uid)
        })
    }

    async fn put_profile(
        &self,
        uid: &str,
        json: Vec<u8>,
        expected_seq_no: Option<u64>,
    ) -> Result<u64, StoreError> {
        let uid = uid.to_string();
        self.submit(move |t| {
            // Checked on the writer, so nothing writes between the check and the write.
            let current = get_profile(&t.profiles, &uid)?.map(|p| p.seq_no);
            let seq_no = next_profile_seq_no(current, expected_seq_no)?;
            t.profiles
                .insert(uid.as_str(), encode_profile(seq_no, &json).as_slice())?;
            Ok(seq_no)
        })
        .await
    }
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

    #[tokio::test]
    async fn a_panicking_task_fails_its_batch_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
        let boom = store
            .submit(|_: &mut Tables<'_>| -> Result<(), OpError> { panic!("a bug in a task") })
            .await;
        assert!(matches!(boom, Err(StoreError::Unavailable(_))), "{boom:?}");
        let doc = conformance::token(1, true, conformance::family(1), "oidc1", "alice");
        store.insert_token(doc.clone()).await.unwrap();
        assert_eq!(
            store.get_by_access(&doc.access_hash).await.unwrap(),
            Some(doc)
        );
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
