//! Allocations: taking space in a locked pool (blocks chosen by `ipam::plan` from the free blocks
//! the transaction knows or reads), writing them, releasing them, and reading them back.

use ipam::error::Error as IpamError;
use ipam::plan::Split;
use ipam::prefix::Prefix;
use ipam::request::{self, Request};
use ipam::usage::Holder;

use super::codec::{
    ALLOCATION_BLOCKS, addr_value, family_from, holder_code, holder_from, int, prefix_from,
};
use super::free::{check_removed, free_change_ctes, removed_wrong};
use super::{
    AllocationId, AllocationRecord, Change, LedgerAction, LockedPool, Owner, PoolId, PoolRecord,
};
use crate::db::{Backend, Deferred, Value};
use crate::error::StoreError;
use crate::telemetry::PoolEvent;
use crate::{ReadTx, Timestamp, WriteTx};

impl ReadTx<'_> {
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

    pub(super) fn allocations_where(
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
}

impl WriteTx<'_> {
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
    pub(super) fn allocate_in(
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
        self.events.push(PoolEvent::Allocated { pool: pool.resource_key.clone(), holder });
        Ok((id, blocks))
    }

    /// Writes the allocation, its blocks and their ledger rows; returns its id.
    pub(super) fn allocation_insert_sqlite(
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
    pub(super) fn allocation_insert_postgres(
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
        self.events.push(PoolEvent::Released {
            pool: pool.resource_key.clone(),
            holder: allocation.holder,
        });
        Ok(allocation)
    }

    // Locks.
}
