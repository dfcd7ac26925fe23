-- Scoped API keys. Only a hash of each secret is kept; scopes are space-separated RESOURCE:ACTION.

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL DEFAULT '',
    scopes       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT
);
