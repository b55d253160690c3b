-- Latchkey core schema (SQLite). Times are Unix seconds; secrets and tokens are stored only as keyed hashes.
CREATE TABLE server_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    postal_code TEXT,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
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
    confidential INTEGER NOT NULL,
    allow_implicit INTEGER NOT NULL,
    allow_plain_pkce INTEGER NOT NULL,
    allow_device INTEGER NOT NULL,
    allow_client_credentials INTEGER NOT NULL,
    development INTEGER NOT NULL,
    secret_hash BLOB,
    prev_secret_hash BLOB,
    prev_secret_expires_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX clients_owner ON clients (owner);

CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    auth_time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE consents (
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE auth_codes (
    code_hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    redirect_uri_sent INTEGER NOT NULL,
    challenge TEXT,
    challenge_method TEXT,
    nonce TEXT,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE token_families (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT,
    code_hash BLOB,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX token_families_code ON token_families (code_hash);
CREATE INDEX token_families_user_client ON token_families (user_id, client_id);
CREATE INDEX token_families_client ON token_families (client_id);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE access_tokens (
    token_hash BLOB PRIMARY KEY,
    family_id TEXT,
    client_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    user_id TEXT,
    subject TEXT,
    scopes TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_family ON access_tokens (family_id);
CREATE INDEX access_tokens_user ON access_tokens (user_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL
);
