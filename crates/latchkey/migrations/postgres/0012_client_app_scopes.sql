-- Operator scopes (SPEC 1): the app scopes the operator allowed an app (`client add --app-scope`), a JSON list of
-- names defined as `kind = "app"` in the config; granted only through client_credentials. None for existing apps.
ALTER TABLE clients ADD COLUMN app_scopes TEXT NOT NULL DEFAULT '[]';
