//! A writer killed with SIGKILL mid-burst, on each backend: after reopening, every allocation it
//! acknowledged is there as acknowledged, nothing is half-written, nothing overlaps, and the
//! ledger replays to the live state.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::Request;
use ipam::usage::Holder;
use store::pool::ledger::replay;
use store::pool::{NewPool, Owner};
use store::{Store, StoreConfig};

use crate::support::{Kind, allocate, change, fresh, postgres_url};

/// Set in the child: `sqlite:<data dir>` or `postgres:<schema>`.
const CHILD_ENV: &str = "CROSSPOOL_TEST_CRASH_CHILD";

const POOL_KEY: &str = "/nm/ipampools/crash";

/// The child: allocates until killed, printing each allocation after its commit returned.
#[test]
fn crash_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let config = match spec.split_once(':').unwrap() {
        ("sqlite", data_dir) => StoreConfig::sqlite(data_dir),
        (_, schema) => StoreConfig::Postgres {
            url: postgres_url(),
            schema: Some(schema.to_owned()),
            max_connections: 4,
        },
    };
    let store = Store::open(&config).unwrap();
    let pool = store.read_blocking(|tx| tx.pool_by_key(POOL_KEY)).unwrap().unwrap().id();
    // Four writers, so the kill lands in the middle of shared commits too.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let writers: Vec<_> = (0..4u64)
            .map(|writer_idx| {
                let store = store.clone();
                tokio::spawn(async move {
                    for op_idx in 0u64.. {
                        let owner_id = format!("/vnet/{writer_idx}/{op_idx}");
                        let count = 8 + (op_idx * 37 + writer_idx) % 120;
                        let allocation = store
                            .write(move |tx| allocate(tx, pool, &owner_id, count))
                            .await
                            .unwrap();
                        let blocks: Vec<String> =
                            allocation.blocks().iter().map(ToString::to_string).collect();
                        // A newline first: libtest's "test … ... " prefix has none.
                        println!("\nACK {} {}", allocation.id().get(), blocks.join(","));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

fn killed_writer_loses_nothing_acknowledged(kind: Kind) {
    let Some(test) = fresh(kind) else { return };
    let new = NewPool {
        resource_key: POOL_KEY.to_owned(),
        name: "crash".to_owned(),
        scope_key: "/nm".to_owned(),
        parent: None,
        prefixes: vec![Prefix::parse("10.0.0.0/8").unwrap()],
        placement: Placement::BestFit,
        max_depth: 7,
    };
    let pool = test.store.write_blocking(|tx| tx.pool_create(&new, change(0))).unwrap().id();
    let spec = match &test.config {
        StoreConfig::Sqlite { data_dir, .. } => format!("sqlite:{}", data_dir.display()),
        StoreConfig::Postgres { schema, .. } => format!("postgres:{}", schema.as_deref().unwrap()),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_child_process", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged: Vec<(i64, String)> = Vec::new();
    // Lines are short, so each is one atomic write to the pipe: none arrives cut.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if let Some(rest) = line.unwrap().strip_prefix("ACK ") {
            let (id, blocks) = rest.split_once(' ').unwrap();
            acknowledged.push((id.parse().unwrap(), blocks.to_owned()));
            if acknowledged.len() == 300 {
                // Mid-burst: the writers are inside their next transactions.
                child.kill().unwrap();
                break;
            }
        }
    }
    // What the child acknowledged before it died but the loop above had not read yet.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (id, blocks) = rest.split_once(' ').unwrap();
            acknowledged.push((id.parse().unwrap(), blocks.to_owned()));
        }
    }
    child.wait().unwrap();
    drop(test.store.clone());

    let reopened = Store::open(&test.config).unwrap();
    let live = reopened.read_blocking(|tx| tx.allocations_of_pool(pool)).unwrap();
    assert!(
        live.len() >= acknowledged.len(),
        "{} live, {} acknowledged",
        live.len(),
        acknowledged.len()
    );
    // At most one allocation per writer (four) was in flight: committed, not yet acknowledged.
    assert!(
        live.len() <= acknowledged.len() + 4,
        "{} live, {} acknowledged",
        live.len(),
        acknowledged.len()
    );
    for (id, blocks) in &acknowledged {
        let record = live
            .iter()
            .find(|record| record.id().get() == *id)
            .unwrap_or_else(|| panic!("acknowledged allocation {id} is gone"));
        let stored: Vec<String> = record.blocks().iter().map(ToString::to_string).collect();
        assert_eq!(&stored.join(","), blocks, "allocation {id} is stored as acknowledged");
    }
    assert_eq!(reopened.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
    let tree_id = reopened.read_blocking(|tx| tx.pool_get(pool)).unwrap().tree_id();
    let mut replayed: Vec<Prefix> =
        replay(reopened.read_blocking(|tx| tx.ledger_of_tree(tree_id)).unwrap())
            .into_iter()
            .map(|entry| entry.prefix)
            .collect();
    let mut held: Vec<Prefix> = live.iter().flat_map(|record| record.blocks().to_vec()).collect();
    replayed.sort();
    held.sort();
    assert_eq!(replayed, held, "the ledger replays to the live state");
    // Free space and allocations still add up: nothing half-written.
    let usage = reopened.read_blocking(|tx| tx.pool_usage(pool)).unwrap();
    let n_held: u128 = held.iter().map(|block| block.size().as_u128().unwrap()).sum();
    assert_eq!(usage.number_of_allocated_ip_addresses().as_u128(), Some(n_held));
    assert_eq!(usage.number_of_available_ip_addresses().as_u128(), Some((1 << 24) - n_held));
    // And the store still allocates.
    let owner = Owner { id: "/vnet/after", tenant: "t" };
    reopened
        .write_blocking(|tx| {
            tx.pool_allocate(pool, &Request::Length(24), Holder::Resource, owner, change(2))
        })
        .unwrap();
}

#[test]
fn a_killed_sqlite_writer_loses_nothing_acknowledged() {
    killed_writer_loses_nothing_acknowledged(Kind::Sqlite);
}

#[test]
fn a_killed_postgres_writer_loses_nothing_acknowledged() {
    killed_writer_loses_nothing_acknowledged(Kind::Postgres);
}
