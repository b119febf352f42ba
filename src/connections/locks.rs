//! A keyed async lock: one `tokio::sync::Mutex` per key, alive while someone holds or waits
//! for it, so refreshes of one (connection, user) run one at a time while other keys never
//! wait. Entries whose lock nobody holds are dropped as the map grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl KeyedLocks {
    /// Wait for the lock of `key` and hold it until the guard is dropped.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let existing = map.get(key).and_then(Weak::upgrade);
            match existing {
                Some(l) => l,
                None => {
                    // Clean up before growing: drop keys nobody holds.
                    if map.len() >= 1024 && map.len().is_power_of_two() {
                        map.retain(|_, w| w.strong_count() > 0);
                    }
                    let l = Arc::new(AsyncMutex::new(()));
                    map.insert(key.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }

    /// Keys with an entry (held, awaited, or not yet cleaned up).
    pub fn len(&self) -> usize {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_waits_other_key_does_not() {
        let locks = Arc::new(KeyedLocks::default());
        let held = locks.lock("a").await;
        // Another key is free.
        let other = tokio::time::timeout(std::time::Duration::from_secs(1), locks.lock("b")).await;
        assert!(other.is_ok());
        drop(other);
        // The same key is not.
        let same =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a")).await;
        assert!(same.is_err());
        drop(held);
        let again = tokio::time::timeout(std::time::Duration::from_secs(1), locks.lock("a")).await;
        assert!(again.is_ok());
        drop(again);
        assert!(locks.is_empty());
    }
}
