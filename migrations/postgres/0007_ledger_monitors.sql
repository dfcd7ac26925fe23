-- Ledger-wide monitors (issue 18). Mirrors migrations/sqlite/0006: one row per rule, and a row of
-- state per (rule, balance) only once that balance's instance differs from a fresh one.
CREATE TABLE ledger_monitors (
    seq                 BIGSERIAL UNIQUE,
    monitor_id          TEXT PRIMARY KEY,
    ledger_id           TEXT NOT NULL REFERENCES ledgers (ledger_id),
    currency            TEXT,
    balance_meta_data   TEXT NOT NULL DEFAULT '{}',
    field               TEXT NOT NULL,
    operator            TEXT NOT NULL,
    value               TEXT NOT NULL,
    precision_exponent  INTEGER NOT NULL,
    precise_value       NUMERIC NOT NULL,
    reset_value         TEXT,
    reset_precise_value NUMERIC,
    window_length       TEXT,
    description         TEXT NOT NULL DEFAULT '',
    call_back_url       TEXT NOT NULL DEFAULT '',
    meta_data           TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    trigger_mode        TEXT NOT NULL,
    action              TEXT NOT NULL,
    auto_transfer       TEXT
);

CREATE INDEX ledger_monitors_ledger ON ledger_monitors (ledger_id);

CREATE TABLE ledger_monitor_states (
    balance_id          TEXT NOT NULL,
    monitor_id          TEXT NOT NULL,
    state               TEXT NOT NULL,
    trigger_count       BIGINT NOT NULL,
    last_triggered_at   TEXT,
    velocity            TEXT,
    PRIMARY KEY (balance_id, monitor_id)
);

CREATE INDEX ledger_monitor_states_rule ON ledger_monitor_states (monitor_id);

-- Whether some rule stored a state for the balance: read with the balance, so a batch reads the
-- states only of balances that have some (a quiet rule over a million balances costs no read).
ALTER TABLE balances ADD COLUMN has_rule_states BOOLEAN NOT NULL DEFAULT FALSE;
