-- Monitors beyond Blnk's (issue 18): a re-arm level for edge monitors (`condition.reset_value`, major
-- units as text, and its exact minor-unit value; NULL = re-arm as soon as the condition stops
-- holding) and what a monitor does besides its events (`notify`, or `reject`: a guard).
ALTER TABLE balance_monitors ADD COLUMN reset_value TEXT;
ALTER TABLE balance_monitors ADD COLUMN reset_precise_value NUMERIC;
ALTER TABLE balance_monitors ADD COLUMN action TEXT NOT NULL DEFAULT 'notify';
