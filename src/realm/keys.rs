//! A realm's signing keys: an immutable [`KeySet`] snapshot behind an atomic pointer.
//!
//! - `op.jwkset_path` a file: read and parsed when the realm is built (a file that does not
//!   parse is then a configuration error), and read again by [`RealmKeys::reload_file`] when
//!   the reloader sees the file change. A file that does not parse, or holds no usable signing
//!   key, leaves the last good set live; the error is logged and shown by the status API.
//! - an URL: fetched on first use; fetched again by the periodic refresher once
//!   `op.jwkset_reload_interval` has passed ([`RealmKeys::refresh_if_due`]); and fetched again
//!   when a token names a `kid` the set does not hold or its signature fails
//!   ([`RealmKeys::refetch`]), at most once per `op.jwkset_min_refetch_interval`
//!   (single-flight: concurrent logins wait for one fetch), so random `kid`s cannot make us
//!   hammer the provider. A failed fetch keeps the last good set.
//!
//! A reload of the configuration that keeps a realm's `op.jwkset_path` keeps its
//! `RealmKeys` (the same `Arc`), so editing the YAML does not refetch every key set.

use crate::clock::UnixMillis;
use crate::config::JwksSource;
use crate::oidc::jwks::KeySet;
use crate::realm::{Op, RealmBuildError};
use arc_swap::ArcSwapOption;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the realm knows about its key set, for logs and the status API.
#[derive(Debug, Clone, Default)]
pub struct KeysStatus {
    /// `url` or `file`.
    pub source: &'static str,
    /// The URL or the file path.
    pub location: String,
    pub kids: Vec<String>,
    /// When the live set was fetched (URL) or read (file).
    pub fetched_at: Option<UnixMillis>,
    /// When a fetch or read was last attempted.
    pub last_attempt: Option<UnixMillis>,
    /// The last failure and when it happened; cleared by the next success.
    pub last_error: Option<String>,
    pub last_error_at: Option<UnixMillis>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<UnixMillis>,
    fetched_at: Option<UnixMillis>,
    last_error: Option<(UnixMillis, String)>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct RealmKeys {
    source: JwksSource,
    current: ArcSwapOption<KeySet>,
    /// Held across a fetch: concurrent refetches wait for one.
    single_flight: tokio::sync::Mutex<()>,
    state: Mutex<FetchState>,
}

fn millis(d: Duration) -> i64 {
    crate::clock::millis(d)
}

impl RealmKeys {
    fn empty(source: &JwksSource) -> Self {
        Self {
            source: source.clone(),
            current: ArcSwapOption::empty(),
            single_flight: tokio::sync::Mutex::new(()),
            state: Mutex::new(FetchState::default()),
        }
    }

    /// Keys of a realm; a file source is read now (an error is a configuration error).
    pub fn new(source: &JwksSource, realm: &str, now: UnixMillis) -> Result<Self, RealmBuildError> {
        let keys = Self::empty(source);
        if let JwksSource::File(path) = source {
            let set = read_file(path, realm).map_err(|detail| RealmBuildError::JwksFile {
                realm: realm.to_string(),
                detail,
            })?;
            keys.current.store(Some(Arc::new(set)));
            let mut st = keys.lock_state();
            st.fetched_at = Some(now);
            st.last_attempt = Some(now);
        }
        Ok(keys)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the keys come from.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The live snapshot, without fetching.
    pub fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// The current snapshot, fetching it first if an URL source has none yet.
    pub async fn current(
        &self,
        op: &Op,
        now: UnixMillis,
        min_refetch: Duration,
    ) -> Option<Arc<KeySet>> {
        if let Some(set) = self.current.load_full() {
            return Some(set);
        }
        self.refetch(op, now, min_refetch).await;
        self.current.load_full()
    }

    /// Read a file source again. A file that does not parse keeps the last good set and is
    /// recorded. Returns whether a new set was installed (an URL source: `Ok(false)`).
    pub fn reload_file(&self, realm: &str, now: UnixMillis) -> Result<bool, String> {
        let JwksSource::File(path) = &self.source else {
            return Ok(false);
        };
        let result = read_file(path, realm);
        let mut st = self.lock_state();
        st.last_attempt = Some(now);
        match result {
            Ok(set) => {
                tracing::info!(realm, kids = ?set.kids(), "JWKS file {} loaded", path.display());
                self.current.store(Some(Arc::new(set)));
                st.fetched_at = Some(now);
                st.last_error = None;
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(realm, "JWKS file: {e}; keeping the last good keys");
                st.last_error = Some((now, e.clone()));
                Err(e)
            }
        }
    }

    /// Fetch the URL again (after an unknown `kid` or a bad signature), unless another fetch
    /// was attempted less than `min_refetch` ago. Returns whether a new set was installed.
    pub async fn refetch(&self, op: &Op, now: UnixMillis, min_refetch: Duration) -> bool {
        let JwksSource::Url(url) = &self.source else {
            return false;
        };
        let before = self.current.load_full();
        let _flight = self.single_flight.lock().await;
        // Someone else fetched while we waited: use their result.
        let after = self.current.load_full();
        let changed = match (&before, &after) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            _ => false,
        };
        if changed {
            return true;
        }
        if self
            .lock_state()
            .last_attempt
            .is_some_and(|t| now.saturating_sub(t) < millis(min_refetch))
        {
            return false;
        }
        self.fetch(op, url, now).await
    }

    /// The periodic refresh of an URL source: fetch when the live set is older than
    /// `interval` (or there is none), and no attempt was made in the last `min_refetch`.
    /// Returns whether a fetch was attempted.
    pub async fn refresh_if_due(
        &self,
        op: &Op,
        now: UnixMillis,
        interval: Duration,
        min_refetch: Duration,
    ) -> bool {
        let JwksSource::Url(url) = &self.source else {
            return false;
        };
        let due = |st: &FetchState| {
            st.fetched_at
                .is_none_or(|t| now.saturating_sub(t) >= millis(interval))
                && st
                    .last_attempt
                    .is_none_or(|t| now.saturating_sub(t) >= millis(min_refetch))
        };
        if !due(&self.lock_state()) {
            return false;
        }
        let _flight = self.single_flight.lock().await;
        if !due(&self.lock_state()) {
            return false;
        }
        self.fetch(op, url, now).await;
        true
    }

    /// One fetch (counted in the OP-call metrics); the caller holds `single_flight`.
    async fn fetch(&self, op: &Op, url: &url::Url, now: UnixMillis) -> bool {
        self.lock_state().last_attempt = Some(now);
        let realm = op.realm();
        let result = op.fetch_jwks(url).await;
        let mut st = self.lock_state();
        match result {
            Ok((set, warnings)) => {
                for w in warnings {
                    tracing::warn!(realm, "JWKS {url}: {w}");
                }
                tracing::info!(realm, kids = ?set.kids(), "JWKS fetched from {url}");
                self.current.store(Some(Arc::new(set)));
                st.fetched_at = Some(now);
                st.last_error = None;
                true
            }
            Err(e) => {
                tracing::warn!(
                    realm,
                    "JWKS fetch from {url} failed; keeping the last good keys: {e}"
                );
                st.last_error = Some((now, e));
                false
            }
        }
    }

    /// For logs and the status API.
    pub fn status(&self) -> KeysStatus {
        let st = self.lock_state();
        let (source, location) = match &self.source {
            JwksSource::Url(u) => ("url", u.to_string()),
            JwksSource::File(p) => ("file", p.display().to_string()),
        };
        KeysStatus {
            source,
            location,
            kids: self
                .current
                .load_full()
                .map(|s| s.kids().into_iter().map(str::to_string).collect())
                .unwrap_or_default(),
            fetched_at: st.fetched_at,
            last_attempt: st.last_attempt,
            last_error: st.last_error.as_ref().map(|(_, e)| e.clone()),
            last_error_at: st.last_error.as_ref().map(|(t, _)| *t),
        }
    }
}

/// Read and parse a JWKS file; the error names the file.
fn read_file(path: &std::path::Path, realm: &str) -> Result<KeySet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (set, warnings) = KeySet::parse(&bytes)
        .map_err(|e| format!("{} is not a usable JWKS: {e}", path.display()))?;
    for w in warnings {
        tracing::warn!(realm, "JWKS {}: {w}", path.display());
    }
    Ok(set)
}
