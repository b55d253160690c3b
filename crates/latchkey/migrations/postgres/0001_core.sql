-- Latchkey core schema (PostgreSQL). Times are Unix seconds; secrets and tokens are stored only as keyed hashes.
CREATE TABLE server_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    postal_code TEXT,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    privacy_url TEXT NOT NULL,
    logo_url TEXT,
    redirect_uris TEXT NOT NULL,
    allowed_origins TEXT NOT NULL,
    confidential BIGINT NOT NULL,
    allow_implicit BIGINT NOT NULL,
    allow_plain_pkce BIGINT NOT NULL,
    allow_device BIGINT NOT NULL,
    allow_client_credentials BIGINT NOT NULL,
    development BIGINT NOT NULL,
    secret_hash BYTEA,
    prev_secret_hash BYTEA,
    prev_secret_expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX clients_owner ON clients (owner);

CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE consents (
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE auth_codes (
    code_hash BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    redirect_uri_sent BIGINT NOT NULL,
    challenge TEXT,
    challenge_method TEXT,
    nonce TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE token_families (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT,
    code_hash BYTEA,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX token_families_code ON token_families (code_hash);
CREATE INDEX token_families_user_client ON token_families (user_id, client_id);
CREATE INDEX token_families_client ON token_families (client_id);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE access_tokens (
    token_hash BYTEA PRIMARY KEY,
    family_id TEXT,
    client_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    user_id TEXT,
    subject TEXT,
    scopes TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_family ON access_tokens (family_id);
CREATE INDEX access_tokens_user ON access_tokens (user_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL
);
