-- Blocks of one tree still never overlap, checked by a trigger instead of the GiST exclusion
-- constraint of 0001, whose overlap search made a block's insert cost 165-300 us in a tree of
-- 20,000 blocks, against about 45 us with the trigger and 15-25 us with neither
-- (docs/benchmarks.md, eighth session): the trigger looks at one neighbour through the primary
-- key (tree_id, addr, len). The trigger first locks the
-- tree's row, as every store change to a tree does already (then the lock costs nothing), so
-- that writers of one tree, the store's or anyone's, take turns and each sees what the others
-- committed: the check holds under concurrency, as the constraint did.
ALTER TABLE allocation_blocks DROP CONSTRAINT allocation_blocks_never_overlap;
-- It fed only the constraint.
ALTER TABLE allocation_blocks DROP COLUMN prefix;

-- The function finds the tables in the schema it was created in, whatever the caller's path.
CREATE FUNCTION crosspool_block_fits() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM pool_trees WHERE id = NEW.tree_id FOR UPDATE;
    -- The tree's blocks are disjoint, so if any overlaps the new one, the last to start at or
    -- before its end does. An updated row is not compared with its old self.
    IF EXISTS (
        SELECT 1 FROM (
            SELECT last_addr FROM allocation_blocks
            WHERE tree_id = NEW.tree_id AND addr <= NEW.last_addr
              AND (TG_OP = 'INSERT' OR (tree_id, addr, len) <> (OLD.tree_id, OLD.addr, OLD.len))
            ORDER BY addr DESC LIMIT 1
        ) previous
        WHERE previous.last_addr >= NEW.addr
    ) THEN
        RAISE EXCEPTION 'allocation block overlaps another block of tree %', NEW.tree_id
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER allocation_blocks_never_overlap BEFORE INSERT OR UPDATE ON allocation_blocks
    FOR EACH ROW EXECUTE FUNCTION crosspool_block_fits();
