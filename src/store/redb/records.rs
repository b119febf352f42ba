//! Generic versioned records ([`Store::get_record`](crate::store::Store::get_record) and
//! friends): the `records` table.
//!
//! | table | key | value |
//! |---|---|---|
//! | `records` | `len kind ++ kind ++ key` (UTF-8) | `version` (big-endian `u64`) `++` the value |
//!
//! Added after schema version 1 without a version bump: a new table only, created (empty) by
//! `Tables::open` when an older file is opened.

use super::error::{table_error, OpError};
use super::keys::{push_name, successor};
use super::schema::Bytes;
use crate::store::{StoreError, StoredRecord};
use ::redb::{ReadableTable, TableDefinition};

pub(super) const RECORDS: TableDefinition<Bytes, Bytes> = TableDefinition::new("records");

pub(super) fn record_key(kind: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + kind.len() + key.len());
    push_name(&mut k, kind);
    k.extend_from_slice(key.as_bytes());
    k
}

pub(super) fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn decode(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
    if bytes.len() < 8 {
        return Err(StoreError::Corrupt(
            "record shorter than its version".into(),
        ));
    }
    let (v, value) = bytes.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(v);
    Ok(StoredRecord {
        version: u64::from_be_bytes(b),
        value: value.to_vec(),
    })
}

pub(super) fn get(
    table: &impl ReadableTable<Bytes, Bytes>,
    kind: &str,
    key: &str,
) -> Result<Option<StoredRecord>, OpError> {
    match table.get(record_key(kind, key).as_slice())? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn list(
    table: &impl ReadableTable<Bytes, Bytes>,
    kind: &str,
    prefix: &str,
) -> Result<Vec<(String, StoredRecord)>, OpError> {
    let start = record_key(kind, prefix);
    let mut kind_prefix = Vec::new();
    push_name(&mut kind_prefix, kind);
    let skip = kind_prefix.len();
    let mut out = Vec::new();
    let mut push = |k: &[u8], v: &[u8]| -> Result<(), OpError> {
        let key = std::str::from_utf8(&k[skip..])
            .map_err(|_| StoreError::Corrupt("record key is not UTF-8".into()))?;
        out.push((key.to_string(), decode(v)?));
        Ok(())
    };
    match successor(&start) {
        Some(end) => {
            for entry in table.range(start.as_slice()..end.as_slice())? {
                let (k, v) = entry?;
                push(k.value(), v.value())?;
            }
        }
        None => {
            for entry in table.range(start.as_slice()..)? {
                let (k, v) = entry?;
                push(k.value(), v.value())?;
            }
        }
    }
    Ok(out)
}

/// Up to `limit` records after `after` in the table's order (the length-prefixed kind, then
/// the key), as `(kind, key, record)`.
pub(super) fn after(
    table: &impl ReadableTable<Bytes, Bytes>,
    after: Option<&(String, String)>,
    limit: usize,
) -> Result<Vec<(String, String, StoredRecord)>, OpError> {
    let start = after.map(|(kind, key)| record_key(kind, key));
    let range = match &start {
        Some(s) => table.range(s.as_slice()..)?,
        None => table.range::<&[u8]>(..)?,
    };
    let mut out = Vec::new();
    for entry in range {
        if out.len() == limit {
            break;
        }
        let (k, v) = entry?;
        let k = k.value();
        if start.as_deref() == Some(k) {
            continue;
        }
        let (kind, key) = split_key(k)?;
        out.push((kind, key, decode(v.value())?));
    }
    Ok(out)
}

/// The `(kind, key)` of a [`record_key`].
fn split_key(k: &[u8]) -> Result<(String, String), StoreError> {
    let corrupt = || StoreError::Corrupt("record key malformed".into());
    let len = k.get(..4).ok_or_else(corrupt)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let kind = k.get(4..4 + len).ok_or_else(corrupt)?;
    let key = &k[4 + len..];
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt());
    Ok((text(kind)?, text(key)?))
}

pub(super) fn open_error(e: ::redb::TableError) -> OpError {
    OpError::Op(table_error(e))
}
