-- Ledger core: ledgers, balances, transactions. Mirrors migrations/sqlite/0001 with exact NUMERIC
-- amounts and a `seq` column for insertion order (SQLite's rowid).

CREATE TABLE ledgers (
    seq         BIGSERIAL UNIQUE,
    ledger_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    meta_data   TEXT NOT NULL DEFAULT '{}'
);

INSERT INTO ledgers (ledger_id, name, created_at, meta_data)
VALUES ('general_ledger_id', 'General Ledger', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '{}');

CREATE TABLE balances (
    seq                      BIGSERIAL UNIQUE,
    balance_id               TEXT PRIMARY KEY,
    ledger_id                TEXT NOT NULL REFERENCES ledgers (ledger_id),
    identity_id              TEXT NOT NULL DEFAULT '',
    indicator                TEXT NOT NULL DEFAULT '',
    currency                 TEXT NOT NULL,
    credit_balance           NUMERIC NOT NULL DEFAULT 0,
    debit_balance            NUMERIC NOT NULL DEFAULT 0,
    inflight_credit_balance  NUMERIC NOT NULL DEFAULT 0,
    inflight_debit_balance   NUMERIC NOT NULL DEFAULT 0,
    version                  BIGINT NOT NULL DEFAULT 0,
    created_at               TEXT NOT NULL,
    meta_data                TEXT NOT NULL DEFAULT '{}'
);

CREATE UNIQUE INDEX balances_indicator_currency ON balances (indicator, currency) WHERE indicator <> '';

CREATE TABLE transactions (
    seq                     BIGSERIAL UNIQUE,
    transaction_id          TEXT PRIMARY KEY,
    parent_transaction      TEXT REFERENCES transactions (transaction_id),
    precise_amount          NUMERIC NOT NULL,
    precision_exponent      INTEGER NOT NULL,
    reference               TEXT NOT NULL UNIQUE,
    description             TEXT NOT NULL DEFAULT '',
    currency                TEXT NOT NULL,
    source                  TEXT NOT NULL,
    destination             TEXT NOT NULL,
    source_balance_id       TEXT NOT NULL REFERENCES balances (balance_id),
    destination_balance_id  TEXT NOT NULL REFERENCES balances (balance_id),
    status                  TEXT NOT NULL,
    allow_overdraft         BOOLEAN NOT NULL,
    inflight                BOOLEAN NOT NULL,
    created_at              TEXT NOT NULL,
    meta_data               TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX transactions_parent ON transactions (parent_transaction) WHERE parent_transaction IS NOT NULL;
CREATE INDEX transactions_queued ON transactions (seq) WHERE status = 'QUEUED';
