//! The store against the in-memory reference: the same random operations on `ipam::tree::PoolTree`
//! and on the store, on both backends, must succeed or fail alike and leave the same usage; and
//! many allocations and releases in one transaction, as a batch of writes makes them, must take
//! the blocks that one transaction each would.

use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::Request;
use ipam::tree::{Allocation, PoolId as TreePoolId, PoolSpec, PoolTree, TreeConfig};
use ipam::usage::{Holder, PoolUsage};
use proptest::prelude::*;
use store::error::StoreError;
use store::pool::{AllocationId, NewPool, Owner, PoolId};

use crate::support::{Kind, TestStore, change, fresh};

#[derive(Debug, Clone)]
enum Op {
    CreateChild { parent: usize, offset: u32, len: u8 },
    AllocateCount { pool: usize, count: u32 },
    AllocatePrefix { pool: usize, offset: u32, len: u8 },
    Release { allocation: usize },
    DeletePool { pool: usize },
    ReplacePrefix { pool: usize, offset: u32, len: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<usize>(), 0u32..1024, 22u8..=29).prop_map(|(parent, offset, len)| Op::CreateChild { parent, offset, len }),
        4 => (any::<usize>(), 1u32..200).prop_map(|(pool, count)| Op::AllocateCount { pool, count }),
        2 => (any::<usize>(), 0u32..1024, 22u8..=32).prop_map(|(pool, offset, len)| Op::AllocatePrefix { pool, offset, len }),
        4 => any::<usize>().prop_map(|allocation| Op::Release { allocation }),
        1 => any::<usize>().prop_map(|pool| Op::DeletePool { pool }),
        1 => (any::<usize>(), 0u32..1024, 22u8..=29).prop_map(|(pool, offset, len)| Op::ReplacePrefix { pool, offset, len }),
    ]
}

/// The block of length `len` around address `10.0.0.0 + offset`, inside the test's /22.
fn block(offset: u32, len: u8) -> Prefix {
    let addr = (10u32 << 24) + offset % 1024;
    Prefix::new(ipam::prefix::Family::V4, u128::from(addr), 32).unwrap().truncate(len)
}

const OWNER: Owner<'static> = Owner { id: "/vnet", tenant: "t" };

/// Usage without child pool names, which differ between the two (ids vs resource keys).
fn comparable<C>(usage: &PoolUsage<C>) -> String {
    let show = |blocks: &[Prefix]| {
        blocks.iter().map(|block| block.to_string()).collect::<Vec<_>>().join(" ")
    };
    format!(
        "{} {} {} {} | {} | {} | {} | {}",
        usage.total_number_of_ip_addresses(),
        usage.number_of_allocated_ip_addresses(),
        usage.number_of_reserved_ip_addresses(),
        usage.number_of_available_ip_addresses(),
        show(usage.address_prefixes()),
        show(usage.allocated_address_prefixes()),
        show(usage.reserved_address_prefixes()),
        show(usage.available_address_prefixes()),
    )
}

fn run(test: &TestStore, placement: Placement, ops: &[Op]) {
    let store = &test.store;
    let mut tree = PoolTree::new(TreeConfig::default());
    let root_prefixes = vec![block(0, 23), block(512, 23)];
    let tree_root = tree
        .create_pool(PoolSpec {
            name: "pool0".to_owned(),
            parent: None,
            prefixes: root_prefixes.clone(),
            placement,
        })
        .unwrap();
    let new_pool = |name: String, parent: Option<PoolId>, prefixes: Vec<Prefix>| NewPool {
        resource_key: name.clone(),
        name,
        scope_key: "nm".to_owned(),
        parent,
        prefixes,
        placement,
        max_depth: 7,
    };
    let store_root = store
        .write_blocking(|tx| {
            tx.pool_create(&new_pool("pool0".to_owned(), None, root_prefixes.clone()), change(0))
        })
        .unwrap();
    // Live pools and allocations, paired.
    let mut pools: Vec<(TreePoolId, PoolId)> = vec![(tree_root, store_root.id())];
    let mut allocations: Vec<(Allocation, AllocationId)> = Vec::new();
    let mut n_pools_made = 1;
    for (step, op) in ops.iter().enumerate() {
        let now = step as i64 + 1;
        match *op {
            Op::CreateChild { parent, offset, len } => {
                let (tree_parent, store_parent) = pools[parent % pools.len()];
                let name = format!("pool{n_pools_made}");
                n_pools_made += 1;
                let prefixes = vec![block(offset, len)];
                let expected = tree.create_pool(PoolSpec {
                    name: name.clone(),
                    parent: Some(tree_parent),
                    prefixes: prefixes.clone(),
                    placement,
                });
                let actual = store.write_blocking(|tx| {
                    tx.pool_create(
                        &new_pool(name.clone(), Some(store_parent), prefixes.clone()),
                        change(now),
                    )
                });
                assert_eq!(
                    actual.as_ref().err().map(ToString::to_string),
                    expected.as_ref().err().map(ToString::to_string),
                    "step {step}: {op:?}"
                );
                if let (Ok(tree_id), Ok(record)) = (expected, actual) {
                    pools.push((tree_id, record.id()));
                }
            }
            Op::AllocateCount { pool, count } => {
                let (tree_pool, store_pool) = pools[pool % pools.len()];
                let request = Request::Count(u128::from(count).into());
                let expected = tree.allocate(tree_pool, &request, Holder::Resource);
                let actual = store.write_blocking(|tx| {
                    tx.pool_allocate(store_pool, &request, Holder::Resource, OWNER, change(now))
                });
                match (expected, actual) {
                    (Ok(expected), Ok(actual)) => {
                        assert_eq!(actual.blocks(), expected.blocks(), "step {step}: {op:?}");
                        allocations.push((expected, actual.id()));
                    }
                    (Err(expected), Err(actual)) => {
                        assert_eq!(actual.to_string(), expected.to_string(), "step {step}")
                    }
                    (expected, actual) => {
                        panic!("step {step}: {op:?}: reference {expected:?}, store {actual:?}")
                    }
                }
            }
            Op::AllocatePrefix { pool, offset, len } => {
                let (tree_pool, store_pool) = pools[pool % pools.len()];
                let request = Request::Prefix(block(offset, len));
                let expected = tree.allocate(tree_pool, &request, Holder::StaticCidr);
                let actual = store.write_blocking(|tx| {
                    tx.pool_allocate(store_pool, &request, Holder::StaticCidr, OWNER, change(now))
                });
                match (expected, actual) {
                    (Ok(expected), Ok(actual)) => allocations.push((expected, actual.id())),
                    (Err(expected), Err(actual)) => {
                        assert_eq!(actual.to_string(), expected.to_string(), "step {step}")
                    }
                    (expected, actual) => {
                        panic!("step {step}: {op:?}: reference {expected:?}, store {actual:?}")
                    }
                }
            }
            Op::Release { allocation } => {
                if allocations.is_empty() {
                    continue;
                }
                let (expected, id) = allocations.swap_remove(allocation % allocations.len());
                tree.release(expected);
                store.write_blocking(|tx| tx.allocation_release(id, change(now))).unwrap();
            }
            Op::DeletePool { pool } => {
                let pool_idx = pool % pools.len();
                let (tree_pool, store_pool) = pools[pool_idx];
                let expected = tree.delete_pool(tree_pool);
                let actual = store.write_blocking(|tx| tx.pool_delete(store_pool, change(now)));
                assert_eq!(
                    actual.as_ref().err().map(ToString::to_string),
                    expected.as_ref().err().map(ToString::to_string),
                    "step {step}: {op:?}"
                );
                if expected.is_ok() {
                    pools.remove(pool_idx);
                    if pools.is_empty() {
                        return;
                    }
                }
            }
            Op::ReplacePrefix { pool, offset, len } => {
                let (tree_pool, store_pool) = pools[pool % pools.len()];
                let prefixes = vec![block(offset, len)];
                let expected = tree.set_prefixes(tree_pool, prefixes.clone());
                let actual = store.write_blocking(|tx| {
                    tx.pool_set_prefixes(store_pool, prefixes.clone(), change(now))
                });
                assert_eq!(
                    actual.as_ref().err().map(ToString::to_string),
                    expected.as_ref().err().map(ToString::to_string),
                    "step {step}: {op:?}"
                );
            }
        }
        for (tree_pool, store_pool) in &pools {
            let expected = comparable(&tree.usage(*tree_pool).unwrap());
            let actual = comparable(&store.read_blocking(|tx| tx.pool_usage(*store_pool)).unwrap());
            assert_eq!(actual, expected, "usage after step {step}: {op:?}");
        }
    }
    assert_eq!(store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
    let _: Option<StoreError> = None;
}

#[derive(Debug, Clone)]
enum BatchOp {
    Allocate { count: u32 },
    Release { allocation: usize },
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        3 => (1u32..70).prop_map(|count| BatchOp::Allocate { count }),
        1 => any::<usize>().prop_map(|allocation| BatchOp::Release { allocation }),
    ]
}

/// Runs `ops` on one pool, `per_transaction` at a time in one write transaction each, and checks
/// every allocation's blocks and the final usage against the reference. Allocations the
/// reference refuses are left out: a refused allocation fails its whole transaction, and the
/// refusals are compared one transaction each in `run`. A transaction's later allocations take
/// their blocks from what its earlier ones left (`KnownFree` in the store), not from a read.
fn run_batched(test: &TestStore, placement: Placement, ops: &[BatchOp], per_transaction: usize) {
    let store = &test.store;
    let mut tree = PoolTree::new(TreeConfig::default());
    let prefixes = vec![block(0, 23), block(512, 23)];
    let spec =
        PoolSpec { name: "pool".to_owned(), parent: None, prefixes: prefixes.clone(), placement };
    let tree_pool = tree.create_pool(spec).unwrap();
    let new = NewPool {
        resource_key: "pool".to_owned(),
        name: "pool".to_owned(),
        scope_key: "nm".to_owned(),
        parent: None,
        prefixes,
        placement,
        max_depth: 7,
    };
    let store_pool = store.write_blocking(|tx| tx.pool_create(&new, change(0))).unwrap().id();
    let mut live: Vec<(Allocation, AllocationId)> = Vec::new();
    for (at, chunk) in ops.chunks(per_transaction.max(1)).enumerate() {
        // What the reference does, in the store's terms: blocks to take, or allocations to free.
        enum Step {
            Take(Request, Vec<Prefix>),
            Free(AllocationId),
        }
        let mut steps = Vec::new();
        let mut taken = Vec::new();
        for op in chunk {
            match *op {
                BatchOp::Allocate { count } => {
                    let request = Request::Count(u128::from(count).into());
                    if let Ok(allocation) = tree.allocate(tree_pool, &request, Holder::Resource) {
                        steps.push(Step::Take(request, allocation.blocks().to_vec()));
                        taken.push(allocation);
                    }
                }
                BatchOp::Release { allocation } if !live.is_empty() => {
                    let (allocation, id) = live.swap_remove(allocation % live.len());
                    tree.release(allocation);
                    steps.push(Step::Free(id));
                }
                BatchOp::Release { .. } => {}
            }
        }
        let now = at as i64 + 1;
        let ids = store
            .write_blocking(|tx| {
                let mut ids = Vec::new();
                for step in &steps {
                    match step {
                        Step::Take(request, expected) => {
                            let allocation = tx.pool_allocate(
                                store_pool,
                                request,
                                Holder::Resource,
                                OWNER,
                                change(now),
                            )?;
                            assert_eq!(allocation.blocks(), &expected[..], "transaction {at}");
                            ids.push(allocation.id());
                        }
                        Step::Free(id) => {
                            tx.allocation_release(*id, change(now))?;
                        }
                    }
                }
                Ok::<_, StoreError>(ids)
            })
            .unwrap();
        live.extend(taken.into_iter().zip(ids));
        let expected = comparable(&tree.usage(tree_pool).unwrap());
        let actual = comparable(&store.read_blocking(|tx| tx.pool_usage(store_pool)).unwrap());
        assert_eq!(actual, expected, "usage after transaction {at}");
    }
    assert_eq!(store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_transactions_of_many_allocations_agree_with_the_reference(placement_code in 0u8..3, ops in prop::collection::vec(batch_op(), 1..60), per_transaction in 1usize..20) {
        let placement = [Placement::BestFit, Placement::FirstFit, Placement::LastFit][usize::from(placement_code)];
        run_batched(&fresh(Kind::Sqlite).unwrap(), placement, &ops, per_transaction);
    }

    #[test]
    fn postgres_transactions_of_many_allocations_agree_with_the_reference(placement_code in 0u8..3, ops in prop::collection::vec(batch_op(), 1..60), per_transaction in 1usize..20) {
        let placement = [Placement::BestFit, Placement::FirstFit, Placement::LastFit][usize::from(placement_code)];
        if let Some(test) = fresh(Kind::Postgres) {
            run_batched(&test, placement, &ops, per_transaction);
        }
    }

    #[test]
    fn sqlite_store_agrees_with_the_reference_allocator(placement_code in 0u8..3, ops in prop::collection::vec(op(), 1..30)) {
        let placement = [Placement::BestFit, Placement::FirstFit, Placement::LastFit][usize::from(placement_code)];
        run(&fresh(Kind::Sqlite).unwrap(), placement, &ops);
    }

    #[test]
    fn postgres_store_agrees_with_the_reference_allocator(placement_code in 0u8..3, ops in prop::collection::vec(op(), 1..30)) {
        let placement = [Placement::BestFit, Placement::FirstFit, Placement::LastFit][usize::from(placement_code)];
        if let Some(test) = fresh(Kind::Postgres) {
            run(&test, placement, &ops);
        }
    }
}
