-- Balance monitors, and the outbox of events with their delivery attempts.

CREATE TABLE balance_monitors (
    monitor_id          TEXT PRIMARY KEY,
    balance_id          TEXT NOT NULL REFERENCES balances (balance_id),
    field               TEXT NOT NULL,
    operator            TEXT NOT NULL,
    value               TEXT NOT NULL,
    precision_exponent  INTEGER NOT NULL,
    precise_value       TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    call_back_url       TEXT NOT NULL DEFAULT '',
    meta_data           TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    trigger_mode        TEXT NOT NULL,
    state               TEXT NOT NULL,
    trigger_count       INTEGER NOT NULL DEFAULT 0,
    last_triggered_at   TEXT
);

-- The engine loads the monitors of the balances a batch touches: cost per transaction depends on
-- those monitors only, never on how many monitors exist.
CREATE INDEX balance_monitors_balance ON balance_monitors (balance_id);

-- The outbox. `body` is the webhook body rendered when the event happened. `monitor_id` has no
-- foreign key: a monitor's history outlives the monitor.
CREATE TABLE events (
    event_id         TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    url              TEXT,
    monitor_id       TEXT,
    transaction_id   TEXT,
    created_at       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    delivered_at     TEXT
);

CREATE INDEX events_due ON events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX events_monitor ON events (monitor_id) WHERE monitor_id IS NOT NULL;
CREATE INDEX events_status ON events (status);

-- Every delivery attempt, for the delivery log. `attempt` counts from 1 again after a manual
-- redelivery, so the log is ordered by rowid.
CREATE TABLE event_attempts (
    event_id     TEXT NOT NULL REFERENCES events (event_id),
    attempt      INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL
);

CREATE INDEX event_attempts_event ON event_attempts (event_id);
