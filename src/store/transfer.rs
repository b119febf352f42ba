//! `oidc-realm export` / `import`: every token, role mapping, profile and generic record of a
//! store as JSON lines, to move between backends (redb ↔ PostgreSQL) or to keep as a logical
//! backup.
//!
//! # Format
//!
//! UTF-8, one JSON object per line:
//!
//! - first line: `{"oidc_realm_export":2}` (the format version; files of version 1, written
//!   before records were exported, are read too);
//! - `{"token":{...}}`: a stored pair as the server keeps it (hashes of the tokens, never the
//!   tokens; the logout data and a refresh's superseding pair sealed as stored);
//! - `{"role_mapping":{"name":"...","body":{...}}}`: a mapping written through the API, its
//!   body as the API took it;
//! - `{"profile":{"uid":"...","seq_no":N,"body":{...}}}`: a user profile and its version;
//! - `{"record":{"kind":"...","key":"...","version":N,"value":"..."}}`: a generic record
//!   (connections defined through the API, users' grants at them, refresh leases), its value
//!   as stored (grants stay sealed under the connections' key) in unpadded base64url.
//!
//! Pending logins and single-use records are not exported (they last minutes; a user whose login was in flight logs
//! in again). An import writes each record durably: a pair that exists already is skipped
//! (so an interrupted import can be run again), a mapping, profile or record is replaced.
//!
//! The file holds personal data (profiles, the claims of every token's user): keep it as
//! carefully as the store itself.

use super::{StoreError, StoreTransfer, StoredProfile, StoredRecord};
use crate::model::TokenDoc;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, Write};

/// The format version written on the first line.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version an import reads (1: no records).
const OLDEST_FORMAT_VERSION: u32 = 1;

/// Records read per page from the source store.
const PAGE: usize = 500;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    oidc_realm_export: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Token(Box<TokenDoc>),
    RoleMapping {
        name: String,
        body: Value,
    },
    Profile {
        uid: String,
        seq_no: u64,
        body: Value,
    },
    Record {
        kind: String,
        key: String,
        version: u64,
        /// Unpadded base64url.
        value: String,
    },
}

/// What an export or an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub tokens: u64,
    /// Import only: pairs already in the target.
    pub tokens_skipped: u64,
    pub role_mappings: u64,
    pub profiles: u64,
    pub records: u64,
}

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {why}")]
    Format { line: u64, why: String },
}

fn json_of(bytes: &[u8], what: &str) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} is not JSON: {e}")))
}

fn write_line(out: &mut impl Write, line: &impl Serialize) -> Result<(), TransferError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Write every token, role mapping and profile of `store` to `out`.
pub async fn export(
    store: &dyn StoreTransfer,
    out: &mut impl Write,
) -> Result<Counts, TransferError> {
    let mut counts = Counts::default();
    write_line(
        out,
        &Header {
            oidc_realm_export: FORMAT_VERSION,
        },
    )?;
    let mut after = None;
    loop {
        let page = store.tokens_after(after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.access_hash);
        for doc in page {
            write_line(out, &Line::Token(Box::new(doc)))?;
            counts.tokens += 1;
        }
    }
    for (name, body) in store.get_role_mappings().await? {
        let body = json_of(&body, &format!("role mapping {name:?}"))?;
        write_line(out, &Line::RoleMapping { name, body })?;
        counts.role_mappings += 1;
    }
    let mut after: Option<String> = None;
    loop {
        let page = store.profiles_after(after.clone(), PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.0.clone());
        for (uid, p) in page {
            let body = json_of(&p.json, &format!("profile {uid:?}"))?;
            write_line(
                out,
                &Line::Profile {
                    uid,
                    seq_no: p.seq_no,
                    body,
                },
            )?;
            counts.profiles += 1;
        }
    }
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.records_after(after.clone(), PAGE).await?;
        let Some((kind, key, _)) = page.last() else {
            break;
        };
        after = Some((kind.clone(), key.clone()));
        for (kind, key, r) in page {
            write_line(
                out,
                &Line::Record {
                    kind,
                    key,
                    version: r.version,
                    value: B64.encode(&r.value),
                },
            )?;
            counts.records += 1;
        }
    }
    out.flush()?;
    Ok(counts)
}

/// Write every record of `input` (an export) into `store`.
pub async fn import(
    store: &dyn StoreTransfer,
    input: impl BufRead,
) -> Result<Counts, TransferError> {
    let mut counts = Counts::default();
    let mut lines = input.lines();
    let format = |line: u64, why: String| TransferError::Format { line, why };
    let first = lines
        .next()
        .ok_or_else(|| format(1, "empty input; expected an oidc-realm export".into()))??;
    let header: Header = serde_json::from_str(&first)
        .map_err(|_| format(1, "not an oidc-realm export (no header line)".into()))?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&header.oidc_realm_export) {
        return Err(format(
            1,
            format!(
                "export format {} is not one this build reads \
                 ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                header.oidc_realm_export
            ),
        ));
    }
    let mut pending = Vec::with_capacity(PAGE);
    for (n, line) in lines.enumerate() {
        let n = n as u64 + 2;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Line = serde_json::from_str(&line).map_err(|e| {
            // The position only: the line may hold personal data.
            format(
                n,
                format!("not a record (column {}: {:?})", e.column(), e.classify()),
            )
        })?;
        match record {
            Line::Token(doc) => {
                pending.push(*doc);
                if pending.len() == PAGE {
                    insert_all(store, &mut pending, &mut counts).await?;
                }
            }
            Line::RoleMapping { name, body } => {
                let bytes = serde_json::to_vec(&body).map_err(std::io::Error::from)?;
                store.put_role_mapping(&name, bytes).await?;
                counts.role_mappings += 1;
            }
            Line::Profile { uid, seq_no, body } => {
                let json = serde_json::to_vec(&body).map_err(std::io::Error::from)?;
                store
                    .restore_profile(&uid, StoredProfile { seq_no, json })
                    .await?;
                counts.profiles += 1;
            }
            Line::Record {
                kind,
                key,
                version,
                value,
            } => {
                let value = B64
                    .decode(value.as_bytes())
                    .map_err(|_| format(n, "a record value that is not base64url".into()))?;
                store
                    .restore_record(&kind, &key, StoredRecord { version, value })
                    .await?;
                counts.records += 1;
            }
        }
    }
    insert_all(store, &mut pending, &mut counts).await?;
    Ok(counts)
}

/// Insert `docs` concurrently (so a store with group commit writes them in few commits).
async fn insert_all(
    store: &dyn StoreTransfer,
    docs: &mut Vec<TokenDoc>,
    counts: &mut Counts,
) -> Result<(), TransferError> {
    let results =
        futures_util::future::join_all(docs.drain(..).map(|d| store.insert_token(d))).await;
    for r in results {
        match r {
            Ok(()) => counts.tokens += 1,
            Err(StoreError::Conflict) => counts.tokens_skipped += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{conformance, MemoryStore, Store};

    async fn filled() -> MemoryStore {
        let s = MemoryStore::new();
        for n in 0..1203 {
            s.insert_token(conformance::token(
                n,
                n % 2 == 0,
                conformance::family(n),
                "oidc1",
                &format!("u{n}"),
            ))
            .await
            .unwrap();
        }
        s.put_role_mapping("m1", br#"{"roles":["a"],"enabled":true}"#.to_vec())
            .await
            .unwrap();
        s.put_profile("u_1", br#"{"user":"x"}"#.to_vec(), None)
            .await
            .unwrap();
        s.put_profile("u_1", br#"{"user":"y"}"#.to_vec(), Some(0))
            .await
            .unwrap();
        for n in 0..1003u32 {
            s.put_record(
                "connection_grant",
                &format!("docs/u{n}"),
                vec![0, 0xff, n as u8],
                None,
            )
            .await
            .unwrap();
        }
        s.put_record("connection", "docs", br#"{"client_id":"c"}"#.to_vec(), None)
            .await
            .unwrap();
        s.put_record(
            "connection",
            "docs",
            br#"{"client_id":"d"}"#.to_vec(),
            Some(0),
        )
        .await
        .unwrap();
        s
    }

    #[tokio::test]
    async fn export_then_import_round_trips_and_a_rerun_skips() {
        let source = filled().await;
        let mut out = Vec::new();
        let exported = export(&source, &mut out).await.unwrap();
        assert_eq!(
            (
                exported.tokens,
                exported.role_mappings,
                exported.profiles,
                exported.records
            ),
            (1203, 1, 1, 1004)
        );
        let target = MemoryStore::new();
        let imported = import(&target, out.as_slice()).await.unwrap();
        assert_eq!(imported.tokens, 1203);
        for n in [0, 1, 1202] {
            let h = conformance::hash(b'a', n);
            assert_eq!(
                target.get_by_access(&h).await.unwrap(),
                source.get_by_access(&h).await.unwrap()
            );
        }
        assert_eq!(
            target.get_role_mappings().await.unwrap(),
            source.get_role_mappings().await.unwrap()
        );
        assert_eq!(
            target.get_profile("u_1").await.unwrap(),
            source.get_profile("u_1").await.unwrap()
        );
        assert_eq!(imported.records, 1004);
        for kind in ["connection", "connection_grant"] {
            assert_eq!(
                target.list_records(kind, "").await.unwrap(),
                source.list_records(kind, "").await.unwrap()
            );
        }
        assert_eq!(
            target
                .get_record("connection", "docs")
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        // A file of format 1 (before records) is still read.
        let v1 = "{\"oidc_realm_export\":1}\n{\"role_mapping\":{\"name\":\"m2\",\"body\":{}}}\n";
        assert_eq!(
            import(&target, v1.as_bytes()).await.unwrap().role_mappings,
            1
        );
        let again = import(&target, out.as_slice()).await.unwrap();
        assert_eq!((again.tokens, again.tokens_skipped), (0, 1203));
    }

    #[tokio::test]
    async fn bad_input_is_refused_with_its_line() {
        let target = MemoryStore::new();
        for (input, line) in [
            ("", 1),
            ("{\"something\":1}\n", 1),
            ("{\"oidc_realm_export\":3}\n", 1),
            ("{\"oidc_realm_export\":0}\n", 1),
            (
                "{\"oidc_realm_export\":2}\n{\"record\":{\"kind\":\"k\",\"key\":\"x\",\"version\":0,\"value\":\"!\"}}\n",
                2,
            ),
            ("{\"oidc_realm_export\":1}\n{\"token\":5}\n", 2),
            ("{\"oidc_realm_export\":1}\n\n{\"what\":{}}\n", 3),
        ] {
            match import(&target, input.as_bytes()).await {
                Err(TransferError::Format { line: l, .. }) => assert_eq!(l, line, "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }
}
