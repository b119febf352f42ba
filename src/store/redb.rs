//! The embedded default backend: redb, with group commit. (Being written.)

use super::StoreError;

/// See the module documentation.
#[derive(Debug)]
pub struct RedbStore {
    _private: (),
}

impl RedbStore {
    /// Open (or create) the store file.
    pub fn open(_path: &std::path::Path) -> Result<Self, StoreError> {
        Err(StoreError::Unavailable(
            "the redb backend is being written".into(),
        ))
    }
}
