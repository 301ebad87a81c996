//! Repository of background tasks (`tasks`) and their attempts (`task_attempts`). Claiming is one
//! atomic statement, so two workers never hold the same task: on PostgreSQL the candidate row is
//! locked with `FOR UPDATE SKIP LOCKED`, and SQLite runs one write at a time.

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
    /// Only this user's tasks; `None` shows everyone's.
    pub user_id: Option<String>,
}

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
         correlation_id, user_id, result, last_error, created_at, updated_at, finished_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO tasks (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);
const BY_ID: &str = concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1");
const PAGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM tasks WHERE id > $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2) AND (CAST($3 AS TEXT) IS NULL OR name = $3) \
     AND (CAST($4 AS TEXT) IS NULL OR correlation_id = $4) AND (CAST($5 AS TEXT) IS NULL OR user_id = $5) ORDER BY id LIMIT $6"
);
/// Takes the most urgent due task, or one whose worker's lease ran out.
const CLAIM_POSTGRES: &str = concat!(
    "UPDATE tasks SET status = 'active', attempts = attempts + 1, worker_id = $1, lease_until = $3, updated_at = $2 \
     WHERE id = (SELECT id FROM tasks \
       WHERE (status IN ('pending', 'retrying') AND run_at <= $2) OR (status = 'active' AND lease_until < $2) \
       ORDER BY priority, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING ",
    columns!()
);
const CLAIM_SQLITE: &str = concat!(
    "UPDATE tasks SET status = 'active', attempts = attempts + 1, worker_id = ?1, lease_until = ?3, updated_at = ?2 \
     WHERE id = (SELECT id FROM tasks \
       WHERE (status IN ('pending', 'retrying') AND run_at <= ?2) OR (status = 'active' AND lease_until < ?2) \
       ORDER BY priority, run_at, id LIMIT 1) \
     RETURNING ",
    columns!()
);
/// Takes task `$4` if it is due and waiting, or its worker's lease ran out.
const CLAIM_BY_ID: &str = concat!(
    "UPDATE tasks SET status = 'active', attempts = attempts + 1, worker_id = $1, lease_until = $3, updated_at = $2 \
     WHERE id = $4 AND ((status IN ('pending', 'retrying') AND run_at <= $2) OR (status = 'active' AND lease_until < $2)) \
     RETURNING ",
    columns!()
);
/// What a dispatch sweep puts back: the most urgent waiting tasks due by `$1`, and tasks whose lease ran out by `$2`.
const TO_DISPATCH: &str = "SELECT id, priority, run_at FROM tasks \
     WHERE (status IN ('pending', 'retrying') AND run_at <= $1) OR (status = 'active' AND lease_until < $2) \
     ORDER BY priority, run_at LIMIT $3";
const START_ATTEMPT: &str =
    "INSERT INTO task_attempts (task_id, attempt, worker_id, started_at) VALUES ($1, $2, $3, $4)";
const EXTEND: &str =
    "UPDATE tasks SET lease_until = $4 WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'active'";
const FINISH: &str = "UPDATE tasks SET status = $4, result = $5, last_error = COALESCE($6, last_error), \
     run_at = COALESCE($7, run_at), lease_until = NULL, finished_at = $8, updated_at = $9 \
     WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'active'";
const FINISH_ATTEMPT: &str =
    "UPDATE task_attempts SET finished_at = $3, outcome = $4, error = $5 WHERE task_id = $1 AND attempt = $2";
const ATTEMPTS: &str = "SELECT attempt, worker_id, started_at, finished_at, outcome, error \
     FROM task_attempts WHERE task_id = $1 ORDER BY attempt";
const CANCEL: &str = "UPDATE tasks SET status = 'cancelled', finished_at = $2, updated_at = $2 \
     WHERE id = $1 AND status IN ('pending', 'retrying')";
const REVIVE: &str = concat!(
    "UPDATE tasks SET status = 'pending', max_attempts = attempts + $3, run_at = $2, \
     finished_at = NULL, updated_at = $2 WHERE id = $1 AND status = 'dead' RETURNING ",
    columns!()
);

impl Database {
    /// Stores a new task.
    pub async fn insert_task(&self, row: &TaskRow) -> Result<(), DbError> {
        let sql = INSERT;
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.payload)
            .bind(row.priority)
            .bind(row.status)
            .bind(row.attempts)
            .bind(row.max_attempts)
            .bind(row.run_at)
            .bind(row.lease_until)
            .bind(&row.worker_id)
            .bind(&row.correlation_id)
            .bind(&row.user_id)
            .bind(&row.result)
            .bind(&row.last_error)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.finished_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Task `id`.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRow>, DbError> {
        let sql = BY_ID;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Up to `limit` tasks matching `filter` with ids after `after`, in id (creation) order.
    pub async fn tasks_page(&self, filter: &TaskFilter, after: &str, limit: u32) -> Result<Vec<TaskRow>, DbError> {
        let sql = PAGE;
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(after)
            .bind(filter.status)
            .bind(&filter.name)
            .bind(&filter.correlation_id)
            .bind(&filter.user_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?)
    }

    /// Claims the most urgent due task for `worker` until `lease_until` (taking over tasks whose
    /// lease ran out) and records the attempt's start.
    pub async fn claim_task(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<TaskRow>, DbError> {
        self.claim(self.sql(CLAIM_POSTGRES, CLAIM_SQLITE), None, worker, now, lease_until).await
    }

    /// Claims task `id` for `worker` like [`Database::claim_task`], if it is due and waiting (or
    /// its lease ran out); `None` otherwise.
    pub async fn claim_task_by_id(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<TaskRow>, DbError> {
        self.claim(CLAIM_BY_ID, Some(id), worker, now, lease_until).await
    }

    /// Runs claim statement `sql` (for task `id`, if given) and records the attempt's start, in one
    /// transaction so a record is never active without its attempt.
    async fn claim(
        &self,
        sql: &'static str,
        id: Option<&str>,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<TaskRow>, DbError> {
        let start = START_ATTEMPT;
        Ok(on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let mut claim = sqlx::query_as::<_, TaskRow>(sql).bind(worker).bind(now).bind(lease_until);
            if let Some(id) = id {
                claim = claim.bind(id);
            }
            let claimed = claim.fetch_optional(&mut *transaction).await?;
            if let Some(task) = &claimed {
                sqlx::query(start)
                    .bind(&task.id)
                    .bind(task.attempts)
                    .bind(worker)
                    .bind(now)
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
            claimed
        }))
    }

    /// Id, priority rank and due time of up to `limit` tasks a worker could claim now: waiting and
    /// due by `due_before`, or active with a lease that ran out by `now`; most urgent first.
    pub async fn tasks_to_dispatch(
        &self,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(String, i16, DateTime<Utc>)>, DbError> {
        let sql = TO_DISPATCH;
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(due_before)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?)
    }

    /// Extends `worker`'s lease on attempt `attempt` of task `id`; `false` if it no longer holds it.
    pub async fn extend_lease(
        &self,
        id: &str,
        worker: &str,
        attempt: i32,
        until: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let sql = EXTEND;
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(id).bind(worker).bind(attempt).bind(until)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Records how attempt `attempt` of task `id` ended, if `worker` still holds it; `false` when
    /// its lease was lost to another worker (whose result then counts instead).
    pub async fn finish_task(&self, id: &str, worker: &str, attempt: i32, finish: &Finish) -> Result<bool, DbError> {
        let now = Utc::now();
        let (status, result, error, run_at, finished_at) = match finish {
            Finish::Completed { result } => (TaskStatus::Completed, Some(result.as_str()), None, None, Some(now)),
            Finish::Retrying { error, run_at } => {
                (TaskStatus::Retrying, None, Some(error.as_str()), Some(*run_at), None)
            }
            Finish::Dead { error } => (TaskStatus::Dead, None, Some(error.as_str()), None, Some(now)),
        };
        // One transaction, so a finished record never shows an unfinished last attempt.
        let affected = on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let affected = sqlx::query(FINISH)
                .bind(id)
                .bind(worker)
                .bind(attempt)
                .bind(status)
                .bind(result)
                .bind(error)
                .bind(run_at)
                .bind(finished_at)
                .bind(now)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            let outcome = if affected == 1 { status.as_str() } else { "lease-lost" };
            sqlx::query(FINISH_ATTEMPT)
                .bind(id)
                .bind(attempt)
                .bind(now)
                .bind(outcome)
                .bind(error)
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            affected
        });
        Ok(affected == 1)
    }

    /// Every attempt of task `id`, first first.
    pub async fn task_attempts(&self, id: &str) -> Result<Vec<AttemptRow>, DbError> {
        let sql = ATTEMPTS;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_all(pool).await)?)
    }

    /// Cancels task `id` if it is still waiting to run; `false` otherwise.
    pub async fn cancel_task(&self, id: &str) -> Result<bool, DbError> {
        let sql = CANCEL;
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(id).bind(Utc::now()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Makes dead task `id` pending again with `attempts` more attempts; `None` if it is not dead.
    pub async fn revive_task(&self, id: &str, attempts: i32) -> Result<Option<TaskRow>, DbError> {
        let sql = REVIVE;
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id).bind(Utc::now()).bind(attempts).fetch_optional(pool).await)?)
    }
}
