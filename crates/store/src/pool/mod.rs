//! Pools, their free space and their allocations, in tables. `ipam` decides every cut and merge;
//! this module only reads the candidates through indexes and writes the outcome, so allocate and
//! release cost O(log n) index look-ups and never read all allocations of a pool.
//!
//! Every change to a pool tree first locks the tree's row (PostgreSQL: `SELECT … FOR UPDATE`;
//! SQLite: the whole write transaction is `BEGIN IMMEDIATE`), and every allocation change appends
//! to the ledger in the same transaction.

mod allocation;
mod codec;
pub(crate) use codec::holder_code;
pub(crate) mod free;
pub mod ledger;
mod lifecycle;
mod space;

use ipam::count::AddressCount;
use ipam::plan::Placement;
use ipam::prefix::{Family, Prefix};
use ipam::usage::Holder;

use crate::Timestamp;

/// A pool's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(i64);

/// An allocation's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocationId(i64);

impl AllocationId {
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A stored pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    id: PoolId,
    resource_key: String,
    name: String,
    scope_key: String,
    tree_id: i64,
    parent: Option<PoolId>,
    family: Family,
    depth: u8,
    placement: Placement,
    // The shortest free block this pool's space can hold (buddy prefixes merge); release merges
    // no higher.
    min_len: u8,
    // Invariant: sorted, disjoint.
    prefixes: Vec<Prefix>,
}

/// A pool read by `WriteTx::pool_lock_by_key`: its tree stays locked until the transaction
/// ends, so allocating in it needs no second look-up.
#[derive(Debug)]
pub struct LockedPool(PoolRecord);

impl LockedPool {
    pub fn record(&self) -> &PoolRecord {
        &self.0
    }
}

impl PoolRecord {
    pub fn id(&self) -> PoolId {
        self.id
    }
    pub fn resource_key(&self) -> &str {
        &self.resource_key
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn scope_key(&self) -> &str {
        &self.scope_key
    }
    /// The id of the pool tree (the root pool's tree) this pool belongs to.
    pub fn tree_id(&self) -> i64 {
        self.tree_id
    }
    pub fn parent(&self) -> Option<PoolId> {
        self.parent
    }
    pub fn family(&self) -> Family {
        self.family
    }
    /// 1 for a root pool.
    pub fn depth(&self) -> u8 {
        self.depth
    }
    pub fn placement(&self) -> Placement {
        self.placement
    }
    pub fn prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }
}

/// A pool's space in numbers, for metrics: `size = allocated + reserved + available`, where
/// allocated includes child pools and static CIDRs, as in the pool's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpace {
    /// The lower-cased resource id.
    pub resource_key: String,
    pub size: AddressCount,
    pub allocated: AddressCount,
    pub reserved: AddressCount,
    pub available: AddressCount,
    /// The largest free block's size; zero when the pool is full.
    pub largest_free: AddressCount,
}

/// A pool to create.
#[derive(Debug, Clone)]
pub struct NewPool {
    /// A unique key, e.g. the lower-cased ARM id of the pool.
    pub resource_key: String,
    /// The name used in messages.
    pub name: String,
    /// Root pools of one scope (a network manager) never overlap.
    pub scope_key: String,
    pub parent: Option<PoolId>,
    pub prefixes: Vec<Prefix>,
    pub placement: Placement,
    /// Levels allowed, counting the root as 1.
    pub max_depth: u8,
}

/// Who asks for a change, for the ledger.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub now: Timestamp,
    pub request_id: &'a str,
}

/// Who holds an allocation.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// A resource id, as its creator spelled it; compared case-insensitively.
    pub id: &'a str,
    pub tenant: &'a str,
}

/// A stored allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRecord {
    id: AllocationId,
    pool: PoolId,
    holder: Holder,
    owner_id: String,
    owner_tenant: String,
    created_at: Timestamp,
    // Invariant: sorted by address.
    blocks: Vec<Prefix>,
}

impl AllocationRecord {
    pub fn id(&self) -> AllocationId {
        self.id
    }
    pub fn pool(&self) -> PoolId {
        self.pool
    }
    pub fn holder(&self) -> Holder {
        self.holder
    }
    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }
    pub fn owner_tenant(&self) -> &str {
        &self.owner_tenant
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    pub fn blocks(&self) -> &[Prefix] {
        &self.blocks
    }
}

/// What the ledger says one holder did with one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: i64,
    pub at: Timestamp,
    pub pool: PoolId,
    pub prefix: Prefix,
    pub owner_id: String,
    pub owner_tenant: String,
    /// `None` for space given to a child pool.
    pub holder: Option<Holder>,
    pub action: LedgerAction,
    pub request_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerAction {
    Allocate,
    Release,
}

impl LedgerAction {
    fn name(self) -> &'static str {
        match self {
            LedgerAction::Allocate => "allocate",
            LedgerAction::Release => "release",
        }
    }
}

// Column encodings.
