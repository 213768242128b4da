//! Allocate+release latency of the pool allocator with 0 to 100k live allocations of mixed sizes,
//! in an IPv4 /8 and an IPv6 /32, beside a naive set-based baseline measured in the same run.
//!
//! Run with `cargo bench -p crosspool-ipam`; it prints a markdown table for docs/benchmarks.md.
//! A custom harness, because the goal is about percentiles of single operations.

// Reason: a benchmark measures wall-clock time, which the workspace bans elsewhere.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use ipam::count::AddressCount;
use ipam::plan::Placement;
use ipam::prefix::{Family, Prefix};
use ipam::request::{self, Request};
use ipam::tree::{PoolSpec, PoolTree, TreeConfig};
use ipam::usage::Holder;

/// A small deterministic generator (xorshift64*), so every run measures the same workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A mixed-size request, like VNets in a landing zone: mostly small, some up to a /23 (IPv4;
/// IPv6 in /64s). The mean is about 10 granules (84 IPv4 addresses), so 120k fit in a /8.
fn mixed_count(rng: &mut Rng, family: Family) -> AddressCount {
    let granules = match rng.below(20) {
        0..=13 => 1 + rng.below(8),
        14..=18 => 8 + rng.below(24),
        _ => 32 + rng.below(32),
    };
    let granule_bits = request::granule_bits(family);
    AddressCount::from(u128::from(granules) << granule_bits)
}

struct Scenario {
    family: Family,
    pool: Prefix,
    n_live: usize,
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    n_samples: usize,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n_samples = samples.len();
    let mean = samples.iter().sum::<Duration>() / n_samples as u32;
    Stats { p50: samples[n_samples / 2], p99: samples[n_samples * 99 / 100], mean, n_samples }
}

/// Fills a pool with `n_live` allocations, fragmented by releasing a sixth of a larger fill.
fn filled_tree(scenario: &Scenario, rng: &mut Rng) -> (PoolTree, ipam::tree::PoolId, Vec<Prefix>) {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree
        .create_pool(PoolSpec {
            name: "bench".to_owned(),
            parent: None,
            prefixes: vec![scenario.pool],
            placement: Placement::BestFit,
        })
        .unwrap();
    let mut live = Vec::new();
    for _ in 0..scenario.n_live + scenario.n_live / 5 {
        let count = mixed_count(rng, scenario.family);
        live.push(tree.allocate(pool, &Request::Count(count), Holder::Resource).unwrap());
    }
    for _ in 0..scenario.n_live / 5 {
        let victim = rng.below(live.len() as u64) as usize;
        tree.release(live.swap_remove(victim));
    }
    let held: Vec<Prefix> =
        live.iter().flat_map(|allocation| allocation.blocks().to_vec()).collect();
    (tree, pool, held)
}

/// Allocate+release of mixed counts (`single_block: false`, about two blocks per request) or of
/// one /26-sized block (IPv6: one /64).
fn bench_allocator(scenario: &Scenario, single_block: bool) -> Stats {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut tree, pool, _) = filled_tree(scenario, &mut rng);
    let one_block = AddressCount::from(u128::from(8u8) << request::granule_bits(scenario.family));
    let counts: Vec<AddressCount> = (0..1024)
        .map(|_| if single_block { one_block } else { mixed_count(&mut rng, scenario.family) })
        .collect();
    // Warm up caches and the branch predictor.
    for count in counts.iter().take(1000) {
        let allocation = tree.allocate(pool, &Request::Count(*count), Holder::Resource).unwrap();
        tree.release(allocation);
    }
    let n_samples = 200_000;
    let mut samples = Vec::with_capacity(n_samples);
    for sample_idx in 0..n_samples {
        let count = counts[sample_idx % counts.len()];
        let start = Instant::now();
        let allocation = tree.allocate(pool, &Request::Count(count), Holder::Resource).unwrap();
        tree.release(black_box(allocation));
        samples.push(start.elapsed());
    }
    stats(samples)
}

/// The set-based way: free space = pool minus all allocations, recomputed per request, then the
/// first free CIDR that fits. This is what an IPAM built on IP sets (netaddr's IPSet and the like)
/// does, and why such IPAMs slow down as pools fill.
fn naive_allocate(pool: Prefix, allocated: &mut Vec<Prefix>, want_len: u8) -> Option<Prefix> {
    let mut sorted = allocated.clone();
    sorted.sort();
    let mut free_cidrs = Vec::new();
    let mut cursor = Some(pool.addr());
    for block in &sorted {
        if let Some(first) = cursor.filter(|first| *first < block.addr()) {
            push_gap_cidrs(pool.family(), first, block.addr() - 1, &mut free_cidrs);
        }
        cursor = block.last_addr().checked_add(1).filter(|next| *next <= pool.last_addr());
    }
    if let Some(first) = cursor {
        push_gap_cidrs(pool.family(), first, pool.last_addr(), &mut free_cidrs);
    }
    let free_block = free_cidrs.into_iter().find(|cidr| cidr.len() <= want_len)?;
    let taken = Prefix::new(pool.family(), free_block.addr(), want_len).unwrap();
    allocated.push(taken);
    Some(taken)
}

/// Appends the maximal aligned blocks covering `first..=last`.
fn push_gap_cidrs(family: Family, mut first: u128, last: u128, out: &mut Vec<Prefix>) {
    while first <= last {
        let mut len = family.bits() - (first.trailing_zeros().min(u32::from(family.bits())) as u8);
        while Prefix::new(family, first, len).unwrap().last_addr() > last {
            len += 1;
        }
        let block = Prefix::new(family, first, len).unwrap();
        out.push(block);
        match block.last_addr().checked_add(1) {
            Some(next) => first = next,
            None => break,
        }
    }
}

fn bench_naive(scenario: &Scenario) -> Stats {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (_, _, mut held) = filled_tree(scenario, &mut rng);
    let n_samples = match scenario.n_live {
        0..=1_000 => 2_000,
        1_001..=10_000 => 200,
        _ => 30,
    };
    let mut samples = Vec::with_capacity(n_samples);
    for _ in 0..n_samples {
        let count = mixed_count(&mut rng, scenario.family);
        let lens = request::blocks_for_count(scenario.family, count).unwrap();
        let start = Instant::now();
        let before = held.len();
        for len in &lens {
            black_box(naive_allocate(scenario.pool, &mut held, *len).unwrap());
        }
        held.truncate(before);
        samples.push(start.elapsed());
    }
    stats(samples)
}

/// The cost of reading the clock twice, which every sample includes.
fn timer_overhead() -> Duration {
    let samples: Vec<Duration> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            black_box(());
            start.elapsed()
        })
        .collect();
    stats(samples).p50
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench`-less arguments; do a tiny smoke run.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let sizes: &[usize] = if quick { &[0, 100] } else { &[0, 1_000, 10_000, 100_000] };
    println!("timer overhead per sample (p50): {:?}", timer_overhead());
    println!();
    println!(
        "| pool | live allocations | mixed request p50 | p99 | mean | one block p50 | p99 | naive set-based p50 | p99 | naive samples |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (family, pool) in [(Family::V4, "10.0.0.0/8"), (Family::V6, "2001:db8::/32")] {
        for &n_live in sizes {
            let scenario = Scenario { family, pool: Prefix::parse(pool).unwrap(), n_live };
            let mixed = bench_allocator(&scenario, false);
            let single = bench_allocator(&scenario, true);
            let naive = bench_naive(&scenario);
            println!(
                "| {pool} | {n_live} | {:?} | {:?} | {:?} | {:?} | {:?} | {:?} | {:?} | {} |",
                mixed.p50,
                mixed.p99,
                mixed.mean,
                single.p50,
                single.p99,
                naive.p50,
                naive.p99,
                naive.n_samples
            );
        }
    }
}
