-- Blnk's per-transaction overdraft limit (minor units, as text like every amount; 0 = none) and
-- effective date (RFC 3339 in UTC; NULL = created_at). Kept on the row: a queued transaction is
-- applied later, by the rules it was accepted with.
ALTER TABLE transactions ADD COLUMN overdraft_limit TEXT NOT NULL DEFAULT '0';
ALTER TABLE transactions ADD COLUMN effective_date TEXT;
