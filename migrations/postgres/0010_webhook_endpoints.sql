-- Webhook endpoints (issue 16): subscriptions with their own URL, event types, secret and headers.
-- An endpoint's progress through the outbox is its cursor in `stream_cursors` (`webhook:<id>`);
-- an event gets a row in `endpoint_deliveries` only once its first attempt there failed, so a
-- healthy endpoint writes nothing per event. Mirrors migrations/sqlite/0011.
CREATE TABLE webhook_endpoints (
    endpoint_id  TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    event_types  TEXT NOT NULL,
    secret       TEXT NOT NULL,
    headers      TEXT NOT NULL,
    active       BOOLEAN NOT NULL,
    description  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    -- Blnk's hooks (`/hooks`) are endpoints too: their name, PRE_TRANSACTION or POST_TRANSACTION
    -- (NULL for a `/webhooks` endpoint), and their own timeout and number of attempts.
    name          TEXT NOT NULL,
    hook_type     TEXT,
    timeout_ms    BIGINT,
    max_attempts  BIGINT,
    -- When the last batch of deliveries ended, and whether its last attempt was delivered.
    last_run      TEXT,
    last_success  BOOLEAN
);

CREATE TABLE endpoint_deliveries (
    endpoint_id      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    delivered_at     TEXT,
    PRIMARY KEY (endpoint_id, event_id)
);

-- An endpoint's due retries, oldest first, read without touching another endpoint's.
CREATE INDEX endpoint_deliveries_due ON endpoint_deliveries (endpoint_id, status, next_attempt_at);

-- Which endpoint an attempt was made to; NULL for the server's webhook URL or a monitor's own.
ALTER TABLE event_attempts ADD COLUMN endpoint_id TEXT;
