-- Monitors beyond Blnk's (issue 18): a re-arm level for edge monitors (`condition.reset_value`, major
-- units as text, and its exact minor-unit value; NULL = re-arm as soon as the condition stops
-- holding) and what a monitor does besides its events (`notify`, or `reject`: a guard).
ALTER TABLE balance_monitors ADD COLUMN reset_value TEXT;
ALTER TABLE balance_monitors ADD COLUMN reset_precise_value TEXT;
ALTER TABLE balance_monitors ADD COLUMN action TEXT NOT NULL DEFAULT 'notify';

-- Velocity monitors: the window of `debit_volume`, `credit_volume` or `transaction_count` as
-- written (`24h`), and the window's state (the balance's totals at its start, as JSON; see
-- src/domain/velocity.rs).
ALTER TABLE balance_monitors ADD COLUMN window_length TEXT;
ALTER TABLE balance_monitors ADD COLUMN velocity TEXT;

-- What a monitor with `action: transfer` records when it triggers (JSON; see AutoTransfer in
-- src/domain/monitor.rs).
ALTER TABLE balance_monitors ADD COLUMN auto_transfer TEXT;

-- A balance's running totals at the end of each batch that moved it, kept only for balances with
-- a velocity monitor and only as far back as their longest window reaches: what moved in a window
-- is the difference of the totals now and at the window's start.
CREATE TABLE balance_checkpoints (
    balance_id      TEXT NOT NULL,
    at_ms           INTEGER NOT NULL,
    debit_balance   TEXT NOT NULL,
    credit_balance  TEXT NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (balance_id, at_ms)
) WITHOUT ROWID; -- one B-tree, keyed as it is read: a row per moved balance per batch is the cost
