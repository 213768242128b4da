//! A fresh store per test on either backend, and the macro that runs one test body on both.

use std::sync::atomic::{AtomicUsize, Ordering};

use ipam::request::Request;
use ipam::usage::Holder;
use store::error::StoreError;
use store::pool::{AllocationRecord, Change, Owner, PoolId};
use store::{Store, StoreConfig, Timestamp, WriteTx};

/// Which backend a test case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store that lives as long as the test: its temporary directory or PostgreSQL schema is
/// removed on drop.
pub struct TestStore {
    pub store: Store,
    pub config: StoreConfig,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema
            && let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// The PostgreSQL the tests use: `CROSSPOOL_TEST_DATABASE_URL`, or the local one with trust auth.
pub fn postgres_url() -> String {
    std::env::var("CROSSPOOL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether PostgreSQL tests run; without a server they pass with a message, unless
/// `CROSSPOOL_REQUIRE_POSTGRES=1` makes that a failure.
pub fn postgres_available() -> bool {
    match postgres::Client::connect(&postgres_url(), postgres::NoTls) {
        Ok(_) => true,
        Err(error) => {
            if std::env::var("CROSSPOOL_REQUIRE_POSTGRES").is_ok_and(|value| value == "1") {
                panic!(
                    "CROSSPOOL_REQUIRE_POSTGRES=1 but PostgreSQL at {} is not reachable: {error}",
                    postgres_url()
                );
            }
            eprintln!(
                "skipping: PostgreSQL at {} is not reachable ({error}); set CROSSPOOL_TEST_DATABASE_URL",
                postgres_url()
            );
            false
        }
    }
}

impl TestStore {
    /// Runs SQL on the database behind the store's back, as a bug or a bad hand would.
    pub fn tamper(&self, sql: &str) {
        match &self.config {
            StoreConfig::Sqlite { data_dir, .. } => {
                let connection = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
                connection.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                connection.execute_batch(sql).unwrap();
            }
            StoreConfig::Postgres { url, schema, .. } => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
                let schema = schema.as_deref().unwrap_or("public");
                client.batch_execute(&format!("SET search_path TO {schema}; {sql}")).unwrap();
            }
        }
    }
}

/// A schema name no other test run uses.
pub fn unique_schema() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!("crosspool_test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh, empty store, or `None` when PostgreSQL is not there (and not required).
pub fn fresh(kind: Kind) -> Option<TestStore> {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig::sqlite(dir.path());
            let store = Store::open(&config).unwrap();
            Some(TestStore { store, config, _dir: Some(dir), schema: None })
        }
        Kind::Postgres => {
            if !postgres_available() {
                return None;
            }
            let schema = unique_schema();
            // A crashed earlier run with the same process id may have left this schema behind.
            let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).unwrap();
            let config = StoreConfig::Postgres {
                url: postgres_url(),
                schema: Some(schema.clone()),
                max_connections: 20,
            };
            let store = Store::open(&config).unwrap();
            Some(TestStore { store, config, _dir: None, schema: Some(schema) })
        }
    }
}

/// A ledger context at time `now`.
pub fn change(now: i64) -> Change<'static> {
    Change { now: Timestamp(now), request_id: "test-request" }
}

/// Allocates `count` addresses in `pool` for a VNet `owner_id` of tenant "t", as the writers of
/// the concurrency and crash tests do.
pub fn allocate(
    tx: &mut WriteTx<'_>,
    pool: PoolId,
    owner_id: &str,
    count: u64,
) -> Result<AllocationRecord, StoreError> {
    let owner = Owner { id: owner_id, tenant: "t" };
    let request = Request::Count(u128::from(count).into());
    tx.pool_allocate(pool, &request, Holder::Resource, owner, change(1))
}

/// Emits, for each `fn name(store: &TestStore) { … }`, a module `name` with a `sqlite` and a
/// `postgres` test that run the body on a fresh store of that kind.
macro_rules! both_backends {
    ($(fn $name:ident($store:ident: &TestStore) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn body($store: &$crate::support::TestStore) $body

                #[test]
                fn sqlite() {
                    let store = $crate::support::fresh($crate::support::Kind::Sqlite).unwrap();
                    body(&store);
                }

                #[test]
                fn postgres() {
                    if let Some(store) = $crate::support::fresh($crate::support::Kind::Postgres) {
                        body(&store);
                    }
                }
            }
        )*
    };
}
pub(crate) use both_backends;
