//! Versioned schema migrations for both backends, from one list. Each runs once, in order, in one
//! transaction with the version it brings; a database from a newer crosspool is refused.

use crate::db::{Backend, Conn, Mode, Value};
use crate::error::StoreError;

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

// Invariant: versions are 1, 2, 3… in order; a released migration is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_pools_and_resources.sql"),
        postgres: include_str!("../migrations/postgres/0001_pools_and_resources.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_identity.sql"),
        postgres: include_str!("../migrations/postgres/0002_identity.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_authorization_codes.sql"),
        postgres: include_str!("../migrations/postgres/0003_authorization_codes.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_device_codes.sql"),
        postgres: include_str!("../migrations/postgres/0004_device_codes.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_subscriptions_and_roles.sql"),
        postgres: include_str!("../migrations/postgres/0005_subscriptions_and_roles.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_allocation_blocks_without_rowid.sql"),
        postgres: include_str!("../migrations/postgres/0006_allocation_blocks_without_rowid.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_cache_generation.sql"),
        postgres: include_str!("../migrations/postgres/0007_cache_generation.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/sqlite/0008_overlap_trigger.sql"),
        postgres: include_str!("../migrations/postgres/0008_overlap_trigger.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("../migrations/sqlite/0009_identity_hardening.sql"),
        postgres: include_str!("../migrations/postgres/0009_identity_hardening.sql"),
    },
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// Brings the schema to `latest_version()`. A second run changes nothing.
pub(crate) fn run(conn: &mut Conn, location: &str) -> Result<(), StoreError> {
    let backend = conn.backend();
    let mut tx = conn.begin(Mode::Write)?;
    if backend == Backend::Postgres {
        // Replicas starting together take turns; the extension backs the exclusion constraint
        // of migration 1 (migration 8 replaces it).
        tx.batch("SELECT pg_advisory_xact_lock(7386734820); CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;")
            .map_err(|error| StoreError::Open { location: location.to_owned(), source: Box::new(error) })?;
    }
    tx.batch("CREATE TABLE IF NOT EXISTS crosspool_schema (version BIGINT NOT NULL)")?;
    let current = tx
        .query_opt("SELECT max(version) FROM crosspool_schema", &[])?
        .and_then(|row| row.opt_int(0))
        .unwrap_or(0);
    if current > latest_version() {
        tx.finish(false)?;
        return Err(StoreError::NewerSchema {
            location: location.to_owned(),
            found: current,
            supported: latest_version(),
        });
    }
    for migration in MIGRATIONS.iter().filter(|migration| migration.version > current) {
        tx.batch(match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        })?;
        tx.execute(
            "INSERT INTO crosspool_schema (version) VALUES ($1)",
            &[Value::Int(migration.version)],
        )?;
    }
    tx.finish(true)
}
