//! Pending logins: what `prepare` records and `authenticate` consumes, exactly once.
//!
//! A flow is stored under a labelled hash of its `state`; its secrets (the nonce, the PKCE
//! verifier and the facilitator that started it) are sealed with a key derived from the
//! state, so the store alone reveals none of them. Flows expire after [`FLOW_LIFETIME`]; a
//! crash may lose pending flows (the user logs in again), so they are written for speed, not
//! durability.

use crate::clock::UnixMillis;
use crate::store::{ClientRef, FlowRecord, Store, StoreError};
use crate::tokens::crypto::{labelled_hash, open_under, seal_under};
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a prepared login may wait for its authenticate call.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(600);

const LOOKUP_LABEL: &[u8] = b"oidc-realm/v1/flow/lookup\0";
const SEAL_LABEL: &[u8] = b"oidc-realm/v1/flow/seal\0";

/// The secrets of one pending login. `Debug` is redacted.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowSecrets {
    pub nonce: String,
    pub pkce_verifier: Option<String>,
    pub caller: ClientRef,
}

impl std::fmt::Debug for FlowSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowSecrets")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("a pending login already uses this state")]
    InUse,
    #[error("no pending login for this state")]
    Unknown,
    #[error("the pending login's record does not open")]
    Corrupt,
    #[error(transparent)]
    Store(StoreError),
}

/// The S256 PKCE challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// Pending logins over the store.
#[derive(Debug, Clone)]
pub struct Flows {
    store: Arc<dyn Store>,
}

impl Flows {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Record a login of `realm` started with `state`.
    pub async fn start(
        &self,
        realm: &str,
        state: &str,
        secrets: &FlowSecrets,
        now: UnixMillis,
    ) -> Result<(), FlowError> {
        let plain = serde_json::to_vec(secrets).map_err(|_| FlowError::Corrupt)?;
        let record = FlowRecord {
            realm: realm.to_string(),
            expires_at: now.saturating_add(FLOW_LIFETIME.as_millis() as i64),
            sealed: seal_under(SEAL_LABEL, state.as_bytes(), &plain),
        };
        match self
            .store
            .insert_flow(&labelled_hash(LOOKUP_LABEL, state.as_bytes()), record)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => Err(FlowError::InUse),
            Err(e) => Err(FlowError::Store(e)),
        }
    }

    /// Consume the login started with `state`: its realm and secrets. A second call for the
    /// same state, an unknown state and an expired one all get `Unknown`.
    pub async fn take(
        &self,
        state: &str,
        now: UnixMillis,
    ) -> Result<(String, FlowSecrets), FlowError> {
        let record = self
            .store
            .take_flow(&labelled_hash(LOOKUP_LABEL, state.as_bytes()), now)
            .await
            .map_err(FlowError::Store)?
            .ok_or(FlowError::Unknown)?;
        let plain =
            open_under(SEAL_LABEL, state.as_bytes(), &record.sealed).ok_or(FlowError::Corrupt)?;
        let secrets: FlowSecrets =
            serde_json::from_slice(&plain).map_err(|_| FlowError::Corrupt)?;
        Ok((record.realm, secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn secrets() -> FlowSecrets {
        FlowSecrets {
            nonce: "n0nce".into(),
            pkce_verifier: Some("v".repeat(43)),
            caller: ClientRef {
                username: "facilitator".into(),
                realm: "default_file".into(),
            },
        }
    }

    #[tokio::test]
    async fn a_flow_is_consumed_once_and_expires() {
        let flows = Flows::new(Arc::new(MemoryStore::new()));
        flows.start("oidc1", "s1", &secrets(), 0).await.unwrap();
        assert!(matches!(
            flows.start("oidc1", "s1", &secrets(), 0).await,
            Err(FlowError::InUse)
        ));
        let (realm, got) = flows.take("s1", 1).await.unwrap();
        assert_eq!(realm, "oidc1");
        assert_eq!(got, secrets());
        assert!(matches!(flows.take("s1", 1).await, Err(FlowError::Unknown)));

        flows.start("oidc1", "s2", &secrets(), 0).await.unwrap();
        let expiry = FLOW_LIFETIME.as_millis() as i64;
        assert!(matches!(
            flows.take("s2", expiry).await,
            Err(FlowError::Unknown)
        ));
    }

    #[test]
    fn pkce_challenge_is_unpadded_base64url_of_sha256() {
        // Expected value computed independently (Python hashlib + base64.urlsafe_b64encode).
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ92K7Z5AmGAPsR1ERz3E1ySg0gjk"),
            "c9rcKJMZAqYa-HKkh3NakpubH52F5vQmOWlgdmUwm78"
        );
    }

    #[test]
    fn debug_hides_nonce_and_verifier() {
        let d = format!("{:?}", secrets());
        assert!(!d.contains("n0nce") && !d.contains("vvvv"));
    }
}
