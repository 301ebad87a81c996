-- Background tasks: one row per task, the source of truth for scheduling and the audit trail.
-- status: pending → active → completed | retrying → active … | dead; pending → cancelled.
-- A worker claims a due task by setting it active with a lease (`lease_until`); a lease that runs
-- out (the worker died) makes the task claimable again. priority: 0 critical … 3 low.
CREATE TABLE tasks (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    priority       SMALLINT NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL,
    run_at         TIMESTAMPTZ NOT NULL,
    lease_until    TIMESTAMPTZ,
    worker_id      TEXT,
    correlation_id TEXT,
    user_id        TEXT,
    result         TEXT,
    last_error     TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ
);

CREATE INDEX tasks_due ON tasks (priority, run_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX tasks_leased ON tasks (lease_until) WHERE status = 'active';
CREATE INDEX tasks_by_user ON tasks (user_id, id);
CREATE INDEX tasks_by_correlation ON tasks (correlation_id) WHERE correlation_id IS NOT NULL;

-- Every attempt of a task: who ran it, when, and how it ended.
CREATE TABLE task_attempts (
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (task_id, attempt)
);
