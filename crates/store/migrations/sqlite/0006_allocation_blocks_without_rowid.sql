-- allocation_blocks keeps its rows in one b-tree keyed by their allocation (WITHOUT ROWID), where
-- it had a rowid table, an index on (tree_id, addr, len) and one on allocation_id: an allocation
-- now changes two b-tree pages fewer, and every changed page is written to the WAL and synced
-- at commit (docs/benchmarks.md). Blocks are only ever looked up by their allocation (or, for a
-- pool's usage, through its allocations); the (tree_id, addr, len) key guarded nothing the
-- allocator does not (it could not see two different lengths overlap), and the overlap audit
-- scans the table either way. PostgreSQL keeps its exclusion constraint.
CREATE TABLE allocation_blocks_new (
    allocation_id INTEGER NOT NULL REFERENCES allocations (id),
    pool_id       INTEGER NOT NULL,
    tree_id       INTEGER NOT NULL,
    addr          BLOB NOT NULL,
    last_addr     BLOB NOT NULL,
    len           INTEGER NOT NULL,
    PRIMARY KEY (allocation_id, addr)
) WITHOUT ROWID;
INSERT INTO allocation_blocks_new (allocation_id, pool_id, tree_id, addr, last_addr, len)
    SELECT allocation_id, pool_id, tree_id, addr, last_addr, len FROM allocation_blocks;
DROP TABLE allocation_blocks;
ALTER TABLE allocation_blocks_new RENAME TO allocation_blocks;
