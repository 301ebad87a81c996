//! Repository of background tasks (`tasks`) and their attempts (`task_attempts`), written in
//! batches: many tasks stored, claimed or finished per statement. A claim is atomic, so two
//! workers never hold the same task: on PostgreSQL the candidate rows are locked with
//! `FOR UPDATE SKIP LOCKED`, and SQLite runs one write at a time. Batches travel as one array per
//! column on PostgreSQL (`unnest`) and as one JSON array on SQLite (`json_each`), so each
//! statement is prepared once whatever the batch size.

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub name: String,
    /// A JSON value, as text.
    pub payload: String,
    /// 0 critical … 3 low.
    pub priority: i16,
    pub status: TaskStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub correlation_id: Option<String>,
    pub user_id: Option<String>,
    pub result: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Held by at most one waiting or running task of this name at a time.
    pub unique_key: Option<String>,
    /// The schedule whose tick made this task.
    pub schedule_name: Option<String>,
    /// What the running (or last) attempt reported of its progress: a JSON value, as text.
    pub progress: Option<String>,
    /// The trace context (`traceparent`) of what scheduled the task, when traces are exported.
    pub trace_parent: Option<String>,
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// Which tasks a listing shows; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub name: Option<String>,
    pub correlation_id: Option<String>,
    /// Only the tasks this schedule's ticks made.
    pub schedule_name: Option<String>,
    /// Only this user's tasks; `None` shows everyone's.
    pub user_id: Option<String>,
    /// Newest first (pages continue with older tasks) instead of oldest first.
    pub newest_first: bool,
}

/// Times a batch with unique keys is tried while the tasks holding its keys finish under it.
const UNIQUE_TRIES: usize = 3;

/// How an attempt ended, as the record should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Completed {
        result: String,
    },
    /// Run again at `run_at`.
    Retrying {
        error: String,
        run_at: DateTime<Utc>,
    },
    Dead {
        error: String,
    },
}

/// Where a task is in its life; stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Active,
    Retrying,
    Completed,
    Dead,
    Cancelled,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Active,
        TaskStatus::Retrying,
        TaskStatus::Completed,
        TaskStatus::Dead,
        TaskStatus::Cancelled,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Active => "active",
            TaskStatus::Retrying => "retrying",
            TaskStatus::Completed => "completed",
            TaskStatus::Dead => "dead",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// The status called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for TaskStatus
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for TaskStatus
where
    &'q str: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for TaskStatus
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let name = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
        Self::parse(name).ok_or_else(|| format!("`{name}` is not a task status").into())
    }
}

macro_rules! columns {
    () => {
        "id, name, payload, priority, status, attempts, max_attempts, run_at, lease_until, worker_id, \
         correlation_id, user_id, result, last_error, created_at, updated_at, finished_at, unique_key, \
         schedule_name, progress, trace_parent"
    };
}

const BY_ID: &str = concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1");
/// The filters of a page of tasks, after the cursor `$1`.
macro_rules! page_filters {
    () => {
        "(CAST($2 AS TEXT) IS NULL OR status = $2) AND (CAST($3 AS TEXT) IS NULL OR name = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR correlation_id = $4) AND (CAST($5 AS TEXT) IS NULL OR user_id = $5) \
         AND (CAST($7 AS TEXT) IS NULL OR schedule_name = $7)"
    };
}
const PAGE: &str =
    concat!("SELECT ", columns!(), " FROM tasks WHERE id > $1 AND ", page_filters!(), " ORDER BY id LIMIT $6");
/// Newest first: ids are UUIDv7, ordered by creation; an empty cursor starts at the newest.
const PAGE_NEWEST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM tasks WHERE ($1 = '' OR id < $1) AND ",
    page_filters!(),
    " ORDER BY id DESC LIMIT $6"
);

/// Stores a batch of tasks given as one array per column.
const INSERT_POSTGRES: &str = concat!(
    "INSERT INTO tasks (",
    columns!(),
    ") SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::int4[], $7::int4[], \
     $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
     $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::text[], $19::text[], $20::text[], $21::text[])"
);
/// Stores a batch of tasks given as a JSON array of rows.
const INSERT_SQLITE: &str = concat!(
    "INSERT INTO tasks (",
    columns!(),
    ") SELECT value->>'id', value->>'name', value->>'payload', value->>'priority', value->>'status', \
     value->>'attempts', value->>'max_attempts', value->>'run_at', value->>'lease_until', value->>'worker_id', \
     value->>'correlation_id', value->>'user_id', value->>'result', value->>'last_error', value->>'created_at', \
     value->>'updated_at', value->>'finished_at', value->>'unique_key', value->>'schedule_name', \
     value->>'progress', value->>'trace_parent' FROM json_each($1)"
);
/// What follows an insert whose batch holds unique keys: a task whose key is held already is not
/// stored, and the ids of those stored come back. (SQLite needs the `WHERE` to parse the clause.)
const INSERT_UNIQUE_POSTGRES: &str = " ON CONFLICT DO NOTHING RETURNING id";
const INSERT_UNIQUE_SQLITE: &str = " WHERE true ON CONFLICT DO NOTHING RETURNING id";
/// The waiting or running task of name `$1` holding unique key `$2`.
const HOLDING_KEY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM tasks WHERE name = $1 AND unique_key = $2 AND status IN ('pending', 'retrying', 'active')"
);

/// The task names a plain claim leaves alone: paused ones, and limited ones (claimed under their
/// limits by [`Database::claim_limited_tasks`]).
macro_rules! held_names {
    () => {
        "SELECT name FROM task_names WHERE paused OR concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL"
    };
}

/// Claims up to `$4` tasks for worker `$1` until `$3`: first those whose worker's lease ran out by
/// `$2`, then the most urgent due ones, of names not held ([`held_names`]); each claim starts an
/// attempt row. One statement, so a record is never active without its attempt, and rows another
/// fetcher is claiming are skipped.
const CLAIM_POSTGRES: &str = concat!(
    "WITH held AS (",
    held_names!(),
    "), \
     expired AS (SELECT id FROM tasks WHERE status = 'active' AND lease_until < $2 \
       AND name NOT IN (SELECT name FROM held) ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED), \
     due AS (SELECT id FROM tasks WHERE status IN ('pending', 'retrying') AND run_at <= $2 \
       AND name NOT IN (SELECT name FROM held) ORDER BY priority, run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED), \
     picked AS (SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $4), \
     claimed AS (UPDATE tasks SET status = 'active', attempts = tasks.attempts + 1, worker_id = $1, \
       lease_until = $3, updated_at = $2, progress = NULL FROM picked WHERE tasks.id = picked.id RETURNING tasks.*), \
     started AS (INSERT INTO task_attempts (task_id, attempt, worker_id, started_at) \
       SELECT id, attempts, $1, $2 FROM claimed) \
     SELECT ",
    columns!(),
    " FROM claimed"
);
/// The claim on SQLite, whose one writer at a time makes the pick and the update atomic; the
/// attempt rows follow in the same transaction ([`START_ATTEMPTS_SQLITE`]).
const CLAIM_SQLITE: &str = concat!(
    "UPDATE tasks SET status = 'active', attempts = attempts + 1, worker_id = $1, lease_until = $3, updated_at = $2, \
     progress = NULL WHERE id IN (SELECT id FROM (SELECT id FROM tasks WHERE status = 'active' AND lease_until < $2 \
         AND name NOT IN (",
    held_names!(),
    ") ORDER BY lease_until LIMIT $4) \
       UNION ALL SELECT id FROM (SELECT id FROM tasks WHERE status IN ('pending', 'retrying') AND run_at <= $2 \
         AND name NOT IN (",
    held_names!(),
    ") ORDER BY priority, run_at, id LIMIT $4) \
       LIMIT $4) \
     RETURNING ",
    columns!()
);
/// A claim of up to `$4` tasks of name `$5` picked by `$pick`, for worker `$1` until `$3` at `$2`,
/// with their attempt rows (PostgreSQL).
macro_rules! claim_name_postgres {
    ($pick:expr) => {
        concat!(
            "WITH picked AS (",
            $pick,
            " FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE tasks SET status = 'active', attempts = tasks.attempts + 1, worker_id = $1, \
               lease_until = $3, updated_at = $2, progress = NULL FROM picked WHERE tasks.id = picked.id \
               RETURNING tasks.*), \
             started AS (INSERT INTO task_attempts (task_id, attempt, worker_id, started_at) \
               SELECT id, attempts, $1, $2 FROM claimed) \
             SELECT ",
            columns!(),
            " FROM claimed"
        )
    };
}
/// The same on SQLite, whose attempt rows follow ([`START_ATTEMPTS_SQLITE`]).
macro_rules! claim_name_sqlite {
    ($pick:expr) => {
        concat!(
            "UPDATE tasks SET status = 'active', attempts = attempts + 1, worker_id = $1, lease_until = $3, \
             updated_at = $2, progress = NULL WHERE id IN (",
            $pick,
            ") RETURNING ",
            columns!()
        )
    };
}
macro_rules! expired_of_name {
    () => {
        "SELECT id FROM tasks WHERE name = $5 AND status = 'active' AND lease_until < $2 ORDER BY lease_until LIMIT $4"
    };
}
macro_rules! due_of_name {
    () => {
        "SELECT id FROM tasks WHERE name = $5 AND status IN ('pending', 'retrying') AND run_at <= $2 \
         ORDER BY priority, run_at, id LIMIT $4"
    };
}
/// Claims of one limited name's tasks: those whose lease ran out, and due ones.
pub(super) const CLAIM_EXPIRED_OF_NAME_POSTGRES: &str = claim_name_postgres!(expired_of_name!());
pub(super) const CLAIM_DUE_OF_NAME_POSTGRES: &str = claim_name_postgres!(due_of_name!());
pub(super) const CLAIM_EXPIRED_OF_NAME_SQLITE: &str = claim_name_sqlite!(expired_of_name!());
pub(super) const CLAIM_DUE_OF_NAME_SQLITE: &str = claim_name_sqlite!(due_of_name!());
/// Starts an attempt row for each task whose id is in JSON array `$1`, claimed at `$2`.
pub(super) const START_ATTEMPTS_SQLITE: &str = "INSERT INTO task_attempts (task_id, attempt, worker_id, started_at) \
     SELECT id, attempts, worker_id, $2 FROM tasks WHERE id IN (SELECT value FROM json_each($1))";

/// Records a batch of outcomes given as one array per field, each only if its worker still holds
/// that attempt; returns the ids recorded. The attempt rows say `lease-lost` for the others, and
/// an attempt already finished keeps its outcome (an outcome delivered twice changes nothing).
/// One statement, so the record and its attempt always agree. (`IN (SELECT id FROM done)` is one
/// hashed lookup per outcome; a join against `done` was planned as a nested loop, quadratic in
/// the batch.)
const FINISH_POSTGRES: &str = "WITH outcome AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], \
       $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[]) \
       AS o(id, worker_id, attempt, status, result, error, run_at, at)), \
     done AS (UPDATE tasks SET status = o.status, result = o.result, last_error = COALESCE(o.error, tasks.last_error), \
       run_at = COALESCE(o.run_at, tasks.run_at), lease_until = NULL, \
       finished_at = CASE WHEN o.status = 'retrying' THEN NULL ELSE o.at END, updated_at = o.at \
       FROM outcome o WHERE tasks.id = o.id AND tasks.worker_id = o.worker_id AND tasks.attempts = o.attempt \
       AND tasks.status = 'active' RETURNING tasks.id), \
     attempt AS (UPDATE task_attempts SET finished_at = o.at, error = o.error, \
       outcome = CASE WHEN o.id IN (SELECT id FROM done) THEN o.status ELSE 'lease-lost' END \
       FROM outcome o WHERE task_attempts.task_id = o.id AND task_attempts.attempt = o.attempt \
       AND task_attempts.finished_at IS NULL) \
     SELECT id FROM done";
/// The outcomes of JSON array `$1` as rows, for the SQLite statements below.
macro_rules! sqlite_outcomes {
    () => {
        "(SELECT value->>'id' AS id, value->>'worker_id' AS worker_id, value->>'attempt' AS attempt, \
         value->>'status' AS status, value->>'result' AS result, value->>'error' AS error, \
         value->>'run_at' AS run_at, value->>'at' AS at FROM json_each($1)) AS o"
    };
}
/// Finishes the attempt rows of a batch of outcomes, before [`FINISH_SQLITE`] changes the records
/// the `lease-lost` check reads (both run in one transaction).
const FINISH_ATTEMPTS_SQLITE: &str = concat!(
    "UPDATE task_attempts SET finished_at = o.at, error = o.error, \
     outcome = CASE WHEN EXISTS (SELECT 1 FROM tasks WHERE tasks.id = o.id AND tasks.worker_id = o.worker_id \
       AND tasks.attempts = o.attempt AND tasks.status = 'active') THEN o.status ELSE 'lease-lost' END FROM ",
    sqlite_outcomes!(),
    " WHERE task_attempts.task_id = o.id AND task_attempts.attempt = o.attempt \
     AND task_attempts.finished_at IS NULL"
);
const FINISH_SQLITE: &str = concat!(
    "UPDATE tasks SET status = o.status, result = o.result, last_error = COALESCE(o.error, tasks.last_error), \
     run_at = COALESCE(o.run_at, tasks.run_at), lease_until = NULL, \
     finished_at = CASE WHEN o.status = 'retrying' THEN NULL ELSE o.at END, updated_at = o.at FROM ",
    sqlite_outcomes!(),
    " WHERE tasks.id = o.id AND tasks.worker_id = o.worker_id AND tasks.attempts = o.attempt \
     AND tasks.status = 'active' RETURNING tasks.id"
);

const ATTEMPTS: &str = "SELECT attempt, worker_id, started_at, finished_at, outcome, error \
     FROM task_attempts WHERE task_id = $1 ORDER BY attempt";
/// Cancels task `$1` if it waits or runs; its running attempt, if any, ends `cancelled` too.
/// Returns the worker that was running it (`NULL` if it was waiting).
const CANCEL_POSTGRES: &str = "WITH cancelled AS (UPDATE tasks SET status = 'cancelled', finished_at = $2, updated_at = $2, \
       lease_until = NULL FROM (SELECT id, status AS was, worker_id AS runner FROM tasks WHERE id = $1 FOR UPDATE) old \
       WHERE tasks.id = old.id AND old.was IN ('pending', 'retrying', 'active') \
       RETURNING tasks.attempts, CASE WHEN old.was = 'active' THEN old.runner END AS runner), \
     attempt AS (UPDATE task_attempts SET finished_at = $2, outcome = 'cancelled' FROM cancelled \
       WHERE task_attempts.task_id = $1 AND task_attempts.attempt = cancelled.attempts \
       AND task_attempts.finished_at IS NULL) \
     SELECT runner FROM cancelled";
/// The cancel on SQLite, in one write transaction: the record's status and worker read first, then
/// its running attempt and the record itself changed.
const CANCEL_READ_SQLITE: &str = "SELECT status, worker_id, attempts FROM tasks WHERE id = $1";
const CANCEL_ATTEMPT_SQLITE: &str = "UPDATE task_attempts SET finished_at = $2, outcome = 'cancelled' \
     WHERE task_id = $1 AND attempt = $3 AND finished_at IS NULL";
const CANCEL_SQLITE: &str = "UPDATE tasks SET status = 'cancelled', finished_at = $2, updated_at = $2, lease_until = NULL \
     WHERE id = $1";
const REVIVE: &str = concat!(
    "UPDATE tasks SET status = 'pending', max_attempts = attempts + $3, run_at = $2, \
     finished_at = NULL, updated_at = $2 WHERE id = $1 AND status = 'dead' RETURNING ",
    columns!()
);
const PROGRESS: &str = "UPDATE tasks SET progress = $4, updated_at = $5 \
     WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'active'";
/// Which of the tasks `$2` worker `$1` still holds.
const HELD_POSTGRES: &str = "SELECT id FROM tasks WHERE id = ANY($2) AND worker_id = $1 AND status = 'active'";
const HELD_SQLITE: &str = "SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each($2)) AND worker_id = $1 \
     AND status = 'active'";
const SET_PAUSED: &str = "INSERT INTO task_names (name, paused, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at, \
     updated_by = excluded.updated_by";
const PAUSED: &str = "SELECT name, updated_at AS paused_at, updated_by AS paused_by FROM task_names \
     WHERE paused ORDER BY name";
const COUNT_BY_NAME: &str = "SELECT name, status, COUNT(*) FROM tasks GROUP BY name, status ORDER BY name, status";
/// Ends the open attempt rows of the tasks worker `$1` holds, at `$2`, as handed back.
const RELEASE_ATTEMPTS: &str = "UPDATE task_attempts SET finished_at = $2, outcome = 'released', \
     error = 'the worker stopped before the attempt finished; the task was handed back to the queue' \
     WHERE finished_at IS NULL AND (task_id, attempt) IN \
       (SELECT id, attempts FROM tasks WHERE worker_id = $1 AND status = 'active')";
/// Makes the tasks worker `$1` holds due again at `$2`; the attempt they used is given back.
const RELEASE_TASKS: &str = "UPDATE tasks SET status = 'pending', run_at = $2, lease_until = NULL, worker_id = NULL, \
     max_attempts = max_attempts + 1, progress = NULL, updated_at = $2 WHERE worker_id = $1 AND status = 'active'";
/// Per priority: the earliest due time of the waiting tasks due by `$1`, and how many there are.
const OLDEST_DUE: &str = "SELECT priority, MIN(run_at), COUNT(*) FROM tasks \
     WHERE status IN ('pending', 'retrying') AND run_at <= $1 GROUP BY priority ORDER BY priority";
const COUNT_BY_STATUS: &str = "SELECT COUNT(*) FROM tasks WHERE status = $1";
/// Per minute since `$1` (minutes since the Unix epoch): the tasks that finished completed and
/// dead, read through the index over finish times.
const THROUGHPUT_POSTGRES: &str = "SELECT (floor(extract(epoch FROM finished_at) / 60))::int8 AS minute, \
     COUNT(*) FILTER (WHERE status = 'completed'), COUNT(*) FILTER (WHERE status = 'dead') \
     FROM tasks WHERE finished_at >= $1 GROUP BY minute ORDER BY minute";
const THROUGHPUT_SQLITE: &str = "SELECT CAST(strftime('%s', finished_at) AS INTEGER) / 60 AS minute, \
     SUM(status = 'completed'), SUM(status = 'dead') \
     FROM tasks WHERE finished_at >= $1 GROUP BY minute ORDER BY minute";
/// Removes up to `$2` of the tasks that finished before `$1` (their attempts go with them), oldest first.
const DELETE_FINISHED: &str = "DELETE FROM tasks WHERE id IN \
     (SELECT id FROM tasks WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)";

/// What cancelling a task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// It was waiting to run; it never will.
    Waiting,
    /// `worker` was running it; that attempt's outcome will not be recorded.
    Running { worker: String },
    /// It had finished already (or does not exist).
    Refused,
}

/// A paused task name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PausedName {
    pub name: String,
    pub paused_at: DateTime<Utc>,
    pub paused_by: Option<String>,
}

/// The task figures a dashboard reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStats {
    /// How many tasks have each name and status.
    pub counts: Vec<(String, TaskStatus, i64)>,
    /// Per priority rank with tasks due: the earliest due time of those waiting, and their count.
    pub oldest_due: Vec<(i16, DateTime<Utc>, i64)>,
}

/// How an attempt ended, to be recorded by [`Database::finish_tasks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    /// The worker that ran it; the record changes only if this worker still holds the attempt.
    pub worker: String,
    pub attempt: i32,
    pub finish: Finish,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
}

impl Finish {
    /// The record's status after this end, its result, and its error.
    fn parts(&self) -> (TaskStatus, Option<&str>, Option<&str>, Option<DateTime<Utc>>) {
        match self {
            Finish::Completed { result } => (TaskStatus::Completed, Some(result), None, None),
            Finish::Retrying { error, run_at } => (TaskStatus::Retrying, None, Some(error), Some(*run_at)),
            Finish::Dead { error } => (TaskStatus::Dead, None, Some(error), None),
        }
    }
}

/// A time as sqlx-sqlite stores it, so values written through JSON compare with bound ones.
fn sqlite_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A task row as [`INSERT_SQLITE`] reads it.
#[derive(serde::Serialize)]
struct SqliteTask<'a> {
    id: &'a str,
    name: &'a str,
    payload: &'a str,
    priority: i16,
    status: &'static str,
    attempts: i32,
    max_attempts: i32,
    run_at: String,
    lease_until: Option<String>,
    worker_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    user_id: Option<&'a str>,
    result: Option<&'a str>,
    last_error: Option<&'a str>,
    created_at: String,
    updated_at: String,
    finished_at: Option<String>,
    unique_key: Option<&'a str>,
    schedule_name: Option<&'a str>,
    progress: Option<&'a str>,
    trace_parent: Option<&'a str>,
}

/// An outcome as the SQLite finish statements read it.
#[derive(serde::Serialize)]
struct SqliteOutcome<'a> {
    id: &'a str,
    worker_id: &'a str,
    attempt: i32,
    status: &'static str,
    result: Option<&'a str>,
    error: Option<&'a str>,
    run_at: Option<String>,
    at: String,
}

pub(super) fn json_array<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> String {
    serde_json::to_string(&rows.collect::<Vec<_>>()).expect("task rows serialize")
}

/// Inserts `rows` on PostgreSQL through `executor` (a pool or a transaction); with `unique`,
/// skips those whose key is held and returns the ids stored.
pub(super) async fn insert_postgres<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    rows: &[TaskRow],
    unique: bool,
) -> Result<Vec<String>, DbError> {
    let column = |f: fn(&TaskRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&TaskRow) -> Option<DateTime<Utc>>| rows.iter().map(f).collect::<Vec<_>>();
    let sql = if unique { [INSERT_POSTGRES, INSERT_UNIQUE_POSTGRES].concat() } else { INSERT_POSTGRES.into() };
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(column(|r| Some(&r.id)))
        .bind(column(|r| Some(&r.name)))
        .bind(column(|r| Some(&r.payload)))
        .bind(rows.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(column(|r| Some(r.status.as_str())))
        .bind(rows.iter().map(|r| r.attempts).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
        .bind(time(|r| Some(r.run_at)))
        .bind(time(|r| r.lease_until))
        .bind(column(|r| r.worker_id.as_deref()))
        .bind(column(|r| r.correlation_id.as_deref()))
        .bind(column(|r| r.user_id.as_deref()))
        .bind(column(|r| r.result.as_deref()))
        .bind(column(|r| r.last_error.as_deref()))
        .bind(time(|r| Some(r.created_at)))
        .bind(time(|r| Some(r.updated_at)))
        .bind(time(|r| r.finished_at))
        .bind(column(|r| r.unique_key.as_deref()))
        .bind(column(|r| r.schedule_name.as_deref()))
        .bind(column(|r| r.progress.as_deref()))
        .bind(column(|r| r.trace_parent.as_deref()));
    Ok(query.fetch_all(executor).await?)
}

/// [`insert_postgres`] on SQLite.
pub(super) async fn insert_sqlite<'c>(
    executor: impl sqlx::SqliteExecutor<'c>,
    rows: &[TaskRow],
    unique: bool,
) -> Result<Vec<String>, DbError> {
    let rows = json_array(rows.iter().map(|r| SqliteTask {
        id: &r.id,
        name: &r.name,
        payload: &r.payload,
        priority: r.priority,
        status: r.status.as_str(),
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        run_at: sqlite_time(r.run_at),
        lease_until: r.lease_until.map(sqlite_time),
        worker_id: r.worker_id.as_deref(),
        correlation_id: r.correlation_id.as_deref(),
        user_id: r.user_id.as_deref(),
        result: r.result.as_deref(),
        last_error: r.last_error.as_deref(),
        created_at: sqlite_time(r.created_at),
        updated_at: sqlite_time(r.updated_at),
        finished_at: r.finished_at.map(sqlite_time),
        unique_key: r.unique_key.as_deref(),
        schedule_name: r.schedule_name.as_deref(),
        progress: r.progress.as_deref(),
        trace_parent: r.trace_parent.as_deref(),
    }));
    let sql = if unique { [INSERT_SQLITE, INSERT_UNIQUE_SQLITE].concat() } else { INSERT_SQLITE.into() };
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(rows).fetch_all(executor).await?)
}

impl Database {
    /// Stores a new task; see [`Database::insert_tasks`].
    pub async fn insert_task(&self, row: TaskRow) -> Result<TaskRow, DbError> {
        Ok(self.insert_tasks(vec![row]).await?.pop().expect("one task stored"))
    }

    /// Stores new tasks in one statement, all or none, and returns their records in order. A task
    /// with a unique key held by a waiting or running task of its name (or by an earlier task of
    /// the batch) is not stored: the record returned for it is the task holding the key.
    pub async fn insert_tasks(&self, rows: Vec<TaskRow>) -> Result<Vec<TaskRow>, DbError> {
        if rows.is_empty() {
            return Ok(rows);
        }
        if rows.iter().all(|row| row.unique_key.is_none()) {
            self.insert_rows(&rows, false).await?;
            return Ok(rows);
        }
        let mut records: Vec<Option<TaskRow>> = vec![None; rows.len()];
        let mut left: Vec<usize> = (0..rows.len()).collect();
        // A holder found finished by the time it is read frees its key: the task is tried again.
        for _ in 0..UNIQUE_TRIES {
            let batch: Vec<TaskRow> = left.iter().map(|&i| rows[i].clone()).collect();
            let stored = self.insert_rows(&batch, true).await?;
            let mut still = Vec::new();
            for (&index, row) in left.iter().zip(batch) {
                if stored.contains(&row.id) {
                    records[index] = Some(row);
                    continue;
                }
                let key = row.unique_key.as_deref().unwrap_or_default();
                let sql = HOLDING_KEY;
                let holder: Option<TaskRow> =
                    on_pool!(self, pool => sqlx::query_as(sql).bind(&row.name).bind(key).fetch_optional(pool).await)?;
                match holder {
                    Some(holder) => records[index] = Some(holder),
                    None => still.push(index),
                }
            }
            left = still;
            if left.is_empty() {
                break;
            }
        }
        if !left.is_empty() {
            return Err(DbError::Contended("a unique task key kept changing hands while it was scheduled".into()));
        }
        Ok(records.into_iter().map(|record| record.expect("every task stored or found")).collect())
    }

    /// Inserts `rows`; with `unique`, skips those whose key is held and returns the ids stored.
    async fn insert_rows(&self, rows: &[TaskRow], unique: bool) -> Result<Vec<String>, DbError> {
        match self {
            Database::Postgres(pool) => insert_postgres(pool, rows, unique).await,
            Database::Sqlite(pool) => insert_sqlite(pool, rows, unique).await,
        }
    }

    /// Task `id`.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRow>, DbError> {
        let sql = BY_ID;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Up to `limit` tasks matching `filter` past the cursor `after`, in id (creation) order:
    /// ids after it, or before it (an empty cursor: from the newest) when `filter.newest_first`.
    pub async fn tasks_page(&self, filter: &TaskFilter, after: &str, limit: u32) -> Result<Vec<TaskRow>, DbError> {
        let sql = if filter.newest_first { PAGE_NEWEST } else { PAGE };
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(after)
            .bind(filter.status)
            .bind(&filter.name)
            .bind(&filter.correlation_id)
            .bind(&filter.user_id)
            .bind(i64::from(limit))
            .bind(&filter.schedule_name)
            .fetch_all(pool)
            .await)?)
    }

    /// Claims up to `limit` tasks for `worker` until `lease_until` and starts an attempt of each:
    /// tasks whose lease ran out by `now` first, then the most urgent due ones. Most urgent first.
    pub async fn claim_tasks(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TaskRow>, DbError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut claimed: Vec<TaskRow> = match self {
            Database::Postgres(pool) => {
                sqlx::query_as(CLAIM_POSTGRES)
                    .bind(worker)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Database::Sqlite(pool) => {
                let mut transaction = pool.begin().await?;
                let claimed: Vec<TaskRow> = sqlx::query_as(CLAIM_SQLITE)
                    .bind(worker)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(&mut *transaction)
                    .await?;
                if !claimed.is_empty() {
                    sqlx::query(START_ATTEMPTS_SQLITE)
                        .bind(json_array(claimed.iter().map(|task| &task.id)))
                        .bind(now)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                claimed
            }
        };
        claimed.sort_by(|a, b| (a.priority, a.run_at, &a.id).cmp(&(b.priority, b.run_at, &b.id)));
        Ok(claimed)
    }

    /// Records a batch of attempt outcomes in one transaction, each only if its worker still holds
    /// that attempt (a worker whose lease was lost never overwrites the worker that took over).
    /// Says, for each outcome in order, whether it was recorded.
    pub async fn finish_tasks(&self, outcomes: &[Outcome]) -> Result<Vec<bool>, DbError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let recorded: Vec<String> = match self {
            Database::Postgres(pool) => {
                let parts: Vec<_> = outcomes.iter().map(|o| o.finish.parts()).collect();
                sqlx::query_scalar(FINISH_POSTGRES)
                    .bind(outcomes.iter().map(|o| o.id.as_str()).collect::<Vec<_>>())
                    .bind(outcomes.iter().map(|o| o.worker.as_str()).collect::<Vec<_>>())
                    .bind(outcomes.iter().map(|o| o.attempt).collect::<Vec<_>>())
                    .bind(parts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>())
                    .bind(parts.iter().map(|p| p.1).collect::<Vec<_>>())
                    .bind(parts.iter().map(|p| p.2).collect::<Vec<_>>())
                    .bind(parts.iter().map(|p| p.3).collect::<Vec<_>>())
                    .bind(outcomes.iter().map(|o| o.at).collect::<Vec<_>>())
                    .fetch_all(pool)
                    .await?
            }
            Database::Sqlite(pool) => {
                let batch = json_array(outcomes.iter().map(|o| {
                    let (status, result, error, run_at) = o.finish.parts();
                    SqliteOutcome {
                        id: &o.id,
                        worker_id: &o.worker,
                        attempt: o.attempt,
                        status: status.as_str(),
                        result,
                        error,
                        run_at: run_at.map(sqlite_time),
                        at: sqlite_time(o.at),
                    }
                }));
                let mut transaction = pool.begin().await?;
                sqlx::query(FINISH_ATTEMPTS_SQLITE).bind(&batch).execute(&mut *transaction).await?;
                let recorded = sqlx::query_scalar(FINISH_SQLITE).bind(&batch).fetch_all(&mut *transaction).await?;
                transaction.commit().await?;
                recorded
            }
        };
        let recorded: std::collections::HashSet<&str> = recorded.iter().map(String::as_str).collect();
        Ok(outcomes.iter().map(|o| recorded.contains(o.id.as_str())).collect())
    }

    /// Every attempt of task `id`, first first.
    pub async fn task_attempts(&self, id: &str) -> Result<Vec<AttemptRow>, DbError> {
        let sql = ATTEMPTS;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_all(pool).await)?)
    }

    /// Cancels task `id` if it is waiting or running; says which it was. A running attempt's
    /// outcome is then never recorded (the record is no longer active).
    pub async fn cancel_task(&self, id: &str) -> Result<Cancel, DbError> {
        let now = Utc::now();
        match self {
            Database::Postgres(pool) => {
                let runner: Option<Option<String>> =
                    sqlx::query_scalar(CANCEL_POSTGRES).bind(id).bind(now).fetch_optional(pool).await?;
                Ok(match runner {
                    None => Cancel::Refused,
                    Some(None) => Cancel::Waiting,
                    Some(Some(worker)) => Cancel::Running { worker },
                })
            }
            Database::Sqlite(pool) => {
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                let found: Option<(TaskStatus, Option<String>, i32)> =
                    sqlx::query_as(CANCEL_READ_SQLITE).bind(id).fetch_optional(&mut *transaction).await?;
                let cancel = match found {
                    Some((TaskStatus::Pending | TaskStatus::Retrying, _, _)) => Cancel::Waiting,
                    Some((TaskStatus::Active, worker, attempt)) => {
                        sqlx::query(CANCEL_ATTEMPT_SQLITE)
                            .bind(id)
                            .bind(now)
                            .bind(attempt)
                            .execute(&mut *transaction)
                            .await?;
                        Cancel::Running { worker: worker.unwrap_or_default() }
                    }
                    _ => return Ok(Cancel::Refused),
                };
                sqlx::query(CANCEL_SQLITE).bind(id).bind(now).execute(&mut *transaction).await?;
                transaction.commit().await?;
                Ok(cancel)
            }
        }
    }

    /// Hands the tasks `worker` still runs back to the queue, due now, without spending an attempt
    /// on them: their attempt rows end `released`, and any worker may claim them at once (a
    /// process stopping before its tasks finished). Returns how many were handed back.
    pub async fn release_tasks(&self, worker: &str) -> Result<u64, DbError> {
        let (attempts, tasks) = (RELEASE_ATTEMPTS, RELEASE_TASKS);
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query(attempts).bind(worker).bind(now).execute(&mut *transaction).await?;
            let released = sqlx::query(tasks).bind(worker).bind(now).execute(&mut *transaction).await?;
            transaction.commit().await?;
            Ok(released.rows_affected())
        })
    }

    /// Records `progress` (a JSON value, as text) on task `id` while `worker` runs its attempt
    /// `attempt`; `false` once the attempt no longer holds the task (finished, cancelled, taken over).
    pub async fn report_progress(&self, id: &str, worker: &str, attempt: i32, progress: &str) -> Result<bool, DbError> {
        let sql = PROGRESS;
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(id).bind(worker).bind(attempt).bind(progress).bind(Utc::now())
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Which of `ids`, claimed by `worker`, are no longer its to run (cancelled, or taken over).
    pub async fn tasks_gone_from(&self, worker: &str, ids: &[String]) -> Result<Vec<String>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let held: Vec<String> = match self {
            Database::Postgres(pool) => {
                sqlx::query_scalar(HELD_POSTGRES).bind(worker).bind(ids).fetch_all(pool).await?
            }
            Database::Sqlite(pool) => {
                sqlx::query_scalar(HELD_SQLITE).bind(worker).bind(json_array(ids.iter())).fetch_all(pool).await?
            }
        };
        Ok(ids.iter().filter(|id| !held.contains(id)).cloned().collect())
    }

    /// Pauses or resumes task name `name` for every host; `by` is who did it.
    pub async fn set_task_paused(&self, name: &str, paused: bool, by: Option<&str>) -> Result<(), DbError> {
        let sql = SET_PAUSED;
        on_pool!(self, pool => sqlx::query(sql).bind(name).bind(paused).bind(Utc::now()).bind(by).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The task names paused, with when and by whom.
    pub async fn paused_task_names(&self) -> Result<Vec<PausedName>, DbError> {
        let sql = PAUSED;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// Counts of tasks by name and status, and the oldest due waiting task per priority.
    pub async fn task_stats(&self, now: DateTime<Utc>) -> Result<TaskStats, DbError> {
        let counts = COUNT_BY_NAME;
        let counts: Vec<(String, TaskStatus, i64)> =
            on_pool!(self, pool => sqlx::query_as(counts).fetch_all(pool).await)?;
        Ok(TaskStats { counts, oldest_due: self.oldest_due(now).await? })
    }

    /// Per priority rank with tasks due by `now`: the earliest due time of those waiting, and
    /// their count (read from the index over waiting tasks, so cheap however long the history).
    pub async fn oldest_due(&self, now: DateTime<Utc>) -> Result<Vec<(i16, DateTime<Utc>, i64)>, DbError> {
        let sql = OLDEST_DUE;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(now).fetch_all(pool).await)?)
    }

    /// Per minute since `since`, oldest first: the minute (since the Unix epoch), how many tasks
    /// completed in it and how many died. Minutes when none finished are left out.
    pub async fn task_throughput(&self, since: DateTime<Utc>) -> Result<Vec<(i64, i64, i64)>, DbError> {
        Ok(match self {
            Database::Postgres(pool) => sqlx::query_as(THROUGHPUT_POSTGRES).bind(since).fetch_all(pool).await?,
            Database::Sqlite(pool) => sqlx::query_as(THROUGHPUT_SQLITE).bind(since).fetch_all(pool).await?,
        })
    }

    /// Makes dead task `id` pending again with `attempts` more attempts; `None` if it is not dead.
    pub async fn revive_task(&self, id: &str, attempts: i32) -> Result<Option<TaskRow>, DbError> {
        let sql = REVIVE;
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id).bind(Utc::now()).bind(attempts).fetch_optional(pool).await)?)
    }

    /// How many tasks are `status`.
    pub async fn count_tasks(&self, status: TaskStatus) -> Result<i64, DbError> {
        let sql = COUNT_BY_STATUS;
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(status).fetch_one(pool).await)?)
    }

    /// Removes up to `limit` tasks that finished before `before`, with their attempts; returns how many.
    pub async fn delete_finished_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, DbError> {
        let sql = DELETE_FINISHED;
        Ok(on_pool!(self, pool => sqlx::query(sql)
            .bind(before).bind(i64::from(limit)).execute(pool).await.map(|r| r.rows_affected()))?)
    }
}
