//! Allocations per second through the store, on SQLite and PostgreSQL, with 1 and 16 writers,
//! beside the raw commit rate of the same database measured in the same run.
//!
//! This machine's disk and CPU speed drift by a third within minutes, so the store and its raw
//! limit are measured in `ROUNDS` alternating pairs, and each row gives the medians and the
//! median of the pairs' ratios (with their range).
//!
//! Run with `cargo bench -p crosspool-store`; PostgreSQL comes from `CROSSPOOL_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) and is skipped when unreachable. Prints a
//! markdown table for docs/benchmarks.md.

// Reason: a benchmark measures wall-clock time and reports on stdout.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::Request;
use ipam::usage::Holder;
use store::error::StoreError;
use store::pool::{AllocationRecord, Change, NewPool, Owner, PoolId};
use store::{Store, StoreConfig, Timestamp, WriteTx};

const DURATION: Duration = Duration::from_secs(2);

/// Alternating store and raw measurements per row.
const ROUNDS: usize = 5;

/// The middle value.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians of the store's and the raw rates, and the median and range of their ratios
/// within each round, in percent.
struct Pairs {
    store: Vec<f64>,
    raw: Vec<f64>,
}

impl Pairs {
    fn row(&self) -> (f64, f64, String) {
        let ratios: Vec<f64> =
            self.store.iter().zip(&self.raw).map(|(store, raw)| 100.0 * store / raw).collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(low, high), ratio| (low.min(*ratio), high.max(*ratio)));
        let ratio = format!("{:.0}% ({low:.0}–{high:.0}%)", median(ratios.clone()));
        (median(self.store.clone()), median(self.raw.clone()), ratio)
    }
}

/// Runs `work` on `n_writers` threads for `DURATION`; returns operations per second.
fn rate(n_writers: usize, work: impl Fn(usize, usize) + Send + Sync + 'static) -> f64 {
    let work = Arc::new(work);
    let n_done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..n_writers)
        .map(|writer_idx| {
            let (work, n_done) = (work.clone(), n_done.clone());
            std::thread::spawn(move || {
                let mut op_idx = 0;
                while start.elapsed() < DURATION {
                    work(writer_idx, op_idx);
                    op_idx += 1;
                    n_done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    n_done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A fresh /8 pool, in a scope of its own (`round` tells them apart).
fn pool(store: &Store, round: usize) -> PoolId {
    let new = NewPool {
        resource_key: format!("/bench/{round}/pool"),
        name: "bench".to_owned(),
        scope_key: format!("/bench/{round}"),
        parent: None,
        prefixes: vec![Prefix::parse("10.0.0.0/8").unwrap()],
        placement: Placement::BestFit,
        max_depth: 7,
    };
    store
        .write_blocking(|tx| {
            tx.pool_create(&new, Change { now: Timestamp(0), request_id: "bench" })
        })
        .unwrap()
        .id()
}

/// One allocation of a /29 (a count of 8) for `owner_id`.
fn allocate(
    tx: &mut WriteTx<'_>,
    pool: PoolId,
    owner_id: &str,
) -> Result<AllocationRecord, StoreError> {
    let owner = Owner { id: owner_id, tenant: "bench" };
    let change = Change { now: Timestamp(1), request_id: "bench" };
    tx.pool_allocate(pool, &Request::Count(8u128.into()), Holder::Resource, owner, change)
}

/// The same allocations from one thread calling `Store::write_blocking`, the path of callers
/// that are not async: the store's own cost without `Store::write`'s hand-off of the caller's
/// tokio worker while it leads the commit (`block_in_place`).
fn store_rate_blocking(store: &Store, round: usize) -> f64 {
    let pool = pool(store, round);
    let store = store.clone();
    rate(1, move |_, op_idx| {
        let owner_id = format!("/bench/{round}/blocking/{op_idx}");
        store.write_blocking(|tx| allocate(tx, pool, &owner_id)).unwrap();
    })
}

/// Allocations of one /29 each (a count of 8) through `pool_allocate`, from `n_writers`
/// concurrent tasks calling `Store::write` (so concurrent writers share commits).
fn store_rate(store: &Store, n_writers: usize, round: usize) -> f64 {
    let pool = pool(store, round);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let n_done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    runtime.block_on(async {
        let writers: Vec<_> = (0..n_writers)
            .map(|writer_idx| {
                let (store, n_done) = (store.clone(), n_done.clone());
                tokio::spawn(async move {
                    let mut op_idx = 0;
                    while start.elapsed() < DURATION {
                        let owner_id = format!("/bench/{round}/{writer_idx}/{op_idx}");
                        store.write(move |tx| allocate(tx, pool, &owner_id)).await.unwrap();
                        op_idx += 1;
                        n_done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
    n_done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The raw limit of SQLite in WAL mode with synchronous=FULL and the store's page size: one-row
/// insert transactions under BEGIN IMMEDIATE, each writer on its own connection.
fn sqlite_raw_rate(dir: &std::path::Path, n_writers: usize) -> f64 {
    let path = dir.join("raw.db");
    let setup = rusqlite::Connection::open(&path).unwrap();
    setup.execute_batch("PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)").unwrap();
    let connections: Vec<_> = (0..n_writers)
        .map(|_| {
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection.busy_timeout(Duration::from_secs(30)).unwrap();
            connection.execute_batch("PRAGMA synchronous = FULL").unwrap();
            std::sync::Mutex::new(connection)
        })
        .collect();
    let connections = Arc::new(connections);
    rate(n_writers, move |writer_idx, _| {
        let connection = connections[writer_idx].lock().unwrap();
        connection
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES (x'00112233'); COMMIT")
            .unwrap();
    })
}

/// The raw limit of PostgreSQL for the allocation's shape: lock one row, insert, update, commit.
/// `same_row` makes every writer lock the same row (one pool tree, like the store's test);
/// otherwise each writer locks its own.
fn postgres_raw_rate(url: &str, schema: &str, n_writers: usize, same_row: bool) -> f64 {
    let mut setup = postgres::Client::connect(url, postgres::NoTls).unwrap();
    setup
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
             CREATE TABLE {schema}.locks (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); \
             CREATE TABLE {schema}.rows (id BIGSERIAL PRIMARY KEY, v BYTEA NOT NULL); \
             INSERT INTO {schema}.locks SELECT g, 0 FROM generate_series(0, 64) g;"
        ))
        .unwrap();
    let clients: Vec<_> = (0..n_writers)
        .map(|_| std::sync::Mutex::new(postgres::Client::connect(url, postgres::NoTls).unwrap()))
        .collect();
    let clients = Arc::new(clients);
    let schema = schema.to_owned();
    rate(n_writers, move |writer_idx, _| {
        let lock_id = if same_row { 0 } else { writer_idx as i64 };
        let mut client = clients[writer_idx].lock().unwrap();
        let mut tx = client.transaction().unwrap();
        tx.query(&format!("SELECT n FROM {schema}.locks WHERE id = $1 FOR UPDATE"), &[&lock_id])
            .unwrap();
        tx.execute(&format!("INSERT INTO {schema}.rows (v) VALUES ($1)"), &[&vec![0u8; 16]])
            .unwrap();
        tx.execute(&format!("UPDATE {schema}.locks SET n = n + 1 WHERE id = $1"), &[&lock_id])
            .unwrap();
        tx.commit().unwrap();
    })
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return; // `cargo test --benches` builds this; only `cargo bench` measures.
    }
    println!(
        "| backend | writers | store allocations/s | raw commits/s (same database) | store / raw |"
    );
    println!("|---|---:|---:|---:|---:|");
    // `CROSSPOOL_BENCH_ONLY=sqlite` (or `postgres`) runs one backend's rows, for profiling;
    // `CROSSPOOL_BENCH_WRITERS=1` (or 16) one writer count.
    let only = std::env::var("CROSSPOOL_BENCH_ONLY").unwrap_or_default();
    let writer_counts: Vec<usize> = match std::env::var("CROSSPOOL_BENCH_WRITERS") {
        Ok(count) => vec![count.parse().expect("CROSSPOOL_BENCH_WRITERS is a number")],
        Err(_) => vec![1, 16],
    };
    // The lone writer runs twice: through `Store::write` (the server's path) and from a thread
    // calling `write_blocking`.
    type StoreRate = Box<dyn Fn(&Store, usize) -> f64>;
    let mut sqlite_rows: Vec<(String, StoreRate, usize)> = Vec::new();
    for &n_writers in writer_counts.iter().filter(|_| only != "postgres") {
        sqlite_rows.push((
            n_writers.to_string(),
            Box::new(move |store, round| store_rate(store, n_writers, round)),
            n_writers,
        ));
        if n_writers == 1 {
            sqlite_rows.push((
                "1, not async (`write_blocking`)".to_owned(),
                Box::new(store_rate_blocking),
                1,
            ));
        }
    }
    for (label, store_rate, n_writers) in sqlite_rows {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::sqlite(dir.path().join("store"))).unwrap();
        // A fresh database's first seconds extend its files (the store's WAL grows to what a
        // checkpoint interval's writes fill, the raw one's to its 1,000-page cycle), which
        // costs every sync more; one pair that is not counted runs past that.
        store_rate(&store, ROUNDS);
        sqlite_raw_rate(dir.path(), n_writers);
        let mut pairs = Pairs { store: Vec::new(), raw: Vec::new() };
        for round in 0..ROUNDS {
            pairs.store.push(store_rate(&store, round));
            pairs.raw.push(sqlite_raw_rate(dir.path(), n_writers));
        }
        let (allocations, raw, ratio) = pairs.row();
        println!(
            "| SQLite (WAL, synchronous=FULL) | {label} | {allocations:.0} | {raw:.0} | {ratio} |"
        );
    }
    if only == "sqlite" {
        return;
    }
    let url = std::env::var("CROSSPOOL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    if postgres::Client::connect(&url, postgres::NoTls).is_err() {
        eprintln!("PostgreSQL at {url} is not reachable; skipping its rows");
        return;
    }
    for &n_writers in &writer_counts {
        let schema = "crosspool_bench_store";
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).unwrap();
        let config = StoreConfig::Postgres {
            url: url.clone(),
            schema: Some(schema.to_owned()),
            max_connections: 16,
        };
        let store = Store::open(&config).unwrap();
        let mut pairs = Pairs { store: Vec::new(), raw: Vec::new() };
        let mut raw_own = Vec::new();
        for round in 0..ROUNDS {
            pairs.store.push(store_rate(&store, n_writers, round));
            pairs.raw.push(postgres_raw_rate(&url, "crosspool_bench_raw", n_writers, true));
            raw_own.push(postgres_raw_rate(&url, "crosspool_bench_raw", n_writers, false));
        }
        drop(store);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).unwrap();
        client.batch_execute("DROP SCHEMA IF EXISTS crosspool_bench_raw CASCADE").unwrap();
        let (allocations, raw_same, ratio) = pairs.row();
        let raw_own = median(raw_own);
        println!(
            "| PostgreSQL 15 (local, fsync on) | {n_writers} | {allocations:.0} | {raw_same:.0} one row locked by all ({raw_own:.0} with a row per writer) | {ratio} |"
        );
    }
}
