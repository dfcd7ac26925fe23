-- Ledger core: ledgers, balances, transactions.
-- Amounts are decimal integer text of any size (SQLite integers stop at 64 bits); the engine does the
-- arithmetic, so no SQL ever adds two amounts. Lists are ordered by rowid, which is insertion order.

CREATE TABLE ledgers (
    ledger_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    meta_data   TEXT NOT NULL DEFAULT '{}'
);

INSERT INTO ledgers (ledger_id, name, created_at, meta_data)
VALUES ('general_ledger_id', 'General Ledger', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), '{}');

CREATE TABLE balances (
    balance_id               TEXT PRIMARY KEY,
    ledger_id                TEXT NOT NULL REFERENCES ledgers (ledger_id),
    identity_id              TEXT NOT NULL DEFAULT '',
    indicator                TEXT NOT NULL DEFAULT '',
    currency                 TEXT NOT NULL,
    credit_balance           TEXT NOT NULL DEFAULT '0',
    debit_balance            TEXT NOT NULL DEFAULT '0',
    inflight_credit_balance  TEXT NOT NULL DEFAULT '0',
    inflight_debit_balance   TEXT NOT NULL DEFAULT '0',
    version                  INTEGER NOT NULL DEFAULT 0,
    created_at               TEXT NOT NULL,
    meta_data                TEXT NOT NULL DEFAULT '{}'
);

-- One indicator balance per currency: `@World` in USD is one balance, created on first use.
CREATE UNIQUE INDEX balances_indicator_currency ON balances (indicator, currency) WHERE indicator <> '';

CREATE TABLE transactions (
    transaction_id          TEXT PRIMARY KEY,
    parent_transaction      TEXT REFERENCES transactions (transaction_id),
    precise_amount          TEXT NOT NULL,
    precision_exponent      INTEGER NOT NULL,
    reference               TEXT NOT NULL UNIQUE,
    description             TEXT NOT NULL DEFAULT '',
    currency                TEXT NOT NULL,
    source                  TEXT NOT NULL,
    destination             TEXT NOT NULL,
    source_balance_id       TEXT NOT NULL REFERENCES balances (balance_id),
    destination_balance_id  TEXT NOT NULL REFERENCES balances (balance_id),
    status                  TEXT NOT NULL,
    allow_overdraft         INTEGER NOT NULL,
    inflight                INTEGER NOT NULL,
    created_at              TEXT NOT NULL,
    meta_data               TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX transactions_parent ON transactions (parent_transaction) WHERE parent_transaction IS NOT NULL;
-- rowid is arrival order: the order the log replays in and queued transactions are applied in.
CREATE INDEX transactions_queued ON transactions (status) WHERE status = 'QUEUED';
