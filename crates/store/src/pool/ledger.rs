//! The ledger: every allocation and release appended in the transaction that makes it, read
//! back by tree, and replayed to what was held at a moment.

use ipam::prefix::Prefix;

use super::codec::{addr_value, holder_from, int};
use super::{Change, LedgerAction, LedgerEntry, Owner, PoolId, PoolRecord};
use crate::db::Value;
use crate::error::StoreError;
use crate::{ReadTx, Timestamp, WriteTx};

impl ReadTx<'_> {
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

    pub(super) fn ledger_where(
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
    pub(super) fn ledger_append(
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
