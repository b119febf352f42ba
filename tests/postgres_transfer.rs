//! `oidc-realm export` / `import` through the binary: redb → PostgreSQL → redb keeps every
//! token, role mapping, profile and generic record (connections, grants).
//!
//! Needs the PostgreSQL of the development and CI machines (see
//! `oidc_realm::store::postgres::testing`); a missing database fails these tests.

use oidc_realm::store::postgres::testing::{test_url, TestSchema};
use oidc_realm::store::{conformance, RedbStore, Store, StoreTransfer};
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
}

fn redb_config(dir: &Path, name: &str) -> std::path::PathBuf {
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, format!("data:\n  path: {name}.redb\n")).unwrap();
    cfg
}

fn pg_config(dir: &Path, schema: &str) -> std::path::PathBuf {
    let cfg = dir.join("pg.yml");
    std::fs::write(
        &cfg,
        format!(
            "data:\n  backend: postgres\n  url: \"{}\"\n  schema: {schema}\n",
            test_url()
        ),
    )
    .unwrap();
    cfg
}

fn run(args: &[&str], cfg: &Path, file: &Path) -> String {
    let out = bin()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .arg(if args[0] == "export" {
            "--output"
        } else {
            "--input"
        })
        .arg(file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    stderr
}

async fn contents(
    store: &dyn StoreTransfer,
) -> (
    Vec<oidc_realm::model::TokenDoc>,
    Vec<(String, Vec<u8>)>,
    Vec<(String, oidc_realm::store::StoredProfile)>,
    Vec<(String, String, oidc_realm::store::StoredRecord)>,
) {
    // Each backend pages records in an order of its own: compared sorted.
    let mut records = store.records_after(None, usize::MAX).await.unwrap();
    records.sort_by(|a, b| (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes())));
    (
        store.tokens_after(None, usize::MAX).await.unwrap(),
        store.get_role_mappings().await.unwrap(),
        store.profiles_after(None, usize::MAX).await.unwrap(),
        records,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_to_postgres_and_back_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let schema = TestSchema::new();
    // A redb store with tokens (one invalidated, one refreshed), a mapping and a profile.
    let source = {
        let s = RedbStore::open(&dir.path().join("a.redb")).unwrap();
        for n in 0..1100 {
            s.insert_token(conformance::token(
                n,
                n % 3 != 0,
                conformance::family(n % 7),
                "oidc1",
                &format!("user{}", n % 11),
            ))
            .await
            .unwrap();
        }
        s.invalidate(oidc_realm::store::Invalidation::Family(
            conformance::family(3),
        ))
        .await
        .unwrap();
        s.put_role_mapping(
            "finance",
            br#"{"enabled":true,"roles":["r"],"rules":{"field":{"username":"*"}}}"#.to_vec(),
        )
        .await
        .unwrap();
        s.put_profile("u_a", br#"{"user":{"username":"a"}}"#.to_vec(), None)
            .await
            .unwrap();
        s.put_profile("u_a", br#"{"user":{"username":"b"}}"#.to_vec(), Some(0))
            .await
            .unwrap();
        // Records of several kinds, more than a page of them (500), keys beyond ASCII, values
        // of any bytes, versions above 0.
        for n in 0..1200u32 {
            s.put_record(
                "connection_grant",
                &format!("docs/user{n}@oidc1"),
                vec![0, 0xff, (n % 256) as u8, 7],
                None,
            )
            .await
            .unwrap();
        }
        for name in ["docs", "crm", "wiki-ü"] {
            s.put_record("connection", name, b"{\"v\":0}".to_vec(), None)
                .await
                .unwrap();
        }
        s.put_record("connection", "docs", b"{\"v\":1}".to_vec(), Some(0))
            .await
            .unwrap();
        s.put_record("connection_grant", "wiki-ü/jwong", b"g".to_vec(), None)
            .await
            .unwrap();
        let c = contents(&s).await;
        s.close();
        c
    };
    assert_eq!(source.0.len(), 1100);
    assert_eq!(source.3.len(), 1204);

    let export = dir.path().join("a.jsonl");
    let said = run(&["export"], &redb_config(dir.path(), "a"), &export);
    assert!(
        said.contains(
            "exported 1100 token pair(s), 1 role mapping(s), 1 profile(s), 1204 record(s)"
        ),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&export).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An existing output file is never overwritten.
    let again = bin()
        .args(["export", "--config"])
        .arg(redb_config(dir.path(), "a"))
        .arg("--output")
        .arg(&export)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));

    let pg = pg_config(dir.path(), &schema.name);
    let said = run(&["import"], &pg, &export);
    assert!(
        said.contains("imported 1100 token pair(s) (0 already there)"),
        "{said}"
    );
    {
        let store = schema.open();
        assert_eq!(contents(&store).await, source);
    }
    // Importing again skips the pairs.
    let said = run(&["import"], &pg, &export);
    assert!(
        said.contains("imported 0 token pair(s) (1100 already there)"),
        "{said}"
    );

    // And back into a new redb file.
    let back = dir.path().join("b.jsonl");
    run(&["export"], &pg, &back);
    run(&["import"], &redb_config(dir.path(), "b"), &back);
    let s = RedbStore::open(&dir.path().join("b.redb")).unwrap();
    assert_eq!(contents(&s).await, source);
}

#[test]
fn import_refuses_what_is_not_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"oidc_realm_export\":1}\n{\"token\":{\"secret\":\"hunter2\"}}\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "--config"])
        .arg(redb_config(dir.path(), "c"))
        .arg("--input")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
