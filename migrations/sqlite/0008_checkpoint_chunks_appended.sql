-- Velocity checkpoint chunks stored in the order they are written (issue 18). Keyed by
-- (balance_id, version) themselves, each new chunk (a few hundred bytes) landed at a random place
-- in a B-tree of a dozen rows a page, splitting a page every few inserts; SQLite's rebalancing of
-- the split renumbers pages through the locking page's number, after which the commit scans the
-- writer's whole page cache (docs/performance.md). Appended under an integer key, a chunk fills
-- the last page; only the small index entry lands at a random place.
CREATE TABLE checkpoint_chunks_appended (
    chunk_id    INTEGER PRIMARY KEY,
    balance_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    entries     TEXT NOT NULL
);

INSERT INTO checkpoint_chunks_appended (balance_id, version, entries)
    SELECT balance_id, version, entries FROM checkpoint_chunks;

DROP TABLE checkpoint_chunks;
ALTER TABLE checkpoint_chunks_appended RENAME TO checkpoint_chunks;
CREATE UNIQUE INDEX checkpoint_chunks_balance ON checkpoint_chunks (balance_id, version);
