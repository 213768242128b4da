-- Tenants: a GUID id and a unique domain name; either addresses the tenant in URLs.
CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    domain       TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Users sign in with their user principal name; the password is an Argon2id hash.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    upn           TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- App registrations live in their home tenant.
CREATE TABLE applications (
    id                TEXT PRIMARY KEY,
    app_id            TEXT NOT NULL UNIQUE,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    display_name      TEXT NOT NULL,
    sign_in_audience  TEXT NOT NULL,
    owner_id          TEXT,
    redirect_uris     TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);

-- Client secrets, stored as SHA-256 of the random secret (it is shown once, at creation).
CREATE TABLE application_passwords (
    key_id         TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications (id),
    display_name   TEXT,
    hint           TEXT NOT NULL,
    secret_sha256  BYTEA NOT NULL,
    start_at       BIGINT NOT NULL,
    end_at         BIGINT NOT NULL
);
CREATE INDEX application_passwords_by_application ON application_passwords (application_id);

-- At most one service principal per (tenant, app).
CREATE TABLE service_principals (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    app_id       TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, app_id)
);

-- RS256 signing keys, shared by every replica. The active key signs; older ones verify until
-- `retire_at`.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    pkcs8_der  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retire_at  BIGINT
);
