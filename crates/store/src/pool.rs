//! Pools, their free space and their allocations, in tables. `ipam` decides every cut and merge;
//! this module only reads the candidates through indexes and writes the outcome, so allocate and
//! release cost O(log n) index look-ups and never read all allocations of a pool.
//!
//! Every change to a pool tree first locks the tree's row (PostgreSQL: `SELECT … FOR UPDATE`;
//! SQLite: the whole write transaction is `BEGIN IMMEDIATE`), and every allocation change appends
//! to the ledger in the same transaction.

use ipam::error::Error as IpamError;
use ipam::free::FreeBlocks;
use ipam::plan::{self, Placement, Split};
use ipam::prefix::{Family, Prefix};
use ipam::request::{self, Request};
use ipam::tree::{check_pool_prefixes, refusal};
use ipam::usage::{ChildPoolUsage, Holder, PoolUsage};

use crate::db::{Backend, Deferred, Row, Value};
use crate::error::StoreError;
use crate::{ReadTx, Timestamp, WriteTx};

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

/// Allocations (`a`) with their blocks (`b`). The join names the pool on both sides, and a
/// query by pool names `a.pool_id` and `b.pool_id` both: SQLite finds a pool's blocks by the key
/// of `allocation_blocks` (migration 6), PostgreSQL a pool's allocations by `allocations_by_pool`.
const ALLOCATION_BLOCKS: &str =
    "allocations a JOIN allocation_blocks b ON b.pool_id = a.pool_id AND b.allocation_id = a.id";

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

/// What a write transaction knows of a locked best-fit pool's free space without reading it:
/// every free block whose length is in `lens`, in `blocks`. A best-fit read of the free blocks
/// (`free_candidates`) learns that no free block lies between the block it found and the
/// length it wanted; the split that follows leaves one free block of each of those lengths. So
/// after one read, the next allocation of the same size, and the one after, find their block
/// here: a batch of such allocations reads the pool's free blocks once. Every change this
/// transaction makes to the pool's free blocks updates it (`free_apply`); the tree lock keeps
/// other transactions from changing them.
#[derive(Debug, Clone)]
pub(crate) struct KnownFree {
    pool: PoolId,
    lens: std::ops::RangeInclusive<u8>,
    blocks: Vec<Prefix>,
}

impl KnownFree {
    /// The best-fit block for `want_len`, if what is known decides it: a known block no longer
    /// than wanted whose length and every length up to `want_len` are known.
    fn best_fit(&self, want_len: u8) -> Option<Prefix> {
        if !self.lens.contains(&want_len) {
            return None;
        }
        plan::choose(Placement::BestFit, want_len, self.blocks.iter().copied())
    }

    /// Follows a change to the pool's free blocks.
    fn apply(&mut self, remove: &[Prefix], insert: &[Prefix]) {
        self.blocks.retain(|block| !remove.contains(block));
        self.blocks.extend(insert.iter().filter(|block| self.lens.contains(&block.len())));
    }
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

const HOLDER_CHILD_POOL: i64 = 0;

fn holder_code(holder: Holder) -> i64 {
    match holder {
        Holder::Resource => 1,
        Holder::StaticCidr => 2,
        Holder::Reservation => 3,
    }
}

fn holder_from(code: i64) -> Option<Holder> {
    match code {
        1 => Some(Holder::Resource),
        2 => Some(Holder::StaticCidr),
        3 => Some(Holder::Reservation),
        _ => None,
    }
}

fn family_code(family: Family) -> i64 {
    match family {
        Family::V4 => 4,
        Family::V6 => 6,
    }
}

fn family_from(code: i64) -> Family {
    if code == 6 { Family::V6 } else { Family::V4 }
}

fn placement_code(placement: Placement) -> i64 {
    match placement {
        Placement::BestFit => 0,
        Placement::FirstFit => 1,
        Placement::LastFit => 2,
    }
}

fn placement_from(code: i64) -> Placement {
    match code {
        1 => Placement::FirstFit,
        2 => Placement::LastFit,
        _ => Placement::BestFit,
    }
}

/// Addresses are stored as 16 big-endian bytes, so byte order is numeric order on both backends.
fn addr_value(addr: u128) -> Value {
    Value::Blob(addr.to_be_bytes().to_vec())
}

fn addr_from(bytes: &[u8]) -> u128 {
    let array: [u8; 16] = bytes.try_into().expect("addresses are stored as 16 bytes");
    u128::from_be_bytes(array)
}

fn int(value: impl Into<i64>) -> Value {
    Value::Int(value.into())
}

fn prefix_from(family: Family, addr: &[u8], len: i64) -> Prefix {
    let len = u8::try_from(len).expect("stored lengths fit a u8");
    Prefix::new(family, addr_from(addr), len).expect("stored blocks are valid prefixes")
}

/// The shortest block the union of `prefixes` holds whole: how far release may merge.
fn min_len(family: Family, prefixes: &[Prefix]) -> u8 {
    let mut free = FreeBlocks::new(family);
    for prefix in prefixes {
        free.release(*prefix);
    }
    free.largest().map_or(family.bits(), |block| block.len())
}

/// A pool row with one of its prefixes per result row; `pools_from_rows` folds them.
const POOL_SELECT: &str = "SELECT p.id, p.resource_key, p.name, p.scope_key, p.tree_id, p.parent_id, p.family, \
     p.depth, p.placement, p.min_len, pp.addr, pp.len FROM pools p LEFT JOIN pool_prefixes pp ON pp.pool_id = p.id";

/// Pools from `POOL_SELECT` rows ordered by pool, then prefix address.
fn pools_from_rows(rows: &[Row]) -> Vec<PoolRecord> {
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

impl ReadTx<'_> {
    /// The pool with this id.
    pub fn pool_get(&mut self, id: PoolId) -> Result<PoolRecord, StoreError> {
        let rows = self
            .tx
            .query(&format!("{POOL_SELECT} WHERE p.id = $1 ORDER BY pp.addr"), &[int(id.0)])?;
        pools_from_rows(&rows)
            .pop()
            .ok_or_else(|| StoreError::NotFound { what: "pool", id: id.0.to_string() })
    }

    /// The pool with this resource key (case-insensitive), if any.
    pub fn pool_by_key(&mut self, resource_key: &str) -> Result<Option<PoolRecord>, StoreError> {
        let resource_key = resource_key.to_ascii_lowercase();
        self.cached(
            || format!("pool {resource_key:?}"),
            |read| {
                let sql = format!("{POOL_SELECT} WHERE p.resource_key = $1 ORDER BY pp.addr");
                let rows = read.tx.query(&sql, &[resource_key.as_str().into()])?;
                Ok(pools_from_rows(&rows).pop())
            },
        )
    }

    /// The direct children of a pool, by id.
    pub fn pool_children(&mut self, id: PoolId) -> Result<Vec<PoolRecord>, StoreError> {
        let sql = format!("{POOL_SELECT} WHERE p.parent_id = $1 ORDER BY p.id, pp.addr");
        Ok(pools_from_rows(&self.tx.query(&sql, &[int(id.0)])?))
    }

    /// The pool's usage, with child pools named by their resource key.
    pub fn pool_usage(&mut self, id: PoolId) -> Result<PoolUsage<String>, StoreError> {
        let pool = self.pool_get(id)?;
        let child_pools = self
            .pool_children(id)?
            .into_iter()
            .map(|child| ChildPoolUsage {
                child: child.resource_key,
                address_prefixes: child.prefixes,
            })
            .collect();
        let held_rows = self.tx.query(
            &format!("SELECT b.addr, b.len, a.holder FROM {ALLOCATION_BLOCKS} WHERE a.pool_id = $1 AND b.pool_id = $1"),
            &[int(id.0)],
        )?;
        let held = held_rows.iter().map(|row| {
            let holder = holder_from(row.int(2))
                .expect("allocations hold resources, static CIDRs or reservations");
            (prefix_from(pool.family, row.blob(0), row.int(1)), holder)
        });
        let free_rows =
            self.tx.query("SELECT addr, len FROM free_blocks WHERE pool_id = $1", &[int(id.0)])?;
        let free = free_rows.iter().map(|row| prefix_from(pool.family, row.blob(0), row.int(1)));
        Ok(PoolUsage::new(pool.prefixes.clone(), child_pools, held.collect::<Vec<_>>(), free))
    }

    /// One allocation.
    pub fn allocation_get(&mut self, id: AllocationId) -> Result<AllocationRecord, StoreError> {
        self.allocations_where("a.id = $1", &[int(id.0)])?
            .pop()
            .ok_or_else(|| StoreError::NotFound { what: "allocation", id: id.0.to_string() })
    }

    /// The allocations of a pool, oldest first.
    pub fn allocations_of_pool(
        &mut self,
        pool: PoolId,
    ) -> Result<Vec<AllocationRecord>, StoreError> {
        self.allocations_where("a.pool_id = $1 AND b.pool_id = $1", &[int(pool.0)])
    }

    /// The allocations held by one owner (case-insensitive), oldest first.
    pub fn allocations_of_owner(
        &mut self,
        owner_id: &str,
    ) -> Result<Vec<AllocationRecord>, StoreError> {
        self.allocations_where("a.owner_key = $1", &[owner_id.to_ascii_lowercase().into()])
    }

    /// The ledger of one pool tree, in order.
    pub fn ledger_of_tree(&mut self, tree_id: i64) -> Result<Vec<LedgerEntry>, StoreError> {
        self.ledger_where("l.tree_id = $1", &[int(tree_id)])
    }

    /// Who held space overlapping `prefix` in the tree at time `at`: replays the ledger entries of
    /// that space up to `at`.
    pub fn ledger_holders_at(
        &mut self,
        tree_id: i64,
        prefix: Prefix,
        at: Timestamp,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let entries = self.ledger_where(
            "l.tree_id = $1 AND l.addr <= $2 AND l.last_addr >= $3 AND l.at <= $4",
            &[int(tree_id), addr_value(prefix.last_addr()), addr_value(prefix.addr()), int(at.0)],
        )?;
        Ok(replay(entries))
    }

    /// Live allocation blocks that overlap the block before them in their tree. Always zero unless
    /// the store is broken; tests run it after every concurrency and crash test.
    ///
    /// Aligned blocks overlap only by containment, and if any block contains a later one it also
    /// contains the block right after it in address order, so comparing neighbours finds every
    /// overlap.
    pub fn audit_overlapping_blocks(&mut self) -> Result<i64, StoreError> {
        let row = self.tx.query_opt(
            "SELECT count(*) FROM (SELECT addr, LAG(last_addr) OVER (PARTITION BY tree_id ORDER BY addr, len) \
             AS previous_last FROM allocation_blocks) blocks WHERE addr <= previous_last",
            &[],
        )?;
        Ok(row.map_or(0, |row| row.int(0)))
    }

    fn allocations_where(
        &mut self,
        condition: &str,
        params: &[Value],
    ) -> Result<Vec<AllocationRecord>, StoreError> {
        let rows = self.tx.query(
            &format!(
                "SELECT a.id, a.pool_id, a.holder, a.owner_id, a.owner_tenant, a.created_at, p.family, b.addr, b.len \
                 FROM {ALLOCATION_BLOCKS} JOIN pools p ON p.id = a.pool_id WHERE {condition} ORDER BY a.id, b.addr"
            ),
            params,
        )?;
        let mut allocations: Vec<AllocationRecord> = Vec::new();
        for row in &rows {
            let block = prefix_from(family_from(row.int(6)), row.blob(7), row.int(8));
            match allocations.last_mut() {
                Some(last) if last.id.0 == row.int(0) => last.blocks.push(block),
                _ => allocations.push(AllocationRecord {
                    id: AllocationId(row.int(0)),
                    pool: PoolId(row.int(1)),
                    holder: holder_from(row.int(2))
                        .expect("allocations hold resources, static CIDRs or reservations"),
                    owner_id: row.text(3).to_owned(),
                    owner_tenant: row.text(4).to_owned(),
                    created_at: Timestamp(row.int(5)),
                    blocks: vec![block],
                }),
            }
        }
        Ok(allocations)
    }

    fn ledger_where(
        &mut self,
        condition: &str,
        params: &[Value],
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = self.tx.query(
            &format!(
                "SELECT l.seq, l.at, l.pool_id, l.prefix, l.owner_id, l.owner_tenant, l.holder, l.action, l.request_id \
                 FROM ledger l WHERE {condition} ORDER BY l.seq"
            ),
            params,
        )?;
        Ok(rows
            .iter()
            .map(|row| LedgerEntry {
                seq: row.int(0),
                at: Timestamp(row.int(1)),
                pool: PoolId(row.int(2)),
                prefix: Prefix::parse(row.text(3)).expect("the ledger stores canonical prefixes"),
                owner_id: row.text(4).to_owned(),
                owner_tenant: row.text(5).to_owned(),
                holder: holder_from(row.int(6)),
                action: if row.text(7) == "release" {
                    LedgerAction::Release
                } else {
                    LedgerAction::Allocate
                },
                request_id: row.text(8).to_owned(),
            })
            .collect())
    }
}

/// The holdings still live after replaying `entries` in order: each allocate adds a holding, the
/// matching release removes it.
pub fn replay(entries: Vec<LedgerEntry>) -> Vec<LedgerEntry> {
    let mut live: Vec<LedgerEntry> = Vec::new();
    for entry in entries {
        match entry.action {
            LedgerAction::Allocate => live.push(entry),
            LedgerAction::Release => live.retain(|held| {
                !(held.pool == entry.pool
                    && held.prefix == entry.prefix
                    && held.owner_id == entry.owner_id)
            }),
        }
    }
    live
}

impl WriteTx<'_> {
    /// Creates a pool. A root's prefixes must not overlap another root of its scope; a child's
    /// are taken from its parent's free space.
    pub fn pool_create(
        &mut self,
        new: &NewPool,
        change: Change<'_>,
    ) -> Result<PoolRecord, StoreError> {
        let (family, prefixes) = check_pool_prefixes(new.prefixes.clone())?;
        let resource_key = new.resource_key.to_ascii_lowercase();
        if self.pool_by_key(&resource_key)?.is_some() {
            return Err(StoreError::AlreadyExists { what: "pool", id: new.resource_key.clone() });
        }
        let (tree_id, depth) = match new.parent {
            None => {
                self.scope_lock(&new.scope_key)?;
                self.check_roots_free(&new.scope_key, &prefixes)?;
                let row = self
                    .tx
                    .query_opt(
                        "INSERT INTO pool_trees (scope_key, version) VALUES ($1, 0) RETURNING id",
                        &[new.scope_key.as_str().into()],
                    )?
                    .expect("INSERT … RETURNING returns the row");
                (row.int(0), 1)
            }
            Some(parent_id) => {
                let parent = self.pool_lock(parent_id)?;
                if parent.depth >= new.max_depth {
                    return Err(IpamError::TooDeep {
                        parent: parent.name.clone(),
                        parent_depth: parent.depth,
                        max_depth: new.max_depth,
                    }
                    .into());
                }
                if let Some(prefix) =
                    prefixes.iter().find(|prefix| prefix.family() != parent.family)
                {
                    return Err(IpamError::WrongFamily {
                        pool: parent.name.clone(),
                        prefix: *prefix,
                        family: parent.family,
                    }
                    .into());
                }
                for prefix in &prefixes {
                    self.free_take_prefix(&parent, *prefix)?;
                }
                (parent.tree_id, parent.depth + 1)
            }
        };
        let pool_min_len = min_len(family, &prefixes);
        let row = self
            .tx
            .query_opt(
                "INSERT INTO pools (resource_key, name, scope_key, tree_id, parent_id, family, depth, placement, min_len) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    resource_key.as_str().into(),
                    new.name.as_str().into(),
                    new.scope_key.as_str().into(),
                    int(tree_id),
                    Value::from(new.parent.map(|parent| parent.0)),
                    int(family_code(family)),
                    int(depth),
                    int(placement_code(new.placement)),
                    int(pool_min_len),
                ],
            )?
            .expect("INSERT … RETURNING returns the row");
        let pool = PoolRecord {
            id: PoolId(row.int(0)),
            resource_key,
            name: new.name.clone(),
            scope_key: new.scope_key.clone(),
            tree_id,
            parent: new.parent,
            family,
            depth,
            placement: new.placement,
            min_len: pool_min_len,
            prefixes: prefixes.clone(),
        };
        self.pool_prefixes_add(&pool, &prefixes, change)?;
        Ok(pool)
    }

    /// Deletes a pool with no children and no allocations; a child's space returns to its parent.
    pub fn pool_delete(&mut self, id: PoolId, change: Change<'_>) -> Result<(), StoreError> {
        let pool = self.pool_get(id)?;
        if pool.parent.is_none() {
            self.scope_lock(&pool.scope_key)?;
        }
        let pool = self.pool_lock_fresh(id)?;
        if self
            .tx
            .query_opt("SELECT 1 FROM pools WHERE parent_id = $1 LIMIT 1", &[int(id.0)])?
            .is_some()
        {
            return Err(
                IpamError::PoolNotEmpty { pool: pool.name.clone(), what: "child pools" }.into()
            );
        }
        if self
            .tx
            .query_opt(
                &format!("SELECT 1 FROM {ALLOCATION_BLOCKS} WHERE a.pool_id = $1 AND b.pool_id = $1 LIMIT 1"),
                &[int(id.0)],
            )?
            .is_some()
        {
            return Err(IpamError::PoolNotEmpty {
                pool: pool.name.clone(),
                what: "allocations or static CIDRs",
            }
            .into());
        }
        let prefixes = pool.prefixes.clone();
        self.pool_prefixes_drop(&pool, &prefixes, change)?;
        self.tx.execute("DELETE FROM pools WHERE id = $1", &[int(id.0)])?;
        if pool.parent.is_none() {
            self.tx.execute("DELETE FROM pool_trees WHERE id = $1", &[int(pool.tree_id)])?;
        }
        Ok(())
    }

    /// Replaces a pool's prefixes. A dropped prefix must be entirely free; an added one must be
    /// free in the parent (a root's must overlap no other root). Nothing changes on error.
    pub fn pool_set_prefixes(
        &mut self,
        id: PoolId,
        new_prefixes: Vec<Prefix>,
        change: Change<'_>,
    ) -> Result<PoolRecord, StoreError> {
        let (family, new_prefixes) = check_pool_prefixes(new_prefixes)?;
        let pool = self.pool_get(id)?;
        if pool.parent.is_none() {
            self.scope_lock(&pool.scope_key)?;
        }
        let pool = self.pool_lock_fresh(id)?;
        if family != pool.family {
            return Err(IpamError::WrongFamily {
                pool: pool.name.clone(),
                prefix: new_prefixes[0],
                family: pool.family,
            }
            .into());
        }
        let dropped: Vec<Prefix> =
            pool.prefixes.iter().filter(|prefix| !new_prefixes.contains(prefix)).copied().collect();
        let added: Vec<Prefix> =
            new_prefixes.iter().filter(|prefix| !pool.prefixes.contains(prefix)).copied().collect();
        for prefix in &dropped {
            if self.free_containing(&pool, prefix)?.is_none() {
                return Err(
                    IpamError::PrefixInUse { pool: pool.name.clone(), prefix: *prefix }.into()
                );
            }
        }
        // Dropped space goes back first, so an added prefix may reuse it.
        self.pool_prefixes_drop(&pool, &dropped, change)?;
        let mut pool = PoolRecord {
            prefixes: new_prefixes.clone(),
            min_len: min_len(family, &new_prefixes),
            ..pool
        };
        match pool.parent {
            None => self.check_roots_free(&pool.scope_key, &added)?,
            Some(parent_id) => {
                let parent = self.pool_get(parent_id)?;
                for prefix in &added {
                    self.free_take_prefix(&parent, *prefix)?;
                }
            }
        }
        self.tx.execute(
            "UPDATE pools SET min_len = $1 WHERE id = $2",
            &[int(pool.min_len), int(id.0)],
        )?;
        self.pool_prefixes_add(&pool, &added, change)?;
        pool.prefixes = new_prefixes;
        Ok(pool)
    }

    /// Allocates space in a pool for `owner`: all blocks of the request, or none.
    pub fn pool_allocate(
        &mut self,
        pool_id: PoolId,
        request: &Request,
        holder: Holder,
        owner: Owner<'_>,
        change: Change<'_>,
    ) -> Result<AllocationRecord, StoreError> {
        let pool = LockedPool(self.pool_lock(pool_id)?);
        self.pool_allocate_locked(&pool, request, holder, owner, change)
    }

    /// The pool with this resource key (case-insensitive), if any, with its tree locked for the
    /// rest of the transaction, as `pool_allocate` locks it: a caller that must look at the pool
    /// before allocating in it reads it once.
    pub fn pool_lock_by_key(
        &mut self,
        resource_key: &str,
    ) -> Result<Option<LockedPool>, StoreError> {
        let key = resource_key.to_ascii_lowercase();
        if let Some(pool) = self.locked_pools.iter().find(|pool| pool.resource_key == key) {
            return Ok(Some(LockedPool(pool.clone())));
        }
        Ok(self.pool_locked_where("p.resource_key", key.into())?.map(LockedPool))
    }

    /// `pool_allocate` in a pool this transaction has locked.
    pub fn pool_allocate_locked(
        &mut self,
        pool: &LockedPool,
        request: &Request,
        holder: Holder,
        owner: Owner<'_>,
        change: Change<'_>,
    ) -> Result<AllocationRecord, StoreError> {
        let (id, blocks) = self.allocate_in(&pool.0, request, holder, owner, change, false)?;
        Ok(AllocationRecord {
            id: AllocationId(id.expect("an allocation not held back has its id")),
            pool: pool.0.id,
            holder,
            owner_id: owner.id.to_owned(),
            owner_tenant: owner.tenant.to_owned(),
            created_at: change.now,
            blocks,
        })
    }

    /// `pool_allocate_locked` for a caller that needs only the blocks and writes next: on
    /// PostgreSQL the allocation's rows go with the transaction's next statement, e.g. the
    /// write of the resource that holds the blocks (`resource_put_over_creating`), a round trip
    /// fewer while the tree is locked.
    pub fn pool_allocate_blocks(
        &mut self,
        pool: &LockedPool,
        request: &Request,
        holder: Holder,
        owner: Owner<'_>,
        change: Change<'_>,
    ) -> Result<Vec<Prefix>, StoreError> {
        Ok(self.allocate_in(&pool.0, request, holder, owner, change, true)?.1)
    }

    /// Allocates; returns the allocation's id, unless its write is held back (`defer`), and
    /// its blocks.
    fn allocate_in(
        &mut self,
        pool: &PoolRecord,
        request: &Request,
        holder: Holder,
        owner: Owner<'_>,
        change: Change<'_>,
        defer: bool,
    ) -> Result<(Option<i64>, Vec<Prefix>), StoreError> {
        // The last block's split is written with the allocation (one statement on PostgreSQL);
        // an earlier one is written before the next block is chosen, which must see it.
        let mut splits: Vec<Split> = match *request {
            Request::Prefix(prefix) => vec![self.free_split_prefix(pool, prefix)?],
            Request::Count(_) | Request::Length(_) => {
                let lens = request::block_lengths(pool.family, request)?;
                let largest_before = if lens.len() > 1 { self.free_largest(pool)? } else { None };
                let mut splits: Vec<Split> = Vec::with_capacity(lens.len());
                for len in &lens {
                    if let Some(previous) = splits.last() {
                        self.apply_split(pool, previous)?;
                    }
                    match self.free_split_len(pool, *len)? {
                        Some(split) => splits.push(split),
                        None => {
                            // The transaction rolls back, so blocks taken so far stay free.
                            let largest_free = if splits.is_empty() {
                                self.free_largest(pool)?
                            } else {
                                largest_before
                            };
                            let requested = match *request {
                                Request::Count(count) => count,
                                _ => Prefix::new(pool.family, 0, *len)
                                    .expect("a valid length")
                                    .size(),
                            };
                            return Err(IpamError::PoolExhausted {
                                pool: pool.name.clone(),
                                family: pool.family,
                                requested,
                                largest_free,
                            }
                            .into());
                        }
                    }
                }
                splits
            }
        };
        let last = splits.pop().expect("a request is at least one block");
        let mut blocks: Vec<Prefix> = splits.iter().map(|split| split.taken).collect();
        blocks.push(last.taken);
        blocks.sort();
        let owner_key = owner.id.to_ascii_lowercase();
        let id =
            match self.tx.backend() {
                Backend::Sqlite => {
                    self.apply_split(pool, &last)?;
                    Some(self.allocation_insert_sqlite(
                        pool, &blocks, holder, owner, &owner_key, change,
                    )?)
                }
                Backend::Postgres => self.allocation_insert_postgres(
                    pool, &last, &blocks, holder, owner, &owner_key, change, defer,
                )?,
            };
        Ok((id, blocks))
    }

    /// Writes the allocation, its blocks and their ledger rows; returns its id.
    fn allocation_insert_sqlite(
        &mut self,
        pool: &PoolRecord,
        blocks: &[Prefix],
        holder: Holder,
        owner: Owner<'_>,
        owner_key: &str,
        change: Change<'_>,
    ) -> Result<i64, StoreError> {
        let row = self
            .tx
            .query_opt(
                "INSERT INTO allocations (pool_id, tree_id, owner_key, owner_id, owner_tenant, holder, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    int(pool.id.0),
                    int(pool.tree_id),
                    owner_key.into(),
                    owner.id.into(),
                    owner.tenant.into(),
                    int(holder_code(holder)),
                    int(change.now.0),
                ],
            )?
            .expect("INSERT … RETURNING returns the row");
        let id = row.int(0);
        for block in blocks {
            self.tx.execute(
                "INSERT INTO allocation_blocks (allocation_id, pool_id, tree_id, addr, last_addr, len) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    int(id),
                    int(pool.id.0),
                    int(pool.tree_id),
                    addr_value(block.addr()),
                    addr_value(block.last_addr()),
                    int(block.len()),
                ],
            )?;
            self.ledger_append(
                pool,
                *block,
                owner,
                holder_code(holder),
                LedgerAction::Allocate,
                change,
            )?;
        }
        Ok(id)
    }

    /// The same as `apply_split(last)` and `allocation_insert_sqlite` in one statement, to spare
    /// round trips while the tree is locked; with `defer`, held back to go with the next
    /// statement (`Tx::defer`), and then its id is not known.
    #[allow(clippy::too_many_arguments)] // Reason: the SQLite twin's arguments, the split, defer.
    fn allocation_insert_postgres(
        &mut self,
        pool: &PoolRecord,
        last: &Split,
        blocks: &[Prefix],
        holder: Holder,
        owner: Owner<'_>,
        owner_key: &str,
        change: Change<'_>,
        defer: bool,
    ) -> Result<Option<i64>, StoreError> {
        let mut params = vec![
            int(pool.id.0),
            int(pool.tree_id),
            owner_key.into(),
            owner.id.into(),
            owner.tenant.into(),
            int(holder_code(holder)),
            int(change.now.0),
            change.request_id.into(),
        ];
        let mut rows = Vec::with_capacity(blocks.len());
        for block in blocks {
            let first = params.len() + 1;
            params.extend([
                addr_value(block.addr()),
                addr_value(block.last_addr()),
                int(block.len()),
                block.to_string().into(),
            ]);
            rows.push(format!(
                "(${first}::bytea, ${}::bytea, ${}::bigint, ${}::text)",
                first + 1,
                first + 2,
                first + 3
            ));
        }
        let remainder: Vec<Prefix> = last.remainder().collect();
        let ctes = format!(
            "allocation AS (\
                 INSERT INTO allocations (pool_id, tree_id, owner_key, owner_id, owner_tenant, holder, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id), \
             blocks (addr, last_addr, len, prefix) AS (VALUES {}), \
             inserted_blocks AS (\
                 INSERT INTO allocation_blocks (allocation_id, pool_id, tree_id, addr, last_addr, len) \
                 SELECT allocation.id, $1, $2, b.addr, b.last_addr, b.len FROM allocation, blocks b), \
             inserted_ledger AS (\
                 INSERT INTO ledger (at, pool_id, tree_id, addr, last_addr, prefix, owner_id, owner_tenant, holder, action, request_id) \
                 SELECT $7, $1, $2, b.addr, b.last_addr, b.prefix, $4, $5, $6, 'allocate', $8 FROM blocks b), \
             {}",
            rows.join(", "),
            free_change_ctes(&mut params, &[last.free_block], &remainder),
        );
        let removed = "(SELECT count(*) FROM removed WHERE n = 1)";
        self.note_free_change(pool, &[last.free_block], &remainder);
        if defer {
            self.tx.defer(Deferred {
                ctes,
                params,
                check: removed.to_owned(),
                expect: 1,
                broken: removed_wrong(pool, &[last.free_block]),
            })?;
            return Ok(None);
        }
        let sql = format!("WITH {ctes} SELECT (SELECT id FROM allocation), {removed}");
        let row = self.tx.query_opt(&sql, &params)?.expect("the CTE returns one row");
        check_removed(pool, &[last.free_block], row.int(1));
        Ok(Some(row.int(0)))
    }

    /// Releases an allocation: its blocks return to the pool's free space at once, merged with
    /// their free buddies.
    pub fn allocation_release(
        &mut self,
        id: AllocationId,
        change: Change<'_>,
    ) -> Result<AllocationRecord, StoreError> {
        let allocation = self.allocation_get(id)?;
        let pool = self.pool_lock(allocation.pool)?;
        self.tx.execute(
            "DELETE FROM allocation_blocks WHERE pool_id = $1 AND allocation_id = $2",
            &[int(allocation.pool.0), int(id.0)],
        )?;
        if self.tx.execute("DELETE FROM allocations WHERE id = $1", &[int(id.0)])? == 0 {
            // Another transaction released it while this one waited for the lock.
            return Err(StoreError::NotFound { what: "allocation", id: id.0.to_string() });
        }
        let owner = Owner { id: &allocation.owner_id, tenant: &allocation.owner_tenant };
        for block in &allocation.blocks {
            self.free_release(&pool, *block)?;
            self.ledger_append(
                &pool,
                *block,
                owner,
                holder_code(allocation.holder),
                LedgerAction::Release,
                change,
            )?;
        }
        Ok(allocation)
    }

    // Locks.

    /// Locks the pool's tree and reads the pool, in one statement: every change to a pool tree
    /// holds this lock until it commits. On SQLite the write transaction already holds the
    /// database's single write lock, so this is a plain read. A pool this transaction has
    /// locked already is not read again (`WriteTx::locked_pools`).
    fn pool_lock(&mut self, id: PoolId) -> Result<PoolRecord, StoreError> {
        if let Some(pool) = self.locked_pools.iter().find(|pool| pool.id == id) {
            return Ok(pool.clone());
        }
        self.pool_locked_where("p.id", int(id.0))?
            .ok_or_else(|| StoreError::NotFound { what: "pool", id: id.0.to_string() })
    }

    /// `pool_lock` for a caller about to change the pool: it is read again and not kept, so
    /// that no later look-up sees it as it was, even if the change fails half-way; nor is what
    /// was known of its free blocks.
    fn pool_lock_fresh(&mut self, id: PoolId) -> Result<PoolRecord, StoreError> {
        self.known_free.retain(|known| known.pool != id);
        self.locked_pools.retain(|pool| pool.id != id);
        let pool = self.pool_lock(id)?;
        self.locked_pools.retain(|pool| pool.id != id);
        Ok(pool)
    }

    /// The pool whose `column` is `value`, read in the statement that locks its tree on
    /// PostgreSQL; SQLite's write transaction already holds the database's write lock. The
    /// pool is kept in `locked_pools`.
    fn pool_locked_where(
        &mut self,
        column: &str,
        value: Value,
    ) -> Result<Option<PoolRecord>, StoreError> {
        let lock = match self.tx.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE OF t",
        };
        let sql = format!(
            "{POOL_SELECT} JOIN pool_trees t ON t.id = p.tree_id WHERE {column} = $1 ORDER BY pp.addr{lock}"
        );
        let pool = pools_from_rows(&self.tx.query(&sql, &[value])?).pop();
        if let Some(pool) = &pool {
            self.locked_pools.push(pool.clone());
        }
        Ok(pool)
    }

    /// Serialises root-pool changes in one scope.
    fn scope_lock(&mut self, scope_key: &str) -> Result<(), StoreError> {
        // On PostgreSQL the update locks the row, created or not, in one round trip; SQLite's
        // write transaction already holds the database's write lock.
        let sql = match self.tx.backend() {
            Backend::Postgres => {
                "INSERT INTO pool_scopes (scope_key, version) VALUES ($1, 0) \
                 ON CONFLICT (scope_key) DO UPDATE SET version = pool_scopes.version + 1"
            }
            Backend::Sqlite => {
                "INSERT INTO pool_scopes (scope_key, version) VALUES ($1, 0) ON CONFLICT (scope_key) DO NOTHING"
            }
        };
        self.tx.execute(sql, &[scope_key.into()])?;
        Ok(())
    }

    // Pool prefixes.

    /// Records prefixes as the pool's, frees them in its space, and for a child logs them in the
    /// ledger as held by the child; for a root, registers them in the scope.
    fn pool_prefixes_add(
        &mut self,
        pool: &PoolRecord,
        prefixes: &[Prefix],
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        for prefix in prefixes {
            self.tx.execute(
                "INSERT INTO pool_prefixes (pool_id, addr, len) VALUES ($1, $2, $3)",
                &[int(pool.id.0), addr_value(prefix.addr()), int(prefix.len())],
            )?;
            match pool.parent {
                None => {
                    self.tx.execute(
                        "INSERT INTO root_prefixes (scope_key, family, addr, len, pool_id) VALUES ($1, $2, $3, $4, $5)",
                        &[
                            pool.scope_key.as_str().into(),
                            int(family_code(pool.family)),
                            addr_value(prefix.addr()),
                            int(prefix.len()),
                            int(pool.id.0),
                        ],
                    )?;
                }
                Some(parent_id) => {
                    let parent = self.pool_get(parent_id)?;
                    let owner = Owner { id: &pool.resource_key, tenant: "" };
                    self.ledger_append(
                        &parent,
                        *prefix,
                        owner,
                        HOLDER_CHILD_POOL,
                        LedgerAction::Allocate,
                        change,
                    )?;
                }
            }
            self.free_release(pool, *prefix)?;
        }
        Ok(())
    }

    /// Takes prefixes out of the pool (they must be entirely free) and gives a child's back to
    /// its parent.
    fn pool_prefixes_drop(
        &mut self,
        pool: &PoolRecord,
        prefixes: &[Prefix],
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        for prefix in prefixes {
            self.free_take_prefix(pool, *prefix)?;
            self.tx.execute(
                "DELETE FROM pool_prefixes WHERE pool_id = $1 AND addr = $2",
                &[int(pool.id.0), addr_value(prefix.addr())],
            )?;
            match pool.parent {
                None => {
                    self.tx.execute(
                        "DELETE FROM root_prefixes WHERE scope_key = $1 AND family = $2 AND addr = $3",
                        &[pool.scope_key.as_str().into(), int(family_code(pool.family)), addr_value(prefix.addr())],
                    )?;
                }
                Some(parent_id) => {
                    let parent = self.pool_get(parent_id)?;
                    self.free_release(&parent, *prefix)?;
                    let owner = Owner { id: &pool.resource_key, tenant: "" };
                    self.ledger_append(
                        &parent,
                        *prefix,
                        owner,
                        HOLDER_CHILD_POOL,
                        LedgerAction::Release,
                        change,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Refuses prefixes that overlap a root pool of the scope. Roots are disjoint, so only the
    /// nearest root at or before each prefix, and the nearest after its start, can overlap it.
    fn check_roots_free(&mut self, scope_key: &str, prefixes: &[Prefix]) -> Result<(), StoreError> {
        for prefix in prefixes {
            let family = family_code(prefix.family());
            let params = [scope_key.into(), int(family), addr_value(prefix.addr())];
            let before = self.tx.query_opt(
                "SELECT addr, len FROM root_prefixes WHERE scope_key = $1 AND family = $2 AND addr <= $3 \
                 ORDER BY addr DESC LIMIT 1",
                &params,
            )?;
            let after = self.tx.query_opt(
                "SELECT addr, len FROM root_prefixes WHERE scope_key = $1 AND family = $2 AND addr >= $3 \
                 ORDER BY addr LIMIT 1",
                &params,
            )?;
            for row in before.iter().chain(after.iter()) {
                let root = prefix_from(prefix.family(), row.blob(0), row.int(1));
                if root.overlaps(prefix) {
                    return Err(
                        IpamError::OverlappingPrefixes { first: root, other: *prefix }.into()
                    );
                }
            }
        }
        Ok(())
    }

    // Free space: reads through the (pool, len, addr) primary key, decisions from ipam::plan.

    /// Takes a block of `want_len` where the pool's placement puts it, or `None` if none fits.
    /// How the best free block for a block of `want_len` is split, if one is big enough.
    fn free_split_len(
        &mut self,
        pool: &PoolRecord,
        want_len: u8,
    ) -> Result<Option<Split>, StoreError> {
        let candidates = self.free_candidates(pool, want_len)?;
        Ok(plan::choose(pool.placement, want_len, candidates)
            .map(|free_block| plan::split(free_block, want_len, pool.placement)))
    }

    /// How the free block holding `target` is carved to take exactly `target`; refuses it as
    /// outside the pool or not free.
    fn free_split_prefix(
        &mut self,
        pool: &PoolRecord,
        target: Prefix,
    ) -> Result<Split, StoreError> {
        match self.free_containing(pool, &target)? {
            Some(free_block) => Ok(plan::carve(free_block, target)),
            None => Err(refusal(&pool.name, &pool.prefixes, target).into()),
        }
    }

    /// Takes exactly `target`, or refuses it as outside the pool or not free.
    fn free_take_prefix(
        &mut self,
        pool: &PoolRecord,
        target: Prefix,
    ) -> Result<Prefix, StoreError> {
        let split = self.free_split_prefix(pool, target)?;
        self.apply_split(pool, &split)?;
        Ok(split.taken)
    }

    /// The blocks that can win `plan::choose` (as `FreeBlocks::candidates`).
    fn free_candidates(
        &mut self,
        pool: &PoolRecord,
        want_len: u8,
    ) -> Result<Vec<Prefix>, StoreError> {
        let rows = match pool.placement {
            Placement::BestFit => {
                let known = self.known_free.iter().find(|known| known.pool == pool.id);
                if let Some(block) = known.and_then(|known| known.best_fit(want_len)) {
                    return Ok(vec![block]);
                }
                let rows = self.tx.query(
                    "SELECT len, addr FROM free_blocks WHERE pool_id = $1 AND len = \
                     (SELECT max(len) FROM free_blocks WHERE pool_id = $1 AND len <= $2) ORDER BY addr LIMIT 1",
                    &[int(pool.id.0), int(want_len)],
                )?;
                // No free block is longer than the one found and no longer than wanted (or, if
                // none was found, no longer than wanted at all).
                let shortest_unknown = match rows.first() {
                    Some(row) => u8::try_from(row.int(0)).expect("a prefix length") + 1,
                    None => pool.min_len,
                };
                self.known_free.retain(|known| known.pool != pool.id);
                self.known_free.push(KnownFree {
                    pool: pool.id,
                    lens: shortest_unknown..=want_len,
                    blocks: Vec::new(),
                });
                rows
            }
            Placement::FirstFit | Placement::LastFit => {
                let order = if pool.placement == Placement::FirstFit { "" } else { " DESC" };
                let lens: Vec<String> =
                    (pool.min_len..=want_len).map(|len| format!("({len})")).collect();
                if lens.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "WITH lens (len) AS (VALUES {}) SELECT lens.len, (SELECT addr FROM free_blocks f \
                     WHERE f.pool_id = $1 AND f.len = lens.len ORDER BY addr{order} LIMIT 1) FROM lens",
                    lens.join(", ")
                );
                self.tx.query(&sql, &[int(pool.id.0)])?
            }
        };
        Ok(rows
            .iter()
            .filter(|row| row.opt_blob(1).is_some())
            .map(|row| prefix_from(pool.family, row.blob(1), row.int(0)))
            .collect())
    }

    /// The free block that contains `target`, if `target` is entirely free: one of its ancestors.
    fn free_containing(
        &mut self,
        pool: &PoolRecord,
        target: &Prefix,
    ) -> Result<Option<Prefix>, StoreError> {
        if target.family() != pool.family || target.len() < pool.min_len {
            return Ok(None);
        }
        let ancestors: Vec<Prefix> =
            (pool.min_len..=target.len()).map(|len| target.truncate(len)).collect();
        Ok(self.free_blocks_among(pool, &ancestors)?.into_iter().next())
    }

    /// The largest free block, lowest address among equals.
    fn free_largest(&mut self, pool: &PoolRecord) -> Result<Option<Prefix>, StoreError> {
        let row = self.tx.query_opt(
            "SELECT len, addr FROM free_blocks WHERE pool_id = $1 ORDER BY len, addr LIMIT 1",
            &[int(pool.id.0)],
        )?;
        Ok(row.map(|row| prefix_from(pool.family, row.blob(1), row.int(0))))
    }

    /// Returns a block to the pool's free space, merged with its free buddies.
    fn free_release(&mut self, pool: &PoolRecord, block: Prefix) -> Result<(), StoreError> {
        let buddies = plan::merge_candidates(block, pool.min_len);
        let free_buddies = self.free_blocks_among(pool, &buddies)?;
        let merge = plan::merge(block, |buddy| free_buddies.contains(buddy));
        let absorbed: Vec<Prefix> = merge.absorbed().collect();
        self.free_apply(pool, &absorbed, &[merge.merged])
    }

    /// Which of `blocks` are free blocks of the pool, in one query.
    fn free_blocks_among(
        &mut self,
        pool: &PoolRecord,
        blocks: &[Prefix],
    ) -> Result<Vec<Prefix>, StoreError> {
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = vec![int(pool.id.0)];
        let mut conditions = Vec::with_capacity(blocks.len());
        for block in blocks {
            conditions.push(format!(
                "(len = ${} AND addr = ${})",
                params.len() + 1,
                params.len() + 2
            ));
            params.push(int(block.len()));
            params.push(addr_value(block.addr()));
        }
        let sql = format!(
            "SELECT len, addr FROM free_blocks WHERE pool_id = $1 AND ({})",
            conditions.join(" OR ")
        );
        let rows = self.tx.query(&sql, &params)?;
        Ok(rows.iter().map(|row| prefix_from(pool.family, row.blob(1), row.int(0))).collect())
    }

    fn apply_split(&mut self, pool: &PoolRecord, split: &Split) -> Result<(), StoreError> {
        let remainder: Vec<Prefix> = split.remainder().collect();
        self.free_apply(pool, &[split.free_block], &remainder)
    }

    /// Removes free blocks and inserts others, in one statement on PostgreSQL.
    fn free_apply(
        &mut self,
        pool: &PoolRecord,
        remove: &[Prefix],
        insert: &[Prefix],
    ) -> Result<(), StoreError> {
        let n_removed = match self.tx.backend() {
            Backend::Sqlite => {
                let mut n_removed = 0;
                for block in remove {
                    n_removed += self.tx.execute(
                        "DELETE FROM free_blocks WHERE pool_id = $1 AND len = $2 AND addr = $3",
                        &[int(pool.id.0), int(block.len()), addr_value(block.addr())],
                    )?;
                }
                for block in insert {
                    self.tx.execute(
                        "INSERT INTO free_blocks (pool_id, len, addr) VALUES ($1, $2, $3)",
                        &[int(pool.id.0), int(block.len()), addr_value(block.addr())],
                    )?;
                }
                i64::try_from(n_removed).expect("a count fits")
            }
            Backend::Postgres => {
                let mut params = vec![int(pool.id.0)];
                let sql = format!(
                    "WITH {} SELECT count(*) FROM removed WHERE n = 1",
                    free_change_ctes(&mut params, remove, insert)
                );
                self.tx.query_opt(&sql, &params)?.expect("a count returns one row").int(0)
            }
        };
        check_removed(pool, remove, n_removed);
        self.note_free_change(pool, remove, insert);
        Ok(())
    }

    /// Keeps `known_free` true to a change of the pool's free blocks.
    fn note_free_change(&mut self, pool: &PoolRecord, remove: &[Prefix], insert: &[Prefix]) {
        if let Some(known) = self.known_free.iter_mut().find(|known| known.pool == pool.id) {
            known.apply(remove, insert);
        }
    }

    fn ledger_append(
        &mut self,
        pool: &PoolRecord,
        block: Prefix,
        owner: Owner<'_>,
        holder: i64,
        action: LedgerAction,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO ledger (at, pool_id, tree_id, addr, last_addr, prefix, owner_id, owner_tenant, holder, action, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                int(change.now.0),
                int(pool.id.0),
                int(pool.tree_id),
                addr_value(block.addr()),
                addr_value(block.last_addr()),
                block.to_string().into(),
                owner.id.into(),
                owner.tenant.into(),
                int(holder),
                action.name().into(),
                change.request_id.into(),
            ],
        )?;
        Ok(())
    }
}

/// The common table expressions `removed` (a row with `n = 1` per block deleted from
/// `free_blocks`) and `inserted` that remove and insert a pool's free blocks on PostgreSQL,
/// joined by a comma; `$1` must be the pool's id, and their parameters are appended to `params`.
fn free_change_ctes(params: &mut Vec<Value>, remove: &[Prefix], insert: &[Prefix]) -> String {
    let mut rows = |blocks: &[Prefix]| -> String {
        let rows: Vec<String> = blocks
            .iter()
            .map(|block| {
                params.push(int(block.len()));
                params.push(addr_value(block.addr()));
                format!("(${}::bigint, ${}::bytea)", params.len() - 1, params.len())
            })
            .collect();
        rows.join(", ")
    };
    let removed = if remove.is_empty() {
        "SELECT 0 AS n".to_owned()
    } else {
        format!(
            "DELETE FROM free_blocks WHERE pool_id = $1 AND (len, addr) IN (VALUES {}) RETURNING 1 AS n",
            rows(remove)
        )
    };
    let inserted = if insert.is_empty() {
        "SELECT 0".to_owned()
    } else {
        format!(
            "INSERT INTO free_blocks (pool_id, len, addr) SELECT $1, v.len, v.addr FROM (VALUES {}) AS v (len, addr) RETURNING 1",
            rows(insert)
        )
    };
    format!("removed AS ({removed}), inserted AS ({inserted})")
}

/// Free blocks are read and removed under the tree's lock: one that was read and is gone is a
/// bug, and writing on would corrupt the pool.
fn check_removed(pool: &PoolRecord, remove: &[Prefix], n_removed: i64) {
    assert_eq!(n_removed, remove.len() as i64, "{}", removed_wrong(pool, remove));
}

fn removed_wrong(pool: &PoolRecord, remove: &[Prefix]) -> String {
    format!("blocks {remove:?} were read as free blocks of pool {} under the tree lock", pool.name)
}
