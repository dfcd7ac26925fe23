-- Identities (issue 17): Blnk's identity records. A tokenized field holds its token in its own
-- column; `tokenized_fields` (a JSON array) names those fields.
CREATE TABLE identities (
    identity_id        TEXT PRIMARY KEY,
    identity_type      TEXT NOT NULL DEFAULT '',
    organization_name  TEXT NOT NULL DEFAULT '',
    category           TEXT NOT NULL DEFAULT '',
    first_name         TEXT NOT NULL DEFAULT '',
    last_name          TEXT NOT NULL DEFAULT '',
    other_names        TEXT NOT NULL DEFAULT '',
    gender             TEXT NOT NULL DEFAULT '',
    email_address      TEXT NOT NULL DEFAULT '',
    phone_number       TEXT NOT NULL DEFAULT '',
    nationality        TEXT NOT NULL DEFAULT '',
    street             TEXT NOT NULL DEFAULT '',
    country            TEXT NOT NULL DEFAULT '',
    state              TEXT NOT NULL DEFAULT '',
    post_code          TEXT NOT NULL DEFAULT '',
    city               TEXT NOT NULL DEFAULT '',
    dob                TEXT,
    created_at         TEXT NOT NULL,
    meta_data          TEXT NOT NULL DEFAULT '{}',
    tokenized_fields   TEXT NOT NULL DEFAULT '[]'
);

CREATE INDEX identities_created ON identities (created_at);
-- `PUT /balances/{id}/identity` and `DELETE /identities/{id}` look for an identity's balances.
CREATE INDEX balances_identity ON balances (identity_id) WHERE identity_id <> '';
