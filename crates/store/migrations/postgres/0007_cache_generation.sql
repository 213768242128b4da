-- The cache of authorization reads (store/src/cache.rs) stays valid while one number stays the
-- same: cache_generation.n, which every change to what it caches moves, in the transaction that
-- makes the change, whichever process or code path makes it. Cached: subscriptions, role
-- assignments, pools with their prefixes, and resources of the types listed below (resource
-- groups, network managers and their connections), never virtual networks or operations, which
-- change on every VNet write. cache.rs's CACHED_TYPES names the same types; a test checks that
-- writing each of them moves the number.
CREATE TABLE cache_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO cache_generation (id, n) VALUES (1, 0);

-- The function finds the table in the schema it was created in, whatever the caller's path.
CREATE FUNCTION crosspool_cache_moved() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE cache_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER subscriptions_cache_moved AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER role_assignments_cache_moved AFTER INSERT OR UPDATE OR DELETE ON role_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER pools_cache_moved AFTER INSERT OR UPDATE OR DELETE ON pools
    FOR EACH STATEMENT EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER pool_prefixes_cache_moved AFTER INSERT OR UPDATE OR DELETE ON pool_prefixes
    FOR EACH STATEMENT EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER resources_cache_moved_insert AFTER INSERT ON resources FOR EACH ROW
    WHEN (NEW.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections'))
    EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER resources_cache_moved_update AFTER UPDATE ON resources FOR EACH ROW
    WHEN (OLD.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections')
          OR NEW.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections'))
    EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER resources_cache_moved_delete AFTER DELETE ON resources FOR EACH ROW
    WHEN (OLD.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections'))
    EXECUTE FUNCTION crosspool_cache_moved();
