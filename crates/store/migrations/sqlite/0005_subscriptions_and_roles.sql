-- Subscriptions belong to one tenant.
CREATE TABLE subscriptions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    display_name TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX subscriptions_by_tenant ON subscriptions (tenant_id);

-- Role assignments at any scope. `scope_key` is the lower-cased scope; `subscription_id` is the
-- subscription the scope lies in (NULL for scopes above subscriptions), for listing a
-- subscription's assignments including those below it.
CREATE TABLE role_assignments (
    name               TEXT PRIMARY KEY,
    scope_key          TEXT NOT NULL,
    scope              TEXT NOT NULL,
    subscription_id    TEXT,
    role_definition_id TEXT NOT NULL,
    principal_id       TEXT NOT NULL,
    principal_type     TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    created_by         TEXT
);
CREATE INDEX role_assignments_by_principal ON role_assignments (principal_id);
CREATE INDEX role_assignments_by_scope ON role_assignments (scope_key);
CREATE INDEX role_assignments_by_subscription ON role_assignments (subscription_id);
