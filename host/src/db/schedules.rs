//! Repository of schedules (`schedules`): repeatable tasks, each tick of which stores one task.
//! Firing is exactly once per tick across hosts: a due schedule's row is locked (PostgreSQL
//! `FOR UPDATE SKIP LOCKED`; SQLite's single writer), and the tick's task is stored and the
//! schedule moved to its next tick in the same transaction. A host that dies mid-way rolls it all
//! back; a host that comes second finds the schedule no longer due.

use chrono::{DateTime, Utc};

use super::tasks::{insert_postgres, insert_sqlite};
use super::{Database, DbError, TaskRow};

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRow {
    pub name: String,
    /// The plugin whose manifest declares it; `None` for one made through the API.
    pub plugin: Option<String>,
    pub task: String,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub every_ms: Option<i64>,
    /// A JSON value, as text.
    pub payload: String,
    /// `run-once` or `skip`.
    pub missed: String,
    pub paused: bool,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_task_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one firing of a due schedule does.
#[derive(Debug, Clone)]
pub struct Firing {
    /// The tasks its due ticks start (none when missed ticks are skipped).
    pub tasks: Vec<TaskRow>,
    /// Its next tick after this firing.
    pub next_run_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "name, plugin, task, cron, timezone, every_ms, payload, missed, paused, next_run_at, last_run_at, \
         last_task_id, created_by, created_at, updated_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO schedules (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (name) DO NOTHING"
);
/// Stores a manifest's schedule, or updates the one its plugin stored before; a schedule of that
/// name made otherwise is left alone. A changed timing restarts from the new next tick; the paused
/// state and the last run are kept.
const UPSERT_DECLARED: &str = concat!(
    "INSERT INTO schedules (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (name) DO UPDATE SET \
     task = excluded.task, cron = excluded.cron, timezone = excluded.timezone, every_ms = excluded.every_ms, \
     payload = excluded.payload, missed = excluded.missed, updated_at = excluded.updated_at, \
     next_run_at = CASE WHEN schedules.cron IS DISTINCT FROM excluded.cron \
       OR schedules.timezone IS DISTINCT FROM excluded.timezone \
       OR schedules.every_ms IS DISTINCT FROM excluded.every_ms THEN excluded.next_run_at ELSE schedules.next_run_at END \
     WHERE schedules.plugin = excluded.plugin AND (schedules.task IS DISTINCT FROM excluded.task \
       OR schedules.cron IS DISTINCT FROM excluded.cron OR schedules.timezone IS DISTINCT FROM excluded.timezone \
       OR schedules.every_ms IS DISTINCT FROM excluded.every_ms OR schedules.payload IS DISTINCT FROM excluded.payload \
       OR schedules.missed IS DISTINCT FROM excluded.missed)"
);
const PLUGIN_OF: &str = "SELECT plugin FROM schedules WHERE name = $1";
const BY_NAME: &str = concat!("SELECT ", columns!(), " FROM schedules WHERE name = $1");
const ALL: &str = concat!("SELECT ", columns!(), " FROM schedules ORDER BY name");
const DECLARED_BY: &str = "SELECT name FROM schedules WHERE plugin = $1";
const DELETE: &str = "DELETE FROM schedules WHERE name = $1";
const SET_PAUSED: &str = concat!(
    "UPDATE schedules SET paused = $2, next_run_at = $3, updated_at = $4 WHERE name = $1 RETURNING ",
    columns!()
);
/// The earliest next tick of the schedules not paused.
const NEXT_DUE: &str = "SELECT MIN(next_run_at) FROM schedules WHERE NOT paused";
const DUE_POSTGRES: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM schedules WHERE NOT paused AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED"
);
const DUE_SQLITE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM schedules WHERE NOT paused AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
);
const FIRED: &str = "UPDATE schedules SET next_run_at = $2, last_run_at = COALESCE($3, last_run_at), \
     last_task_id = COALESCE($4, last_task_id), updated_at = $5 WHERE name = $1";

/// A schedule row's bindings, in column order.
macro_rules! bind_schedule {
    ($query:expr, $row:expr) => {
        $query
            .bind(&$row.name)
            .bind(&$row.plugin)
            .bind(&$row.task)
            .bind(&$row.cron)
            .bind(&$row.timezone)
            .bind($row.every_ms)
            .bind(&$row.payload)
            .bind(&$row.missed)
            .bind($row.paused)
            .bind($row.next_run_at)
            .bind($row.last_run_at)
            .bind(&$row.last_task_id)
            .bind(&$row.created_by)
            .bind($row.created_at)
            .bind($row.updated_at)
    };
}

impl Database {
    /// Stores a new schedule; `false` if the name is taken.
    pub async fn insert_schedule(&self, row: &ScheduleRow) -> Result<bool, DbError> {
        let sql = INSERT;
        let affected = on_pool!(self, pool => bind_schedule!(sqlx::query(sql), row)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Makes the stored schedules of `plugin`'s manifest match `declared`: new ones stored,
    /// changed ones updated, those no longer declared removed. Returns the declared names held by
    /// a schedule made otherwise (through the API, or by another plugin), which are left alone.
    pub async fn sync_declared_schedules(
        &self,
        plugin: &str,
        declared: &[ScheduleRow],
    ) -> Result<Vec<String>, DbError> {
        let (upsert, owner_of, names, delete) = (UPSERT_DECLARED, PLUGIN_OF, DECLARED_BY, DELETE);
        let mut clashes = Vec::new();
        for row in declared {
            on_pool!(self, pool => bind_schedule!(sqlx::query(upsert), row).execute(pool).await.map(drop))?;
            let owner: Option<Option<String>> =
                on_pool!(self, pool => sqlx::query_scalar(owner_of).bind(&row.name).fetch_optional(pool).await)?;
            if owner.flatten().as_deref() != Some(plugin) {
                clashes.push(row.name.clone());
            }
        }
        let stored: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(names).bind(plugin).fetch_all(pool).await)?;
        for gone in stored.iter().filter(|name| !declared.iter().any(|row| &row.name == *name)) {
            on_pool!(self, pool => sqlx::query(delete).bind(gone).execute(pool).await.map(drop))?;
        }
        Ok(clashes)
    }

    /// Schedule `name`.
    pub async fn schedule(&self, name: &str) -> Result<Option<ScheduleRow>, DbError> {
        let sql = BY_NAME;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(name).fetch_optional(pool).await)?)
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, DbError> {
        let sql = ALL;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// Removes schedule `name`; `false` if there was none. Tasks it started stay.
    pub async fn delete_schedule(&self, name: &str) -> Result<bool, DbError> {
        let sql = DELETE;
        let affected =
            on_pool!(self, pool => sqlx::query(sql).bind(name).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Pauses or resumes schedule `name`, its next tick set to `next_run_at`; `None` if there is none.
    pub async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next_run_at: DateTime<Utc>,
    ) -> Result<Option<ScheduleRow>, DbError> {
        let sql = SET_PAUSED;
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(name).bind(paused).bind(next_run_at).bind(Utc::now()).fetch_optional(pool).await)?)
    }

    /// When the next schedule not paused is due, if any is.
    pub async fn next_schedule_due(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        let sql = NEXT_DUE;
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?)
    }

    /// Fires up to `limit` schedules due by `now`, each in the way `plan` says, one transaction for
    /// all: the tasks stored and every schedule moved to its next tick together, or nothing. Due
    /// schedules another host is firing are skipped. Returns the schedules fired with their tasks.
    pub async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        mut plan: impl FnMut(&ScheduleRow) -> Firing,
    ) -> Result<Vec<(ScheduleRow, Vec<TaskRow>)>, DbError> {
        let limit = i64::from(limit);
        macro_rules! fire {
            ($transaction:expr, $due:expr, $insert:ident) => {{
                let due: Vec<ScheduleRow> =
                    sqlx::query_as($due).bind(now).bind(limit).fetch_all(&mut *$transaction).await?;
                let mut fired = Vec::with_capacity(due.len());
                for schedule in due {
                    let mut firing = plan(&schedule);
                    if !firing.tasks.is_empty() {
                        let unique = firing.tasks.iter().any(|task| task.unique_key.is_some());
                        let stored = $insert(&mut *$transaction, &firing.tasks, unique).await?;
                        // A tick whose unique task is still waiting or running adds none.
                        if unique {
                            firing.tasks.retain(|task| stored.contains(&task.id));
                        }
                    }
                    let last = firing.tasks.last();
                    sqlx::query(FIRED)
                        .bind(&schedule.name)
                        .bind(firing.next_run_at)
                        .bind(last.map(|task| task.created_at))
                        .bind(last.map(|task| task.id.as_str()))
                        .bind(now)
                        .execute(&mut *$transaction)
                        .await?;
                    fired.push((schedule, firing.tasks));
                }
                $transaction.commit().await?;
                fired
            }};
        }
        Ok(match self {
            Database::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                fire!(transaction, DUE_POSTGRES, insert_postgres)
            }
            Database::Sqlite(pool) => {
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                fire!(transaction, DUE_SQLITE, insert_sqlite)
            }
        })
    }
}
