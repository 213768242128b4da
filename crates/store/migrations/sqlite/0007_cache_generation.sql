-- The cache of authorization reads (store/src/cache.rs) stays valid while one number stays the
-- same: cache_generation.n, which every change to what it caches moves, in the transaction that
-- makes the change, whichever process or code path makes it. Cached: subscriptions, role
-- assignments, pools with their prefixes, and resources of the types listed below (resource
-- groups, network managers and their connections), never virtual networks or operations, which
-- change on every VNet write. cache.rs's CACHED_TYPES names the same types; a test checks that
-- writing each of them moves the number.
CREATE TABLE cache_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO cache_generation (id, n) VALUES (1, 0);
CREATE TRIGGER subscriptions_cache_moved_insert AFTER INSERT ON subscriptions
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER subscriptions_cache_moved_update AFTER UPDATE ON subscriptions
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER subscriptions_cache_moved_delete AFTER DELETE ON subscriptions
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_assignments_cache_moved_insert AFTER INSERT ON role_assignments
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_assignments_cache_moved_update AFTER UPDATE ON role_assignments
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_assignments_cache_moved_delete AFTER DELETE ON role_assignments
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER pools_cache_moved_insert AFTER INSERT ON pools
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER pools_cache_moved_update AFTER UPDATE ON pools
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER pools_cache_moved_delete AFTER DELETE ON pools
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER pool_prefixes_cache_moved_insert AFTER INSERT ON pool_prefixes
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER pool_prefixes_cache_moved_update AFTER UPDATE ON pool_prefixes
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER pool_prefixes_cache_moved_delete AFTER DELETE ON pool_prefixes
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER resources_cache_moved_insert AFTER INSERT ON resources
    WHEN NEW.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections')
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER resources_cache_moved_update AFTER UPDATE ON resources
    WHEN OLD.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections')
          OR NEW.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections')
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER resources_cache_moved_delete AFTER DELETE ON resources
    WHEN OLD.resource_type IN ('microsoft.resources/resourcegroups', 'microsoft.network/networkmanagers', 'microsoft.network/networkmanagers/scopeconnections', 'microsoft.network/networkmanagerconnections')
    BEGIN UPDATE cache_generation SET n = n + 1 WHERE id = 1; END;
