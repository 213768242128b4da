-- allocation_blocks keeps its rows in one b-tree keyed by (pool, allocation, address), WITHOUT
-- ROWID, where it had a rowid table, an index on (tree_id, addr, len) and one on allocation_id;
-- and that key finds a pool's allocations, so allocations_by_pool goes. An allocation now changes
-- three b-tree pages fewer, and every changed page is written to the WAL and synced at commit
-- (docs/benchmarks.md). Blocks are looked up by their allocation or their pool only; the
-- (tree_id, addr, len) key guarded nothing the allocator does not (it could not see blocks of
-- different lengths overlap), and the overlap audit scans the table either way. PostgreSQL
-- keeps its indexes and the exclusion constraint that guards overlaps.
CREATE TABLE allocation_blocks_new (
    allocation_id INTEGER NOT NULL REFERENCES allocations (id),
    pool_id       INTEGER NOT NULL,
    tree_id       INTEGER NOT NULL,
    addr          BLOB NOT NULL,
    last_addr     BLOB NOT NULL,
    len           INTEGER NOT NULL,
    PRIMARY KEY (pool_id, allocation_id, addr)
) WITHOUT ROWID;
INSERT INTO allocation_blocks_new (allocation_id, pool_id, tree_id, addr, last_addr, len)
    SELECT allocation_id, pool_id, tree_id, addr, last_addr, len FROM allocation_blocks;
DROP TABLE allocation_blocks;
ALTER TABLE allocation_blocks_new RENAME TO allocation_blocks;
DROP INDEX allocations_by_pool;
