//! Pools' space in numbers, summed per pool from grouped scans (blocks are counted per length,
//! never read one by one): what the metrics show (`pools_space`), and the check that each
//! pool's space adds up (`audit_unbalanced_pools`).

use std::collections::BTreeMap;

use ipam::count::AddressCount;
use ipam::prefix::Family;
use ipam::usage::Holder;

use super::PoolSpace;
use super::codec::{ALLOCATION_BLOCKS, family_from, holder_code};
use crate::ReadTx;
use crate::error::StoreError;

/// Each pool's family and lower-cased resource id, by pool id.
type Pools = BTreeMap<i64, (Family, String)>;

impl ReadTx<'_> {
    fn pools_by_id(&mut self) -> Result<Pools, StoreError> {
        let rows = self.tx.query("SELECT id, family, resource_key FROM pools", &[])?;
        Ok(rows
            .iter()
            .map(|row| (row.int(0), (family_from(row.int(1)), row.text(2).to_owned())))
            .collect())
    }

    /// Sums a grouped scan of `(pool id, block length, block count)` rows into addresses per
    /// pool, with the shortest length seen (the largest block).
    fn sum_blocks(
        &mut self,
        pools: &Pools,
        sql: &str,
    ) -> Result<BTreeMap<i64, (AddressCount, u8)>, StoreError> {
        let mut sums: BTreeMap<i64, (AddressCount, u8)> = BTreeMap::new();
        for row in self.tx.query(sql, &[])? {
            let Some((family, _)) = pools.get(&row.int(0)) else { continue };
            let len = u8::try_from(row.int(1)).expect("stored lengths fit a u8");
            let count = u64::try_from(row.int(2)).expect("a count is not negative");
            let addresses = AddressCount::blocks(count, family.bits() - len)
                .expect("disjoint blocks of one family hold at most 2^128 addresses");
            let sum = sums.entry(row.int(0)).or_insert((AddressCount::ZERO, u8::MAX));
            *sum = (sum.0.add_disjoint(addresses), sum.1.min(len));
        }
        Ok(sums)
    }

    /// Every pool's space in numbers (`PoolSpace`), in four grouped scans.
    pub fn pools_space(&mut self) -> Result<Vec<PoolSpace>, StoreError> {
        let pools = self.pools_by_id()?;
        let size = self.sum_blocks(&pools, PREFIXES)?;
        let free = self.sum_blocks(&pools, FREE)?;
        let reserved = self.sum_blocks(&pools, &held(Some(Holder::Reservation)))?;
        let total = |sums: &BTreeMap<i64, (AddressCount, u8)>, id| {
            sums.get(id).map_or(AddressCount::ZERO, |(sum, _)| *sum)
        };
        Ok(pools
            .iter()
            .map(|(id, (family, resource_key))| {
                let (size, available, reserved) =
                    (total(&size, id), total(&free, id), total(&reserved, id));
                PoolSpace {
                    resource_key: resource_key.clone(),
                    size,
                    allocated: size.sub_contained(available).sub_contained(reserved),
                    reserved,
                    available,
                    largest_free: free.get(id).map_or(AddressCount::ZERO, |(_, len)| {
                        AddressCount::power_of_two(family.bits() - len)
                    }),
                }
            })
            .collect())
    }

    /// The pools (lower-cased resource ids) whose space does not add up: their prefixes must
    /// hold exactly their free blocks, the blocks their holders hold and their child pools'
    /// prefixes. Always empty unless the store is broken.
    pub fn audit_unbalanced_pools(&mut self) -> Result<Vec<String>, StoreError> {
        let pools = self.pools_by_id()?;
        let size = self.sum_blocks(&pools, PREFIXES)?;
        let free = self.sum_blocks(&pools, FREE)?;
        let held = self.sum_blocks(&pools, &held(None))?;
        let children = self.sum_blocks(&pools, CHILD_PREFIXES)?;
        let total = |sums: &BTreeMap<i64, (AddressCount, u8)>, id| {
            sums.get(id).map_or(AddressCount::ZERO, |(sum, _)| *sum)
        };
        Ok(pools
            .iter()
            .filter(|(id, _)| {
                let parts = [&free, &held, &children]
                    .iter()
                    .try_fold(AddressCount::ZERO, |sum, part| sum.checked_add(total(part, id)));
                parts != Some(total(&size, id))
            })
            .map(|(_, (_, resource_key))| resource_key.clone())
            .collect())
    }
}

const PREFIXES: &str = "SELECT pool_id, len, COUNT(*) FROM pool_prefixes GROUP BY pool_id, len";
const FREE: &str = "SELECT pool_id, len, COUNT(*) FROM free_blocks GROUP BY pool_id, len";
/// Child pools' prefixes, by parent.
const CHILD_PREFIXES: &str = "SELECT p.parent_id, pp.len, COUNT(*) FROM pools p \
     JOIN pool_prefixes pp ON pp.pool_id = p.id WHERE p.parent_id IS NOT NULL \
     GROUP BY p.parent_id, pp.len";

/// Blocks held in each pool, by one holder or by all.
fn held(holder: Option<Holder>) -> String {
    let only = holder
        .map_or_else(String::new, |holder| format!("WHERE a.holder = {}", holder_code(holder)));
    format!(
        "SELECT b.pool_id, b.len, COUNT(*) FROM {ALLOCATION_BLOCKS} {only} GROUP BY b.pool_id, b.len"
    )
}
