-- The developer console (SPEC 2.6): customers who turned on developer access. Their apps are the clients whose
-- owner is their internal user id. The indexes serve the console's per-app usage counts.
CREATE TABLE developers (
    user_id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX access_tokens_client ON access_tokens (client_id, issued_at);
