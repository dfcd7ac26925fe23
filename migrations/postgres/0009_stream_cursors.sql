-- Broker streams (issue 16). Mirrors migrations/sqlite/0010: per stream, the outbox position (`seq`)
-- of the last event its broker confirmed, and which process publishes it, under a lease so one
-- process publishes at a time and another takes over once it stops renewing.
CREATE TABLE stream_cursors (
    stream       TEXT PRIMARY KEY,
    sequence     BIGINT NOT NULL,
    owner        TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0
);
