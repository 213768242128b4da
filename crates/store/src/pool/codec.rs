//! How pools, allocations and blocks are encoded in columns: holders, families, placements,
//! addresses as 16 big-endian bytes, and pool rows.

use ipam::free::FreeBlocks;
use ipam::plan::Placement;
use ipam::prefix::{Family, Prefix};
use ipam::usage::Holder;

use super::{PoolId, PoolRecord};
use crate::db::{Row, Value};

pub(super) const HOLDER_CHILD_POOL: i64 = 0;

pub(crate) fn holder_code(holder: Holder) -> i64 {
    match holder {
        Holder::Resource => 1,
        Holder::StaticCidr => 2,
        Holder::Reservation => 3,
    }
}

pub(super) fn holder_from(code: i64) -> Option<Holder> {
    match code {
        1 => Some(Holder::Resource),
        2 => Some(Holder::StaticCidr),
        3 => Some(Holder::Reservation),
        _ => None,
    }
}

pub(super) fn family_code(family: Family) -> i64 {
    match family {
        Family::V4 => 4,
        Family::V6 => 6,
    }
}

pub(super) fn family_from(code: i64) -> Family {
    if code == 6 { Family::V6 } else { Family::V4 }
}

pub(super) fn placement_code(placement: Placement) -> i64 {
    match placement {
        Placement::BestFit => 0,
        Placement::FirstFit => 1,
        Placement::LastFit => 2,
    }
}

pub(super) fn placement_from(code: i64) -> Placement {
    match code {
        1 => Placement::FirstFit,
        2 => Placement::LastFit,
        _ => Placement::BestFit,
    }
}

/// Addresses are stored as 16 big-endian bytes, so byte order is numeric order on both backends.
pub(super) fn addr_value(addr: u128) -> Value {
    Value::Blob(addr.to_be_bytes().to_vec())
}

pub(super) fn addr_from(bytes: &[u8]) -> u128 {
    let array: [u8; 16] = bytes.try_into().expect("addresses are stored as 16 bytes");
    u128::from_be_bytes(array)
}

pub(super) fn int(value: impl Into<i64>) -> Value {
    Value::Int(value.into())
}

pub(super) fn prefix_from(family: Family, addr: &[u8], len: i64) -> Prefix {
    let len = u8::try_from(len).expect("stored lengths fit a u8");
    Prefix::new(family, addr_from(addr), len).expect("stored blocks are valid prefixes")
}

/// The shortest block the union of `prefixes` holds whole: how far release may merge.
pub(super) fn min_len(family: Family, prefixes: &[Prefix]) -> u8 {
    let mut free = FreeBlocks::new(family);
    for prefix in prefixes {
        free.release(*prefix);
    }
    free.largest().map_or(family.bits(), |block| block.len())
}

/// A pool row with one of its prefixes per result row; `pools_from_rows` folds them.
pub(super) const POOL_SELECT: &str = "SELECT p.id, p.resource_key, p.name, p.scope_key, p.tree_id, p.parent_id, p.family, \
     p.depth, p.placement, p.min_len, pp.addr, pp.len FROM pools p LEFT JOIN pool_prefixes pp ON pp.pool_id = p.id";

/// Pools from `POOL_SELECT` rows ordered by pool, then prefix address.
pub(super) fn pools_from_rows(rows: &[Row]) -> Vec<PoolRecord> {
    let mut pools: Vec<PoolRecord> = Vec::new();
    for row in rows {
        let family = family_from(row.int(6));
        let prefix = row.opt_blob(10).map(|addr| prefix_from(family, addr, row.int(11)));
        match pools.last_mut() {
            Some(pool) if pool.id.0 == row.int(0) => pool.prefixes.extend(prefix),
            _ => pools.push(PoolRecord {
                id: PoolId(row.int(0)),
                resource_key: row.text(1).to_owned(),
                name: row.text(2).to_owned(),
                scope_key: row.text(3).to_owned(),
                tree_id: row.int(4),
                parent: row.opt_int(5).map(PoolId),
                family,
                depth: u8::try_from(row.int(7)).expect("depths fit a u8"),
                placement: placement_from(row.int(8)),
                min_len: u8::try_from(row.int(9)).expect("lengths fit a u8"),
                prefixes: prefix.into_iter().collect(),
            }),
        }
    }
    pools
}

/// Allocations (`a`) with their blocks (`b`). The join names the pool on both sides, and a
/// query by pool names `a.pool_id` and `b.pool_id` both: SQLite finds a pool's blocks by the key
/// of `allocation_blocks` (migration 6), PostgreSQL a pool's allocations by `allocations_by_pool`.
pub(super) const ALLOCATION_BLOCKS: &str =
    "allocations a JOIN allocation_blocks b ON b.pool_id = a.pool_id AND b.allocation_id = a.id";
