-- Blnk's money movement. Its per-transaction overdraft limit (minor units; 0 = none) and effective date (RFC 3339 in
-- UTC; NULL = created_at). Kept on the row: a queued transaction is applied later, by the rules it
-- was accepted with. Mirrors migrations/sqlite/0004.
ALTER TABLE transactions ADD COLUMN overdraft_limit NUMERIC NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN effective_date TEXT;

-- The split request a leg belongs to (Blnk's parent_transaction for legs). Not a row of this table,
-- so not a foreign key: parent_transaction stays one, for commits, voids and refunds.
ALTER TABLE transactions ADD COLUMN group_id TEXT;
CREATE INDEX transactions_group ON transactions (group_id) WHERE group_id IS NOT NULL;

-- Time: a SCHEDULED transaction waits for scheduled_for, then goes as a queued one; an inflight
-- one is voided at inflight_expiry_date or committed at inflight_commit_date (RFC 3339 in UTC, so
-- text order is time order). `keel serve` looks for due ones every second (src/scheduler.rs).
ALTER TABLE transactions ADD COLUMN scheduled_for TEXT;
ALTER TABLE transactions ADD COLUMN inflight_expiry_date TEXT;
ALTER TABLE transactions ADD COLUMN inflight_commit_date TEXT;
CREATE INDEX transactions_scheduled ON transactions (scheduled_for) WHERE status = 'SCHEDULED';
CREATE INDEX transactions_expiring ON transactions (inflight_expiry_date) WHERE status = 'INFLIGHT' AND inflight_expiry_date IS NOT NULL;
CREATE INDEX transactions_committing ON transactions (inflight_commit_date) WHERE status = 'INFLIGHT' AND inflight_commit_date IS NOT NULL;
