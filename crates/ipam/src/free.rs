//! The free space of one pool, in memory: maximal aligned free blocks in one ordered set per
//! length, with a bitmask of the lengths that have any, so allocate and release cost O(log n) in
//! the number of blocks. The store keeps the same data as a table indexed by (pool, length,
//! address).

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use crate::count::AddressCount;
use crate::plan::{self, Placement, Split};
use crate::prefix::{Family, Prefix};

/// One pool's free blocks.
#[derive(Debug, Clone)]
pub struct FreeBlocks {
    family: Family,
    // Invariant: `by_len[len]` holds the addresses of the free blocks of that length; the blocks
    // are disjoint and no two are buddies (see `plan`).
    by_len: Vec<BTreeSet<u128>>,
    // Invariant: bit `len` is set exactly when `by_len[len]` is not empty.
    lengths_in_use: LengthMask,
    n_blocks: usize,
    // Invariant: the sum of the sizes of all blocks.
    n_free_addresses: AddressCount,
}

/// A set of prefix lengths 0..=128.
#[derive(Debug, Clone, Copy, Default)]
struct LengthMask {
    up_to_127: u128,
    has_128: bool,
}

impl LengthMask {
    fn set(&mut self, len: u8, present: bool) {
        if len == 128 {
            self.has_128 = present;
        } else if present {
            self.up_to_127 |= 1 << len;
        } else {
            self.up_to_127 &= !(1 << len);
        }
    }

    /// The largest length `<= max_len` in the set.
    fn longest_at_most(&self, max_len: u8) -> Option<u8> {
        if max_len == 128 && self.has_128 {
            return Some(128);
        }
        let below =
            if max_len >= 127 { self.up_to_127 } else { self.up_to_127 & ((2u128 << max_len) - 1) };
        (below != 0).then(|| 127 - below.leading_zeros() as u8)
    }

    /// The lengths `<= max_len` in the set, shortest first.
    fn at_most(self, max_len: u8) -> impl Iterator<Item = u8> {
        let mut bits =
            if max_len >= 127 { self.up_to_127 } else { self.up_to_127 & ((2u128 << max_len) - 1) };
        let with_128 = max_len == 128 && self.has_128;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let len = bits.trailing_zeros() as u8;
            bits &= bits - 1;
            Some(len)
        })
        .chain(with_128.then_some(128))
    }
}

impl FreeBlocks {
    /// No free space yet; `release` adds some.
    pub fn new(family: Family) -> FreeBlocks {
        FreeBlocks {
            family,
            by_len: vec![BTreeSet::new(); usize::from(family.bits()) + 1],
            lengths_in_use: LengthMask::default(),
            n_blocks: 0,
            n_free_addresses: AddressCount::ZERO,
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Number of free blocks.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Number of free addresses.
    pub fn n_free_addresses(&self) -> AddressCount {
        self.n_free_addresses
    }

    /// The free blocks in address order: the pool's `availableAddressPrefixes`. Sorting costs
    /// O(n log n); this is for listing, not for the allocation path.
    pub fn iter(&self) -> impl Iterator<Item = Prefix> + '_ {
        let mut blocks: Vec<Prefix> = self
            .lengths_in_use
            .at_most(self.family.bits())
            .flat_map(|len| {
                self.by_len[usize::from(len)].iter().map(move |addr| self.block(*addr, len))
            })
            .collect();
        blocks.sort();
        blocks.into_iter()
    }

    /// The largest free block, lowest address among equals.
    pub fn largest(&self) -> Option<Prefix> {
        let len = self.lengths_in_use.at_most(self.family.bits()).next()?;
        self.by_len[usize::from(len)].first().map(|addr| self.block(*addr, len))
    }

    /// The free block that contains `target`, if `target` is entirely free.
    pub fn containing(&self, target: &Prefix) -> Option<Prefix> {
        if target.family() != self.family {
            return None;
        }
        // At most one free block contains `target`: the one at its length among its ancestors.
        self.lengths_in_use
            .at_most(target.len())
            .map(|len| target.truncate(len))
            .find(|ancestor| self.contains_block(ancestor))
    }

    /// Whether exactly `block` is one of the free blocks.
    pub fn contains_block(&self, block: &Prefix) -> bool {
        block.family() == self.family
            && self.by_len[usize::from(block.len())].contains(&block.addr())
    }

    /// The free blocks that can win `plan::choose` for a block of length `want_len`: the best-fit
    /// winner alone, or the lowest (first-fit) or highest (last-fit) block of each length.
    pub fn candidates(
        &self,
        want_len: u8,
        placement: Placement,
    ) -> impl Iterator<Item = Prefix> + '_ {
        let want_len = want_len.min(self.family.bits());
        let best_fit = placement == Placement::BestFit;
        let best_len = if best_fit { self.lengths_in_use.longest_at_most(want_len) } else { None };
        let every_len = (!best_fit).then(|| self.lengths_in_use.at_most(want_len));
        best_len.into_iter().chain(every_len.into_iter().flatten()).filter_map(move |len| {
            let at_len = &self.by_len[usize::from(len)];
            let addr =
                if placement == Placement::LastFit { at_len.last() } else { at_len.first() }?;
            Some(self.block(*addr, len))
        })
    }

    /// Takes a block of length `want_len` where `placement` puts it, or `None` if no free block is
    /// large enough.
    pub fn take_len(&mut self, want_len: u8, placement: Placement) -> Option<Prefix> {
        let free_block = plan::choose(placement, want_len, self.candidates(want_len, placement))?;
        Some(self.apply_split(plan::split(free_block, want_len, placement)))
    }

    /// Takes exactly `target`, or `None` if any part of it is not free.
    pub fn take_prefix(&mut self, target: Prefix) -> Option<Prefix> {
        let free_block = self.containing(&target)?;
        Some(self.apply_split(plan::carve(free_block, target)))
    }

    /// Returns `block` to the free space, merging it with free buddies. Returns the block that
    /// joined the free set.
    ///
    /// Precondition: `block` is of this family and overlaps no free block.
    pub fn release(&mut self, block: Prefix) -> Prefix {
        debug_assert_eq!(block.family(), self.family);
        debug_assert!(self.containing(&block).is_none(), "{block} is already free");
        let merge = plan::merge(block, |buddy| self.contains_block(buddy));
        for absorbed in merge.absorbed() {
            self.remove(&absorbed);
        }
        self.insert(merge.merged);
        merge.merged
    }

    fn apply_split(&mut self, split: Split) -> Prefix {
        self.remove(&split.free_block);
        for spare in split.remainder() {
            self.insert(spare);
        }
        split.taken
    }

    fn insert(&mut self, block: Prefix) {
        let at_len = &mut self.by_len[usize::from(block.len())];
        at_len.insert(block.addr());
        self.lengths_in_use.set(block.len(), true);
        self.n_blocks += 1;
        self.n_free_addresses = self.n_free_addresses.add_disjoint(block.size());
    }

    fn remove(&mut self, block: &Prefix) {
        let at_len = &mut self.by_len[usize::from(block.len())];
        let was_free = at_len.remove(&block.addr());
        debug_assert!(was_free, "{block} was not a free block");
        if at_len.is_empty() {
            self.lengths_in_use.set(block.len(), false);
        }
        self.n_blocks -= 1;
        self.n_free_addresses = self.n_free_addresses.sub_contained(block.size());
    }

    fn block(&self, addr: u128, len: u8) -> Prefix {
        Prefix::new(self.family, addr, len).expect("free blocks are valid prefixes")
    }
}
