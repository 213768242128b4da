-- Device-code sign-in: the device polls with device_code while a person enters user_code on the
-- device-login page and signs in, which sets user_id.
CREATE TABLE device_codes (
    device_code_sha256 BYTEA PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,
    client_id          TEXT NOT NULL,
    tenant_segment     TEXT NOT NULL,
    scope              TEXT NOT NULL,
    user_id            TEXT,
    expires_at         BIGINT NOT NULL
);
