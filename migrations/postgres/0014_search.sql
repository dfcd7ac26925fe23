-- Search (issue 17, `domain::search`): each searchable record's index terms (`field.token`) as a
-- tsvector of literal lexemes (no dictionary), found by GIN. Filled by the search indexer
-- (`src/search.rs`) from the outbox (transactions) and from `search_dirty` (records created or
-- changed otherwise), so writes never wait for it. Mirrors migrations/sqlite/0015.
CREATE TABLE search_index (
    collection TEXT NOT NULL,
    entity_seq BIGINT NOT NULL,
    terms      TSVECTOR NOT NULL,
    PRIMARY KEY (collection, entity_seq)
);
CREATE INDEX search_index_terms ON search_index USING GIN (terms);
-- Records whose terms are to be (re)written, in the commit that created or changed them.
CREATE TABLE search_dirty (
    position   BIGSERIAL PRIMARY KEY,
    collection TEXT NOT NULL,
    entity_id  TEXT NOT NULL
);
