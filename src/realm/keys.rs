//! A realm's signing keys: an immutable [`KeySet`] snapshot behind an atomic pointer.
//!
//! - `op.jwkset_path` a file: read and parsed when the realm is built (a file that does not
//!   parse is a startup error).
//! - an URL: fetched on first use, and fetched again when a token names a `kid` the set does
//!   not hold or its signature fails, at most once per [`MIN_REFETCH`] (single-flight: concurrent
//!   logins wait for one fetch), so random `kid`s cannot make us hammer the provider. A failed
//!   fetch keeps the last good set.

use crate::clock::UnixMillis;
use crate::config::JwksSource;
use crate::oidc::client::OpClient;
use crate::oidc::jwks::KeySet;
use arc_swap::ArcSwapOption;
use std::sync::Arc;
use std::time::Duration;

/// The least time between two fetches of a JWKS URL.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

/// What the realm knows about its key set, for logs and the status API.
#[derive(Debug, Clone, Default)]
pub struct KeysStatus {
    pub kids: Vec<String>,
    pub fetched_at: Option<UnixMillis>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<UnixMillis>,
    fetched_at: Option<UnixMillis>,
    last_error: Option<String>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct RealmKeys {
    source: JwksSource,
    current: ArcSwapOption<KeySet>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl RealmKeys {
    /// Keys of a realm; a file source is read now.
    pub fn new(source: &JwksSource, realm: &str) -> Result<Self, String> {
        let keys = Self {
            source: source.clone(),
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        };
        if let JwksSource::File(path) = source {
            let bytes = std::fs::read(path).map_err(|e| {
                format!(
                    "realms.{realm}.op.jwkset_path: cannot read {}: {e}",
                    path.display()
                )
            })?;
            let (set, warnings) = KeySet::parse(&bytes).map_err(|e| {
                format!(
                    "realms.{realm}.op.jwkset_path: {} is not a usable JWKS: {e}",
                    path.display()
                )
            })?;
            for w in warnings {
                tracing::warn!(realm, "JWKS {}: {w}", path.display());
            }
            keys.current.store(Some(Arc::new(set)));
        }
        Ok(keys)
    }

    /// A key set built from JWKS bytes already in hand (tests, reload).
    pub fn from_set(source: &JwksSource, set: KeySet) -> Self {
        Self {
            source: source.clone(),
            current: ArcSwapOption::new(Some(Arc::new(set))),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    /// The current snapshot, fetching it first if an URL source has none yet.
    pub async fn current(
        &self,
        client: &OpClient,
        realm: &str,
        now: UnixMillis,
    ) -> Option<Arc<KeySet>> {
        if let Some(set) = self.current.load_full() {
            return Some(set);
        }
        self.refetch(client, realm, now).await;
        self.current.load_full()
    }

    /// Fetch the URL again (after an unknown `kid` or a bad signature), unless another fetch
    /// happened less than [`MIN_REFETCH`] ago. Returns whether a new set was installed.
    pub async fn refetch(&self, client: &OpClient, realm: &str, now: UnixMillis) -> bool {
        let JwksSource::Url(url) = &self.source else {
            return false;
        };
        let before = self.current.load_full();
        let mut state = self.fetch.lock().await;
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
        if state
            .last_attempt
            .is_some_and(|t| now.saturating_sub(t) < MIN_REFETCH.as_millis() as i64)
        {
            return false;
        }
        state.last_attempt = Some(now);
        let result = match client.get_jwks(url).await {
            Ok(bytes) => KeySet::parse(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok((set, warnings)) => {
                for w in warnings {
                    tracing::warn!(realm, "JWKS {url}: {w}");
                }
                tracing::info!(realm, kids = ?set.kids(), "JWKS fetched from {url}");
                self.current.store(Some(Arc::new(set)));
                state.fetched_at = Some(now);
                state.last_error = None;
                true
            }
            Err(e) => {
                tracing::warn!(
                    realm,
                    "JWKS fetch from {url} failed; keeping the last good keys: {e}"
                );
                state.last_error = Some(e);
                false
            }
        }
    }

    /// For logs and the status API.
    pub async fn status(&self) -> KeysStatus {
        let state = self.fetch.lock().await;
        KeysStatus {
            kids: self
                .current
                .load_full()
                .map(|s| s.kids().into_iter().map(str::to_string).collect())
                .unwrap_or_default(),
            fetched_at: state.fetched_at,
            last_error: state.last_error.clone(),
        }
    }
}
