//! Subnets: carving a subnet's space out of the space its virtual network holds, with the
//! allocator's rules (the sizing rule, best-fit placement, aligned blocks), around what other
//! subnets already hold; and finding subnets whose prefixes overlap.

#[cfg(test)]
mod tests;

use crate::count::AddressCount;
use crate::error::Error;
use crate::plan::Placement;
use crate::prefix::Prefix;
use crate::request::Request;
use crate::tree::{PoolSpec, PoolTree, TreeConfig};
use crate::usage::Holder;

/// The blocks of `count` addresses carved from `space` without touching `taken`, placed as the
/// allocator places them. `name` names the space in errors (e.g. which subnet and pool).
pub fn carve(
    name: &str,
    space: &[Prefix],
    taken: &[Prefix],
    count: AddressCount,
) -> Result<Vec<Prefix>, Error> {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree.create_pool(PoolSpec {
        name: name.to_owned(),
        parent: None,
        prefixes: space.to_vec(),
        placement: Placement::BestFit,
    })?;
    for prefix in taken.iter().filter(|prefix| space.iter().any(|s| s.contains(prefix))) {
        tree.allocate(pool, &Request::Prefix(*prefix), Holder::Resource)?;
    }
    let carved = tree.allocate(pool, &Request::Count(count), Holder::Resource)?;
    Ok(carved.blocks().to_vec())
}

/// The first two prefixes of `prefixes` that overlap, in their order, if any.
pub fn first_overlap(prefixes: &[Prefix]) -> Option<(Prefix, Prefix)> {
    prefixes.iter().enumerate().find_map(|(at, prefix)| {
        prefixes[..at].iter().find(|other| other.overlaps(prefix)).map(|other| (*other, *prefix))
    })
}
