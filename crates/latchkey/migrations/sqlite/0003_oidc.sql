-- OpenID Connect (SPEC 3): ID-token signing keys shared by every node, and each app's signing algorithm.
-- A key signs from activate_at until a newer key of its algorithm activates; it stays published in the JWKS
-- until every ID token it signed has expired.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_der BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    activate_at INTEGER NOT NULL
);
CREATE INDEX signing_keys_alg ON signing_keys (alg, activate_at);

ALTER TABLE clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'ES256';
