-- Velocity windows' checkpoints, a page per many instead of a page each (issue 18; see
-- src/domain/velocity.rs). A balance's latest checkpoints ride on its own row, which every batch
-- that moves it rewrites anyway, as a compact log; once the log is full it is stored as one
-- chunk, keyed by the version of its last checkpoint. Each existing checkpoint becomes a chunk of
-- one (a log of one checkpoint is its totals as they are).
ALTER TABLE balances ADD COLUMN recent_checkpoints TEXT NOT NULL DEFAULT '';

CREATE TABLE checkpoint_chunks (
    balance_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    entries     TEXT NOT NULL,
    PRIMARY KEY (balance_id, version)
) WITHOUT ROWID;

INSERT INTO checkpoint_chunks (balance_id, version, entries)
    SELECT balance_id, version, at_ms || ',' || debit_balance || ',' || credit_balance || ',' || version
    FROM balance_checkpoints;

DROP TABLE balance_checkpoints;
