//! Persistence. The [`Store`] trait is the only seam between oidc-realm and its database:
//! the embedded redb backend (default), an in-memory backend for tests, and later a shared
//! PostgreSQL backend for several nodes all implement it, and all pass the same
//! [`conformance`] suite.
//!
//! Every write that returns `Ok` is durable (for the redb backend: committed with
//! `Durability::Immediate`), except flow records and single-use records
//! ([`Store::put_once`]), which may be lost in a crash (a user whose login or connection
//! authorization was in flight simply starts again).

use crate::clock::UnixMillis;
use crate::model::{
    ClientRef, Hash32, Id16, OidcSession, RealmRef, Refreshed, TokenDoc, UserRecord,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

pub mod codec;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
mod flow_table;
mod logic;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
mod once_table;
pub mod postgres;
pub mod redb;
pub mod transfer;
mod users;

pub use self::postgres::PgStore;
pub use self::redb::RedbStore;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryStore;

/// The schema version written by this build; a store file with another version is refused
/// (there is no older version to migrate from yet).
pub const SCHEMA_VERSION: u32 = 1;

/// What a bearer check reads of a stored pair ([`Store::get_bearer`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BearerRecord {
    /// When the access token expires.
    pub expires_at: UnixMillis,
    /// The access token was invalidated.
    pub invalidated: bool,
    pub user: Arc<UserRecord>,
}

/// A pending login started by `prepare`, consumed once by `authenticate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub realm: String,
    /// A labelled hash of the facilitator that started the login (its user name and realm):
    /// the key of its quota of pending logins, and what [`Store::take_flow_if`] compares
    /// before consuming. Not a secret (it names a configured caller); the caller itself is
    /// also sealed.
    pub caller: Hash32,
    pub expires_at: UnixMillis,
    /// Sealed with a key derived from the state: nonce, PKCE verifier, caller.
    pub sealed: Vec<u8>,
}

/// Bounds on pending logins, checked by [`Store::insert_flow_within`] against the flows that
/// have not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Most pending logins of one caller (`FlowRecord::caller`).
    pub per_caller: usize,
    /// Most pending logins of all callers together: a safety cap on memory.
    pub total: usize,
}

/// What [`Store::insert_flow_within`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum FlowInsert {
    /// Stored.
    Inserted,
    /// A live flow under this state hash exists already; nothing was stored.
    StateInUse,
    /// The caller has `FlowLimits::per_caller` live flows already; nothing was stored.
    CallerFull,
    /// There are `FlowLimits::total` live flows already; nothing was stored.
    TableFull,
}

/// Which flow [`Store::take_flow_if`] may consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowCondition {
    /// The caller that must have started it (`None`: any caller).
    pub caller: Option<Hash32>,
    /// The realm it must be for (`None`: any realm).
    pub realm: Option<String>,
}

/// What [`Store::take_flow_if`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowTake {
    /// The flow matched and was removed: nobody else can take it.
    Taken(FlowRecord),
    /// No live flow under this state hash (unknown, taken, or expired — an expired one is
    /// removed).
    NotFound,
    /// The flow was started by another caller. It stays, untouched; here is a copy (for the
    /// log).
    OtherCaller(FlowRecord),
    /// The flow is for another realm (and was started by the condition's caller, if one was
    /// given). It stays, untouched; here is a copy.
    OtherRealm(FlowRecord),
}

/// A stored user profile: its record and the version the store gave it.
///
/// The record is opaque to the store (JSON of `crate::profiles::ProfileDoc`); the store owns
/// the version, as Elasticsearch's index owns `_seq_no`, so that a write can be made
/// conditional on the version it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProfile {
    /// 0 when the profile was created; one more on every write after that.
    pub seq_no: u64,
    pub json: Vec<u8>,
}

/// A generic stored record (connections defined through the API, per-user grants): opaque
/// bytes to the store, with a version the store owns (as for [`StoredProfile`]), so writes can
/// be compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// 0 when the record was created; one more on every write after that.
    pub version: u64,
    pub value: Vec<u8>,
}

/// The outcome of [`Store::refresh`].
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The pair was marked refreshed and the new pair stored.
    Applied,
    /// Someone refreshed it first; here is the pair as it is now (nothing was written).
    AlreadyRefreshed(Box<TokenDoc>),
    /// No pair holds this refresh token, or its refresh token was invalidated before it was
    /// ever refreshed (nothing was written).
    NotFound,
}

/// What to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One access token.
    Access(Hash32),
    /// One refresh token (its access token stays valid).
    Refresh(Hash32),
    /// Every access and refresh token of a family (refresh-token reuse detected).
    Family(Id16),
    /// Every access and refresh token of a realm, a user, or a user in a realm. With neither
    /// `realm` nor `username` it selects nothing (never "every token").
    Owner {
        realm: Option<String>,
        username: Option<String>,
    },
    /// Every access and refresh token of the OIDC logins of `realm` whose provider session
    /// matches (Back-Channel Logout): the same `sid` when given, and the same `sub` when
    /// given (both when both are). With neither it selects nothing.
    OidcSession {
        realm: String,
        sub: Option<String>,
        sid: Option<String>,
    },
}

/// What an invalidation did. Each access token and each refresh token counts once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvalidationCounts {
    pub invalidated: u64,
    pub previously_invalidated: u64,
    /// Access tokens whose state changed, so caches can drop them.
    pub access_hashes: Vec<Hash32>,
}

/// A store failure. The message is for the server log; clients get a generic 503/500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    #[error("a record with this key exists already")]
    Conflict,
    /// The store holds as many records of this kind as it may (e.g. pending logins): not an
    /// outage, and nothing a retry right away would fix.
    #[error("store full: {0}")]
    Full(&'static str),
}

/// Told about every commit of a store that groups writes into commits (the redb writer);
/// [`Store::observe_commits`] installs one. Called on the writer thread after each commit: it
/// must be quick and must not block.
pub trait CommitObserver: Send + Sync + 'static {
    /// A commit of `tasks` write tasks took `took`; `ok`: it succeeded.
    fn committed(&self, tasks: usize, took: std::time::Duration, ok: bool);
}

/// Whether a store can serve writes, as `GET /_health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// Writes fail: `reason` is a stable code for the health answer (`store_write_failed`,
    /// `store_writer_stopped`; PostgreSQL: `store_unreachable`); the detail was logged when it
    /// happened.
    Failing {
        reason: &'static str,
    },
}

/// A change another node (or this one) committed to a shared store, that caches must follow
/// ([`Store::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// These access tokens were invalidated: drop them from the bearer cache.
    AccessInvalidated(Vec<Hash32>),
    /// The stored role mappings changed: load them again.
    RoleMappings,
    /// The profile with this uid changed.
    Profile(String),
    /// Changes may have been missed (the notification connection was lost): drop every
    /// cache and load the role mappings again.
    Resync,
}

/// The persistence seam.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The changes committed by every node sharing this store, as they are committed; `None`
    /// for a store only this process writes (redb, memory), whose caches see every write
    /// already. A receiver that lags behind gets `RecvError::Lagged`: treat it as
    /// [`StoreChange::Resync`].
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        None
    }

    /// Install `observer` for the store's commits (replacing any earlier one). The default
    /// ignores it: a store without durable commits (the memory store) reports none.
    fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let _ = observer;
    }

    /// Whether writes work, from what the store saw (never a probe write). The default:
    /// [`StoreHealth::Ok`].
    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }

    /// Store a new pair (durably). A pair whose access or refresh hash exists → `Conflict`.
    async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError>;

    /// The pair holding this access token.
    async fn get_by_access(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError>;

    /// What a bearer check needs of the pair holding this access token. This default reads
    /// the whole pair; a backend may read less, and hand out one decoded user for the tokens
    /// of the same user (the embedded store does both).
    async fn get_bearer(&self, hash: &Hash32) -> Result<Option<BearerRecord>, StoreError> {
        Ok(self.get_by_access(hash).await?.map(|doc| BearerRecord {
            expires_at: doc.access_expires_at,
            invalidated: doc.access_invalidated,
            user: Arc::new(doc.user),
        }))
    }

    /// The pair holding this refresh token.
    async fn get_by_refresh(&self, hash: &Hash32) -> Result<Option<TokenDoc>, StoreError>;

    /// Atomically: if the pair holding refresh token `hash` has not been refreshed, record
    /// `refreshed` on it and store `new_doc` (durably), returning `Applied`; if it has, return it
    /// unchanged as `AlreadyRefreshed` and store nothing. A pair whose refresh token is
    /// invalidated and that has not been refreshed gives `NotFound` and nothing is stored: the
    /// caller's own validity check happens before this call, so without this rule a refresh
    /// racing a logout or a family invalidation could still mint a valid pair. (An already
    /// refreshed pair comes back as `AlreadyRefreshed` whatever its flags: the caller sees them.)
    async fn refresh(
        &self,
        hash: &Hash32,
        refreshed: Refreshed,
        new_doc: TokenDoc,
    ) -> Result<RefreshOutcome, StoreError>;

    /// Invalidate (durably) and count.
    async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, StoreError>;

    // --- Pending logins (flows) -----------------------------------------------------------
    //
    // Need not be durable. A flow with `expires_at <= now` is expired: it is never returned
    // and never counts toward a limit, whether or not it has been swept yet. The defaults
    // refuse, as for role mappings.

    /// Record a pending login under the hash of its state, if `limits` allow, atomically
    /// (the checks and the insert cannot interleave with another insert or take). Only flows
    /// that have not expired at `now` count, and an expired flow under this state hash does
    /// not make it `StateInUse`; expired flows may be removed on the way.
    async fn insert_flow_within(
        &self,
        state_hash: &Hash32,
        flow: FlowRecord,
        limits: &FlowLimits,
        now: UnixMillis,
    ) -> Result<FlowInsert, StoreError> {
        let _ = (state_hash, flow, limits, now);
        Err(StoreError::Unavailable(
            "this store backend does not keep pending logins".into(),
        ))
    }

    /// Remove and return the flow if it satisfies `condition`, atomically: the check and the
    /// removal cannot interleave with another take, so of concurrent takes at most one gets
    /// it, and a take that fails the condition leaves the flow for the right caller. The
    /// caller is checked before the realm. An expired flow is removed and `NotFound` returned.
    async fn take_flow_if(
        &self,
        state_hash: &Hash32,
        now: UnixMillis,
        condition: &FlowCondition,
    ) -> Result<FlowTake, StoreError> {
        let _ = (state_hash, now, condition);
        Err(StoreError::Unavailable(
            "this store backend does not keep pending logins".into(),
        ))
    }

    /// [`insert_flow_within`](Self::insert_flow_within) without limits, as of a time before
    /// every expiry (nothing counts as expired). Kept for callers that predate limits; the
    /// server does not use it. A live flow under this hash → `Conflict`.
    async fn insert_flow(&self, state_hash: &Hash32, flow: FlowRecord) -> Result<(), StoreError> {
        let unlimited = FlowLimits {
            per_caller: usize::MAX,
            total: usize::MAX,
        };
        match self
            .insert_flow_within(state_hash, flow, &unlimited, UnixMillis::MIN)
            .await?
        {
            FlowInsert::Inserted => Ok(()),
            FlowInsert::StateInUse => Err(StoreError::Conflict),
            // Unreachable with unlimited limits; a backend with a hard cap of its own may
            // still refuse.
            FlowInsert::CallerFull | FlowInsert::TableFull => {
                Err(StoreError::Full("too many pending logins"))
            }
        }
    }

    /// [`take_flow_if`](Self::take_flow_if) with no condition: remove and return the flow,
    /// atomically. Kept for callers that predate conditional takes; the server does not use
    /// it.
    async fn take_flow(
        &self,
        state_hash: &Hash32,
        now: UnixMillis,
    ) -> Result<Option<FlowRecord>, StoreError> {
        let any = FlowCondition {
            caller: None,
            realm: None,
        };
        match self.take_flow_if(state_hash, now, &any).await? {
            FlowTake::Taken(f) => Ok(Some(f)),
            _ => Ok(None),
        }
    }

    /// Delete up to `limit` pairs, flows and single-use records ([`put_once`](Self::put_once))
    /// that expired at or before `now`; returns how many.
    async fn sweep_expired(&self, now: UnixMillis, limit: usize) -> Result<usize, StoreError>;

    // --- Role mappings -------------------------------------------------------------------
    //
    // Stored as the API's JSON body (bytes), keyed by name; callers validate and compile
    // before writing and on every load. The defaults refuse, so a backend that lacks them
    // fails the conformance suite rather than the build.

    /// Store (durably) the mapping `name`, replacing any previous one: `true` if it was
    /// created, `false` if replaced.
    async fn put_role_mapping(&self, name: &str, json: Vec<u8>) -> Result<bool, StoreError> {
        let _ = (name, json);
        Err(StoreError::Unavailable(
            "this store backend does not keep role mappings".into(),
        ))
    }

    /// Every stored mapping as `(name, json)`, in name order.
    async fn get_role_mappings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Err(StoreError::Unavailable(
            "this store backend does not keep role mappings".into(),
        ))
    }

    /// Delete (durably) the mapping `name`; whether it existed.
    async fn delete_role_mapping(&self, name: &str) -> Result<bool, StoreError> {
        let _ = name;
        Err(StoreError::Unavailable(
            "this store backend does not keep role mappings".into(),
        ))
    }

    // --- Generic records -------------------------------------------------------------------
    //
    // Versioned records by `(kind, key)`: `kind` is a short ASCII name chosen by the caller
    // (`connection`, `connection_grant`), `key` any UTF-8 text without NUL. Writes are durable
    // and compare-and-set on the version, with the rule of [`next_profile_seq_no`]. Records
    // never expire. The defaults refuse, as for role mappings.

    /// The record `(kind, key)`, with its version.
    async fn get_record(&self, kind: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let _ = (kind, key);
        Err(StoreError::Unavailable(
            "this store backend does not keep records".into(),
        ))
    }

    /// Every record of `kind` whose key starts with `prefix`, as `(key, record)` in key order
    /// (byte order of the UTF-8 keys).
    async fn list_records(
        &self,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        let _ = (kind, prefix);
        Err(StoreError::Unavailable(
            "this store backend does not keep records".into(),
        ))
    }

    /// Write (durably) the record `(kind, key)` and return its new version: `expected: None`
    /// creates it (exists already → `Conflict`, version 0); `Some(n)` replaces version `n`
    /// (anything else → `Conflict`, nothing written; new version `n + 1`).
    async fn put_record(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let _ = (kind, key, value, expected);
        Err(StoreError::Unavailable(
            "this store backend does not keep records".into(),
        ))
    }

    /// Delete (durably) the record `(kind, key)`; with `expected: Some(n)` only if its version
    /// is `n` (another version → `Conflict`). Whether it existed (and was deleted).
    async fn delete_record(
        &self,
        kind: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let _ = (kind, key, expected);
        Err(StoreError::Unavailable(
            "this store backend does not keep records".into(),
        ))
    }

    // --- Single-use expiring records ------------------------------------------------------
    //
    // Like flows: need not be durable, a record with `expires_at <= now` is expired (never
    // returned), and `sweep_expired` removes expired ones too. Used for pending connection
    // authorizations. The defaults refuse.

    /// Store `value` under `(kind, key)` until `expires_at`. A live record under that key →
    /// `Conflict` (an expired one is replaced).
    async fn put_once(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let _ = (kind, key, value, expires_at, now);
        Err(StoreError::Unavailable(
            "this store backend does not keep single-use records".into(),
        ))
    }

    /// Remove and return the live record `(kind, key)`, atomically: of concurrent takes at
    /// most one gets it. An expired record is removed and `None` returned.
    async fn take_once(
        &self,
        kind: &str,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = (kind, key, now);
        Err(StoreError::Unavailable(
            "this store backend does not keep single-use records".into(),
        ))
    }

    // --- User profiles ---------------------------------------------------------------------
    //
    // Keyed by profile uid; the record is bytes to the store (see [`StoredProfile`]). Writes
    // are compare-and-set on the version, so two activations racing on one profile cannot both
    // win: the loser gets `Conflict` and starts again from what the winner wrote. Profiles
    // never expire and are never swept. The defaults refuse, as for role mappings.

    /// The profile `uid`, with its version.
    async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
        let _ = uid;
        Err(StoreError::Unavailable(
            "this store backend does not keep user profiles".into(),
        ))
    }

    /// Write (durably) the profile `uid` and return its new version.
    ///
    /// - `expected_seq_no: None` creates it: a profile under `uid` exists already →
    ///   `Conflict`. The new version is 0.
    /// - `expected_seq_no: Some(n)` replaces it: unless a profile under `uid` exists with
    ///   version `n` → `Conflict` (nothing written). The new version is `n + 1`.
    async fn put_profile(
        &self,
        uid: &str,
        json: Vec<u8>,
        expected_seq_no: Option<u64>,
    ) -> Result<u64, StoreError> {
        let _ = (uid, json, expected_seq_no);
        Err(StoreError::Unavailable(
            "this store backend does not keep user profiles".into(),
        ))
    }
}

/// Export and import (`oidc-realm export` / `import`, [`transfer`]): whole-store reads in
/// pages and a restore that keeps a profile's version. Separate from [`Store`] so that
/// backends add them without touching the serving seam; every backend implements both.
#[async_trait]
pub trait StoreTransfer: Store {
    /// Up to `limit` pairs whose access hash is greater than `after` (from the first:
    /// `None`), in access-hash order.
    async fn tokens_after(
        &self,
        after: Option<Hash32>,
        limit: usize,
    ) -> Result<Vec<TokenDoc>, StoreError>;

    /// Up to `limit` profiles whose uid is greater than `after` (bytewise), in uid order.
    async fn profiles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, StoredProfile)>, StoreError>;

    /// Write (durably) the profile `uid` as it is, version included, replacing any.
    async fn restore_profile(&self, uid: &str, profile: StoredProfile) -> Result<(), StoreError>;

    /// Up to `limit` generic records (every kind) after `after` (`(kind, key)` of the last one
    /// of the previous page; from the first: `None`), as `(kind, key, record)`, in an order
    /// of the backend's own that is the same from page to page.
    async fn records_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, StoredRecord)>, StoreError>;

    /// Write (durably) the record `(kind, key)` as it is, version included, replacing any.
    async fn restore_record(
        &self,
        kind: &str,
        key: &str,
        record: StoredRecord,
    ) -> Result<(), StoreError>;
}

/// The compare-and-set rule of [`Store::put_profile`], for backends to share: the version to
/// write, given the version stored now (`None`: no profile) and the one the caller expects.
pub fn next_profile_seq_no(
    current: Option<u64>,
    expected_seq_no: Option<u64>,
) -> Result<u64, StoreError> {
    match (current, expected_seq_no) {
        (None, None) => Ok(0),
        (Some(now), Some(expected)) if now == expected => {
            now.checked_add(1).ok_or(StoreError::Conflict)
        }
        _ => Err(StoreError::Conflict),
    }
}
