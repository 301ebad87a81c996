-- Concurrency and rate limits per task name, declared in task plugins' manifests and shared by
-- every host: at most `concurrency_limit` tasks of the name run at once, and at most `rate_limit`
-- start per window of `rate_interval_ms` (`window_start`, `window_starts`: the current window).
-- A fetcher claims a limited name's tasks only while it holds the name's row locked.
ALTER TABLE task_names ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE task_names ADD COLUMN rate_limit INTEGER;
ALTER TABLE task_names ADD COLUMN rate_interval_ms INTEGER;
ALTER TABLE task_names ADD COLUMN window_start TEXT;
ALTER TABLE task_names ADD COLUMN window_starts INTEGER NOT NULL DEFAULT 0;
-- The due tasks of one name, for claiming a limited name's tasks.
CREATE INDEX tasks_due_by_name ON tasks (name, priority, run_at, id) WHERE status IN ('pending', 'retrying');
