//! Pending logins: what `prepare` records and `authenticate` consumes, exactly once.
//!
//! A flow is stored under a labelled hash of its `state`; its secrets (the nonce, the PKCE
//! verifier and the facilitator that started it) are sealed with a key derived from the
//! state, so the store alone reveals none of them. Beside the sealed part, the record keeps a
//! labelled hash of the facilitator in clear ([`caller_hash`]: it names a configured caller,
//! it is no secret), so that the store can count each caller's pending logins against its own
//! quota and refuse, before consuming, a login presented by another caller. Flows expire after
//! [`FLOW_LIFETIME`]; expired ones never count. A crash may lose pending flows (the user logs
//! in again), so they are written for speed, not durability.

use crate::clock::UnixMillis;
use crate::crypto::{labelled_hash, open_under, seal_under};
use crate::model::{ClientRef, Hash32};
use crate::store::{
    FlowCondition, FlowInsert, FlowLimits, FlowRecord, FlowTake, Store, StoreError,
};
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a prepared login may wait for its authenticate call.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(600);

/// How long a caller refused for too many pending logins is asked to wait (`Retry-After`):
/// a slot frees as soon as one of its logins completes or expires.
pub const TOO_MANY_PENDING_RETRY_AFTER: Duration = Duration::from_secs(1);

const LOOKUP_LABEL: &[u8] = b"oidc-realm/v1/flow/lookup\0";
const SEAL_LABEL: &[u8] = b"oidc-realm/v1/flow/seal\0";
const CALLER_LABEL: &[u8] = b"oidc-realm/v1/flow/caller\0";

/// The secrets of one pending login. `Debug` is redacted.
/// No `PartialEq` outside tests: its nonce and PKCE verifier are secrets, compared (where
/// they are) with `ct_eq` only.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "test-util"), derive(PartialEq, Eq))]
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

/// Which limit refused a new pending login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingLimit {
    /// The caller has this many pending logins already.
    PerCaller(usize),
    /// All callers together have this many pending logins already.
    Total(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("a pending login already uses this state")]
    InUse,
    #[error("{0}")]
    TooMany(PendingLimit),
    #[error("no pending login for this state")]
    Unknown,
    /// The login was started by another caller; it stays pending for that one.
    #[error("the pending login was started by another caller")]
    OtherCaller {
        /// Who started it, when its record opens (for the log).
        prepared_by: Option<ClientRef>,
    },
    /// The login is for another realm; it stays pending.
    #[error("the pending login is for realm [{flow_realm}]")]
    OtherRealm { flow_realm: String },
    #[error("the pending login's record does not open")]
    Corrupt,
    #[error(transparent)]
    Store(StoreError),
}

/// The client-visible reason (no other caller's name, nothing secret).
impl std::fmt::Display for PendingLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whose, n) = match self {
            PendingLimit::PerCaller(n) => ("for this caller", n),
            PendingLimit::Total(n) => ("on this server", n),
        };
        write!(
            f,
            "too many pending logins {whose}: [{n}] are waiting for authenticate; retry when \
             some complete or expire ({} minutes after prepare)",
            FLOW_LIFETIME.as_secs() / 60
        )
    }
}

/// The S256 PKCE challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// The key of a caller's pending logins: a labelled hash of its user name and realm (each
/// length-prefixed, so no two callers share one).
pub fn caller_hash(caller: &ClientRef) -> Hash32 {
    let mut text = Vec::with_capacity(8 + caller.username.len() + caller.realm.len());
    for part in [&caller.username, &caller.realm] {
        text.extend_from_slice(&(part.len() as u64).to_be_bytes());
        text.extend_from_slice(part.as_bytes());
    }
    labelled_hash(CALLER_LABEL, &text)
}

/// The `state` of a login as the facilitator holds it: the secret under whose labelled hash
/// its pending record is found and under which the record is sealed. Its own type, so that it
/// cannot be passed where a realm name is expected. `Debug` shows no value.
#[derive(Clone, Copy)]
pub struct LoginState<'a>(pub &'a str);

impl std::fmt::Debug for LoginState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginState([redacted])")
    }
}

impl LoginState<'_> {
    fn lookup_hash(self) -> Hash32 {
        labelled_hash(LOOKUP_LABEL, self.0.as_bytes())
    }
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

    /// Record a login of `realm` started with `state` by `secrets.caller`, within `limits`.
    pub async fn start(
        &self,
        realm: &str,
        state: LoginState<'_>,
        secrets: &FlowSecrets,
        limits: &FlowLimits,
        now: UnixMillis,
    ) -> Result<(), FlowError> {
        let plain = serde_json::to_vec(secrets).map_err(|_| FlowError::Corrupt)?;
        let record = FlowRecord {
            realm: realm.to_string(),
            caller: caller_hash(&secrets.caller),
            expires_at: now.saturating_add(FLOW_LIFETIME.as_millis() as i64),
            sealed: seal_under(SEAL_LABEL, state.0.as_bytes(), &plain),
        };
        let outcome = self
            .store
            .insert_flow_within(&state.lookup_hash(), record, limits, now)
            .await
            .map_err(FlowError::Store)?;
        match outcome {
            FlowInsert::Inserted => Ok(()),
            FlowInsert::StateInUse => Err(FlowError::InUse),
            FlowInsert::CallerFull => Err(FlowError::TooMany(PendingLimit::PerCaller(
                limits.per_caller,
            ))),
            FlowInsert::TableFull => Err(FlowError::TooMany(PendingLimit::Total(limits.total))),
        }
    }

    /// Consume the login started with `state`, if `caller` started it and (when given) it is
    /// for `realm`: its realm and secrets. The check and the consumption are one atomic step
    /// of the store, so a login presented by another caller or for another realm stays
    /// pending (`OtherCaller`, `OtherRealm`), and of concurrent calls at most one gets it. A
    /// second call for the same state, an unknown state and an expired one all get `Unknown`.
    pub async fn take(
        &self,
        state: LoginState<'_>,
        caller: &ClientRef,
        realm: Option<&str>,
        now: UnixMillis,
    ) -> Result<(String, FlowSecrets), FlowError> {
        let condition = FlowCondition {
            caller: Some(caller_hash(caller)),
            realm: realm.map(str::to_string),
        };
        let taken = self
            .store
            .take_flow_if(&state.lookup_hash(), now, &condition)
            .await
            .map_err(FlowError::Store)?;
        let record = match taken {
            FlowTake::Taken(record) => record,
            FlowTake::NotFound => return Err(FlowError::Unknown),
            FlowTake::OtherCaller(record) => {
                return Err(FlowError::OtherCaller {
                    prepared_by: open(state, &record).ok().map(|s| s.caller),
                })
            }
            FlowTake::OtherRealm(record) => {
                return Err(FlowError::OtherRealm {
                    flow_realm: record.realm,
                })
            }
        };
        let secrets = open(state, &record)?;
        // The store matched the caller's hash; the sealed caller must agree.
        if secrets.caller != *caller {
            return Err(FlowError::OtherCaller {
                prepared_by: Some(secrets.caller),
            });
        }
        Ok((record.realm, secrets))
    }
}

/// The secrets of `record`, sealed under `state`.
fn open(state: LoginState<'_>, record: &FlowRecord) -> Result<FlowSecrets, FlowError> {
    let plain =
        open_under(SEAL_LABEL, state.0.as_bytes(), &record.sealed).ok_or(FlowError::Corrupt)?;
    serde_json::from_slice(&plain).map_err(|_| FlowError::Corrupt)
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

    fn other() -> ClientRef {
        ClientRef {
            username: "kibana2".into(),
            realm: "default_file".into(),
        }
    }

    const L: FlowLimits = FlowLimits {
        per_caller: crate::config::DEFAULT_PENDING_LOGINS_PER_CALLER,
        total: crate::config::DEFAULT_PENDING_LOGINS,
    };

    #[tokio::test]
    async fn a_flow_is_consumed_once_and_expires() {
        let flows = Flows::new(Arc::new(MemoryStore::new()));
        let me = secrets().caller;
        flows
            .start("oidc1", LoginState("s1"), &secrets(), &L, 0)
            .await
            .unwrap();
        assert!(matches!(
            flows
                .start("oidc1", LoginState("s1"), &secrets(), &L, 0)
                .await,
            Err(FlowError::InUse)
        ));
        let (realm, got) = flows.take(LoginState("s1"), &me, None, 1).await.unwrap();
        assert_eq!(realm, "oidc1");
        assert_eq!(got, secrets());
        assert!(matches!(
            flows.take(LoginState("s1"), &me, None, 1).await,
            Err(FlowError::Unknown)
        ));

        flows
            .start("oidc1", LoginState("s2"), &secrets(), &L, 0)
            .await
            .unwrap();
        let expiry = FLOW_LIFETIME.as_millis() as i64;
        assert!(matches!(
            flows.take(LoginState("s2"), &me, None, expiry).await,
            Err(FlowError::Unknown)
        ));
    }

    #[tokio::test]
    async fn another_caller_or_realm_leaves_the_flow_pending() {
        let flows = Flows::new(Arc::new(MemoryStore::new()));
        let me = secrets().caller;
        flows
            .start("oidc1", LoginState("s1"), &secrets(), &L, 0)
            .await
            .unwrap();
        match flows
            .take(LoginState("s1"), &other(), Some("oidc1"), 1)
            .await
        {
            Err(FlowError::OtherCaller { prepared_by }) => {
                assert_eq!(prepared_by, Some(me.clone()))
            }
            other => panic!("{other:?}"),
        }
        match flows.take(LoginState("s1"), &me, Some("oidc2"), 1).await {
            Err(FlowError::OtherRealm { flow_realm }) => assert_eq!(flow_realm, "oidc1"),
            other => panic!("{other:?}"),
        }
        let (realm, got) = flows
            .take(LoginState("s1"), &me, Some("oidc1"), 1)
            .await
            .unwrap();
        assert_eq!((realm.as_str(), got), ("oidc1", secrets()));
    }

    #[tokio::test]
    async fn each_caller_has_its_own_quota() {
        let flows = Flows::new(Arc::new(MemoryStore::new()));
        let limits = FlowLimits {
            per_caller: 2,
            total: 3,
        };
        let mine = secrets();
        let theirs = FlowSecrets {
            caller: other(),
            ..secrets()
        };
        flows
            .start("oidc1", LoginState("a1"), &mine, &limits, 0)
            .await
            .unwrap();
        flows
            .start("oidc1", LoginState("a2"), &mine, &limits, 0)
            .await
            .unwrap();
        assert!(matches!(
            flows
                .start("oidc1", LoginState("a3"), &mine, &limits, 0)
                .await,
            Err(FlowError::TooMany(PendingLimit::PerCaller(2)))
        ));
        flows
            .start("oidc1", LoginState("b1"), &theirs, &limits, 0)
            .await
            .unwrap();
        let e = flows
            .start("oidc1", LoginState("b2"), &theirs, &limits, 0)
            .await;
        assert!(matches!(e, Err(FlowError::TooMany(PendingLimit::Total(3)))));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("too many pending logins on this server: [3]"));
        // Expired logins do not count.
        let later = FLOW_LIFETIME.as_millis() as i64;
        flows
            .start("oidc1", LoginState("a3"), &mine, &limits, later)
            .await
            .unwrap();
        flows
            .start("oidc1", LoginState("a4"), &mine, &limits, later)
            .await
            .unwrap();
        flows
            .start("oidc1", LoginState("b2"), &theirs, &limits, later)
            .await
            .unwrap();
    }

    #[test]
    fn caller_hashes_tell_callers_apart() {
        let c = |u: &str, r: &str| {
            caller_hash(&ClientRef {
                username: u.into(),
                realm: r.into(),
            })
        };
        assert_eq!(c("kibana", "file"), c("kibana", "file"));
        assert_ne!(c("kibana", "file"), c("kibana", "_service_account"));
        assert_ne!(c("ab", "c"), c("a", "bc"));
        assert_ne!(c("a\0", ""), c("a", "\0"));
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
