//! Opening the store: migrations, and clear errors for what can go wrong.

use std::time::Duration;

use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::{Request, parse_count};
use ipam::usage::Holder;
use store::error::StoreError;
use store::pool::{NewPool, Owner};
use store::{Store, StoreConfig};

use crate::support::{Kind, change, fresh, postgres_available, postgres_url, unique_schema};

#[test]
fn a_second_open_runs_no_migration() {
    let test = fresh(Kind::Sqlite).unwrap();
    let StoreConfig::Sqlite { data_dir, .. } = &test.config else { unreachable!() };
    let connection = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
    let versions = || -> Vec<i64> {
        let sql = "SELECT version FROM crosspool_schema ORDER BY version";
        let mut statement = connection.prepare(sql).unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let first = versions();
    assert_eq!(first.first(), Some(&1));
    assert!(first.windows(2).all(|pair| pair[1] == pair[0] + 1), "{first:?}");
    drop(Store::open(&test.config).unwrap());
    assert_eq!(versions(), first);
}

/// Migration 6 rebuilds SQLite's `allocation_blocks` as one b-tree keyed by pool and allocation: a
/// database written before it keeps every allocation, block for block.
#[test]
fn sqlite_allocations_survive_the_rebuild_of_their_blocks_table() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::sqlite(dir.path());
    let vnet = Owner { id: "/subscriptions/b/virtualNetworks/vnet", tenant: "tenant-b" };
    let (pool, before) = {
        let store = Store::open(&config).unwrap();
        let pool = store
            .write_blocking(|tx| {
                let new = NewPool {
                    resource_key: "/nm/ipamPools/p".to_owned(),
                    name: "p".to_owned(),
                    scope_key: "/nm".to_owned(),
                    parent: None,
                    prefixes: vec![Prefix::parse("10.0.0.0/16").unwrap()],
                    placement: Placement::BestFit,
                    max_depth: 7,
                };
                let pool = tx.pool_create(&new, change(1))?;
                for size in ["100", "8", "1000"] {
                    let request = Request::Count(parse_count(size).unwrap());
                    tx.pool_allocate(pool.id(), &request, Holder::Resource, vnet, change(2))?;
                }
                Ok::<_, StoreError>(pool.id())
            })
            .unwrap();
        (pool, store.read_blocking(|tx| tx.allocations_of_pool(pool)).unwrap())
    };
    assert_eq!(before.iter().map(|allocation| allocation.blocks().len()).sum::<usize>(), 3 + 1 + 6);
    // Back to the schema of version 5: without version 7's cache generation and its triggers (and
    // version 9's), the blocks in a rowid table with two indexes, the allocations indexed by pool,
    // and none of version 9's directory columns and tables.
    let connection = rusqlite::Connection::open(dir.path().join("crosspool.db")).unwrap();
    let triggers: Vec<String> = connection
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%cache_moved%'",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(triggers.len(), 21);
    for trigger in triggers {
        connection.execute_batch(&format!("DROP TRIGGER {trigger}")).unwrap();
    }
    connection
        .execute_batch(
            "BEGIN; \
             CREATE TABLE old_blocks (allocation_id INTEGER NOT NULL REFERENCES allocations (id), \
                 pool_id INTEGER NOT NULL, tree_id INTEGER NOT NULL, addr BLOB NOT NULL, \
                 last_addr BLOB NOT NULL, len INTEGER NOT NULL, PRIMARY KEY (tree_id, addr, len)); \
             INSERT INTO old_blocks SELECT allocation_id, pool_id, tree_id, addr, last_addr, len FROM allocation_blocks; \
             DROP TABLE allocation_blocks; \
             ALTER TABLE old_blocks RENAME TO allocation_blocks; \
             CREATE INDEX allocation_blocks_by_allocation ON allocation_blocks (allocation_id); \
             CREATE INDEX allocations_by_pool ON allocations (pool_id, id); \
             DROP TABLE cache_generation; \
             DROP TABLE consents; \
             DROP INDEX device_codes_by_expiry; \
             DROP INDEX authorization_codes_by_expiry; \
             ALTER TABLE users DROP COLUMN account_enabled; \
             ALTER TABLE users DROP COLUMN tokens_valid_after; \
             ALTER TABLE signing_keys DROP COLUMN sealed_key; \
             DELETE FROM crosspool_schema WHERE version >= 6; \
             COMMIT;",
        )
        .unwrap();
    drop(connection);

    let store = Store::open(&config).unwrap();
    assert_eq!(store.read_blocking(|tx| tx.allocations_of_pool(pool)).unwrap(), before);
    assert_eq!(store.read_blocking(|tx| tx.allocations_of_owner(vnet.id)).unwrap(), before);
    let connection = rusqlite::Connection::open(dir.path().join("crosspool.db")).unwrap();
    let sql: String = connection
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'allocation_blocks'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    for allocation in &before {
        store.write_blocking(|tx| tx.allocation_release(allocation.id(), change(3))).unwrap();
    }
    let usage = store.read_blocking(|tx| tx.pool_usage(pool)).unwrap();
    assert_eq!(usage.available_address_prefixes(), [Prefix::parse("10.0.0.0/16").unwrap()]);
    assert_eq!(store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
}

#[test]
fn sqlite_from_a_newer_crosspool_is_refused() {
    let test = fresh(Kind::Sqlite).unwrap();
    let StoreConfig::Sqlite { data_dir, .. } = &test.config else { unreachable!() };
    let connection = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
    connection.execute("INSERT INTO crosspool_schema (version) VALUES (999)", []).unwrap();
    let message = Store::open(&test.config).unwrap_err().to_string();
    assert!(
        message.contains("has schema version 999, but this crosspool supports up to "),
        "{message}"
    );
    assert!(message.contains(&data_dir.display().to_string()), "{message}");
}

#[test]
fn postgres_from_a_newer_crosspool_is_refused() {
    let Some(test) = fresh(Kind::Postgres) else { return };
    let StoreConfig::Postgres { schema: Some(schema), .. } = &test.config else { unreachable!() };
    let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("INSERT INTO {schema}.crosspool_schema (version) VALUES (999)"))
        .unwrap();
    let message = Store::open(&test.config).unwrap_err().to_string();
    assert!(message.contains("has schema version 999"), "{message}");
}

#[test]
fn a_bad_postgres_url_says_what_is_wrong_without_the_password() {
    let error =
        Store::open(&StoreConfig::postgres("postgres://alice:s3cret@127.0.0.1:notaport/db"))
            .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::InvalidConfig { .. }), "{message}");
    assert!(message.contains("alice:***@127.0.0.1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[test]
fn an_unreachable_postgres_names_where() {
    // Port 1 on loopback: nothing listens there.
    let error =
        Store::open(&StoreConfig::postgres("postgres://postgres@127.0.0.1:1/test")).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }));
    assert_eq!(error.to_string(), "cannot open the database at postgres://127.0.0.1:1/test");
}

#[test]
fn a_bad_schema_name_is_refused_before_connecting() {
    let config = StoreConfig::Postgres {
        url: postgres_url(),
        schema: Some("x; DROP TABLE y".to_owned()),
        max_connections: 1,
    };
    assert!(matches!(Store::open(&config), Err(StoreError::InvalidConfig { .. })));
    assert!(!unique_schema().contains(';'));
    let _ = postgres_available;
}

#[test]
fn a_data_dir_that_is_a_file_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let error = Store::open(&StoreConfig::sqlite(&file)).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }));
    assert!(error.to_string().contains("not-a-dir"));
}

#[test]
fn a_file_that_is_not_a_database_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crosspool.db"), vec![b'x'; 4096]).unwrap();
    let error = Store::open(&StoreConfig::sqlite(dir.path())).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("cannot open the database at "), "{message}");
}

#[test]
fn a_database_locked_by_another_process_is_reported_as_locked() {
    let test = fresh(Kind::Sqlite).unwrap();
    let StoreConfig::Sqlite { data_dir, .. } = &test.config else { unreachable!() };
    let holder = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let config =
        StoreConfig::Sqlite { data_dir: data_dir.clone(), busy_timeout: Duration::from_millis(50) };
    let store = Store::open(&config);
    let error = match store {
        Err(error) => error,
        Ok(store) => store
            .write_blocking(|tx| tx.resource_delete("/x", &store::resource::Precondition::None))
            .unwrap_err(),
    };
    assert!(matches!(error, StoreError::Busy { .. }), "{error:?}");
    assert_eq!(error.to_string(), "the database is locked by another process");
}

#[test]
fn a_full_disk_is_reported_as_full() {
    let test = fresh(Kind::Sqlite).unwrap();
    let StoreConfig::Sqlite { data_dir, .. } = &test.config else { unreachable!() };
    // A second connection that may not grow the file stands in for a full disk.
    let connection = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
    let n_pages: i64 = connection.query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap();
    connection.execute_batch(&format!("PRAGMA max_page_count = {n_pages}")).unwrap();
    let big = "x".repeat(1 << 20);
    let error = connection
        .execute("INSERT INTO resources VALUES ('k', 'k', 't', 't', ?1, 'e', 0, 0)", [&big])
        .unwrap_err();
    assert_eq!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_panics_fails_its_caller_and_the_store_keeps_reading() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).unwrap();
    // Open a reader so that the next reads find one idle and run on this thread.
    store.read(|tx| tx.resource_get("/warm")).await.unwrap();
    let panicked: Result<(), StoreError> = store.read(|_| panic!("a bug in a read")).await;
    assert!(matches!(panicked, Err(StoreError::WorkerStopped)), "{panicked:?}");
    assert!(store.read(|tx| tx.resource_get("/after")).await.unwrap().is_none());
}
