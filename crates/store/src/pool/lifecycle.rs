//! A pool's life: reading pools and their usage, creating, re-prefixing and deleting them, and
//! the locks on their trees and scopes.

use ipam::error::Error as IpamError;
use ipam::prefix::Prefix;
use ipam::tree::check_pool_prefixes;
use ipam::usage::{ChildPoolUsage, PoolUsage};

use super::codec::{
    ALLOCATION_BLOCKS, HOLDER_CHILD_POOL, POOL_SELECT, addr_value, family_code, holder_from, int,
    min_len, placement_code, pools_from_rows, prefix_from,
};
use super::{Change, LedgerAction, NewPool, Owner, PoolId, PoolRecord};
use crate::db::{Backend, Value};
use crate::error::StoreError;
use crate::{ReadTx, WriteTx};

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

    /// Locks the pool's tree and reads the pool, in one statement: every change to a pool tree
    /// holds this lock until it commits. On SQLite the write transaction already holds the
    /// database's single write lock, so this is a plain read. A pool this transaction has
    /// locked already is not read again (`WriteTx::locked_pools`).
    pub(super) fn pool_lock(&mut self, id: PoolId) -> Result<PoolRecord, StoreError> {
        if let Some(pool) = self.locked_pools.iter().find(|pool| pool.id == id) {
            return Ok(pool.clone());
        }
        self.pool_locked_where("p.id", int(id.0))?
            .ok_or_else(|| StoreError::NotFound { what: "pool", id: id.0.to_string() })
    }

    /// `pool_lock` for a caller about to change the pool: it is read again and not kept, so
    /// that no later look-up sees it as it was, even if the change fails half-way; nor is what
    /// was known of its free blocks.
    pub(super) fn pool_lock_fresh(&mut self, id: PoolId) -> Result<PoolRecord, StoreError> {
        self.known_free.retain(|known| known.pool != id);
        self.locked_pools.retain(|pool| pool.id != id);
        let pool = self.pool_lock(id)?;
        self.locked_pools.retain(|pool| pool.id != id);
        Ok(pool)
    }

    /// The pool whose `column` is `value`, read in the statement that locks its tree on
    /// PostgreSQL; SQLite's write transaction already holds the database's write lock. The
    /// pool is kept in `locked_pools`.
    pub(super) fn pool_locked_where(
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
    pub(super) fn scope_lock(&mut self, scope_key: &str) -> Result<(), StoreError> {
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
    pub(super) fn pool_prefixes_add(
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
    pub(super) fn pool_prefixes_drop(
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
    pub(super) fn check_roots_free(
        &mut self,
        scope_key: &str,
        prefixes: &[Prefix],
    ) -> Result<(), StoreError> {
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
}
