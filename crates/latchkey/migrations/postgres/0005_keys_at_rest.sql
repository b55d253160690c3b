-- Keys at rest (SPEC 4): signing_keys.private_der and server_secrets.value now hold values sealed under the master
-- key, which is never in the database (the application seals rows written before this on its first start).
-- `latchkey keys revoke` marks a key revoked and erases its private key: no node publishes or signs with it again.
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
