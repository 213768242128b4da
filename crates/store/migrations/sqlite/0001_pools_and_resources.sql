-- Resources: ARM-style documents keyed by their lower-cased id, with an etag per write.
CREATE TABLE resources (
    id_key        TEXT PRIMARY KEY,
    id            TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    etag          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX resources_by_type ON resources (resource_type, id_key);

-- One row per network manager (or other scope of root pools): its lock serialises root creation.
CREATE TABLE pool_scopes (
    scope_key TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
);

-- One row per pool tree: its lock serialises every allocation in the tree.
CREATE TABLE pool_trees (
    id        INTEGER PRIMARY KEY,
    scope_key TEXT NOT NULL,
    version   INTEGER NOT NULL
);

CREATE TABLE pools (
    id           INTEGER PRIMARY KEY,
    resource_key TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    scope_key    TEXT NOT NULL,
    tree_id      INTEGER NOT NULL REFERENCES pool_trees (id),
    parent_id    INTEGER REFERENCES pools (id),
    family       INTEGER NOT NULL,
    depth        INTEGER NOT NULL,
    placement    INTEGER NOT NULL,
    min_len      INTEGER NOT NULL
);
CREATE INDEX pools_by_parent ON pools (parent_id);

CREATE TABLE pool_prefixes (
    pool_id INTEGER NOT NULL REFERENCES pools (id),
    addr    BLOB NOT NULL,
    len     INTEGER NOT NULL,
    PRIMARY KEY (pool_id, addr)
);

-- Root pool prefixes per scope, to refuse overlapping roots with one index look-up.
CREATE TABLE root_prefixes (
    scope_key TEXT NOT NULL,
    family    INTEGER NOT NULL,
    addr      BLOB NOT NULL,
    len       INTEGER NOT NULL,
    pool_id   INTEGER NOT NULL REFERENCES pools (id),
    PRIMARY KEY (scope_key, family, addr)
);

-- The allocator's free space: maximal aligned free blocks (see ipam::plan).
CREATE TABLE free_blocks (
    pool_id INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    addr    BLOB NOT NULL,
    PRIMARY KEY (pool_id, len, addr)
) WITHOUT ROWID;

CREATE TABLE allocations (
    id           INTEGER PRIMARY KEY,
    pool_id      INTEGER NOT NULL REFERENCES pools (id),
    tree_id      INTEGER NOT NULL,
    owner_key    TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    owner_tenant TEXT NOT NULL,
    holder       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER
);
CREATE INDEX allocations_by_pool ON allocations (pool_id, id);
CREATE INDEX allocations_by_owner ON allocations (owner_key);

CREATE TABLE allocation_blocks (
    allocation_id INTEGER NOT NULL REFERENCES allocations (id),
    pool_id       INTEGER NOT NULL,
    tree_id       INTEGER NOT NULL,
    addr          BLOB NOT NULL,
    last_addr     BLOB NOT NULL,
    len           INTEGER NOT NULL,
    PRIMARY KEY (tree_id, addr, len)
);
CREATE INDEX allocation_blocks_by_allocation ON allocation_blocks (allocation_id);

-- Every allocation change, never rewritten: who held which prefix, and when.
CREATE TABLE ledger (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    pool_id      INTEGER NOT NULL,
    tree_id      INTEGER NOT NULL,
    addr         BLOB NOT NULL,
    last_addr    BLOB NOT NULL,
    prefix       TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    owner_tenant TEXT NOT NULL,
    holder       INTEGER NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT NOT NULL
);
CREATE INDEX ledger_by_tree_addr ON ledger (tree_id, addr, seq);
CREATE TRIGGER ledger_is_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the allocation ledger is append-only'); END;
CREATE TRIGGER ledger_is_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the allocation ledger is append-only'); END;
