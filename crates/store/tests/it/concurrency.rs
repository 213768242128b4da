//! Many writers at once: 16 tasks × 500 mixed allocate/release on one pool per backend, and two
//! processes sharing one PostgreSQL database. Afterwards nothing overlaps, nothing acknowledged
//! is lost, and the ledger replays to the live state. Also: the overlap audit and PostgreSQL's
//! overlap trigger catch a forged overlap.

use std::collections::BTreeMap;

use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::Request;
use ipam::usage::Holder;
use store::error::StoreError;
use store::pool::ledger::replay;
use store::pool::{AllocationId, AllocationRecord, NewPool, Owner, PoolId};
use store::{Store, StoreConfig};

use crate::support::{Kind, allocate, change, fresh};

const N_TASKS: usize = 16;
const N_OPS: usize = 500;

fn create_pool(store: &Store) -> PoolId {
    let new = NewPool {
        resource_key: "/nm/ipampools/shared".to_owned(),
        name: "shared".to_owned(),
        scope_key: "/nm".to_owned(),
        parent: None,
        prefixes: vec![Prefix::parse("10.0.0.0/12").unwrap()],
        placement: Placement::BestFit,
        max_depth: 7,
    };
    store.write_blocking(|tx| tx.pool_create(&new, change(0))).unwrap().id()
}

/// A write through the shared queue (even seeds) or the pool's own (`write_on`, odd seeds), so
/// that both kinds of batches run, and wait for each other's tree lock, at once.
async fn write<T, F>(store: &Store, seed: u64, f: F) -> Result<T, StoreError>
where
    F: FnMut(&mut store::WriteTx<'_>) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    if seed.is_multiple_of(2) { store.write(f).await } else { store.write_on("/nm", f).await }
}

/// One writer: allocates or releases at random, and returns what it still holds (acknowledged
/// allocations not released).
async fn writer(store: Store, pool: PoolId, seed: u64) -> Vec<AllocationRecord> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut held: Vec<AllocationRecord> = Vec::new();
    for op_idx in 0..N_OPS {
        if held.is_empty() || next() % 10 < 6 {
            let count = 8 + next() % 249;
            let owner_id = format!("/vnet/{seed}/{op_idx}");
            let result = write(&store, seed, move |tx| allocate(tx, pool, &owner_id, count)).await;
            match result {
                Ok(allocation) => held.push(allocation),
                Err(StoreError::Ipam(ipam::error::Error::PoolExhausted { .. })) => {}
                Err(error) => panic!("allocate failed: {error}"),
            }
        } else {
            let victim = held.swap_remove((next() % held.len() as u64) as usize);
            let id = victim.id();
            write(&store, seed, move |tx| tx.allocation_release(id, change(2))).await.unwrap();
        }
    }
    held
}

async fn run_writers(
    store: &Store,
    pool: PoolId,
    n_tasks: usize,
    seed_base: u64,
) -> Vec<AllocationRecord> {
    let tasks: Vec<_> = (0..n_tasks)
        .map(|task_idx| tokio::spawn(writer(store.clone(), pool, seed_base + task_idx as u64)))
        .collect();
    let mut held = Vec::new();
    for task in tasks {
        held.extend(task.await.unwrap());
    }
    held
}

/// Nothing overlaps, exactly the acknowledged allocations are live, and the ledger agrees.
fn check_consistent(store: &Store, pool: PoolId, acknowledged: &[AllocationRecord]) {
    assert_eq!(store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
    let live = store.read_blocking(|tx| tx.allocations_of_pool(pool)).unwrap();
    let live_by_id: BTreeMap<AllocationId, &AllocationRecord> =
        live.iter().map(|record| (record.id(), record)).collect();
    assert_eq!(
        live.len(),
        acknowledged.len(),
        "live allocations are exactly the acknowledged ones"
    );
    for record in acknowledged {
        assert_eq!(
            live_by_id.get(&record.id()),
            Some(&record),
            "acknowledged allocation {:?} is stored as it was returned",
            record.id()
        );
    }
    let tree_id = store.read_blocking(|tx| tx.pool_get(pool)).unwrap().tree_id();
    let mut replayed: Vec<(Prefix, String)> =
        replay(store.read_blocking(|tx| tx.ledger_of_tree(tree_id)).unwrap())
            .into_iter()
            .map(|entry| (entry.prefix, entry.owner_id))
            .collect();
    let mut expected: Vec<(Prefix, String)> = live
        .iter()
        .flat_map(|record| {
            record.blocks().iter().map(|block| (*block, record.owner_id().to_owned()))
        })
        .collect();
    replayed.sort();
    expected.sort();
    assert_eq!(replayed, expected, "the ledger replays to the live state");
    let usage = store.read_blocking(|tx| tx.pool_usage(pool)).unwrap();
    let n_live_addresses: u128 = live
        .iter()
        .flat_map(|record| record.blocks())
        .map(|block| block.size().as_u128().unwrap())
        .sum();
    assert_eq!(usage.number_of_allocated_ip_addresses().as_u128(), Some(n_live_addresses));
}

fn concurrent_writers_never_overlap(kind: Kind) {
    let Some(test) = fresh(kind) else { return };
    let pool = create_pool(&test.store);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let held = runtime.block_on(run_writers(&test.store, pool, N_TASKS, 1));
    check_consistent(&test.store, pool, &held);
}

#[test]
fn sixteen_sqlite_writers_never_overlap_and_lose_nothing() {
    concurrent_writers_never_overlap(Kind::Sqlite);
}

#[test]
fn sixteen_postgres_writers_never_overlap_and_lose_nothing() {
    concurrent_writers_never_overlap(Kind::Postgres);
}

/// Set in a child process: which PostgreSQL schema to write to, and the seed base.
const CHILD_ENV: &str = "CROSSPOOL_TEST_WRITER_CHILD";

/// The child side of `two_processes_…`: runs the writers and prints what it still holds.
#[test]
fn writer_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (schema, seed_base) = spec.split_once(':').unwrap();
    let config = StoreConfig::Postgres {
        url: crate::support::postgres_url(),
        schema: Some(schema.to_owned()),
        max_connections: 16,
    };
    let store = Store::open(&config).unwrap();
    let pool =
        store.read_blocking(|tx| tx.pool_by_key("/nm/ipampools/shared")).unwrap().unwrap().id();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let held = runtime.block_on(run_writers(&store, pool, N_TASKS, seed_base.parse().unwrap()));
    for record in held {
        println!("HELD {}", record.id().get());
    }
}

#[test]
fn two_processes_on_one_postgres_never_overlap_and_lose_nothing() {
    let Some(test) = fresh(Kind::Postgres) else { return };
    let StoreConfig::Postgres { schema: Some(schema), .. } = &test.config else { unreachable!() };
    let pool = create_pool(&test.store);
    let children: Vec<_> = [100u64, 200]
        .iter()
        .map(|seed_base| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "concurrency::writer_child_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{schema}:{seed_base}"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut held_ids = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a writer process failed");
        let stdout = String::from_utf8(output.stdout).unwrap();
        // libtest prints "test … ... " without a newline before the test runs, so the first line
        // the child prints is glued to it: look for the marker anywhere in a line.
        held_ids.extend(
            stdout
                .lines()
                .filter_map(|line| line.split_once("HELD "))
                .map(|(_, id)| id.trim().parse::<i64>().unwrap()),
        );
    }
    let live = test.store.read_blocking(|tx| tx.allocations_of_pool(pool)).unwrap();
    let mut live_ids: Vec<i64> = live.iter().map(|record| record.id().get()).collect();
    live_ids.sort();
    held_ids.sort();
    assert!(!held_ids.is_empty());
    let lost: Vec<&i64> =
        held_ids.iter().filter(|id| live_ids.binary_search(id).is_err()).collect();
    let unknown: Vec<&i64> =
        live_ids.iter().filter(|id| held_ids.binary_search(id).is_err()).collect();
    assert!(
        lost.is_empty() && unknown.is_empty(),
        "{} held, {} live; acknowledged but gone: {:?}; live but not acknowledged: {:?}",
        held_ids.len(),
        live_ids.len(),
        &lost[..lost.len().min(10)],
        &unknown[..unknown.len().min(10)]
    );
    check_consistent(&test.store, pool, &live);
}

#[test]
fn the_overlap_audit_finds_a_forged_overlap_in_sqlite() {
    let test = fresh(Kind::Sqlite).unwrap();
    let pool = create_pool(&test.store);
    let owner = Owner { id: "/vnet", tenant: "t" };
    let allocation = test
        .store
        .write_blocking(|tx| {
            tx.pool_allocate(
                pool,
                &Request::Prefix(Prefix::parse("10.0.0.0/24").unwrap()),
                Holder::Resource,
                owner,
                change(1),
            )
        })
        .unwrap();
    assert_eq!(test.store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
    let StoreConfig::Sqlite { data_dir, .. } = &test.config else { unreachable!() };
    let connection = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
    // 10.0.0.64/26, inside the allocated /24, written behind the store's back.
    let addr = u128::from(u32::from_be_bytes([10, 0, 0, 64])).to_be_bytes().to_vec();
    let last = u128::from(u32::from_be_bytes([10, 0, 0, 127])).to_be_bytes().to_vec();
    connection
        .execute(
            "INSERT INTO allocation_blocks (allocation_id, pool_id, tree_id, addr, last_addr, len) SELECT ?1, pool_id, tree_id, ?2, ?3, 26 FROM allocation_blocks WHERE allocation_id = ?1",
            rusqlite::params![allocation.id().get(), addr, last],
        )
        .unwrap();
    assert_eq!(test.store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 1);
}

#[test]
fn postgres_refuses_a_forged_overlap_by_its_trigger() {
    let Some(test) = fresh(Kind::Postgres) else { return };
    let StoreConfig::Postgres { schema: Some(schema), .. } = &test.config else { unreachable!() };
    let pool = create_pool(&test.store);
    let owner = Owner { id: "/vnet", tenant: "t" };
    let allocation = test
        .store
        .write_blocking(|tx| {
            tx.pool_allocate(
                pool,
                &Request::Prefix(Prefix::parse("10.0.0.0/24").unwrap()),
                Holder::Resource,
                owner,
                change(1),
            )
        })
        .unwrap();
    let mut client =
        postgres::Client::connect(&crate::support::postgres_url(), postgres::NoTls).unwrap();
    let addr = u128::from(u32::from_be_bytes([10, 0, 0, 64])).to_be_bytes().to_vec();
    let last = u128::from(u32::from_be_bytes([10, 0, 0, 127])).to_be_bytes().to_vec();
    let error = client
        .execute(
            &format!(
                "INSERT INTO {schema}.allocation_blocks (allocation_id, pool_id, tree_id, addr, last_addr, len) \
                 SELECT $1, pool_id, tree_id, $2, $3, 26 FROM {schema}.allocation_blocks WHERE allocation_id = $1"
            ),
            &[&allocation.id().get(), &addr, &last],
        )
        .unwrap_err();
    assert_eq!(error.code(), Some(&postgres::error::SqlState::EXCLUSION_VIOLATION), "{error}");
    // A second block beside the /24, then moved onto it: refused too. Rewritten in place, a
    // block is not compared with its old self.
    let beside = test
        .store
        .write_blocking(|tx| {
            tx.pool_allocate(
                pool,
                &Request::Prefix(Prefix::parse("10.0.1.0/24").unwrap()),
                Holder::Resource,
                owner,
                change(2),
            )
        })
        .unwrap();
    let blocks = format!("{schema}.allocation_blocks");
    let error = client
        .execute(
            &format!(
                "UPDATE {blocks} SET addr = $1, last_addr = $2, len = 26 WHERE allocation_id = $3"
            ),
            &[&addr, &last, &beside.id().get()],
        )
        .unwrap_err();
    assert_eq!(error.code(), Some(&postgres::error::SqlState::EXCLUSION_VIOLATION), "{error}");
    let rewritten = client
        .execute(
            &format!("UPDATE {blocks} SET len = len WHERE allocation_id = $1"),
            &[&beside.id().get()],
        )
        .unwrap();
    assert_eq!(rewritten, 1);
}

/// 16 writers take distinct /24s while 16 others race for one /24: when they share commits, every
/// distinct one commits, exactly one racer wins, and the losers leave nothing behind.
fn failing_writes_roll_back_alone(kind: Kind) {
    let Some(test) = fresh(kind) else { return };
    let pool = create_pool(&test.store);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let results: Vec<Result<AllocationRecord, StoreError>> = runtime.block_on(async {
        let tasks: Vec<_> = (0..32u32)
            .map(|task_idx| {
                let store = test.store.clone();
                tokio::spawn(async move {
                    let text = if task_idx < 16 {
                        format!("10.0.{task_idx}.0/24")
                    } else {
                        "10.1.0.0/24".to_owned()
                    };
                    let prefix = Prefix::parse(&text).unwrap();
                    let owner_id = format!("/vnet/{task_idx}");
                    store
                        .write(move |tx| {
                            let owner = Owner { id: &owner_id, tenant: "t" };
                            tx.pool_allocate(
                                pool,
                                &Request::Prefix(prefix),
                                Holder::Resource,
                                owner,
                                change(1),
                            )
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    assert!(results[..16].iter().all(Result::is_ok), "every distinct /24 is allocated");
    assert_eq!(results[16..].iter().filter(|result| result.is_ok()).count(), 1, "one racer wins");
    for result in &results[16..] {
        if let Err(error) = result {
            assert!(
                error.to_string().contains("10.1.0.0/24 in pool \"shared\" is not free"),
                "{error}"
            );
        }
    }
    let acknowledged: Vec<AllocationRecord> = results.into_iter().filter_map(Result::ok).collect();
    check_consistent(&test.store, pool, &acknowledged);
}

#[test]
fn failing_sqlite_writes_in_a_shared_commit_roll_back_alone() {
    failing_writes_roll_back_alone(Kind::Sqlite);
}

#[test]
fn failing_postgres_writes_in_a_shared_commit_roll_back_alone() {
    failing_writes_roll_back_alone(Kind::Postgres);
}
