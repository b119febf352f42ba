//! Following a store shared by several nodes: each change another node commits (an
//! invalidation, a role mapping, a profile) reaches this node's caches.
//!
//! The bound: an invalidation committed on any node is dropped from this node's bearer cache
//! when its notification arrives (PostgreSQL delivers it on commit: milliseconds), and in any
//! case within `data.cache_ttl` (default 5 s): entries are not trusted longer, so a
//! notification lost with the listener's connection (which resyncs, dropping every cache,
//! when it is back) cannot keep a token valid longer than that.

use super::AppState;
use crate::store::StoreChange;
use std::sync::{Arc, Weak};
use tokio::sync::broadcast::error::RecvError;

/// Start following the store's changes on the current tokio runtime, if the store has any
/// to report and a runtime is running; the task ends when the state is dropped.
pub(super) fn follow_store(state: &Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let mut changes = state.store.changes()?;
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime: this node will not follow the shared store's changes");
        return None;
    };
    let weak: Weak<AppState> = Arc::downgrade(state);
    Some(rt.spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => StoreChange::Resync,
                Err(RecvError::Closed) => break,
            };
            let Some(state) = weak.upgrade() else {
                break;
            };
            state.apply_store_change(&change).await;
        }
    }))
}

impl AppState {
    /// Follow one change of the shared store (see the module documentation).
    pub async fn apply_store_change(&self, change: &StoreChange) {
        self.tokens.apply_change(change);
        if matches!(change, StoreChange::RoleMappings | StoreChange::Resync) {
            match self.load_role_mappings().await {
                Ok(skipped) => {
                    for msg in &skipped {
                        tracing::error!("{msg}");
                    }
                }
                Err(e) => tracing::error!("cannot reload role mappings from the store: {e}"),
            }
        }
        self.metrics_store_change();
    }

    fn metrics_store_change(&self) {
        self.store_changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many store changes this node has followed (tests wait on it).
    pub fn store_changes_followed(&self) -> u64 {
        self.store_changes
            .load(std::sync::atomic::Ordering::Acquire)
    }
}
