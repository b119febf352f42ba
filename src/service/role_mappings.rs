//! The role-mapping service: the live set of role mappings, an [`ArcSwap`] of [`RoleMapper`] snapshots, rebuilt from the
//! store after every API write and on [`RoleMappings::reload`], and given new configuration
//! mappings on configuration reload. Logins read the current snapshot without locking.
//!
//! Startup: `serve` calls [`RoleMappings::reload`] before it listens. In case a caller forgets
//! (tests that build an `AppState` directly), the role-mapping API loads the stored mappings
//! on first use too ([`RoleMappings::ensure_loaded`]); `roles_for` never touches the store.

use crate::audit::{Audit, AuditEvent, Capped, Who};
use crate::roles::{MappingError, RoleMapper, RoleMapping, UserModel};
use crate::store::{Store, StoreError};
use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why a write through the API was refused.
#[derive(Debug)]
pub enum WriteError {
    /// The name belongs to a configuration mapping (read-only through the API).
    FileMapping(String),
    /// The body is not a valid mapping.
    Invalid(MappingError),
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

/// Compiled stored mappings by name, with the bytes they were compiled from.
type CompileCache = HashMap<String, (Vec<u8>, Arc<RoleMapping>)>;

/// See the module documentation.
#[derive(Debug)]
pub struct RoleMappings {
    store: Arc<dyn Store>,
    mapper: ArcSwap<RoleMapper>,
    /// Serialises API writes and store reloads (so an older reload never replaces a newer
    /// one) and guards the compile cache.
    write: tokio::sync::Mutex<CompileCache>,
    loaded: AtomicBool,
    /// API writes are audited (`role_mapping_changed`).
    audit: Audit,
}

impl RoleMappings {
    /// Start with the configuration's mappings and no API mappings (until loaded).
    pub fn new(store: Arc<dyn Store>, file: Vec<Arc<RoleMapping>>, audit: Audit) -> Self {
        RoleMappings {
            audit,
            store,
            mapper: ArcSwap::from_pointee(RoleMapper::new(file, Vec::new())),
            write: tokio::sync::Mutex::new(HashMap::new()),
            loaded: AtomicBool::new(false),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<RoleMapper> {
        self.mapper.load_full()
    }

    /// The roles of `user` under the current snapshot.
    pub fn roles_for(&self, user: &UserModel) -> Vec<String> {
        self.mapper.load().roles_for(user)
    }

    /// Replace the configuration's mappings (configuration reload); API mappings stay.
    pub fn set_file(&self, file: Vec<Arc<RoleMapping>>) {
        self.mapper.rcu(|m| m.with_file(file.clone()));
    }

    /// Load every stored mapping, compile the new or changed ones, and swap them in. A stored
    /// mapping that no longer compiles is skipped (logged, and returned as a message).
    pub async fn reload(&self) -> Result<Vec<String>, StoreError> {
        let mut cache = self.write.lock().await;
        self.reload_locked(&mut cache).await
    }

    /// [`Self::reload`] unless done already.
    pub async fn ensure_loaded(&self) -> Result<(), StoreError> {
        if !self.loaded.load(Ordering::Acquire) {
            let mut cache = self.write.lock().await;
            if !self.loaded.load(Ordering::Acquire) {
                self.reload_locked(&mut cache).await?;
            }
        }
        Ok(())
    }

    async fn reload_locked(&self, cache: &mut CompileCache) -> Result<Vec<String>, StoreError> {
        let rows = self.store.get_role_mappings().await?;
        let mut problems = Vec::new();
        let mut api = Vec::with_capacity(rows.len());
        let mut next = HashMap::with_capacity(rows.len());
        for (name, bytes) in rows {
            let compiled = match cache.remove(&name) {
                Some((old, m)) if old == bytes => Ok(m),
                _ => compile_stored(&name, &bytes),
            };
            match compiled {
                Ok(m) => {
                    api.push(m.clone());
                    next.insert(name, (bytes, m));
                }
                Err(e) => {
                    let msg = format!("stored role mapping [{name}] is ignored: {e}");
                    tracing::error!("{msg}");
                    problems.push(msg);
                }
            }
        }
        *cache = next;
        self.mapper.rcu(|m| m.with_api(api.clone()));
        self.loaded.store(true, Ordering::Release);
        Ok(problems)
    }

    /// Validate, store (durably) and swap in a mapping written through the API by `by`:
    /// `true` if it was created, `false` if it replaced one.
    pub async fn put(&self, by: Who<'_>, name: &str, body: &Value) -> Result<bool, WriteError> {
        let mut cache = self.write.lock().await;
        if !self.loaded.load(Ordering::Acquire) {
            self.reload_locked(&mut cache).await?;
        }
        if self.mapper.load().is_file(name) {
            return Err(WriteError::FileMapping(name.to_string()));
        }
        RoleMapping::parse(name, body, "").map_err(WriteError::Invalid)?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode role mapping: {e}")))?;
        let created = self.store.put_role_mapping(name, bytes).await?;
        self.audit.emit(
            Some(by),
            AuditEvent::RoleMappingChanged {
                operation: "put",
                name: Capped::new(name),
                created: Some(created),
                found: None,
            },
        );
        self.reload_locked(&mut cache).await?;
        Ok(created)
    }

    /// Delete a mapping written through the API (by `by`); whether it existed.
    pub async fn delete(&self, by: Who<'_>, name: &str) -> Result<bool, WriteError> {
        let mut cache = self.write.lock().await;
        if !self.loaded.load(Ordering::Acquire) {
            self.reload_locked(&mut cache).await?;
        }
        if self.mapper.load().is_file(name) {
            return Err(WriteError::FileMapping(name.to_string()));
        }
        let found = self.store.delete_role_mapping(name).await?;
        if found {
            self.audit.emit(
                Some(by),
                AuditEvent::RoleMappingChanged {
                    operation: "delete",
                    name: Capped::new(name),
                    created: None,
                    found: Some(true),
                },
            );
        }
        self.reload_locked(&mut cache).await?;
        Ok(found)
    }
}

fn compile_stored(name: &str, bytes: &[u8]) -> Result<Arc<RoleMapping>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    RoleMapping::parse(name, &v, "")
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use serde_json::json;

    const ADMIN: Who<'static> = Who {
        user: "admin",
        realm: "default_file",
    };

    fn user(name: &str) -> UserModel {
        UserModel {
            username: name.into(),
            realm_name: "oidc1".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn writes_swap_the_snapshot_and_file_names_are_read_only() {
        let store = Arc::new(MemoryStore::new());
        let file = Arc::new(
            RoleMapping::parse(
                "from-file",
                &json!({"enabled": true, "roles": ["f"], "rules": {"field": {"username": "*"}}}),
                "",
            )
            .unwrap(),
        );
        let live = RoleMappings::new(store.clone(), vec![file], Audit::off());
        assert_eq!(live.roles_for(&user("a")), ["f"]);
        let body = json!({"enabled": true, "roles": ["x"], "rules": {"field": {"username": "a"}}});
        assert!(live.put(ADMIN, "m", &body).await.unwrap());
        assert!(!live.put(ADMIN, "m", &body).await.unwrap());
        assert_eq!(live.roles_for(&user("a")), ["f", "x"]);
        assert!(matches!(
            live.put(ADMIN, "from-file", &body).await,
            Err(WriteError::FileMapping(_))
        ));
        assert!(matches!(
            live.delete(ADMIN, "from-file").await,
            Err(WriteError::FileMapping(_))
        ));
        assert!(matches!(
            live.put(ADMIN, "bad", &json!({"enabled": true})).await,
            Err(WriteError::Invalid(_))
        ));
        assert_eq!(store.get_role_mappings().await.unwrap().len(), 1);
        // Configuration reload: the file mapping goes, the API one stays.
        live.set_file(Vec::new());
        assert_eq!(live.roles_for(&user("a")), ["x"]);
        assert!(live.delete(ADMIN, "m").await.unwrap());
        assert!(!live.delete(ADMIN, "m").await.unwrap());
        assert!(live.roles_for(&user("a")).is_empty());
    }

    #[tokio::test]
    async fn reload_skips_stored_mappings_that_do_not_compile() {
        let store = Arc::new(MemoryStore::new());
        store
            .put_role_mapping(
                "ok",
                br#"{"enabled":true,"roles":["r"],"rules":{"field":{"username":"*"}}}"#.to_vec(),
            )
            .await
            .unwrap();
        store
            .put_role_mapping("broken", b"{not json".to_vec())
            .await
            .unwrap();
        let live = RoleMappings::new(store.clone(), Vec::new(), Audit::off());
        assert!(live.roles_for(&user("a")).is_empty());
        let problems = live.reload().await.unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("[broken]"));
        assert_eq!(live.roles_for(&user("a")), ["r"]);
    }
}
