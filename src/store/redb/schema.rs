//! The tables of the file and opening it: the schema version (written, checked, refused), and
//! every table created so that readers never meet a missing one.

use super::error::{table_error, unavailable, OpError};
use super::tables::Tables;
use crate::store::{StoreError, SCHEMA_VERSION};
use ::redb::{Database, DatabaseError, ReadableTable, StorageError, TableDefinition};
use std::path::Path;

pub(super) type Bytes = &'static [u8];

pub(super) const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
pub(super) const TOKENS: TableDefinition<Bytes, Bytes> = TableDefinition::new("tokens");
pub(super) const TOKEN_REFRESH: TableDefinition<Bytes, Bytes> =
    TableDefinition::new("token_refresh");
pub(super) const TOKEN_OWNER: TableDefinition<Bytes, ()> = TableDefinition::new("token_owner");
pub(super) const TOKEN_FAMILY: TableDefinition<Bytes, ()> = TableDefinition::new("token_family");
pub(super) const TOKEN_EXPIRY: TableDefinition<Bytes, ()> = TableDefinition::new("token_expiry");
/// Added after schema version 1 without a version bump: a new table only, created (empty) by
/// [`Tables::open`] when an older file is opened.
pub(super) const ROLE_MAPPINGS: TableDefinition<&str, Bytes> =
    TableDefinition::new("role_mappings");
/// Added after schema version 1 without a version bump, like `role_mappings`.
pub(super) const PROFILES: TableDefinition<&str, Bytes> = TableDefinition::new("profiles");

pub(super) const SCHEMA_KEY: &str = "schema_version";

pub(super) fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let file = path.display();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "store file {file} is already open (by another oidc-realm process?)"
        )),
        DatabaseError::Storage(StorageError::Corrupted(why)) => StoreError::Corrupt(format!(
            "store file {file} is not a usable redb file: {why}"
        )),
        e => StoreError::Unavailable(format!("cannot open store file {file}: {e}")),
    }
}

/// Write the schema version into a new file, check it in an existing one, refuse any other
/// version (newer: unknown; older: no migration exists), and make sure every table exists (so
/// readers never meet a missing table).
pub(super) fn init_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let file = path.display();
    let txn = db.begin_write().map_err(unavailable)?;
    {
        let mut meta = txn.open_table(META).map_err(table_error)?;
        let found = meta
            .get(SCHEMA_KEY)
            .map_err(unavailable)?
            .map(|v| v.value());
        match found {
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Unavailable(format!(
                    "store file {file} has schema version {v}, newer than the version {SCHEMA_VERSION} \
                     this build knows: run a newer oidc-realm, or point it to another file"
                )));
            }
            // An older version. Version 1 is the first schema, so there is nothing to migrate
            // from: such a file is refused. When the schema changes, bump SCHEMA_VERSION and
            // migrate here, inside this transaction (so a failed migration leaves the file as
            // it was), one step per old version, then record the new version.
            Some(v) => {
                return Err(StoreError::Unavailable(format!(
                    "store file {file}: migration from schema version {v} failed: no migration \
                     from schema version {v}"
                )));
            }
            None => {
                let others = txn
                    .list_tables()
                    .map_err(unavailable)?
                    .filter(|t| ::redb::TableHandle::name(t) != "meta")
                    .count();
                if others > 0 {
                    return Err(StoreError::Corrupt(format!(
                        "store file {file} holds tables but no schema version; refusing to use it"
                    )));
                }
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(unavailable)?;
            }
        }
    }
    Tables::open(&txn).map_err(|e| match e {
        OpError::Op(e) => e,
        OpError::Txn(why) => StoreError::Unavailable(why),
    })?;
    txn.commit().map_err(unavailable)
}
