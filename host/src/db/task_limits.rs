//! Concurrency and rate limits per task name (`task_names`), shared by every host: at most
//! `concurrency_limit` tasks of a name run at once, at most `rate_limit` start per fixed window of
//! `rate_interval_ms`. A plain claim leaves limited names alone; [`Database::claim_limited_tasks`]
//! claims them while holding each name's row locked (PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite's
//! single writer), so two fetchers never both take the last free place. A limited task waits; it
//! never fails because of its limit.

use chrono::{DateTime, Utc};

use super::tasks::{
    CLAIM_DUE_OF_NAME_POSTGRES, CLAIM_DUE_OF_NAME_SQLITE, CLAIM_EXPIRED_OF_NAME_POSTGRES, CLAIM_EXPIRED_OF_NAME_SQLITE,
    START_ATTEMPTS_SQLITE, json_array,
};
use super::{Database, DbError, TaskRow};

/// A task name's limits, as its manifest declares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameLimits {
    pub name: String,
    pub concurrency: Option<u32>,
    /// At most `.0` starts per window of `.1` milliseconds.
    pub rate: Option<(u32, u64)>,
}

/// A limited name's row, as a claim reads it.
#[derive(sqlx::FromRow)]
struct LimitedName {
    name: String,
    concurrency_limit: Option<i32>,
    rate_limit: Option<i32>,
    rate_interval_ms: Option<i64>,
    window_start: Option<DateTime<Utc>>,
    window_starts: i32,
}

/// What a claim of limited tasks took, and when a rate window that held tasks back reopens.
#[derive(Debug, Default)]
pub struct LimitedClaim {
    pub tasks: Vec<TaskRow>,
    pub reopens_at: Option<DateTime<Utc>>,
}

/// The limited names not paused.
macro_rules! limited {
    () => {
        "SELECT name, concurrency_limit, rate_limit, rate_interval_ms, window_start, window_starts FROM task_names \
         WHERE NOT paused AND (concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL)"
    };
}
const LIMITED_POSTGRES: &str = concat!(limited!(), " ORDER BY name FOR UPDATE SKIP LOCKED");
const LIMITED_SQLITE: &str = concat!(limited!(), " ORDER BY name");
/// Whether any limited name has tasks to claim at `$1` (due, or whose lease ran out): read before
/// taking any lock, so a queue whose limited names have nothing due pays one read per claim. Each
/// test is an ordered `LIMIT 1` lookup, which walks the claim order's index: PostgreSQL plans an
/// `EXISTS` as a scan of the whole table when it guesses many rows match (10 ms with 60,000
/// finished tasks in the table; 0.04 ms this way). Locking the names with these tests in the same
/// statement took 150 ms under load on PostgreSQL, so the lock is taken by a plain statement.
const ANY_LIMITED: &str = concat!(
    "SELECT EXISTS (",
    limited!(),
    " AND ((SELECT id FROM tasks WHERE tasks.name = task_names.name AND tasks.status IN ('pending', 'retrying') \
         AND tasks.run_at <= $1 ORDER BY priority, run_at, id LIMIT 1) IS NOT NULL \
       OR (SELECT id FROM tasks WHERE tasks.name = task_names.name AND tasks.status = 'active' \
         AND tasks.lease_until < $1 ORDER BY lease_until LIMIT 1) IS NOT NULL))"
);
/// Tasks of name `$1` running (or whose worker may still be running them).
const ACTIVE_OF_NAME: &str =
    "SELECT COUNT(*) FROM tasks WHERE name = $1 AND status = 'active' AND lease_until IS NOT NULL";
const WINDOW: &str = "UPDATE task_names SET window_start = $2, window_starts = $3 WHERE name = $1";
/// Records a name's declared limits (a name already there keeps its paused state).
const DECLARE: &str = "INSERT INTO task_names (name, paused, updated_at, concurrency_limit, rate_limit, rate_interval_ms) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, \
     rate_limit = excluded.rate_limit, rate_interval_ms = excluded.rate_interval_ms \
     WHERE task_names.concurrency_limit IS DISTINCT FROM excluded.concurrency_limit \
     OR task_names.rate_limit IS DISTINCT FROM excluded.rate_limit \
     OR task_names.rate_interval_ms IS DISTINCT FROM excluded.rate_interval_ms";
const LIMITED_NAMES: &str = "SELECT name FROM task_names WHERE concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL";
const UNDECLARE: &str = "UPDATE task_names SET concurrency_limit = NULL, rate_limit = NULL, rate_interval_ms = NULL, \
     window_start = NULL, window_starts = 0 WHERE name = $1";

/// How many of a name's tasks may start now, and the window after those starts.
struct Budget {
    allowed: usize,
    window_start: Option<DateTime<Utc>>,
    window_starts: i32,
    /// When the window ends, if the rate is what holds tasks back.
    window_ends: Option<DateTime<Utc>>,
}

impl LimitedName {
    /// The budget at `now` with `active` tasks running, of at most `free` claims.
    fn budget(&self, now: DateTime<Utc>, active: i64, free: usize) -> Budget {
        let mut allowed = free;
        if let Some(limit) = self.concurrency_limit {
            allowed = allowed.min(usize::try_from(i64::from(limit) - active).unwrap_or(0));
        }
        let (mut window_start, mut window_starts, mut window_ends) = (self.window_start, self.window_starts, None);
        if let (Some(limit), Some(interval)) = (self.rate_limit, self.rate_interval_ms) {
            let interval = chrono::Duration::milliseconds(interval);
            if window_start.is_none_or(|start| now >= start + interval) {
                (window_start, window_starts) = (Some(now), 0);
            }
            let left = usize::try_from(limit - window_starts).unwrap_or(0);
            if left <= allowed {
                window_ends = window_start.map(|start| start + interval);
            }
            allowed = allowed.min(left);
        }
        Budget { allowed, window_start, window_starts, window_ends }
    }
}

impl Database {
    /// Makes the stored limits match `declared` (the loaded manifests'): each name's limits set,
    /// and names no longer declared with limits freed of theirs.
    pub async fn declare_task_limits(&self, declared: &[NameLimits]) -> Result<(), DbError> {
        let now = Utc::now();
        let (declare, limited, undeclare) = (DECLARE, LIMITED_NAMES, UNDECLARE);
        for limits in declared {
            let concurrency = limits.concurrency.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
            let rate = limits.rate.map(|(n, _)| i32::try_from(n).unwrap_or(i32::MAX));
            let interval = limits.rate.map(|(_, ms)| i64::try_from(ms).unwrap_or(i64::MAX));
            on_pool!(self, pool => sqlx::query(declare)
                .bind(&limits.name).bind(false).bind(now).bind(concurrency).bind(rate).bind(interval)
                .execute(pool).await.map(drop))?;
        }
        let stored: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(limited).fetch_all(pool).await)?;
        for name in stored.iter().filter(|name| !declared.iter().any(|limits| &limits.name == *name)) {
            on_pool!(self, pool => sqlx::query(undeclare).bind(name).execute(pool).await.map(drop))?;
        }
        Ok(())
    }

    /// Claims up to `free` tasks of limited names for `worker` under a `lease`, each name within
    /// its limits (tasks whose lease ran out first; they already count as running), and starts
    /// their attempts; one transaction. Names another fetcher is claiming are skipped. A claim's
    /// time is read after the running tasks are counted, so an attempt never starts, on its
    /// record, before the one whose place it took ended.
    pub async fn claim_limited_tasks(
        &self,
        worker: &str,
        lease: chrono::Duration,
        free: usize,
    ) -> Result<LimitedClaim, DbError> {
        let (any, checked) = (ANY_LIMITED, Utc::now());
        let any: bool = on_pool!(self, pool => sqlx::query_scalar(any).bind(checked).fetch_one(pool).await)?;
        if !any {
            return Ok(LimitedClaim::default());
        }
        macro_rules! claim {
            ($transaction:expr, $limited:expr, $expired:expr, $due:expr) => {{
                let names: Vec<LimitedName> = sqlx::query_as($limited).fetch_all(&mut *$transaction).await?;
                let started = Utc::now();
                let mut claim = LimitedClaim::default();
                for name in names {
                    let free = free - claim.tasks.len();
                    if free == 0 {
                        break;
                    }
                    let take = |sql, now: DateTime<Utc>, limit: usize| {
                        sqlx::query_as::<_, TaskRow>(sql)
                            .bind(worker)
                            .bind(now)
                            .bind(now + lease)
                            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                            .bind(&name.name)
                    };
                    let expired = take($expired, Utc::now(), free).fetch_all(&mut *$transaction).await?;
                    let free = free - expired.len();
                    claim.tasks.extend(expired);
                    // The expired ones just claimed are active again, and counted.
                    let active: i64 =
                        sqlx::query_scalar(ACTIVE_OF_NAME).bind(&name.name).fetch_one(&mut *$transaction).await?;
                    // Read after the count, so every attempt it saw end ended before this one starts.
                    let now = Utc::now();
                    let budget = name.budget(now, active, free);
                    let due = if budget.allowed > 0 {
                        take($due, now, budget.allowed).fetch_all(&mut *$transaction).await?
                    } else {
                        Vec::new()
                    };
                    // A window opens with its first start (not with a claim that found nothing due).
                    if name.rate_limit.is_some() && !due.is_empty() {
                        let starts = budget.window_starts + i32::try_from(due.len()).unwrap_or(i32::MAX);
                        sqlx::query(WINDOW)
                            .bind(&name.name)
                            .bind(budget.window_start)
                            .bind(starts)
                            .execute(&mut *$transaction)
                            .await?;
                    }
                    if let Some(ends) = budget.window_ends {
                        claim.reopens_at = Some(claim.reopens_at.map_or(ends, |at: DateTime<Utc>| at.min(ends)));
                    }
                    claim.tasks.extend(due);
                }
                (claim, started)
            }};
        }
        match self {
            Database::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                let (claim, _) =
                    claim!(transaction, LIMITED_POSTGRES, CLAIM_EXPIRED_OF_NAME_POSTGRES, CLAIM_DUE_OF_NAME_POSTGRES);
                transaction.commit().await?;
                Ok(claim)
            }
            Database::Sqlite(pool) => {
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                let (claim, started) =
                    claim!(transaction, LIMITED_SQLITE, CLAIM_EXPIRED_OF_NAME_SQLITE, CLAIM_DUE_OF_NAME_SQLITE);
                if !claim.tasks.is_empty() {
                    sqlx::query(START_ATTEMPTS_SQLITE)
                        .bind(json_array(claim.tasks.iter().map(|task| &task.id)))
                        .bind(started)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                Ok(claim)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(concurrency: Option<i32>, rate: Option<(i32, i64)>, window: Option<(DateTime<Utc>, i32)>) -> LimitedName {
        LimitedName {
            name: "n".into(),
            concurrency_limit: concurrency,
            rate_limit: rate.map(|r| r.0),
            rate_interval_ms: rate.map(|r| r.1),
            window_start: window.map(|w| w.0),
            window_starts: window.map_or(0, |w| w.1),
        }
    }

    #[test]
    fn a_budget_keeps_within_the_running_limit_and_the_window() {
        let now = Utc::now();
        assert_eq!(name(Some(2), None, None).budget(now, 1, 10).allowed, 1);
        assert_eq!(name(Some(2), None, None).budget(now, 3, 10).allowed, 0, "over the limit after a change");
        let window = Some((now - chrono::Duration::milliseconds(500), 4));
        let open = name(None, Some((5, 1000)), window).budget(now, 0, 10);
        assert_eq!((open.allowed, open.window_ends), (1, window.map(|w| w.0 + chrono::Duration::seconds(1))));
        let next = name(None, Some((5, 1000)), Some((now - chrono::Duration::seconds(2), 5))).budget(now, 0, 3);
        assert_eq!((next.allowed, next.window_start, next.window_starts), (3, Some(now), 0), "a new window");
        assert_eq!(next.window_ends, None, "the rate holds nothing back");
    }
}
