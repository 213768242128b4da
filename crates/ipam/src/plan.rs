//! Pure decisions about free space: which free block to cut, how to cut it, and which buddies merge
//! on release. The in-memory `FreeBlocks` and the store's tables both apply these, so the two agree.
//!
//! Free space is a set of maximal aligned blocks: a block is in the set only if it is entirely free
//! and its buddy is not (else the two would have merged). So any entirely free aligned block lies
//! inside exactly one member of the set, and the set in address order is the
//! `availableAddressPrefixes` of the pool.

#[cfg(test)]
mod tests;

use crate::prefix::Prefix;

/// Where a pool places a new block in its free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// The smallest free block that fits, lowest address among equals; the block's low end.
    /// Keeps large blocks whole.
    #[default]
    BestFit,
    /// The free block at the lowest address that fits; its low end.
    FirstFit,
    /// The free block at the highest address that fits; its high end.
    LastFit,
}

impl Placement {
    /// The name used in configuration and on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Placement::BestFit => "BestFit",
            Placement::FirstFit => "FirstFit",
            Placement::LastFit => "LastFit",
        }
    }

    /// Reads a placement name, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<Placement> {
        [Placement::BestFit, Placement::FirstFit, Placement::LastFit]
            .into_iter()
            .find(|placement| placement.name().eq_ignore_ascii_case(text))
    }
}

/// Picks the free block to cut a block of length `want_len` from.
///
/// `candidates` are free blocks; those shorter than `want_len` can't hold it and are skipped. The
/// caller may pass every free block or only the few that can win for `placement` (the best-fit
/// winner, or the lowest and highest block of each length).
pub fn choose(
    placement: Placement,
    want_len: u8,
    candidates: impl IntoIterator<Item = Prefix>,
) -> Option<Prefix> {
    let fitting = candidates.into_iter().filter(|block| block.len() <= want_len);
    match placement {
        // Longest length is the smallest block; among equals the lowest address.
        Placement::BestFit => {
            fitting.min_by_key(|block| (std::cmp::Reverse(block.len()), block.addr()))
        }
        Placement::FirstFit => fitting.min_by_key(|block| block.addr()),
        Placement::LastFit => fitting.max_by_key(|block| block.last_addr()),
    }
}

/// A free block cut in two: the part taken and the free buddies left over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The free block that was cut; it leaves the free set.
    pub free_block: Prefix,
    /// The block handed out, inside `free_block`.
    pub taken: Prefix,
}

impl Split {
    /// What is left of `free_block`, as maximal aligned blocks, largest first: the buddy of each
    /// block on the path from `free_block` down to `taken`. They join the free set; none of them
    /// is a buddy of another free block, so none merges.
    pub fn remainder(&self) -> impl Iterator<Item = Prefix> + use<> {
        let Split { free_block, taken } = *self;
        (free_block.len() + 1..=taken.len()).map(move |len| {
            taken.truncate(len).buddy().expect("a block longer than free_block has a buddy")
        })
    }
}

/// Cuts a block of length `want_len` from the low end of `free_block` (the high end for
/// `LastFit`).
///
/// Precondition: `free_block.len() <= want_len <= bits`.
pub fn split(free_block: Prefix, want_len: u8, placement: Placement) -> Split {
    debug_assert!(free_block.len() <= want_len && want_len <= free_block.family().bits());
    let start =
        if placement == Placement::LastFit { free_block.last_addr() } else { free_block.addr() };
    let address = Prefix::new(free_block.family(), start, free_block.family().bits())
        .expect("an address of a block is a valid single-address prefix");
    let taken = address.truncate(want_len);
    Split { free_block, taken }
}

/// Cuts exactly `target` out of `free_block`.
///
/// Precondition: `free_block.contains(&target)`.
pub fn carve(free_block: Prefix, target: Prefix) -> Split {
    debug_assert!(free_block.contains(&target));
    Split { free_block, taken: target }
}

/// A released block merged with its free buddies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    /// The block given back.
    pub released: Prefix,
    /// The block that joins the free set: `released` or one of its ancestors.
    pub merged: Prefix,
}

impl Merge {
    /// Free blocks that leave the free set because they merged into `merged`, nearest first.
    pub fn absorbed(&self) -> impl Iterator<Item = Prefix> + use<> {
        let Merge { released, merged } = *self;
        ((merged.len() + 1)..=released.len()).rev().map(move |len| {
            released.truncate(len).buddy().expect("a block longer than merged has a buddy")
        })
    }
}

/// Merges a released block with its buddy, then the result with its buddy, as long as the buddy
/// is a free block.
///
/// `is_free(block)` says whether exactly that block is in the free set. Merging stops by itself
/// at the edge of the pool's space, because a buddy outside the pool is never free.
pub fn merge(released: Prefix, mut is_free: impl FnMut(&Prefix) -> bool) -> Merge {
    let mut merged = released;
    while let Some(buddy) = merged.buddy() {
        if !is_free(&buddy) {
            break;
        }
        merged = merged.parent().expect("a block with a buddy has a parent");
    }
    Merge { released, merged }
}

/// The buddies `merge` may ask about for `released`, nearest first, up to blocks of length
/// `stop_len` (the length of the pool prefix that holds `released`). A store fetches these in one
/// query and answers `is_free` from the result.
pub fn merge_candidates(released: Prefix, stop_len: u8) -> Vec<Prefix> {
    (stop_len + 1..=released.len())
        .rev()
        .map(|len| {
            released.truncate(len).buddy().expect("a block longer than stop_len has a buddy")
        })
        .collect()
}
