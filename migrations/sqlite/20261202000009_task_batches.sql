-- The queue engine claims and retires tasks in batches.
-- Claims walk the due index in claim order (priority, then due time, then id) and stop at the
-- batch size, so they cost the same with any number of finished tasks in the table.
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (priority, run_at, id) WHERE status IN ('pending', 'retrying');
-- Retention removes the oldest finished tasks (completed, dead, cancelled) in bounded batches.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
