//! A network manager's pools in memory: root pools that never overlap, child pools carved from
//! their parent's free space, and the allocations each pool hands out. This is the reference model
//! of the rules; the store applies the same rules to its tables.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::Error;
use crate::free::FreeBlocks;
use crate::plan::Placement;
use crate::prefix::{Family, Prefix};
use crate::request::{self, Request};
use crate::usage::{self, ChildPoolUsage, Holder, PoolUsage};

/// Identifies a pool inside one `PoolTree`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(u32);

/// Limits of a pool tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeConfig {
    /// Levels of pools, counting the root as level 1. Azure allows seven.
    pub max_depth: u8,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig { max_depth: 7 }
    }
}

/// What a new pool looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    pub parent: Option<PoolId>,
    pub prefixes: Vec<Prefix>,
    pub placement: Placement,
}

/// Blocks handed out by one pool to one holder. Release it to give the space back; it is not
/// `Clone`, so it can be released only once.
#[derive(Debug, PartialEq, Eq)]
pub struct Allocation {
    pool: PoolId,
    holder: Holder,
    // Invariant: sorted by address; each block is held by this allocation in `pool`.
    blocks: Vec<Prefix>,
}

impl Allocation {
    pub fn pool(&self) -> PoolId {
        self.pool
    }

    pub fn holder(&self) -> Holder {
        self.holder
    }

    /// The allocated blocks in address order.
    pub fn blocks(&self) -> &[Prefix] {
        &self.blocks
    }
}

#[derive(Debug, Clone)]
struct Pool {
    name: String,
    parent: Option<PoolId>,
    // Root pools are at depth 1.
    depth: u8,
    // Invariant: sorted, disjoint, all of `free.family()`.
    prefixes: Vec<Prefix>,
    placement: Placement,
    free: FreeBlocks,
    // Invariant: blocks held inside this pool; disjoint from each other, from `free` and from the
    // children's prefixes.
    held: HashMap<Prefix, Holder, BuildHasherDefault<PrefixHasher>>,
    children: Vec<PoolId>,
}

/// All pools of one network manager.
#[derive(Debug, Clone, Default)]
pub struct PoolTree {
    config: TreeConfig,
    pools: BTreeMap<PoolId, Pool>,
    // Invariant: every root pool prefix, by address; they never overlap.
    root_prefixes: BTreeMap<(Family, u128), Prefix>,
    next_id: u32,
}

/// A fast hasher for prefixes, which are not attacker-chosen here (the map is private to one
/// in-memory pool): multiply-and-rotate over the written words.
#[derive(Debug, Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u128(&mut self, value: u128) {
        self.write_u64(value as u64);
        self.write_u64((value >> 64) as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// Checks a pool's prefixes: at least one, one family, none overlapping. Returns them sorted, with
/// their family.
pub fn check_pool_prefixes(mut prefixes: Vec<Prefix>) -> Result<(Family, Vec<Prefix>), Error> {
    let first = *prefixes.first().ok_or(Error::NoPrefixes)?;
    if let Some(other) = prefixes.iter().find(|prefix| prefix.family() != first.family()) {
        return Err(Error::MixedFamilies { first, other: *other });
    }
    prefixes.sort();
    // Aligned blocks overlap only by containment, and a block that contains a later one in
    // address order also contains the one right after it, so neighbours suffice.
    if let Some(pair) = prefixes.windows(2).find(|pair| pair[0].overlaps(&pair[1])) {
        return Err(Error::OverlappingPrefixes { first: pair[0], other: pair[1] });
    }
    Ok((first.family(), prefixes))
}

impl PoolTree {
    pub fn new(config: TreeConfig) -> PoolTree {
        PoolTree { config, ..PoolTree::default() }
    }

    /// Creates a pool. A child's prefixes are taken from its parent's free space; a root's must
    /// not overlap another root's.
    pub fn create_pool(&mut self, spec: PoolSpec) -> Result<PoolId, Error> {
        let (family, prefixes) = check_pool_prefixes(spec.prefixes)?;
        let depth = match spec.parent {
            None => {
                self.check_roots_free(&prefixes)?;
                1
            }
            Some(parent_id) => {
                let parent = self.pool(parent_id)?;
                if parent.depth >= self.config.max_depth {
                    return Err(Error::TooDeep {
                        parent: parent.name.clone(),
                        parent_depth: parent.depth,
                        max_depth: self.config.max_depth,
                    });
                }
                let depth = parent.depth + 1;
                self.take_from_parent(parent_id, &prefixes)?;
                depth
            }
        };
        let id = PoolId(self.next_id);
        self.next_id += 1;
        if spec.parent.is_none() {
            self.add_roots(&prefixes);
        }
        let mut free = FreeBlocks::new(family);
        for prefix in &prefixes {
            free.release(*prefix);
        }
        if let Some(parent_id) = spec.parent {
            self.pool_mut(parent_id).children.push(id);
        }
        let pool = Pool {
            name: spec.name,
            parent: spec.parent,
            depth,
            prefixes,
            placement: spec.placement,
            free,
            held: HashMap::default(),
            children: Vec::new(),
        };
        self.pools.insert(id, pool);
        Ok(id)
    }

    /// Deletes a pool that has no children and holds nothing; a child's space returns to its parent.
    pub fn delete_pool(&mut self, id: PoolId) -> Result<(), Error> {
        let pool = self.pool(id)?;
        if !pool.children.is_empty() {
            return Err(Error::PoolNotEmpty { pool: pool.name.clone(), what: "child pools" });
        }
        if !pool.held.is_empty() {
            return Err(Error::PoolNotEmpty {
                pool: pool.name.clone(),
                what: "allocations or static CIDRs",
            });
        }
        let pool = self.pools.remove(&id).expect("checked above");
        self.give_back(pool.parent, &pool.prefixes);
        if let Some(parent_id) = pool.parent {
            self.pool_mut(parent_id).children.retain(|child| *child != id);
        }
        Ok(())
    }

    /// Replaces a pool's prefixes. A dropped prefix must be entirely free; an added one must be
    /// free in the parent (or, for a root, overlap no other root). Nothing changes on error.
    pub fn set_prefixes(&mut self, id: PoolId, new_prefixes: Vec<Prefix>) -> Result<(), Error> {
        let (family, new_prefixes) = check_pool_prefixes(new_prefixes)?;
        let pool = self.pool(id)?;
        if family != pool.free.family() {
            return Err(Error::WrongFamily {
                pool: pool.name.clone(),
                prefix: new_prefixes[0],
                family: pool.free.family(),
            });
        }
        let dropped: Vec<Prefix> =
            pool.prefixes.iter().filter(|prefix| !new_prefixes.contains(prefix)).copied().collect();
        let added: Vec<Prefix> =
            new_prefixes.iter().filter(|prefix| !pool.prefixes.contains(prefix)).copied().collect();
        if let Some(prefix) = dropped.iter().find(|prefix| pool.free.containing(prefix).is_none()) {
            return Err(Error::PrefixInUse { pool: pool.name.clone(), prefix: *prefix });
        }
        // Dropped space goes back first, so an added prefix may reuse it (a /16 replaced by the
        // /15 around it). If an added prefix is refused, the dropped space is taken back; it is
        // still free, because nothing else ran in between.
        let parent = pool.parent;
        self.give_back(parent, &dropped);
        let taken = match parent {
            None => self.check_roots_free(&added).map(|()| self.add_roots(&added)),
            Some(parent_id) => self.take_from_parent(parent_id, &added),
        };
        if let Err(error) = taken {
            match parent {
                None => self.add_roots(&dropped),
                Some(parent_id) => self
                    .take_from_parent(parent_id, &dropped)
                    .expect("dropped space was just released"),
            }
            return Err(error);
        }
        let pool = self.pool_mut(id);
        for prefix in &dropped {
            pool.free.take_prefix(*prefix).expect("checked that each dropped prefix is free");
        }
        for prefix in &added {
            pool.free.release(*prefix);
        }
        pool.prefixes = new_prefixes;
        Ok(())
    }

    /// Allocates space in a pool for `holder`. A count may become several blocks; either all are
    /// allocated or none.
    pub fn allocate(
        &mut self,
        id: PoolId,
        request: &Request,
        holder: Holder,
    ) -> Result<Allocation, Error> {
        self.pool(id)?;
        let pool = self.pool_mut(id);
        let family = pool.free.family();
        let blocks = match *request {
            Request::Prefix(prefix) => {
                let block = pool
                    .free
                    .take_prefix(prefix)
                    .ok_or_else(|| refusal(&pool.name, &pool.prefixes, prefix))?;
                vec![block]
            }
            Request::Count(_) | Request::Length(_) => {
                let lens = request::block_lengths(family, request)?;
                let largest_free = pool.free.largest();
                let mut blocks = Vec::with_capacity(lens.len());
                for len in lens {
                    match pool.free.take_len(len, pool.placement) {
                        Some(block) => blocks.push(block),
                        None => {
                            for block in blocks {
                                pool.free.release(block);
                            }
                            let requested = match *request {
                                Request::Count(count) => count,
                                _ => Prefix::new(family, 0, len).expect("a valid length").size(),
                            };
                            return Err(Error::PoolExhausted {
                                pool: pool.name.clone(),
                                family,
                                requested,
                                largest_free,
                            });
                        }
                    }
                }
                blocks.sort();
                blocks
            }
        };
        pool.held.extend(blocks.iter().map(|block| (*block, holder)));
        Ok(Allocation { pool: id, holder, blocks })
    }

    /// Gives an allocation's blocks back to its pool at once, merging buddies.
    pub fn release(&mut self, allocation: Allocation) {
        let pool = self.pool_mut(allocation.pool);
        for block in allocation.blocks {
            let holder = pool.held.remove(&block);
            debug_assert_eq!(
                holder,
                Some(allocation.holder),
                "{block} was held by this allocation"
            );
            pool.free.release(block);
        }
    }

    /// The pool's usage, with child pools named by their id.
    pub fn usage(&self, id: PoolId) -> Result<PoolUsage<PoolId>, Error> {
        let pool = self.pool(id)?;
        let child_pools = pool
            .children
            .iter()
            .map(|child| ChildPoolUsage {
                child: *child,
                address_prefixes: self.pools[child].prefixes.clone(),
            })
            .collect();
        Ok(PoolUsage::new(
            pool.prefixes.clone(),
            child_pools,
            pool.held.iter().map(|(block, holder)| (*block, *holder)),
            pool.free.iter(),
        ))
    }

    /// The pool's prefixes, sorted.
    pub fn prefixes(&self, id: PoolId) -> Result<&[Prefix], Error> {
        Ok(&self.pool(id)?.prefixes)
    }

    /// The pool's free space.
    pub fn free_blocks(&self, id: PoolId) -> Result<&FreeBlocks, Error> {
        Ok(&self.pool(id)?.free)
    }

    fn check_roots_free(&self, prefixes: &[Prefix]) -> Result<(), Error> {
        for prefix in prefixes {
            let family = prefix.family();
            // Roots are disjoint, so only the nearest root at or before `prefix` can contain it,
            // and only the nearest after its start can lie inside it.
            let before = self.root_prefixes.range(..=(family, prefix.addr())).next_back();
            let after = self.root_prefixes.range((family, prefix.addr())..).next();
            if let Some((_, root)) =
                before.into_iter().chain(after).find(|(_, root)| root.overlaps(prefix))
            {
                return Err(Error::OverlappingPrefixes { first: *root, other: *prefix });
            }
        }
        Ok(())
    }

    fn add_roots(&mut self, prefixes: &[Prefix]) {
        self.root_prefixes
            .extend(prefixes.iter().map(|prefix| ((prefix.family(), prefix.addr()), *prefix)));
    }

    fn take_from_parent(&mut self, parent_id: PoolId, prefixes: &[Prefix]) -> Result<(), Error> {
        let parent = self.pool_mut(parent_id);
        if let Some(prefix) = prefixes.iter().find(|prefix| prefix.family() != parent.free.family())
        {
            return Err(Error::WrongFamily {
                pool: parent.name.clone(),
                prefix: *prefix,
                family: parent.free.family(),
            });
        }
        for (taken_idx, prefix) in prefixes.iter().enumerate() {
            if parent.free.take_prefix(*prefix).is_none() {
                for taken in &prefixes[..taken_idx] {
                    parent.free.release(*taken);
                }
                return Err(refusal(&parent.name, &parent.prefixes, *prefix));
            }
        }
        Ok(())
    }

    fn give_back(&mut self, parent: Option<PoolId>, prefixes: &[Prefix]) {
        match parent {
            Some(parent_id) => {
                let parent = self.pool_mut(parent_id);
                for prefix in prefixes {
                    parent.free.release(*prefix);
                }
            }
            None => {
                for prefix in prefixes {
                    self.root_prefixes.remove(&(prefix.family(), prefix.addr()));
                }
            }
        }
    }

    fn pool(&self, id: PoolId) -> Result<&Pool, Error> {
        self.pools.get(&id).ok_or_else(|| Error::UnknownPool { pool: format!("#{}", id.0) })
    }

    fn pool_mut(&mut self, id: PoolId) -> &mut Pool {
        self.pools.get_mut(&id).expect("callers look the pool up with `pool` first")
    }
}

/// Why a pool with `prefixes` (sorted, disjoint) could not hand out `target`: it lies outside the
/// pool's space, or inside it but not entirely free. A pool's space is the union of its prefixes,
/// so a block may span two buddy prefixes.
pub fn refusal(pool_name: &str, prefixes: &[Prefix], target: Prefix) -> Error {
    let in_one_prefix = prefixes.iter().any(|prefix| prefix.contains(&target));
    let covered_by_several = usage::sum(
        &prefixes.iter().filter(|prefix| target.contains(prefix)).copied().collect::<Vec<_>>(),
    ) == target.size();
    if in_one_prefix || covered_by_several {
        Error::NotFree { pool: pool_name.to_owned(), prefix: target }
    } else {
        Error::OutsidePool { pool: pool_name.to_owned(), prefix: target }
    }
}
