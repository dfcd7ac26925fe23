-- Lists and filters (issue 17). Lists are newest first by `created_at`, then arrival (rowid), as
-- Blnk orders them; every index ends in rowid, so an equality on its first column and that order
-- are both served by the index: `source_balance_id = ? ORDER BY created_at DESC, rowid DESC
-- LIMIT 20` reads 20 entries, however many transactions the balance has.
CREATE INDEX transactions_created ON transactions (created_at);
CREATE INDEX transactions_source ON transactions (source_balance_id, created_at);
CREATE INDEX transactions_destination ON transactions (destination_balance_id, created_at);
CREATE INDEX transactions_status ON transactions (status, created_at);
CREATE INDEX balances_created ON balances (created_at);
CREATE INDEX balances_ledger ON balances (ledger_id, created_at);
CREATE INDEX ledgers_created ON ledgers (created_at);
