//! Test support: a fresh schema per test on the PostgreSQL that tests use, dropped after.
//!
//! The database is `OIDC_REALM_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test?sslmode=disable` (what the development and CI machines run).
//! A database that cannot be reached fails the test, saying what to start: tests that need
//! PostgreSQL are never skipped.

use super::{PgOptions, PgStore};
use crate::secret::Secret;

/// The default test database.
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

/// The URL of the test database.
pub fn test_url() -> String {
    std::env::var("OIDC_REALM_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_string())
}

/// A schema of its own (`t_` and 24 random hex digits) in the test database, dropped (with
/// everything in it) when this value is dropped.
#[derive(Debug)]
pub struct TestSchema {
    pub name: String,
    url: String,
}

impl Default for TestSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSchema {
    pub fn new() -> Self {
        let id = crate::crypto::random_id();
        let hex: String = id.0[..12].iter().map(|b| format!("{b:02x}")).collect();
        TestSchema {
            name: format!("t_{hex}"),
            url: test_url(),
        }
    }

    /// Options for a store in this schema.
    pub fn options(&self) -> PgOptions {
        PgOptions {
            url: Secret::from(self.url.clone()),
            password: None,
            schema: self.name.clone(),
            pool_size: 8,
            ca_file: None,
        }
    }

    /// A store in this schema (several may share it: nodes).
    ///
    /// # Panics
    /// If the database cannot be reached, with what to start.
    pub fn open(&self) -> PgStore {
        match PgStore::open(&self.options()) {
            Ok(s) => s,
            Err(e) => panic!(
                "cannot open a PostgreSQL store at {} ({e}). These tests need PostgreSQL: \
                 start it on 127.0.0.1:5432 with a database `test` that user `postgres` may \
                 use without a password, or set OIDC_REALM_TEST_PG_URL",
                self.url
            ),
        }
    }

    /// Run `sql` on the test database (its own connection, outside any runtime of the
    /// caller's). For tests that act on the database behind the store's back.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let url = self.url.clone();
        let sql = sql.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join()
        .map_err(|_| "the SQL thread panicked".to_string())?
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Err(e) = self.execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}
