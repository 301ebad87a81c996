-- Keeps the cost of claiming and finishing flat while the table churns.
--
-- Finishing looks tasks up by id. A partial index on `status = 'active'` matched the finish's
-- guard, so the planner walked it instead of the primary key, and with it every entry left behind
-- by tasks finished since the last vacuum. Leased rows are the active ones (a claim sets the
-- lease, every end clears it): index them by the lease, which only the expired-lease claim reads.
DROP INDEX tasks_leased;
CREATE INDEX tasks_leased ON tasks (lease_until) WHERE lease_until IS NOT NULL;
-- Each change of a task's status writes a new entry in every index over the row. Most tasks are
-- scheduled by plugins, not users: index only the rows with a user, so the rest skip that write.
DROP INDEX tasks_by_user;
CREATE INDEX tasks_by_user ON tasks (user_id, id) WHERE user_id IS NOT NULL;
