//! The migrations embedded in the binary (`migrations/*.sql`), run at start.
//!
//! In one transaction, under a transaction-scoped advisory lock keyed by the schema (so nodes
//! starting together wait for each other and migrate once): create the schema and the
//! `oidc_realm_migrations` table if missing, refuse a database that records a version this
//! build does not know (a newer build migrated it), and apply every missing migration in
//! order, recording each. A failing migration rolls every step back.

use super::{db_error, lock_key, Shared};
use crate::store::StoreError;

/// `(version, name, SQL)`, in version order. Append only: a released migration never changes.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../../migrations/0001_init.sql")),
    (
        2,
        "records_sessions",
        include_str!("../../../migrations/0002_records_sessions.sql"),
    ),
];

pub(super) async fn run(shared: &Shared) -> Result<(), StoreError> {
    let mut client = shared.pool.get().await.map_err(db_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(&shared.schema, "migrate")],
    )
    .await
    .map_err(db_error)?;
    // The schema name was checked (`valid_schema`): safe to splice.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.oidc_realm_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        schema = shared.schema
    ))
    .await
    .map_err(db_error)?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM oidc_realm_migrations",
            &[],
        )
        .await
        .map_err(db_error)?;
    let current: i32 = row.get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::Unavailable(format!(
            "schema {} is at migration {current}, newer than {known}, the last this build \
             knows: run a newer oidc-realm",
            shared.schema
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "migration {version} ({name}): {}",
                super::pg_text(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO oidc_realm_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(db_error)?;
        tracing::info!(version, name, schema = %shared.schema, "database migrated");
    }
    tx.commit().await.map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.0, i as i32 + 1);
            assert!(!m.2.trim().is_empty());
        }
    }
}
