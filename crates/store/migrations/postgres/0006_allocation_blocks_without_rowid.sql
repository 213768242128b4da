-- Nothing to change: SQLite's 0006 rebuilds allocation_blocks as one b-tree keyed by pool and
-- allocation; PostgreSQL keeps its indexes and the exclusion constraint that guards overlaps.
-- Queries name both allocations.pool_id and allocation_blocks.pool_id, so that each backend's
-- planner finds its index. The version stays the same on both backends.
SELECT 1;
