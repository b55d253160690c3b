-- The consent logo (SPEC 2.6): the PNG Latchkey re-encoded from the developer's upload, served from Latchkey's own
-- origin at /logos/<client_id>/<version>. `version` names these bytes (a hash prefix), so caches may keep them.
-- `clients.logo_url` is no longer read or written: no page loads an image from a developer's host.
CREATE TABLE client_logos (
    client_id TEXT PRIMARY KEY,
    png BLOB NOT NULL,
    version TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
