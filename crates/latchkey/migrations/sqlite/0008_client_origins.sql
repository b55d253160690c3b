-- CORS (SPEC 2.7): each app's allowed origins, one row each, so that "which apps allow this origin" is an index
-- lookup instead of a scan of every app's list. `clients.allowed_origins` stays the list the app is edited with.
CREATE TABLE client_origins (
    origin TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (origin, client_id)
);
INSERT OR IGNORE INTO client_origins (origin, client_id)
    SELECT j.value, c.client_id FROM clients c, json_each(c.allowed_origins) j;
