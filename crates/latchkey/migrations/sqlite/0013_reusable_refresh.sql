-- LWA-style reusable refresh tokens (SPEC 2.2): an app's opt-in to refresh tokens that are not rotated
-- (`client add --reusable-refresh`, the console's switch); off for existing apps. `last_used_at` records each use
-- of such a token, the write by which its refresh takes the customer's row like every issuance.
ALTER TABLE clients ADD COLUMN reusable_refresh INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN last_used_at INTEGER;
