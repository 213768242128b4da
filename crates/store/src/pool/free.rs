//! Free blocks: the maximal aligned free blocks of each pool, read through their index, changed
//! as `ipam::plan` decides, and what a write transaction already knows of them (`KnownFree`).

use ipam::plan::{self, Placement, Split};
use ipam::prefix::Prefix;
use ipam::tree::refusal;

use super::codec::{addr_value, int, prefix_from};
use super::{PoolId, PoolRecord};
use crate::WriteTx;
use crate::db::{Backend, Value};
use crate::error::StoreError;

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
    pub(super) pool: PoolId,
    pub(super) lens: std::ops::RangeInclusive<u8>,
    pub(super) blocks: Vec<Prefix>,
}

impl KnownFree {
    /// The best-fit block for `want_len`, if what is known decides it: a known block no longer
    /// than wanted whose length and every length up to `want_len` are known.
    pub(super) fn best_fit(&self, want_len: u8) -> Option<Prefix> {
        if !self.lens.contains(&want_len) {
            return None;
        }
        plan::choose(Placement::BestFit, want_len, self.blocks.iter().copied())
    }

    /// Follows a change to the pool's free blocks.
    pub(super) fn apply(&mut self, remove: &[Prefix], insert: &[Prefix]) {
        self.blocks.retain(|block| !remove.contains(block));
        self.blocks.extend(insert.iter().filter(|block| self.lens.contains(&block.len())));
    }
}

impl WriteTx<'_> {
    /// Takes a block of `want_len` where the pool's placement puts it, or `None` if none fits.
    /// How the best free block for a block of `want_len` is split, if one is big enough.
    pub(super) fn free_split_len(
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
    pub(super) fn free_split_prefix(
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
    pub(super) fn free_take_prefix(
        &mut self,
        pool: &PoolRecord,
        target: Prefix,
    ) -> Result<Prefix, StoreError> {
        let split = self.free_split_prefix(pool, target)?;
        self.apply_split(pool, &split)?;
        Ok(split.taken)
    }

    /// The blocks that can win `plan::choose` (as `FreeBlocks::candidates`).
    pub(super) fn free_candidates(
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
    pub(super) fn free_containing(
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
    pub(super) fn free_largest(&mut self, pool: &PoolRecord) -> Result<Option<Prefix>, StoreError> {
        let row = self.tx.query_opt(
            "SELECT len, addr FROM free_blocks WHERE pool_id = $1 ORDER BY len, addr LIMIT 1",
            &[int(pool.id.0)],
        )?;
        Ok(row.map(|row| prefix_from(pool.family, row.blob(1), row.int(0))))
    }

    /// Returns a block to the pool's free space, merged with its free buddies.
    pub(super) fn free_release(
        &mut self,
        pool: &PoolRecord,
        block: Prefix,
    ) -> Result<(), StoreError> {
        let buddies = plan::merge_candidates(block, pool.min_len);
        let free_buddies = self.free_blocks_among(pool, &buddies)?;
        let merge = plan::merge(block, |buddy| free_buddies.contains(buddy));
        let absorbed: Vec<Prefix> = merge.absorbed().collect();
        self.free_apply(pool, &absorbed, &[merge.merged])
    }

    /// Which of `blocks` are free blocks of the pool, in one query.
    pub(super) fn free_blocks_among(
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

    pub(super) fn apply_split(
        &mut self,
        pool: &PoolRecord,
        split: &Split,
    ) -> Result<(), StoreError> {
        let remainder: Vec<Prefix> = split.remainder().collect();
        self.free_apply(pool, &[split.free_block], &remainder)
    }

    /// Removes free blocks and inserts others, in one statement on PostgreSQL.
    pub(super) fn free_apply(
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
    pub(super) fn note_free_change(
        &mut self,
        pool: &PoolRecord,
        remove: &[Prefix],
        insert: &[Prefix],
    ) {
        if let Some(known) = self.known_free.iter_mut().find(|known| known.pool == pool.id) {
            known.apply(remove, insert);
        }
    }
}

/// The common table expressions `removed` (a row with `n = 1` per block deleted from
/// `free_blocks`) and `inserted` that remove and insert a pool's free blocks on PostgreSQL,
/// joined by a comma; `$1` must be the pool's id, and their parameters are appended to `params`.
pub(super) fn free_change_ctes(
    params: &mut Vec<Value>,
    remove: &[Prefix],
    insert: &[Prefix],
) -> String {
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
pub(super) fn check_removed(pool: &PoolRecord, remove: &[Prefix], n_removed: i64) {
    assert_eq!(n_removed, remove.len() as i64, "{}", removed_wrong(pool, remove));
}

pub(super) fn removed_wrong(pool: &PoolRecord, remove: &[Prefix]) -> String {
    format!("blocks {remove:?} were read as free blocks of pool {} under the tree lock", pool.name)
}
