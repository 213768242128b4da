//! What a healthy store always satisfies, checked by `crosspool admin check` (after a restore,
//! an upgrade or a crash): the database's own integrity check (SQLite), no two allocation
//! blocks of a tree overlapping, every pool's space adding up, and every allocation held by a
//! resource whose document exists.

use ipam::usage::Holder;

use crate::ReadTx;
use crate::db::Backend;
use crate::error::StoreError;
use crate::pool::holder_code;

/// What `ReadTx::audit` found; `is_clean` when nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// SQLite's `PRAGMA integrity_check` complaints (none on PostgreSQL, which checks itself).
    pub integrity: Vec<String>,
    pub overlapping_blocks: i64,
    /// Pools whose prefixes do not hold exactly their free, held and child space.
    pub unbalanced_pools: Vec<String>,
    /// Owners of allocations (VNets, static CIDRs) whose resource document is missing.
    pub orphaned_allocations: Vec<String>,
}

impl Audit {
    pub fn is_clean(&self) -> bool {
        self.integrity.is_empty()
            && self.overlapping_blocks == 0
            && self.unbalanced_pools.is_empty()
            && self.orphaned_allocations.is_empty()
    }
}

impl ReadTx<'_> {
    /// Checks the whole store (`Audit`). Reads everything once: an operator's command, not a
    /// request's.
    pub fn audit(&mut self) -> Result<Audit, StoreError> {
        let integrity = match self.tx.backend() {
            Backend::Sqlite => self
                .tx
                .query("PRAGMA integrity_check", &[])?
                .iter()
                .map(|row| row.text(0).to_owned())
                .filter(|line| line != "ok")
                .collect(),
            Backend::Postgres => Vec::new(),
        };
        let orphans = format!(
            "SELECT DISTINCT a.owner_id FROM allocations a LEFT JOIN resources r ON r.id_key = a.owner_key \
             WHERE a.holder IN ({}, {}) AND r.id_key IS NULL ORDER BY a.owner_id",
            holder_code(Holder::Resource),
            holder_code(Holder::StaticCidr)
        );
        let orphaned_allocations =
            self.tx.query(&orphans, &[])?.iter().map(|row| row.text(0).to_owned()).collect();
        Ok(Audit {
            integrity,
            overlapping_blocks: self.audit_overlapping_blocks()?,
            unbalanced_pools: self.audit_unbalanced_pools()?,
            orphaned_allocations,
        })
    }
}
