//! Property tests: random sequences of pool and allocation operations on small IPv4 and IPv6
//! spaces, checked after every step against a brute-force oracle that tracks each address unit.

use ipam::count::AddressCount;
use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::{self, Request};
use ipam::tree::{Allocation, PoolId, PoolSpec, PoolTree, TreeConfig};
use ipam::usage::Holder;
use proptest::prelude::*;

/// A small address space cut into units, the smallest block any operation uses.
#[derive(Debug, Clone, Copy)]
struct Space {
    base: Prefix,
    unit_len: u8,
    /// Multiplier for generated counts, so IPv6 counts span a few /64s.
    count_scale_bits: u8,
}

impl Space {
    fn n_units(&self) -> usize {
        1 << (self.unit_len - self.base.len())
    }

    fn unit_shift(&self) -> u8 {
        self.base.family().bits() - self.unit_len
    }

    /// The block of length `len` (clamped to the space) around unit `unit_offset`.
    fn block(&self, unit_offset: usize, len: u8) -> Prefix {
        let len = len.clamp(self.base.len(), self.unit_len);
        let addr =
            self.base.addr() + (((unit_offset % self.n_units()) as u128) << self.unit_shift());
        Prefix::new(self.base.family(), addr, self.unit_len).unwrap().truncate(len)
    }

    fn units(&self, block: &Prefix) -> std::ops::Range<usize> {
        assert!(
            self.base.contains(block) && block.len() <= self.unit_len,
            "{block} is outside the test space"
        );
        let first = ((block.addr() - self.base.addr()) >> self.unit_shift()) as usize;
        first..first + (1 << (self.unit_len - block.len()))
    }
}

#[derive(Debug, Clone)]
enum Op {
    CreateChild { parent: usize, unit: usize, len: u8 },
    AllocateCount { pool: usize, count: u32, holder: u8 },
    AllocatePrefix { pool: usize, unit: usize, len: u8, holder: u8 },
    AllocateLength { pool: usize, len: u8, holder: u8 },
    Release { allocation: usize },
    DeletePool { pool: usize },
    ReplacePrefix { pool: usize, unit: usize, len: u8 },
}

fn op_strategy(space: Space) -> impl Strategy<Value = Op> {
    let n_units = space.n_units();
    let lens = space.base.len()..=space.unit_len;
    prop_oneof![
        2 => (any::<usize>(), 0..n_units, lens.clone()).prop_map(|(parent, unit, len)| Op::CreateChild { parent, unit, len }),
        4 => (any::<usize>(), 1u32..300, 0u8..3).prop_map(|(pool, count, holder)| Op::AllocateCount { pool, count, holder }),
        2 => (any::<usize>(), 0..n_units, lens.clone(), 0u8..3).prop_map(|(pool, unit, len, holder)| Op::AllocatePrefix { pool, unit, len, holder }),
        1 => (any::<usize>(), lens.clone(), 0u8..3).prop_map(|(pool, len, holder)| Op::AllocateLength { pool, len, holder }),
        4 => any::<usize>().prop_map(|allocation| Op::Release { allocation }),
        1 => any::<usize>().prop_map(|pool| Op::DeletePool { pool }),
        1 => (any::<usize>(), 0..n_units, lens).prop_map(|(pool, unit, len)| Op::ReplacePrefix { pool, unit, len }),
    ]
}

fn holder(code: u8) -> Holder {
    [Holder::Resource, Holder::StaticCidr, Holder::Reservation][usize::from(code % 3)]
}

fn placement(code: u8) -> Placement {
    [Placement::BestFit, Placement::FirstFit, Placement::LastFit][usize::from(code % 3)]
}

/// What the oracle knows about one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit {
    /// The deepest pool whose prefixes hold the unit (index into `Model::pools`).
    pool: Option<usize>,
    /// The live allocation holding it (index into `Model::allocations`).
    allocation: Option<usize>,
}

#[derive(Debug)]
struct OraclePool {
    id: PoolId,
    parent: Option<usize>,
    depth: u8,
    prefixes: Vec<Prefix>,
    live: bool,
}

struct Model {
    space: Space,
    tree: PoolTree,
    units: Vec<Unit>,
    pools: Vec<OraclePool>,
    allocations: Vec<Option<Allocation>>,
}

impl Model {
    fn live_pool(&self, pick: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.pools.len()).filter(|idx| self.pools[*idx].live).collect();
        (!live.is_empty()).then(|| live[pick % live.len()])
    }

    fn is_free_in(&self, pool_idx: usize, block: &Prefix) -> bool {
        self.space
            .units(block)
            .all(|unit| self.units[unit] == Unit { pool: Some(pool_idx), allocation: None })
    }

    /// The oracle's own answer to "can these block lengths be allocated in this pool": place each
    /// at the first free aligned spot. For power-of-two blocks taken largest first, whether all
    /// fit does not depend on where each goes, so this must agree with the allocator.
    fn count_fits(&self, pool_idx: usize, lens: &[u8]) -> bool {
        let mut taken = vec![false; self.units.len()];
        'blocks: for &len in lens {
            if len > self.space.unit_len {
                return false;
            }
            let step = 1usize << (self.space.unit_len - len);
            for start in (0..self.units.len()).step_by(step) {
                let range = start..start + step;
                if range.clone().all(|unit| {
                    !taken[unit]
                        && self.units[unit] == Unit { pool: Some(pool_idx), allocation: None }
                }) {
                    range.for_each(|unit| taken[unit] = true);
                    continue 'blocks;
                }
            }
            return false;
        }
        true
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::CreateChild { parent, unit, len } => {
                let Some(parent_idx) = self.live_pool(parent) else { return };
                let prefix = self.space.block(unit, len);
                let expected_ok =
                    self.pools[parent_idx].depth < 7 && self.is_free_in(parent_idx, &prefix);
                let spec = PoolSpec {
                    name: format!("pool{}", self.pools.len()),
                    parent: Some(self.pools[parent_idx].id),
                    prefixes: vec![prefix],
                    placement: placement(unit as u8),
                };
                let result = self.tree.create_pool(spec);
                assert_eq!(
                    result.is_ok(),
                    expected_ok,
                    "create child {prefix} in pool {parent_idx}: {result:?}"
                );
                if let Ok(id) = result {
                    let child_idx = self.pools.len();
                    self.space
                        .units(&prefix)
                        .for_each(|unit| self.units[unit].pool = Some(child_idx));
                    let depth = self.pools[parent_idx].depth + 1;
                    self.pools.push(OraclePool {
                        id,
                        parent: Some(parent_idx),
                        depth,
                        prefixes: vec![prefix],
                        live: true,
                    });
                }
            }
            Op::AllocateCount { pool, count, holder: code } => {
                let Some(pool_idx) = self.live_pool(pool) else { return };
                let count = AddressCount::from(u128::from(count) << self.space.count_scale_bits);
                let lens = request::blocks_for_count(self.space.base.family(), count).unwrap();
                let expected_ok = self.count_fits(pool_idx, &lens);
                let result = self.tree.allocate(
                    self.pools[pool_idx].id,
                    &Request::Count(count),
                    holder(code),
                );
                assert_eq!(
                    result.is_ok(),
                    expected_ok,
                    "allocate {count} in pool {pool_idx}: {result:?}"
                );
                if let Ok(allocation) = result {
                    let mut got: Vec<u8> = allocation.blocks().iter().map(Prefix::len).collect();
                    got.sort();
                    assert_eq!(got, lens, "the blocks follow the sizing rule");
                    self.record(pool_idx, allocation);
                }
            }
            Op::AllocatePrefix { pool, unit, len, holder: code } => {
                let Some(pool_idx) = self.live_pool(pool) else { return };
                let prefix = self.space.block(unit, len);
                let expected_ok = self.is_free_in(pool_idx, &prefix);
                let result = self.tree.allocate(
                    self.pools[pool_idx].id,
                    &Request::Prefix(prefix),
                    holder(code),
                );
                assert_eq!(
                    result.is_ok(),
                    expected_ok,
                    "allocate {prefix} in pool {pool_idx}: {result:?}"
                );
                if let Ok(allocation) = result {
                    assert_eq!(allocation.blocks(), &[prefix]);
                    self.record(pool_idx, allocation);
                }
            }
            Op::AllocateLength { pool, len, holder: code } => {
                let Some(pool_idx) = self.live_pool(pool) else { return };
                let expected_ok = self.count_fits(pool_idx, &[len]);
                let result = self.tree.allocate(
                    self.pools[pool_idx].id,
                    &Request::Length(len),
                    holder(code),
                );
                assert_eq!(
                    result.is_ok(),
                    expected_ok,
                    "allocate a /{len} in pool {pool_idx}: {result:?}"
                );
                if let Ok(allocation) = result {
                    assert_eq!(allocation.blocks()[0].len(), len);
                    self.record(pool_idx, allocation);
                }
            }
            Op::Release { allocation } => {
                let live: Vec<usize> = (0..self.allocations.len())
                    .filter(|idx| self.allocations[*idx].is_some())
                    .collect();
                if live.is_empty() {
                    return;
                }
                let allocation_idx = live[allocation % live.len()];
                let allocation = self.allocations[allocation_idx].take().unwrap();
                for block in allocation.blocks() {
                    self.space.units(block).for_each(|unit| self.units[unit].allocation = None);
                }
                self.tree.release(allocation);
            }
            Op::DeletePool { pool } => {
                let Some(pool_idx) = self.live_pool(pool) else { return };
                let has_children =
                    self.pools.iter().any(|other| other.live && other.parent == Some(pool_idx));
                let holds = self
                    .units
                    .iter()
                    .any(|unit| unit.pool == Some(pool_idx) && unit.allocation.is_some());
                let result = self.tree.delete_pool(self.pools[pool_idx].id);
                assert_eq!(
                    result.is_ok(),
                    !has_children && !holds,
                    "delete pool {pool_idx}: {result:?}"
                );
                if result.is_ok() {
                    let parent = self.pools[pool_idx].parent;
                    for unit in self.units.iter_mut().filter(|unit| unit.pool == Some(pool_idx)) {
                        unit.pool = parent;
                    }
                    self.pools[pool_idx].live = false;
                }
            }
            Op::ReplacePrefix { pool, unit, len } => {
                let Some(pool_idx) = self.live_pool(pool) else { return };
                let Some(parent_idx) = self.pools[pool_idx].parent else { return };
                let old = self.pools[pool_idx].prefixes[0];
                let new = self.space.block(unit, len);
                // The old prefix must be entirely free in the pool; the new one must be free in
                // the parent once the old one is given back.
                let old_free = self.is_free_in(pool_idx, &old);
                let new_free = self.space.units(&new).all(|unit| {
                    let state = self.units[unit];
                    state.allocation.is_none()
                        && (state.pool == Some(parent_idx)
                            || (state.pool == Some(pool_idx)
                                && old.contains(&self.space.block(unit, self.space.unit_len))))
                });
                let result = self.tree.set_prefixes(self.pools[pool_idx].id, vec![new]);
                assert_eq!(
                    result.is_ok(),
                    new == old || (old_free && new_free),
                    "replace {old} by {new} in pool {pool_idx}: {result:?}"
                );
                // Replacing a prefix by itself changes nothing (and the units may belong to a child).
                if result.is_ok() && new != old {
                    self.space
                        .units(&old)
                        .for_each(|unit| self.units[unit].pool = Some(parent_idx));
                    self.space.units(&new).for_each(|unit| self.units[unit].pool = Some(pool_idx));
                    self.pools[pool_idx].prefixes = vec![new];
                }
            }
        }
    }

    fn record(&mut self, pool_idx: usize, allocation: Allocation) {
        let allocation_idx = self.allocations.len();
        for block in allocation.blocks() {
            assert!(
                self.is_free_in(pool_idx, block),
                "{block} was handed out but is not free in pool {pool_idx}"
            );
            self.space
                .units(block)
                .for_each(|unit| self.units[unit].allocation = Some(allocation_idx));
        }
        self.allocations.push(Some(allocation));
    }

    /// Compares every live pool's usage with the oracle.
    fn check(&self) {
        let unit_size = AddressCount::power_of_two(self.space.unit_shift());
        let times =
            |n: usize| (0..n).fold(AddressCount::ZERO, |total, _| total.add_disjoint(unit_size));
        for (pool_idx, pool) in self.pools.iter().enumerate().filter(|(_, pool)| pool.live) {
            let usage = self.tree.usage(pool.id).unwrap();
            let in_pool: Vec<usize> =
                pool.prefixes.iter().flat_map(|prefix| self.space.units(prefix)).collect();
            let free = in_pool
                .iter()
                .filter(|unit| {
                    self.units[**unit] == Unit { pool: Some(pool_idx), allocation: None }
                })
                .count();
            let reserved = in_pool
                .iter()
                .filter(|unit| {
                    let state = self.units[**unit];
                    state.pool == Some(pool_idx)
                        && state.allocation.is_some_and(|idx| {
                            self.allocations[idx].as_ref().unwrap().holder() == Holder::Reservation
                        })
                })
                .count();
            assert_eq!(
                usage.total_number_of_ip_addresses(),
                times(in_pool.len()),
                "total of pool {pool_idx}"
            );
            assert_eq!(
                usage.number_of_available_ip_addresses(),
                times(free),
                "available in pool {pool_idx}"
            );
            assert_eq!(
                usage.number_of_reserved_ip_addresses(),
                times(reserved),
                "reserved in pool {pool_idx}"
            );
            assert_eq!(
                usage.number_of_allocated_ip_addresses(),
                times(in_pool.len() - free - reserved),
                "allocated in pool {pool_idx}"
            );
            let mut expected_available = Vec::new();
            self.maximal_free_blocks(pool_idx, self.space.base, &mut expected_available);
            assert_eq!(
                usage.available_address_prefixes(),
                expected_available.as_slice(),
                "available prefixes of pool {pool_idx}"
            );
        }
    }

    fn maximal_free_blocks(&self, pool_idx: usize, block: Prefix, out: &mut Vec<Prefix>) {
        let units = self.space.units(&block);
        let n_free = units
            .clone()
            .filter(|unit| self.units[*unit] == Unit { pool: Some(pool_idx), allocation: None })
            .count();
        if n_free == units.len() {
            out.push(block);
        } else if n_free > 0 {
            let (low, high) = block.halves().unwrap();
            self.maximal_free_blocks(pool_idx, low, out);
            self.maximal_free_blocks(pool_idx, high, out);
        }
    }
}

fn run(space: Space, root_pattern: u8, root_placement: u8, ops: Vec<Op>) {
    // Root prefixes: the whole space, one half, or both quarters of the low half (two buddies,
    // whose free space merges across the two prefixes).
    let (low, high) = space.base.halves().unwrap();
    let (low_quarter, high_quarter) = low.halves().unwrap();
    let root_prefixes = match root_pattern % 3 {
        0 => vec![space.base],
        1 => vec![high],
        _ => vec![high_quarter, low_quarter],
    };
    let mut tree = PoolTree::new(TreeConfig::default());
    let root = tree
        .create_pool(PoolSpec {
            name: "root".to_owned(),
            parent: None,
            prefixes: root_prefixes.clone(),
            placement: placement(root_placement),
        })
        .unwrap();
    let mut units = vec![Unit { pool: None, allocation: None }; space.n_units()];
    for prefix in &root_prefixes {
        space.units(prefix).for_each(|unit| units[unit].pool = Some(0));
    }
    let pools =
        vec![OraclePool { id: root, parent: None, depth: 1, prefixes: root_prefixes, live: true }];
    let mut model = Model { space, tree, units, pools, allocations: Vec::new() };
    model.check();
    for op in &ops {
        model.apply(op);
        model.check();
    }
    // Releasing everything and deleting every child gives back the root's whole space.
    for allocation in model.allocations.iter_mut().filter_map(Option::take) {
        model.tree.release(allocation);
    }
    // Children were created after their parents, so deleting newest first deletes leaves first.
    for pool_idx in (1..model.pools.len()).rev().filter(|idx| model.pools[*idx].live) {
        model.tree.delete_pool(model.pools[pool_idx].id).unwrap();
    }
    if model.pools[0].live {
        let usage = model.tree.usage(root).unwrap();
        assert_eq!(usage.number_of_available_ip_addresses(), usage.total_number_of_ip_addresses());
    }
}

fn v4() -> Space {
    Space { base: Prefix::parse("10.0.0.0/23").unwrap(), unit_len: 32, count_scale_bits: 0 }
}

fn v6() -> Space {
    // Counts are scaled by 2^60, so they span from one /64 to a few dozen.
    Space { base: Prefix::parse("2001:db8::/60").unwrap(), unit_len: 68, count_scale_bits: 60 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ipv4_allocator_agrees_with_the_oracle(root_pattern: u8, root_placement: u8, ops in prop::collection::vec(op_strategy(v4()), 1..40)) {
        run(v4(), root_pattern, root_placement, ops);
    }

    #[test]
    fn ipv6_allocator_agrees_with_the_oracle(root_pattern: u8, root_placement: u8, ops in prop::collection::vec(op_strategy(v6()), 1..40)) {
        run(v6(), root_pattern, root_placement, ops);
    }
}
