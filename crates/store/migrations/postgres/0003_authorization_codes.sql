-- Authorization codes (OAuth 2.0 code flow with PKCE): single use, short-lived, kept as SHA-256
-- so any replica can redeem them and a database reader cannot.
CREATE TABLE authorization_codes (
    code_sha256    BYTEA PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    expires_at     BIGINT NOT NULL
);
