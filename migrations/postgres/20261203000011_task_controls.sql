-- What teams steer tasks with: unique tasks, pausing a task name, progress, and schedules.

-- A task scheduled with a unique key is the only one of its name with that key waiting or
-- running: scheduling another returns it. The index makes that hold across every host.
ALTER TABLE tasks ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX tasks_unique ON tasks (name, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('pending', 'retrying', 'active');
-- The schedule whose tick made the task, if one did.
ALTER TABLE tasks ADD COLUMN schedule_name TEXT;
CREATE INDEX tasks_by_schedule ON tasks (schedule_name, id) WHERE schedule_name IS NOT NULL;
-- What a running task last said of its progress (a JSON value).
ALTER TABLE tasks ADD COLUMN progress TEXT;

-- Per task name controls shared by every host: a paused name is not claimed.
CREATE TABLE task_names (
    name       TEXT PRIMARY KEY,
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT
);

-- Repeatable tasks: each tick schedules one task. A host fires a due schedule by locking its row,
-- storing the tick's task and moving `next_run_at` on, in one transaction, so each tick runs once
-- whichever hosts are up. `plugin` is the plugin whose manifest declares it (NULL: made through
-- the API).
CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    plugin       TEXT,
    task         TEXT NOT NULL,
    cron         TEXT,
    timezone     TEXT,
    every_ms     BIGINT,
    payload      TEXT NOT NULL,
    missed       TEXT NOT NULL,
    paused       BOOLEAN NOT NULL DEFAULT FALSE,
    next_run_at  TIMESTAMPTZ NOT NULL,
    last_run_at  TIMESTAMPTZ,
    last_task_id TEXT,
    created_by   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused;
