-- Velocity windows' checkpoints, a page per many instead of a page each (issue 18). Mirrors
-- migrations/sqlite/0007: a balance's latest checkpoints ride on its own row as a compact log;
-- once full, the log is stored as one chunk keyed by the version of its last checkpoint. Each
-- existing checkpoint becomes a chunk of one.
ALTER TABLE balances ADD COLUMN recent_checkpoints TEXT NOT NULL DEFAULT '';

CREATE TABLE checkpoint_chunks (
    balance_id  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    entries     TEXT NOT NULL,
    PRIMARY KEY (balance_id, version)
);

INSERT INTO checkpoint_chunks (balance_id, version, entries)
    SELECT balance_id, version,
           at_ms::text || ',' || debit_balance::text || ',' || credit_balance::text || ',' || version::text
    FROM balance_checkpoints;

DROP TABLE balance_checkpoints;
