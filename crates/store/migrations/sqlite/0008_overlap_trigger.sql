-- Nothing to change: PostgreSQL's 0008 replaces its exclusion constraint with a trigger; SQLite
-- has one writer at a time and checks overlaps by audit (`audit_overlapping_blocks`). The
-- version stays the same on both backends.
SELECT 1;
