//! User profiles, as Elasticsearch keeps them for Kibana: one profile per user and realm,
//! created or refreshed from the user at each activation (`POST /_security/profile/_activate`,
//! which Kibana calls after every login), read back by uid (`GET /_security/profile/{uid}`).
//! Activation replaces the user's fields and keeps the profile's labels and application data.
//!
//! # Uids
//!
//! As Elasticsearch computes them: `u_` + base64url without padding of SHA-256 of the username
//! (UTF-8) + `_` + a differentiator `0`..=`9`. A user's profile takes the first differentiator
//! whose uid is free or already holds that user's profile (same username and realm name), so
//! the same username in two realms gets two profiles, `…_0` and `…_1`.
//!
//! # The stored record
//!
//! A [`ProfileDoc`] as JSON, under its uid, through [`Store::get_profile`] /
//! [`Store::put_profile`]. The store versions each record (`seq_no`, shown as `_doc._seq_no`);
//! every write is conditional on the version it was computed from, so concurrent activations
//! cannot lose one another's writes: the loser re-reads, and answers with the winner's record
//! when it says what its own write would have said, or fails with
//! [`ProfileError::Conflict`] (HTTP 409, which Kibana retries).

use crate::clock::UnixMillis;
use crate::model::{RealmRef, UserRecord};
use crate::store::{Store, StoreError, StoredProfile};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The highest differentiator (Elasticsearch's `DIFFERENTIATOR_UPPER_LIMIT`).
pub const MAX_DIFFERENTIATOR: u32 = 9;

/// An activation within this long of the last synchronization, with nothing changed, writes
/// nothing (as Elasticsearch: it spares the store a write per login).
pub const ACTIVATE_INTERVAL_MS: i64 = 30_000;

/// `_doc._primary_term` of every profile: there is one copy of each record, never promoted.
pub const PRIMARY_TERM: u64 = 1;

/// How often one activation starts over after losing a create race on the same uid before it
/// gives up with a conflict (only a profile deleted between the race and the re-read could
/// make it start over even once more).
const MAX_CREATE_RACES: u32 = 3;

/// Length of an unpadded base64url SHA-256.
const HASH_B64_LEN: usize = 43;

/// `u_` + base64url(SHA-256(`username`)): the uid without its differentiator.
pub fn base_uid(username: &str) -> String {
    let hash = crate::crypto::sha256(&[username.as_bytes()]);
    format!("u_{}", URL_SAFE_NO_PAD.encode(hash))
}

/// The uid of `username` with this differentiator.
pub fn uid(username: &str, differentiator: u32) -> String {
    format!("{}_{differentiator}", base_uid(username))
}

/// Whether `s` has the shape of a uid made here (`u_`, 43 base64url characters, `_`, one
/// digit). Anything else names no profile.
pub fn is_uid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 2 + HASH_B64_LEN + 2
        && b.starts_with(b"u_")
        && b[2..2 + HASH_B64_LEN]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        && b[2 + HASH_B64_LEN] == b'_'
        && b[3 + HASH_B64_LEN].is_ascii_digit()
}

/// A stored profile: Elasticsearch's profile document (`user_profile` in its
/// `.security-profile` index), without the search-only fields.
///
/// ```json
/// {"uid": "u_…_0", "enabled": true, "last_synchronized": 1790000000000,
///  "user": {"username": "alice", "roles": ["r"], "realm": {"name": "oidc1", "type": "oidc"},
///           "email": "a@example.com", "full_name": "Alice"},
///  "labels": {}, "application_data": {}}
/// ```
///
/// `email` and `full_name` are absent when the user has none; `labels` and `application_data`
/// may be absent (read as `{}`). Unknown members are ignored on read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileDoc {
    pub uid: String,
    pub enabled: bool,
    /// When an activation last wrote the user's fields (ms since the epoch).
    pub last_synchronized: UnixMillis,
    pub user: ProfileUser,
    #[serde(default)]
    pub labels: Map<String, Value>,
    #[serde(default)]
    pub application_data: Map<String, Value>,
}

/// The user a profile belongs to, as of its last activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUser {
    pub username: String,
    pub roles: Vec<String>,
    pub realm: RealmRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
}

impl ProfileUser {
    /// The profile fields of `user`.
    pub fn of(user: &UserRecord) -> Self {
        Self {
            username: user.username.clone(),
            roles: user.roles.clone(),
            realm: user.realm.clone(),
            email: user.email.clone(),
            full_name: user.full_name.clone(),
        }
    }

    /// Whether a profile of `self` is the profile of `other`: same username, same realm.
    pub fn same_owner(&self, other: &ProfileUser) -> bool {
        self.username == other.username && self.realm.name == other.realm.name
    }
}

/// A profile with the version the store holds it at.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub doc: ProfileDoc,
    pub seq_no: u64,
}

/// Why a profile operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The profile was written concurrently with other content; the client should retry.
    #[error("profile [{0}] was written concurrently")]
    Conflict(String),
    /// All ten uids of this username belong to other users.
    #[error("profile differentiator value is too high for base Uid [{0}]")]
    Exhausted(String),
}

impl ProfileDoc {
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| {
            StoreError::Corrupt(format!("profile [{}] does not encode: {e}", self.uid))
        })
    }
}

fn decode(uid: &str, stored: StoredProfile) -> Result<Profile, StoreError> {
    let doc: ProfileDoc = serde_json::from_slice(&stored.json)
        .map_err(|e| StoreError::Corrupt(format!("profile record {uid:?}: {e}")))?;
    if doc.uid != uid {
        return Err(StoreError::Corrupt(format!(
            "profile record {uid:?} holds uid {:?}",
            doc.uid
        )));
    }
    Ok(Profile {
        doc,
        seq_no: stored.seq_no,
    })
}

/// The profile `uid`, if stored.
pub async fn get(store: &dyn Store, uid: &str) -> Result<Option<Profile>, ProfileError> {
    match store.get_profile(uid).await? {
        Some(stored) => Ok(Some(decode(uid, stored)?)),
        None => Ok(None),
    }
}

/// Activate the profile of `user` at `now`: create it, or refresh its user fields (keeping
/// labels and application data), or leave it as it is when nothing changed within
/// [`ACTIVATE_INTERVAL_MS`]. Returns the profile as stored.
pub async fn activate(
    store: &dyn Store,
    user: &UserRecord,
    now: UnixMillis,
) -> Result<Profile, ProfileError> {
    let base = base_uid(&user.username);
    let fresh = ProfileUser::of(user);
    let mut races = 0;
    let mut n = 0;
    while n <= MAX_DIFFERENTIATOR {
        let uid = format!("{base}_{n}");
        match get(store, &uid).await? {
            Some(current) if current.doc.user.same_owner(&fresh) => {
                return update_for_activate(store, current, fresh, now).await;
            }
            // Another user's (the same username in another realm, or a hash collision).
            Some(_) => n += 1,
            None => {
                let doc = ProfileDoc {
                    uid: uid.clone(),
                    enabled: true,
                    last_synchronized: now,
                    user: fresh.clone(),
                    labels: Map::new(),
                    application_data: Map::new(),
                };
                match store.put_profile(&uid, doc.encode()?, None).await {
                    Ok(seq_no) => return Ok(Profile { doc, seq_no }),
                    // Created meanwhile, by an activation of this user or of another one:
                    // look again at the same uid.
                    Err(StoreError::Conflict) if races < MAX_CREATE_RACES => races += 1,
                    Err(StoreError::Conflict) => return Err(ProfileError::Conflict(uid)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(ProfileError::Exhausted(base))
}

/// Whether an activation computing `new` may leave `current` as it is.
fn skip_update(current: &ProfileDoc, new: &ProfileDoc) -> bool {
    new.user == current.user
        && new.enabled == current.enabled
        && new
            .last_synchronized
            .saturating_sub(current.last_synchronized)
            < ACTIVATE_INTERVAL_MS
}

async fn update_for_activate(
    store: &dyn Store,
    current: Profile,
    user: ProfileUser,
    now: UnixMillis,
) -> Result<Profile, ProfileError> {
    let mut new = ProfileDoc {
        uid: current.doc.uid.clone(),
        enabled: true,
        last_synchronized: now,
        user,
        labels: Map::new(),
        application_data: Map::new(),
    };
    if skip_update(&current.doc, &new) {
        return Ok(current);
    }
    let Profile { doc, seq_no } = current;
    new.labels = doc.labels;
    new.application_data = doc.application_data;
    match store
        .put_profile(&new.uid, new.encode()?, Some(seq_no))
        .await
    {
        Ok(seq_no) => Ok(Profile { doc: new, seq_no }),
        Err(StoreError::Conflict) => match get(store, &new.uid).await? {
            // A concurrent activation already wrote what this one would have.
            Some(now_stored) if skip_update(&now_stored.doc, &new) => Ok(now_stored),
            _ => Err(ProfileError::Conflict(new.uid)),
        },
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The API form

/// Which application data an answer shows: Elasticsearch's `data` parameter, a comma-separated
/// list of keys. A key is a dotted path into the data (`app.settings`) in which `*` matches any
/// run of characters (dots included); `*` alone shows everything. A key that reaches a value
/// shows it whole. No keys (the default): `"data": {}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFilter {
    keys: Vec<String>,
}

impl DataFilter {
    /// No application data.
    pub fn none() -> Self {
        Self::default()
    }

    /// The keys of a `data` parameter (blank entries skipped).
    pub fn parse(param: &str) -> Self {
        Self {
            keys: param
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// The part of `data` these keys select.
    pub fn apply(&self, data: &Map<String, Value>) -> Map<String, Value> {
        if self.keys.is_empty() {
            return Map::new();
        }
        filter_object(data, "", &self.keys)
    }
}

fn filter_object(obj: &Map<String, Value>, prefix: &str, keys: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if keys.iter().any(|p| crate::glob::matches(p, &path)) {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let deeper = format!("{path}.");
        if !keys.iter().any(|p| crate::glob::extends(p, &deeper)) {
            continue;
        }
        match v {
            Value::Object(o) => {
                let kept = filter_object(o, &path, keys);
                if !kept.is_empty() {
                    out.insert(k.clone(), Value::Object(kept));
                }
            }
            Value::Array(a) => {
                let kept = filter_array(a, &path, keys);
                if !kept.is_empty() {
                    out.insert(k.clone(), Value::Array(kept));
                }
            }
            _ => {}
        }
    }
    out
}

/// Arrays are transparent: the objects in them are filtered with the array's path.
fn filter_array(items: &[Value], path: &str, keys: &[String]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|v| match v {
            Value::Object(o) => {
                let kept = filter_object(o, path, keys);
                (!kept.is_empty()).then_some(Value::Object(kept))
            }
            Value::Array(a) => {
                let kept = filter_array(a, path, keys);
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            _ => None,
        })
        .collect()
}

/// Elasticsearch's profile object: `uid`, `enabled`, `last_synchronized`, `user`, `labels`,
/// `data` (as selected), `_doc` (`_primary_term`, `_seq_no`).
#[derive(Debug, Serialize)]
pub struct ProfileView<'a> {
    uid: &'a str,
    enabled: bool,
    last_synchronized: UnixMillis,
    user: UserView<'a>,
    labels: &'a Map<String, Value>,
    data: Map<String, Value>,
    #[serde(rename = "_doc")]
    version: VersionView,
}

/// `user` of a profile: `realm_name` for the realm, `email` and `full_name` only when known
/// (no `realm_domain`: there are no security domains here).
#[derive(Debug, Serialize)]
struct UserView<'a> {
    username: &'a str,
    roles: &'a [String],
    realm_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct VersionView {
    #[serde(rename = "_primary_term")]
    primary_term: u64,
    #[serde(rename = "_seq_no")]
    seq_no: u64,
}

impl Profile {
    /// The API form, showing the application data `data` selects.
    pub fn view(&self, data: &DataFilter) -> ProfileView<'_> {
        let d = &self.doc;
        ProfileView {
            uid: &d.uid,
            enabled: d.enabled,
            last_synchronized: d.last_synchronized,
            user: UserView {
                username: &d.user.username,
                roles: &d.user.roles,
                realm_name: &d.user.realm.name,
                email: d.user.email.as_deref(),
                full_name: d.user.full_name.as_deref(),
            },
            labels: &d.labels,
            data: data.apply(&d.application_data),
            version: VersionView {
                primary_term: PRIMARY_TERM,
                seq_no: self.seq_no,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const NOW: UnixMillis = 1_790_000_000_000;

    fn user(username: &str, realm: &str) -> UserRecord {
        UserRecord {
            username: username.into(),
            roles: vec!["viewer".into()],
            full_name: Some("Alice Liddell".into()),
            email: None,
            metadata: Map::new(),
            realm: RealmRef {
                name: realm.into(),
                kind: "oidc".into(),
            },
        }
    }

    // Expected values computed independently:
    // python3 -c "import hashlib,base64;print(base64.urlsafe_b64encode(
    //   hashlib.sha256('alice'.encode()).digest()).rstrip(b'=').decode())"
    #[test]
    fn uids_are_elasticsearch_s() {
        assert_eq!(
            uid("alice", 0),
            "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA_0"
        );
        assert_eq!(
            uid("00u1abcd", 3),
            "u_je9njaDQdnCbpwNjz9Och3W-azIbAMMyoYn4ooYNZHA_3"
        );
        assert_eq!(
            base_uid("Ünïcødé"),
            "u_vvFPZwyGYtRkCPG0trf6BS_3wUnK443nZFnzBfhHorg"
        );
        assert_eq!(
            base_uid("admin"),
            "u_jGl25bVBBBW96Qi9Te4V37Fnqchz_Eu4qB9vKrRIqRg"
        );
    }

    #[test]
    fn uid_shape() {
        for name in ["alice", "", "Ünïcødé", "a,b"] {
            for n in 0..=MAX_DIFFERENTIATOR {
                assert!(is_uid(&uid(name, n)), "{}", uid(name, n));
            }
        }
        let good = uid("alice", 0);
        let bad = [
            String::new(),
            "u_".into(),
            good[..good.len() - 1].into(),
            format!("{good}0"),
            good.replacen("u_", "x_", 1),
            good.replace("_0", "_x"),
            "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbp+_0".into(),
            "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA_10".into(),
            "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA-0".into(),
            "u_K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbÄ_0".into(),
        ];
        for bad in &bad {
            assert!(!is_uid(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn activation_creates_then_skips_then_updates() {
        let store = MemoryStore::new();
        let alice = user("alice", "oidc1");
        let p = activate(&store, &alice, NOW).await.unwrap();
        assert_eq!(p.doc.uid, uid("alice", 0));
        assert_eq!(p.seq_no, 0);
        assert_eq!(p.doc.user, ProfileUser::of(&alice));
        assert!(p.doc.enabled);
        assert_eq!(p.doc.last_synchronized, NOW);
        assert_eq!(get(&store, &p.doc.uid).await.unwrap(), Some(p.clone()));

        // Unchanged within 30 s: nothing written.
        let again = activate(&store, &alice, NOW + ACTIVATE_INTERVAL_MS - 1)
            .await
            .unwrap();
        assert_eq!(again, p);
        // Changed: written at once.
        let mut renamed = alice.clone();
        renamed.email = Some("alice@example.com".into());
        let changed = activate(&store, &renamed, NOW + 1).await.unwrap();
        assert_eq!(changed.seq_no, 1);
        assert_eq!(changed.doc.user.email.as_deref(), Some("alice@example.com"));
        assert_eq!(changed.doc.last_synchronized, NOW + 1);
        // Unchanged but 30 s on: written.
        let later = activate(&store, &renamed, NOW + 1 + ACTIVATE_INTERVAL_MS)
            .await
            .unwrap();
        assert_eq!(later.seq_no, 2);
        assert_eq!(later.doc.uid, p.doc.uid);
        // Fields the user no longer has go.
        let later2 = activate(&store, &alice, NOW + 2 + ACTIVATE_INTERVAL_MS)
            .await
            .unwrap();
        assert_eq!(later2.doc.user.email, None);
        assert_eq!(later2.seq_no, 3);
    }

    #[tokio::test]
    async fn activation_keeps_labels_and_data() {
        let store = MemoryStore::new();
        let alice = user("alice", "oidc1");
        let p = activate(&store, &alice, NOW).await.unwrap();
        let mut doc = p.doc.clone();
        doc.labels.insert("team".into(), json!("blue"));
        doc.application_data
            .insert("kibana".into(), json!({"theme": "dark"}));
        store
            .put_profile(&doc.uid, doc.encode().unwrap(), Some(p.seq_no))
            .await
            .unwrap();
        let mut promoted = alice.clone();
        promoted.roles.push("admin".into());
        let q = activate(&store, &promoted, NOW + 5).await.unwrap();
        assert_eq!(q.seq_no, 2);
        assert_eq!(q.doc.labels, doc.labels);
        assert_eq!(q.doc.application_data, doc.application_data);
        assert_eq!(q.doc.user.roles, ["viewer", "admin"]);
    }

    #[tokio::test]
    async fn same_username_in_two_realms_gets_two_profiles() {
        let store = MemoryStore::new();
        let one = activate(&store, &user("alice", "oidc1"), NOW)
            .await
            .unwrap();
        let two = activate(&store, &user("alice", "oidc2"), NOW)
            .await
            .unwrap();
        assert_eq!(one.doc.uid, uid("alice", 0));
        assert_eq!(two.doc.uid, uid("alice", 1));
        assert_eq!(two.doc.user.realm.name, "oidc2");
        // Each finds its own again.
        let again = activate(&store, &user("alice", "oidc2"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(again, two);
        let again = activate(&store, &user("alice", "oidc1"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(again, one);
        assert_eq!(
            activate(&store, &user("bob", "oidc2"), NOW)
                .await
                .unwrap()
                .doc
                .uid,
            uid("bob", 0)
        );
    }

    #[tokio::test]
    async fn ten_owners_exhaust_the_differentiators() {
        let store = MemoryStore::new();
        for n in 0..=MAX_DIFFERENTIATOR {
            let p = activate(&store, &user("alice", &format!("r{n}")), NOW)
                .await
                .unwrap();
            assert_eq!(p.doc.uid, uid("alice", n));
        }
        let e = activate(&store, &user("alice", "r10"), NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProfileError::Exhausted(ref b) if *b == base_uid("alice")),
            "{e:?}"
        );
        assert!(e.to_string().contains("differentiator value is too high"));
    }

    #[tokio::test]
    async fn corrupt_records_are_errors() {
        let store = MemoryStore::new();
        let u = uid("alice", 0);
        store
            .put_profile(&u, b"{not json".to_vec(), None)
            .await
            .unwrap();
        assert!(matches!(
            get(&store, &u).await,
            Err(ProfileError::Store(StoreError::Corrupt(_)))
        ));
        // A record under the wrong key.
        let v = uid("bob", 0);
        let p = activate(&store, &user("carol", "oidc1"), NOW)
            .await
            .unwrap();
        store
            .put_profile(&v, p.doc.encode().unwrap(), None)
            .await
            .unwrap();
        assert!(matches!(
            activate(&store, &user("bob", "oidc1"), NOW).await,
            Err(ProfileError::Store(StoreError::Corrupt(_)))
        ));
    }

    /// A store that lets another writer in just before the first profile write.
    #[derive(Debug)]
    struct Racing {
        inner: MemoryStore,
        rival: ProfileDoc,
        armed: AtomicBool,
    }

    #[async_trait]
    impl Store for Racing {
        async fn insert_token(&self, doc: crate::model::TokenDoc) -> Result<(), StoreError> {
            self.inner.insert_token(doc).await
        }
        async fn get_by_access(
            &self,
            h: &crate::model::Hash32,
        ) -> Result<Option<crate::model::TokenDoc>, StoreError> {
            self.inner.get_by_access(h).await
        }
        async fn get_by_refresh(
            &self,
            h: &crate::model::Hash32,
        ) -> Result<Option<crate::model::TokenDoc>, StoreError> {
            self.inner.get_by_refresh(h).await
        }
        async fn refresh(
            &self,
            h: &crate::model::Hash32,
            r: crate::model::Refreshed,
            d: crate::model::TokenDoc,
        ) -> Result<crate::store::RefreshOutcome, StoreError> {
            self.inner.refresh(h, r, d).await
        }
        async fn invalidate(
            &self,
            w: crate::store::Invalidation,
        ) -> Result<crate::store::InvalidationCounts, StoreError> {
            self.inner.invalidate(w).await
        }
        async fn insert_flow(
            &self,
            h: &crate::model::Hash32,
            f: crate::store::FlowRecord,
        ) -> Result<(), StoreError> {
            self.inner.insert_flow(h, f).await
        }
        async fn take_flow(
            &self,
            h: &crate::model::Hash32,
            now: UnixMillis,
        ) -> Result<Option<crate::store::FlowRecord>, StoreError> {
            self.inner.take_flow(h, now).await
        }
        async fn sweep_expired(&self, now: UnixMillis, limit: usize) -> Result<usize, StoreError> {
            self.inner.sweep_expired(now, limit).await
        }
        async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
            self.inner.get_profile(uid).await
        }
        async fn put_profile(
            &self,
            uid: &str,
            json: Vec<u8>,
            expected: Option<u64>,
        ) -> Result<u64, StoreError> {
            if self.armed.swap(false, Ordering::SeqCst) {
                let current = self.inner.get_profile(uid).await?.map(|p| p.seq_no);
                self.inner
                    .put_profile(uid, self.rival.encode()?, current)
                    .await?;
            }
            self.inner.put_profile(uid, json, expected).await
        }
    }

    fn racing(rival: ProfileDoc) -> Racing {
        Racing {
            inner: MemoryStore::new(),
            rival,
            armed: AtomicBool::new(true),
        }
    }

    fn doc_of(u: &UserRecord, differentiator: u32, at: UnixMillis) -> ProfileDoc {
        ProfileDoc {
            uid: uid(&u.username, differentiator),
            enabled: true,
            last_synchronized: at,
            user: ProfileUser::of(u),
            labels: Map::new(),
            application_data: Map::new(),
        }
    }

    #[tokio::test]
    async fn losing_a_create_race_to_the_same_user_answers_the_winner() {
        let alice = user("alice", "oidc1");
        let store = racing(doc_of(&alice, 0, NOW));
        let p = activate(&store, &alice, NOW).await.unwrap();
        assert_eq!(p.doc, doc_of(&alice, 0, NOW));
        assert_eq!(p.seq_no, 0);
    }

    #[tokio::test]
    async fn losing_a_create_race_to_another_realm_moves_on() {
        let alice = user("alice", "oidc1");
        let store = racing(doc_of(&user("alice", "oidc2"), 0, NOW));
        let p = activate(&store, &alice, NOW).await.unwrap();
        assert_eq!(p.doc.uid, uid("alice", 1));
        assert_eq!(p.doc.user.realm.name, "oidc1");
    }

    #[tokio::test]
    async fn losing_an_update_race() {
        let alice = user("alice", "oidc1");
        let mut changed = alice.clone();
        changed.roles = vec!["other".into()];
        // The rival wrote what this activation would: its record is the answer.
        let store = racing(doc_of(&changed, 0, NOW + 40_000));
        store.armed.store(false, Ordering::SeqCst);
        activate(&store, &alice, NOW).await.unwrap();
        store.armed.store(true, Ordering::SeqCst);
        let p = activate(&store, &changed, NOW + 40_001).await.unwrap();
        assert_eq!(p.seq_no, 1);
        assert_eq!(p.doc.last_synchronized, NOW + 40_000);
        // The rival wrote something else: a conflict, to retry.
        let store = racing(doc_of(&alice, 0, NOW + 40_000));
        store.armed.store(false, Ordering::SeqCst);
        activate(&store, &alice, NOW).await.unwrap();
        store.armed.store(true, Ordering::SeqCst);
        let e = activate(&store, &changed, NOW + 40_001).await.unwrap_err();
        assert!(
            matches!(e, ProfileError::Conflict(ref u) if *u == uid("alice", 0)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_activations_agree() {
        let store = Arc::new(MemoryStore::new());
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                activate(&*store, &user("alice", "oidc1"), NOW).await
            }));
        }
        for t in tasks {
            let p = t.await.unwrap().unwrap();
            assert_eq!(p.doc.uid, uid("alice", 0));
            assert_eq!(p.seq_no, 0);
        }
    }

    #[test]
    fn data_filter() {
        let data = json!({
            "kibana": {"theme": "dark", "avatar": {"initials": "AL", "color": "#fff"}},
            "app.dotted": 1,
            "apm": {"list": [{"a": 1, "b": 2}, 3, {"b": 4}]},
            "other": true
        });
        let data = data.as_object().unwrap();
        let f = |p: &str| Value::Object(DataFilter::parse(p).apply(data));
        assert_eq!(DataFilter::none().apply(data), Map::new());
        assert_eq!(f(""), json!({}));
        assert_eq!(f(" , "), json!({}));
        assert_eq!(f("*"), Value::Object(data.clone()));
        assert_eq!(f("kibana"), json!({"kibana": data["kibana"]}));
        assert_eq!(
            f("kibana.avatar.initials,other"),
            json!({"kibana": {"avatar": {"initials": "AL"}}, "other": true})
        );
        assert_eq!(f("kibana.*"), json!({"kibana": data["kibana"]}));
        assert_eq!(f("ki*"), json!({"kibana": data["kibana"]}));
        assert_eq!(f("*.theme"), json!({"kibana": {"theme": "dark"}}));
        assert_eq!(f("app.dotted"), json!({"app.dotted": 1}));
        assert_eq!(
            f("apm.list.b"),
            json!({"apm": {"list": [{"b": 2}, {"b": 4}]}})
        );
        assert_eq!(f("nope,kibana.nope,other.x"), json!({}));
    }

    #[test]
    fn view_is_elasticsearch_s() {
        let mut u = user("alice", "oidc1");
        u.email = Some("a@example.com".into());
        let p = Profile {
            doc: doc_of(&u, 0, NOW),
            seq_no: 7,
        };
        let v = serde_json::to_value(p.view(&DataFilter::none())).unwrap();
        assert_eq!(
            v,
            json!({
                "uid": uid("alice", 0),
                "enabled": true,
                "last_synchronized": NOW,
                "user": {
                    "username": "alice",
                    "roles": ["viewer"],
                    "realm_name": "oidc1",
                    "email": "a@example.com",
                    "full_name": "Alice Liddell"
                },
                "labels": {},
                "data": {},
                "_doc": {"_primary_term": 1, "_seq_no": 7}
            })
        );
        u.full_name = None;
        u.email = None;
        let p = Profile {
            doc: doc_of(&u, 0, NOW),
            seq_no: 0,
        };
        let v = serde_json::to_value(p.view(&DataFilter::none())).unwrap();
        assert_eq!(
            v["user"],
            json!({"username": "alice", "roles": ["viewer"], "realm_name": "oidc1"})
        );
    }

    #[test]
    fn record_format() {
        let p = doc_of(&user("alice", "oidc1"), 0, NOW);
        let v: Value = serde_json::from_slice(&p.encode().unwrap()).unwrap();
        assert_eq!(
            v,
            json!({
                "uid": uid("alice", 0),
                "enabled": true,
                "last_synchronized": NOW,
                "user": {
                    "username": "alice",
                    "roles": ["viewer"],
                    "realm": {"name": "oidc1", "type": "oidc"},
                    "full_name": "Alice Liddell"
                },
                "labels": {},
                "application_data": {}
            })
        );
        // Optional members may be missing; unknown ones are ignored.
        let minimal = json!({
            "uid": "u_x", "enabled": false, "last_synchronized": 5, "future": 1,
            "user": {"username": "u", "roles": [], "realm": {"name": "r", "type": "t"}}
        });
        let d: ProfileDoc = serde_json::from_value(minimal).unwrap();
        assert!(d.labels.is_empty() && d.application_data.is_empty());
        assert_eq!(d.user.email, None);
    }
}
