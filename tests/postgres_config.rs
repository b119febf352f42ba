//! The `data.*` keys of the PostgreSQL backend: accepted forms, defaults, and every refusal.
//! (No database needed: nothing connects while loading.)

use oidc_realm::config::load_str;
use std::time::Duration;

fn errors(yaml: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    match load_str(yaml, d.path()) {
        Ok(_) => panic!("expected errors:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_default_backend_is_redb() {
    let d = tempfile::tempdir().unwrap();
    let loaded = load_str("data:\n  path: x.redb\n", d.path()).unwrap();
    assert!(loaded.settings.data.postgres.is_none());
    let loaded = load_str("data:\n  backend: redb\n", d.path()).unwrap();
    assert!(loaded.settings.data.postgres.is_none());
}

#[test]
fn postgres_with_defaults_and_a_url_from_the_environment() {
    let d = tempfile::tempdir().unwrap();
    std::env::set_var(
        "OIDC_REALM_TEST_PGURL_7c1",
        "postgres://realm:s3cret-pw@db.internal:5432/realm?sslmode=require",
    );
    std::fs::write(d.path().join("pgpass"), "file-pw-91\n").unwrap();
    let loaded = load_str(
        "data:\n  backend: postgres\n  url: ${env:OIDC_REALM_TEST_PGURL_7c1}\n  password: ${file:pgpass}\n",
        d.path(),
    )
    .unwrap();
    let pg = loaded.settings.data.postgres.clone().unwrap();
    assert_eq!(pg.schema, "oidc_realm");
    assert_eq!(pg.pool_size, 16);
    assert_eq!(pg.cache_ttl, Duration::from_secs(5));
    assert!(pg.tls_ca.is_none());
    assert_eq!(pg.password.as_ref().unwrap().expose_secret(), "file-pw-91");
    // Neither the URL (with its password) nor the password shows in Debug or warnings.
    let shown = format!("{:?} {:?}", loaded.settings, loaded.warnings);
    assert!(
        !shown.contains("s3cret-pw") && !shown.contains("file-pw-91"),
        "{shown}"
    );
}

#[test]
fn every_key_is_read() {
    let d = tempfile::tempdir().unwrap();
    let loaded = load_str(
        "data:\n  backend: postgres\n  url: postgres://realm@127.0.0.1/realm\n  schema: realm_a\n  pool_size: 4\n  cache_ttl: 1s\n",
        d.path(),
    )
    .unwrap();
    let pg = loaded.settings.data.postgres.unwrap();
    assert_eq!(
        (pg.schema.as_str(), pg.pool_size, pg.cache_ttl),
        ("realm_a", 4, Duration::from_secs(1))
    );
}

#[test]
fn a_password_in_the_url_is_accepted_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let loaded = load_str(
        "data:\n  backend: postgres\n  url: postgres://realm:pw-in-url@127.0.0.1/realm\n",
        d.path(),
    )
    .unwrap();
    let w = loaded.warnings.join("\n");
    assert!(w.contains("data.url") && w.contains("data.password"), "{w}");
    assert!(!w.contains("pw-in-url"), "{w}");
}

#[test]
fn refusals() {
    for (yaml, expect) in [
        ("data:\n  backend: mongo\n", "data.backend"),
        ("data:\n  backend: postgres\n", "data.url"),
        (
            "data:\n  backend: postgres\n  url: mysql://x\n",
            "not a PostgreSQL URL",
        ),
        (
            "data:\n  backend: postgres\n  url: postgres://u@db.example/x\n",
            "needs TLS",
        ),
        (
            "data:\n  backend: postgres\n  url: postgres://u@db.example/x?sslmode=prefer\n",
            "needs TLS",
        ),
        (
            "data:\n  backend: postgres\n  url: postgres://u@127.0.0.1/x\n  schema: Bad-Name\n",
            "data.schema",
        ),
        (
            "data:\n  backend: postgres\n  url: postgres://u@127.0.0.1/x\n  pool_size: 0\n",
            "data.pool_size",
        ),
        (
            "data:\n  backend: postgres\n  url: postgres://u@127.0.0.1/x\n  cache_ttl: 2m\n",
            "data.cache_ttl",
        ),
        (
            "data:\n  backend: postgres\n  url: postgres://u@127.0.0.1/x\n  tls_ca: missing.pem\n",
            "data.tls_ca",
        ),
        (
            "data:\n  url: postgres://u@127.0.0.1/x\n",
            "only for data.backend: postgres",
        ),
        (
            "data:\n  backend: postgres\n  url: ${env:OIDC_REALM_TEST_UNSET_9q}\n",
            "data.url",
        ),
    ] {
        let e = errors(yaml);
        assert!(e.contains(expect), "{yaml}\n→ {e}");
    }
}

#[test]
fn plaintext_to_another_host_only_when_named_insecure() {
    let d = tempfile::tempdir().unwrap();
    let loaded = load_str(
        "data:\n  backend: postgres\n  url: postgres://u@db.example/x\n  insecure_plaintext: true\n",
        d.path(),
    );
    assert!(loaded.is_ok());
    let loaded = load_str(
        "data:\n  backend: postgres\n  url: postgres://u@db.example/x?sslmode=require\n",
        d.path(),
    );
    assert!(loaded.is_ok());
}
