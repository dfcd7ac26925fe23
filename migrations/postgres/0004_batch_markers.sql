-- One row per write transaction, inserted inside it (DESIGN rule 8). When the answer to a COMMIT
-- is lost (a dropped connection, a terminated backend, a failover), the engine cannot tell from
-- the client whether the batch committed; it asks the database instead, on another connection:
-- it inserts the same batch_id with by_probe = true, which waits for the batch's transaction if it
-- is still running, then reads the row back. by_probe = false: the batch's own row, so it
-- committed. by_probe = true: the probe's row, so the batch did not commit, and now never can.
-- Rows are pruned after a day; an unknown outcome is resolved within minutes.
CREATE TABLE batch_markers (
    batch_id    UUID PRIMARY KEY,
    by_probe    BOOLEAN NOT NULL DEFAULT false,
    written_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX batch_markers_written_at ON batch_markers (written_at);
