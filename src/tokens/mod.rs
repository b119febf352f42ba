//! The token service: opaque access and refresh tokens, as Elasticsearch's token service
//! issues them, stored only as hashes.
//!
//! - A token is a version prefix and 256 random bits from the OS CSPRNG, base64url
//!   (`ora2_…` for access, `orr2_…` for refresh; `ora1_`/`orr1_` tokens of the first
//!   format are still read: `format.rs`). It is returned once.
//! - The store keeps SHA-256 of the token (with a domain label); data that only the token
//!   holder may read (the superseding pair of a refresh, OIDC logout data) is sealed with
//!   AES-256-GCM under a key derived from the token with another label.
//! - Refresh follows Elasticsearch (spec §3.3): one use; repeats within 30 s return the same
//!   pair, even when they race; later reuse is refused and, beyond Elasticsearch, invalidates
//!   the whole family (a stolen refresh token is detected) unless `token.refresh_reuse:
//!   refuse` asks for Elasticsearch's behaviour (refuse only).

mod cache;
pub mod format;

use crate::clock::{millis, SharedClock, UnixMillis};
use crate::config::RefreshReuse;
use crate::model::{ClientRef, Id16, Refreshed, TokenDoc, UserRecord};
use crate::store::{Invalidation, InvalidationCounts, RefreshOutcome, Store, StoreError};
pub use cache::Bearer;

/// The bearer cache's occupancy (`TokenService::cache_usage`), for metrics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: u64,
    /// The sum of the entries' estimated sizes (what `token.cache_size` bounds).
    pub estimated_bytes: u64,
    /// `token.cache_size`.
    pub capacity_bytes: u64,
}
use cache::BearerCache;
use format::{TokenKind, TokenSecret};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Elasticsearch's refresh reuse window.
pub const REFRESH_WINDOW: Duration = Duration::from_secs(30);

/// A freshly minted pair, in the clear, returned once. No `PartialEq` outside tests: tokens
/// are compared in constant time only.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "test-util"), derive(PartialEq, Eq))]
pub struct IssuedPair {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for IssuedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedPair([redacted])")
    }
}

/// Lifetimes, from `token.*` in the config.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
}

impl Lifetimes {
    /// The lifetimes `token.timeout` and `token.refresh_timeout` set.
    pub fn of(settings: &crate::config::TokenSettings) -> Self {
        Lifetimes {
            access: settings.timeout,
            refresh: settings.refresh_timeout,
        }
    }
}

/// Why a refresh was refused; each maps to Elasticsearch's `invalid_grant` description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("could not refresh the requested token")]
    Unknown,
    #[error("token document has expired")]
    Expired,
    #[error("token has been invalidated")]
    Invalidated,
    #[error("tokens must be refreshed by the creating client")]
    OtherClient,
    #[error("token has already been refreshed more than 30 seconds in the past")]
    ReusedAfterWindow,
    #[error("token has been refreshed more than 30 seconds in the future, clock skew too great")]
    ClockSkew,
}

impl RefreshError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            RefreshError::Unknown => "refresh_token_unknown",
            RefreshError::Expired => "refresh_token_expired",
            RefreshError::Invalidated => "refresh_token_invalidated",
            RefreshError::OtherClient => "refresh_token_other_client",
            RefreshError::ReusedAfterWindow => "refresh_token_reused",
            RefreshError::ClockSkew => "refresh_token_clock_skew",
        }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("no such access token")]
    Unknown,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token has been invalidated")]
    Invalidated,
}

/// Errors of the token service: a refused refresh, or the store.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Bearer(BearerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(SealError),
}

/// What failed when data sealed with a token (or to be sealed with one) was handled: each is
/// a bug or corrupt storage, never a client mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A new pair could not be encoded before sealing it with the refresh token.
    #[error("the new token pair could not be encoded for sealing")]
    EncodePair,
    /// The logout data of a login (realm, ID token) could not be encoded.
    #[error("the logout data could not be encoded for sealing")]
    EncodeLogout,
    /// The store reported a concurrent refresh, but the pair records none.
    #[error("the store reported a concurrent refresh of a pair that records none")]
    RaceWithoutRefresh,
    /// The pair a refresh produced, sealed with the refresh token, did not open or decode.
    #[error("the superseding pair sealed with the refresh token could not be opened")]
    SupersedingPair,
}

/// The token service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenService {
    store: Arc<dyn Store>,
    clock: SharedClock,
    cache: Arc<BearerCache>,
}

impl TokenService {
    /// A service whose bearer cache holds up to [`DEFAULT_TOKEN_CACHE_SIZE`] estimated bytes.
    ///
    /// [`DEFAULT_TOKEN_CACHE_SIZE`]: crate::config::DEFAULT_TOKEN_CACHE_SIZE
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self::with_cache_bytes(store, clock, crate::config::DEFAULT_TOKEN_CACHE_SIZE as u64)
    }

    /// A service whose bearer cache holds up to `cache_bytes` estimated bytes
    /// (`token.cache_size`).
    pub fn with_cache_bytes(store: Arc<dyn Store>, clock: SharedClock, cache_bytes: u64) -> Self {
        Self {
            store,
            clock,
            cache: Arc::new(BearerCache::new(cache_bytes)),
        }
    }

    /// [`with_cache_bytes`](Self::with_cache_bytes) for a store shared by several nodes:
    /// cached bearer records are trusted for `cache_ttl` at most (the backstop behind
    /// [`apply_change`](Self::apply_change)).
    pub fn with_cache_ttl(
        store: Arc<dyn Store>,
        clock: SharedClock,
        cache_bytes: u64,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            store,
            cache: Arc::new(BearerCache::with_ttl(cache_bytes, cache_ttl, clock.clone())),
            clock,
        }
    }

    /// Follow a change another node made to the shared store: drop the invalidated access
    /// tokens from the cache (or everything, on a resync).
    pub fn apply_change(&self, change: &crate::store::StoreChange) {
        use crate::store::StoreChange;
        match change {
            StoreChange::AccessInvalidated(hashes) => {
                // As for a local invalidation: a lookup that read before must not cache.
                self.cache.begin_invalidation();
                for h in hashes {
                    self.cache.remove(h);
                }
            }
            StoreChange::Resync => self.cache.clear(),
            StoreChange::RoleMappings | StoreChange::Profile(_) => {}
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What the bearer cache holds now.
    pub fn cache_usage(&self) -> CacheUsage {
        CacheUsage {
            entries: self.cache.len() as u64,
            estimated_bytes: self.cache.weight(),
            capacity_bytes: self.cache.capacity(),
        }
    }

    /// Mint and durably store a pair for `user`, created by `client`. `with_refresh` is false
    /// for `client_credentials`. `sealed_data` (OIDC logout data) is sealed under the access
    /// token.
    pub async fn issue(
        &self,
        user: UserRecord,
        client: ClientRef,
        lifetimes: Lifetimes,
        with_refresh: bool,
        sealed_data: Option<&[u8]>,
    ) -> Result<IssuedPair, TokenError> {
        self.issue_for_session(user, client, lifetimes, with_refresh, sealed_data, None)
            .await
    }

    /// [`issue`](Self::issue) for an OIDC login: the provider's session (`sub`, `sid`) is kept
    /// with the pair and every pair refreshed from it (Back-Channel Logout selects by it).
    pub async fn issue_for_session(
        &self,
        user: UserRecord,
        client: ClientRef,
        lifetimes: Lifetimes,
        with_refresh: bool,
        sealed_data: Option<&[u8]>,
        session: Option<crate::model::OidcSession>,
    ) -> Result<IssuedPair, TokenError> {
        let (pair, mut doc) = self.mint(
            user,
            client,
            lifetimes,
            with_refresh,
            crate::crypto::time_ordered_id(self.clock.now_millis()),
            sealed_data,
        );
        doc.oidc_session = session;
        self.store.insert_token(doc).await?;
        Ok(pair)
    }

    fn mint(
        &self,
        user: UserRecord,
        client: ClientRef,
        lifetimes: Lifetimes,
        with_refresh: bool,
        family: Id16,
        sealed_data: Option<&[u8]>,
    ) -> (IssuedPair, TokenDoc) {
        let now = self.clock.now_millis();
        let access = TokenSecret::generate(TokenKind::Access, now);
        let refresh = with_refresh.then(|| TokenSecret::generate(TokenKind::Refresh, now));
        let doc = TokenDoc {
            access_hash: access.lookup_hash(),
            refresh_hash: refresh.as_ref().map(|r| r.lookup_hash()),
            family,
            user,
            client,
            created_at: now,
            access_expires_at: now.saturating_add(millis(lifetimes.access)),
            refresh_expires_at: with_refresh.then(|| now.saturating_add(millis(lifetimes.refresh))),
            access_invalidated: false,
            refresh_invalidated: false,
            refreshed: None,
            sealed: sealed_data.map(|d| seal_both(&access, refresh.as_ref(), d)),
            oidc_session: None,
        };
        let pair = IssuedPair {
            access_token: access.into_string(),
            refresh_token: refresh.map(TokenSecret::into_string),
        };
        (pair, doc)
    }

    /// Check a bearer access token. Does no write; answers from the cache when it can.
    pub async fn authenticate(&self, token: &str) -> Result<Bearer, TokenError> {
        let Some(secret) = TokenSecret::parse(TokenKind::Access, token) else {
            return Err(bearer(BearerError::Malformed));
        };
        let hash = secret.lookup_hash();
        let now = self.clock.now_millis();
        let found = match self.cache.get(&hash) {
            Some(found) => found,
            None => {
                let epoch = self.cache.epoch();
                let Some(record) = self.store.get_bearer(&hash).await? else {
                    return Err(bearer(BearerError::Unknown));
                };
                if record.invalidated {
                    return Err(bearer(BearerError::Invalidated));
                }
                let found = Bearer {
                    user: record.user,
                    expires_at: record.expires_at,
                };
                self.cache.insert(hash, found.clone(), epoch);
                found
            }
        };
        if found.expires_at <= now {
            return Err(bearer(BearerError::Expired));
        }
        Ok(found)
    }

    /// Refresh a pair (spec §3.3), by `client` (the caller). `reuse` says what a reuse after
    /// the window does besides refusing (`token.refresh_reuse`).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientRef,
        lifetimes: Lifetimes,
        reuse: RefreshReuse,
    ) -> Result<(IssuedPair, UserRecord), TokenError> {
        let Some(secret) = TokenSecret::parse(TokenKind::Refresh, refresh_token) else {
            return Err(RefreshError::Unknown.into());
        };
        let hash = secret.lookup_hash();
        let Some(doc) = self.store.get_by_refresh(&hash).await? else {
            return Err(RefreshError::Unknown.into());
        };
        let now = self.clock.now_millis();
        // Elasticsearch's order: expiry, invalidation, creating client, reuse window.
        self.check_refreshable(&doc, client, now)?;
        if let Some(refreshed) = &doc.refreshed {
            return self.superseding(&doc, refreshed, &secret, now, reuse).await;
        }
        // Data sealed at login (OIDC logout data) moves to the new pair: the refresh token
        // opens its copy.
        let carried = doc
            .sealed
            .as_deref()
            .and_then(split_sealed)
            .and_then(|(_, under_refresh)| secret.open(under_refresh));
        let (pair, mut new_doc) = self.mint(
            doc.user.clone(),
            doc.client.clone(),
            lifetimes,
            true,
            doc.family,
            carried.as_deref(),
        );
        new_doc.oidc_session = doc.oidc_session.clone();
        let sealed_pair =
            serde_json::to_vec(&pair).map_err(|_| TokenError::Seal(SealError::EncodePair))?;
        let refreshed = Refreshed {
            at: now,
            superseding: secret.seal(&sealed_pair),
        };
        match self.store.refresh(&hash, refreshed, new_doc).await? {
            RefreshOutcome::Applied => Ok((pair, doc.user)),
            RefreshOutcome::AlreadyRefreshed(current) => {
                // Lost a race with a concurrent refresh of the same token: answer its pair.
                let Some(r) = &current.refreshed else {
                    return Err(TokenError::Seal(SealError::RaceWithoutRefresh));
                };
                self.superseding(&current, r, &secret, now, reuse).await
            }
            RefreshOutcome::NotFound => Err(RefreshError::Unknown.into()),
        }
    }

    fn check_refreshable(
        &self,
        doc: &TokenDoc,
        client: &ClientRef,
        now: UnixMillis,
    ) -> Result<(), RefreshError> {
        if doc.refresh_expires_at.is_none_or(|exp| exp <= now) {
            return Err(RefreshError::Expired);
        }
        if doc.refresh_invalidated {
            return Err(RefreshError::Invalidated);
        }
        if doc.client != *client {
            return Err(RefreshError::OtherClient);
        }
        Ok(())
    }

    /// A repeat refresh: within the window, the pair minted by the first refresh; after it,
    /// refused, and (with [`RefreshReuse::RevokeFamily`]) the whole family invalidated.
    async fn superseding(
        &self,
        doc: &TokenDoc,
        refreshed: &Refreshed,
        secret: &TokenSecret,
        now: UnixMillis,
        reuse: RefreshReuse,
    ) -> Result<(IssuedPair, UserRecord), TokenError> {
        let window = millis(REFRESH_WINDOW);
        if refreshed.at > now.saturating_add(window) {
            return Err(RefreshError::ClockSkew.into());
        }
        if now > refreshed.at.saturating_add(window) {
            let revoke = reuse == RefreshReuse::RevokeFamily;
            let invalidated = if revoke {
                self.invalidate(Invalidation::Family(doc.family))
                    .await?
                    .invalidated
            } else {
                0
            };
            tracing::warn!(
                target: "audit",
                event = "refresh_token_reuse",
                username = ?doc.user.username,
                realm = %doc.user.realm.name,
                family = ?doc.family,
                family_revoked = revoke,
                invalidated,
                "refresh token reused {}s after its first use: refused{}",
                (now - refreshed.at) / 1000,
                if revoke { ", and every token of its family is invalidated" } else { " (token.refresh_reuse: refuse keeps the family's other tokens valid)" }
            );
            return Err(RefreshError::ReusedAfterWindow.into());
        }
        let plain = secret
            .open(&refreshed.superseding)
            .ok_or(TokenError::Seal(SealError::SupersedingPair))?;
        let pair: IssuedPair = serde_json::from_slice(&plain)
            .map_err(|_| TokenError::Seal(SealError::SupersedingPair))?;
        Ok((pair, doc.user.clone()))
    }

    /// Invalidate, then drop affected entries from the cache before answering.
    pub async fn invalidate(&self, what: Invalidation) -> Result<InvalidationCounts, TokenError> {
        // Bump the epoch first: a lookup that read the store before this write must not
        // put a stale entry into the cache afterwards.
        self.cache.begin_invalidation();
        let counts = self.store.invalidate(what).await;
        self.cache.begin_invalidation();
        let counts = counts?;
        for h in &counts.access_hashes {
            self.cache.remove(h);
        }
        Ok(counts)
    }

    /// Invalidate by a token in the clear (`DELETE /_security/oauth2/token`).
    pub async fn invalidate_token(
        &self,
        kind: TokenKind,
        token: &str,
    ) -> Result<Option<InvalidationCounts>, TokenError> {
        let Some(secret) = TokenSecret::parse(kind, token) else {
            return Ok(None);
        };
        let hash = secret.lookup_hash();
        let what = match kind {
            TokenKind::Access => Invalidation::Access(hash),
            TokenKind::Refresh => Invalidation::Refresh(hash),
        };
        Ok(Some(self.invalidate(what).await?))
    }

    /// Open the data sealed under an access token at issue time (and carried over by
    /// refreshes). Read from the store: the bearer cache does not keep sealed data.
    pub async fn open_sealed(&self, access_token: &str) -> Result<Option<Vec<u8>>, TokenError> {
        let Some(secret) = TokenSecret::parse(TokenKind::Access, access_token) else {
            return Ok(None);
        };
        let Some(doc) = self.store.get_by_access(&secret.lookup_hash()).await? else {
            return Ok(None);
        };
        Ok(doc
            .sealed
            .as_deref()
            .and_then(split_sealed)
            .and_then(|(under_access, _)| secret.open(under_access)))
    }

    /// Delete expired records in bounded batches until none are left; returns how many.
    pub async fn sweep(&self, batch: usize) -> Result<usize, TokenError> {
        let now = self.clock.now_millis();
        let mut total = 0;
        loop {
            let n = self.store.sweep_expired(now, batch).await?;
            total += n;
            if n < batch {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Seal `data` under the access token and, when there is one, under the refresh token too, in
/// one field: `len(under_access) as u32 BE || under_access || under_refresh`.
fn seal_both(access: &TokenSecret, refresh: Option<&TokenSecret>, data: &[u8]) -> Vec<u8> {
    let a = access.seal(data);
    let mut out = (a.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&a);
    if let Some(r) = refresh {
        out.extend_from_slice(&r.seal(data));
    }
    out
}

/// The two parts written by [`seal_both`].
fn split_sealed(sealed: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = sealed.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

fn bearer(e: BearerError) -> TokenError {
    TokenError::Bearer(e)
}
