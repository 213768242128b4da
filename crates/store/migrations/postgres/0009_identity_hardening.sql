-- A user can be disabled, and every token issued to a user before tokens_valid_after (seconds
-- since the epoch) is refused: disabling, a password reset and revokeSignInSessions end the
-- sessions a stolen token or refresh token would continue.
ALTER TABLE users ADD COLUMN account_enabled BIGINT NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT NOT NULL DEFAULT 0;

-- Consent: an application gets a user's tokens in a tenant only where that user consented
-- (principal_id the user's object id) or an administrator did for everyone (principal_id '').
-- The service principals that exist already were created by administrators and app owners,
-- which counts as consent for everyone.
CREATE TABLE consents (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    app_id       TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, app_id, principal_id)
);
INSERT INTO consents (tenant_id, app_id, principal_id, created_at)
    SELECT tenant_id, app_id, '', created_at FROM service_principals;

-- A signing key's private half sealed with the key-encryption key, which is kept outside the
-- database; pkcs8_der is then empty. Keys written before this version are sealed at start.
ALTER TABLE signing_keys ADD COLUMN sealed_key BYTEA;

-- Expired codes are deleted as new ones are written.
CREATE INDEX device_codes_by_expiry ON device_codes (expires_at);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

-- ARM reads whether a token's principal still exists and may sign in through the cache of
-- authorization reads (store/src/cache.rs), so changes to users and service principals move
-- its generation.
CREATE TRIGGER users_cache_moved AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION crosspool_cache_moved();
CREATE TRIGGER service_principals_cache_moved AFTER INSERT OR UPDATE OR DELETE ON service_principals
    FOR EACH STATEMENT EXECUTE FUNCTION crosspool_cache_moved();
