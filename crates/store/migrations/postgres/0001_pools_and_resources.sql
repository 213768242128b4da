-- Resources: ARM-style documents keyed by their lower-cased id, with an etag per write.
CREATE TABLE resources (
    id_key        TEXT PRIMARY KEY,
    id            TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    etag          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX resources_by_type ON resources (resource_type, id_key);

-- One row per network manager (or other scope of root pools): its lock serialises root creation.
CREATE TABLE pool_scopes (
    scope_key TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);

-- One row per pool tree: its lock serialises every allocation in the tree.
CREATE TABLE pool_trees (
    id        BIGSERIAL PRIMARY KEY,
    scope_key TEXT NOT NULL,
    version   BIGINT NOT NULL
);

CREATE TABLE pools (
    id           BIGSERIAL PRIMARY KEY,
    resource_key TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    scope_key    TEXT NOT NULL,
    tree_id      BIGINT NOT NULL REFERENCES pool_trees (id),
    parent_id    BIGINT REFERENCES pools (id),
    family       BIGINT NOT NULL,
    depth        BIGINT NOT NULL,
    placement    BIGINT NOT NULL,
    min_len      BIGINT NOT NULL
);
CREATE INDEX pools_by_parent ON pools (parent_id);

CREATE TABLE pool_prefixes (
    pool_id BIGINT NOT NULL REFERENCES pools (id),
    addr    BYTEA NOT NULL,
    len     BIGINT NOT NULL,
    PRIMARY KEY (pool_id, addr)
);

-- Root pool prefixes per scope, to refuse overlapping roots with one index look-up.
CREATE TABLE root_prefixes (
    scope_key TEXT NOT NULL,
    family    BIGINT NOT NULL,
    addr      BYTEA NOT NULL,
    len       BIGINT NOT NULL,
    pool_id   BIGINT NOT NULL REFERENCES pools (id),
    PRIMARY KEY (scope_key, family, addr)
);

-- The allocator's free space: maximal aligned free blocks (see ipam::plan).
CREATE TABLE free_blocks (
    pool_id BIGINT NOT NULL,
    len     BIGINT NOT NULL,
    addr    BYTEA NOT NULL,
    PRIMARY KEY (pool_id, len, addr)
);

CREATE TABLE allocations (
    id           BIGSERIAL PRIMARY KEY,
    pool_id      BIGINT NOT NULL REFERENCES pools (id),
    tree_id      BIGINT NOT NULL,
    owner_key    TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    owner_tenant TEXT NOT NULL,
    holder       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);
CREATE INDEX allocations_by_pool ON allocations (pool_id, id);
CREATE INDEX allocations_by_owner ON allocations (owner_key);

-- The database itself refuses two overlapping live blocks in one tree, even if the allocator
-- had a bug: the exclusion constraint compares `prefix` with && inside each tree_id.
CREATE TABLE allocation_blocks (
    allocation_id BIGINT NOT NULL REFERENCES allocations (id),
    pool_id       BIGINT NOT NULL,
    tree_id       BIGINT NOT NULL,
    addr          BYTEA NOT NULL,
    last_addr     BYTEA NOT NULL,
    len           BIGINT NOT NULL,
    prefix        CIDR NOT NULL,
    PRIMARY KEY (tree_id, addr, len),
    CONSTRAINT allocation_blocks_never_overlap EXCLUDE USING gist (tree_id WITH =, prefix inet_ops WITH &&)
);
CREATE INDEX allocation_blocks_by_allocation ON allocation_blocks (allocation_id);

-- Every allocation change, never rewritten: who held which prefix, and when.
CREATE TABLE ledger (
    seq          BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    pool_id      BIGINT NOT NULL,
    tree_id      BIGINT NOT NULL,
    addr         BYTEA NOT NULL,
    last_addr    BYTEA NOT NULL,
    prefix       TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    owner_tenant TEXT NOT NULL,
    holder       BIGINT NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT NOT NULL
);
CREATE INDEX ledger_by_tree_addr ON ledger (tree_id, addr, seq);
CREATE FUNCTION crosspool_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the allocation ledger is append-only';
END
$$;
CREATE TRIGGER ledger_is_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION crosspool_ledger_is_append_only();
