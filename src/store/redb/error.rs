//! Why a task on the writer failed ([`OpError`]), and redb's errors as [`StoreError`]s.

use crate::store::StoreError;
use ::redb::{StorageError, TableError};
use std::fmt;

/// Why a task on the writer failed.
pub(super) enum OpError {
    /// This task alone failed, before writing anything; the rest of the batch goes on.
    Op(StoreError),
    /// The transaction can no longer be trusted: the whole batch is aborted.
    Txn(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Op(e)
    }
}

impl From<StorageError> for OpError {
    fn from(e: StorageError) -> Self {
        OpError::Txn(e.to_string())
    }
}

pub(super) fn unavailable(e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn table_error(e: TableError) -> StoreError {
    match e {
        TableError::Storage(e) => unavailable(e),
        e => StoreError::Corrupt(format!("unexpected table layout: {e}")),
    }
}
