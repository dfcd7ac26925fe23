-- Balance monitors, the outbox of events, and delivery attempts. Mirrors migrations/sqlite/0002.

CREATE TABLE balance_monitors (
    seq                 BIGSERIAL UNIQUE,
    monitor_id          TEXT PRIMARY KEY,
    balance_id          TEXT NOT NULL REFERENCES balances (balance_id),
    field               TEXT NOT NULL,
    operator            TEXT NOT NULL,
    value               TEXT NOT NULL,
    precision_exponent  INTEGER NOT NULL,
    precise_value       NUMERIC NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    call_back_url       TEXT NOT NULL DEFAULT '',
    meta_data           TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    trigger_mode        TEXT NOT NULL,
    state               TEXT NOT NULL,
    trigger_count       BIGINT NOT NULL DEFAULT 0,
    last_triggered_at   TEXT
);

CREATE INDEX balance_monitors_balance ON balance_monitors (balance_id);

CREATE TABLE events (
    seq              BIGSERIAL UNIQUE,
    event_id         TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    url              TEXT,
    monitor_id       TEXT,
    transaction_id   TEXT,
    created_at       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    delivered_at     TEXT
);

CREATE INDEX events_due ON events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX events_monitor ON events (monitor_id) WHERE monitor_id IS NOT NULL;
CREATE INDEX events_status ON events (status);

CREATE TABLE event_attempts (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL REFERENCES events (event_id),
    attempt      INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  BIGINT NOT NULL
);

CREATE INDEX event_attempts_event ON event_attempts (event_id);
