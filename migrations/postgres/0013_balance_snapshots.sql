-- Balance snapshots (issue 17, `domain::snapshot`): a balance's settled totals at the start of each
-- day it moved, so a balance at an instant is read from one snapshot and the day's transactions.
-- The partial indexes find a balance's transactions by `effective_date` (only rows that have one:
-- they cost nothing to the others, which `transactions_source`/`_destination` find by
-- `created_at`). Mirrors migrations/sqlite/0014.
CREATE TABLE balance_snapshots (
    balance_id     TEXT NOT NULL,
    snapshot_at    TEXT NOT NULL,
    credit_balance NUMERIC NOT NULL,
    debit_balance  NUMERIC NOT NULL,
    PRIMARY KEY (balance_id, snapshot_at)
);
CREATE INDEX transactions_source_effective ON transactions (source_balance_id, effective_date)
    WHERE effective_date IS NOT NULL;
CREATE INDEX transactions_destination_effective ON transactions (destination_balance_id, effective_date)
    WHERE effective_date IS NOT NULL;
