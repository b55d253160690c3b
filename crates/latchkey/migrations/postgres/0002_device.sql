-- Code-based linking (SPEC 2.3). Device and user codes are stored only as keyed hashes.
CREATE TABLE device_codes (
    device_hash BYTEA PRIMARY KEY,
    user_code_hash BYTEA NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    optional_scopes TEXT NOT NULL,
    status TEXT NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_poll_at BIGINT,
    pair_failures BIGINT NOT NULL DEFAULT 0,
    user_id TEXT,
    subject TEXT,
    granted_scopes TEXT,
    auth_time BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_codes_expiry ON device_codes (expires_at);

-- Families whose refresh tokens a device holds: they refresh without a client secret (SPEC 2.3).
ALTER TABLE token_families ADD COLUMN secretless_refresh BIGINT NOT NULL DEFAULT 0;
