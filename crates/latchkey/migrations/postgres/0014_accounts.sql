-- Verified addresses and account recovery (SPEC 2.8). Accounts made before verification existed are unverified:
-- nothing proved their addresses, so apps get them only after their owners enter a code.
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;

-- One-time codes mailed to an address: verification (purpose 'verify'), password reset ('reset'), email change
-- ('change', `email` being the new address). The 6-digit code and the link's token are stored only as keyed
-- hashes; `tries` counts wrong codes (5 lock it). A code with no `user_id` is a decoy for an address with no
-- account (or, at sign-up, one that has an account): it looks the same to the browser and never matches.
CREATE TABLE email_codes (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id TEXT,
    email TEXT NOT NULL,
    code_hash BYTEA NOT NULL,
    link_hash BYTEA NOT NULL UNIQUE,
    tries BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_codes_user ON email_codes (user_id, purpose);
CREATE INDEX email_codes_email ON email_codes (email, purpose);
CREATE INDEX email_codes_expiry ON email_codes (expires_at);

-- Outgoing mail, queued durably: its row is committed before the page that caused it answers,
-- and any node's sender delivers it (SMTP or the outbox), retrying with back-off. `message` is the whole RFC 5322
-- message sealed with the master key (it may carry a code). A sent mail's row is deleted; one that could not be
-- sent by its last attempt keeps `failed_at` and its error, without the message.
CREATE TABLE mail_queue (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    message BYTEA,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    failed_at BIGINT
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at);
