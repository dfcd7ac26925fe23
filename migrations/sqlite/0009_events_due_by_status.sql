-- The dispatcher's claim (`status = 'pending' AND next_attempt_at <= now ORDER BY next_attempt_at`)
-- must read only the due events. SQLite's planner, with no statistics, preferred `events_status`
-- (an equality) over `events_due` (a range) and then read and sorted every pending event for each
-- claim of a few: the outbox's cost grew with its backlog, so a backlog never drained under load
-- (issue 16). With `status` leading this index too, it serves the equality, the range and the
-- order, and the planner takes it.
DROP INDEX events_due;
CREATE INDEX events_due ON events (status, next_attempt_at) WHERE status = 'pending';
