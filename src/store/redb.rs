//! The embedded default backend: redb, with group commit. (Being written.)

use super::*;

/// See the module documentation.
#[derive(Debug)]
pub struct RedbStore {
    _private: (),
}
