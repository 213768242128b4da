-- Nothing to change: SQLite's 0006 rebuilds allocation_blocks as one b-tree keyed by its
-- allocation; PostgreSQL's keeps its key and the exclusion constraint that guards overlaps.
-- The version stays the same on both backends.
SELECT 1;
