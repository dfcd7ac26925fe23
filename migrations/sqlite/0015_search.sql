-- Search (issue 17, `domain::search`): each searchable record's index terms (`field.token`), one
-- FTS5 table per collection, its rowid the record's. Filled by the search indexer (`src/search.rs`)
-- from the outbox (transactions) and from `search_dirty` (records created or changed otherwise), so
-- writes never wait for it. Terms are Keel's tokens: the tokenizer keeps each term whole ('.' and
-- '_' are part of it) and, like PostgreSQL's, keeps accents. Mirrors migrations/postgres/0014.
CREATE VIRTUAL TABLE search_ledgers USING fts5(terms, tokenize = "unicode61 remove_diacritics 0 tokenchars '._'");
CREATE VIRTUAL TABLE search_balances USING fts5(terms, tokenize = "unicode61 remove_diacritics 0 tokenchars '._'");
CREATE VIRTUAL TABLE search_transactions USING fts5(terms, tokenize = "unicode61 remove_diacritics 0 tokenchars '._'");
CREATE VIRTUAL TABLE search_identities USING fts5(terms, tokenize = "unicode61 remove_diacritics 0 tokenchars '._'");
-- Records whose terms are to be (re)written, in the commit that created or changed them. (No
-- AUTOINCREMENT: a position reused after its entry left the queue is harmless, and it saves a write.)
CREATE TABLE search_dirty (
    position   INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    entity_id  TEXT NOT NULL
);
