-- Broker streams (issue 16): per stream, the outbox position of the last event its broker
-- confirmed, and which process publishes it. The lease lets one process publish at a time where
-- several share a database (PostgreSQL); another takes over once it stops renewing.
CREATE TABLE stream_cursors (
    stream       TEXT PRIMARY KEY,
    sequence     INTEGER NOT NULL,
    owner        TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0
);
