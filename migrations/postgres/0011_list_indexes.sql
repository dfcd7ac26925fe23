-- Lists and filters (issue 17). Lists are newest first by `created_at`, then arrival (`seq`), as
-- Blnk orders them; an equality on an index's first column and that order are both served by the
-- index. Mirrors migrations/sqlite/0012.
CREATE INDEX transactions_created ON transactions (created_at, seq);
CREATE INDEX transactions_source ON transactions (source_balance_id, created_at, seq);
CREATE INDEX transactions_destination ON transactions (destination_balance_id, created_at, seq);
CREATE INDEX transactions_status ON transactions (status, created_at, seq);
CREATE INDEX balances_created ON balances (created_at, seq);
CREATE INDEX balances_ledger ON balances (ledger_id, created_at, seq);
CREATE INDEX ledgers_created ON ledgers (created_at, seq);
