//! The background sweeper: expired tokens and flows, idle rate-limit keys.

use super::AppState;
use std::sync::Arc;
use std::time::Duration;

/// Run the background sweeper: every `every`, delete expired tokens and flows in batches.
pub fn spawn_sweeper(state: Arc<AppState>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            state.callers.forget_idle();
            state.connections.forget_idle();
            match state.tokens.sweep(1_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept expired tokens and flows"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired records failed"),
            }
        }
    })
}
