//! Single-use expiring records ([`Store::put_once`](super::Store::put_once) /
//! [`take_once`](super::Store::take_once)) kept in memory, for the memory and redb backends
//! (like pending logins: a restart loses them, and the user starts again).

use super::StoreError;
use crate::clock::UnixMillis;
use std::collections::HashMap;
use std::sync::Mutex;

/// `(kind, key)` → `(expires_at, value)`.
type Records = HashMap<(String, String), (UnixMillis, Vec<u8>)>;

#[derive(Debug, Default)]
pub(super) struct OnceTable {
    inner: Mutex<Records>,
}

impl OnceTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn put(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut map = self.lock();
        let k = (kind.to_string(), key.to_string());
        if map.get(&k).is_some_and(|(exp, _)| *exp > now) {
            return Err(StoreError::Conflict);
        }
        map.insert(k, (expires_at, value));
        Ok(())
    }

    pub(super) fn take(&self, kind: &str, key: &str, now: UnixMillis) -> Option<Vec<u8>> {
        let (exp, value) = self.lock().remove(&(kind.to_string(), key.to_string()))?;
        (exp > now).then_some(value)
    }

    /// Remove up to `limit` records expired at `now`; how many.
    pub(super) fn sweep(&self, now: UnixMillis, limit: usize) -> usize {
        let mut map = self.lock();
        let expired: Vec<(String, String)> = map
            .iter()
            .filter(|(_, (exp, _))| *exp <= now)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        for k in &expired {
            map.remove(k);
        }
        expired.len()
    }
}
