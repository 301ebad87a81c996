//! Dispatch: how a worker finds the next task to claim.
//!
//! Embedded, workers claim the most urgent due record straight from the database. With Redis, the
//! work is handed out through Redis so that workers on many machines share it without scanning
//! the database: a sorted set per priority holds the ids of waiting tasks scored by when they are
//! due (delays and backoff need nothing more), and a worker pops the most urgent due id with one
//! script, then claims that record by id.
//!
//! The record stays the source of truth. A popped id whose record is no longer waiting is dropped;
//! a sweeper puts back the ids of due records Redis lacks (a lost message, a Redis restarted
//! without persistence, a worker that died holding a lease); and while Redis is unreachable,
//! workers claim from the database directly. So Redis can lose anything without losing a task.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use crate::db::{Database, DbError, TaskRow};
use crate::services::cache::Cache;
use crate::services::redis_connection::{RedisConnection, timed};
use crate::spec::Priority;

/// Stale ids (records no longer waiting) a worker drops in a row before it yields.
const MAX_STALE_POPS: usize = 32;
/// Records the sweeper looks at per pass, most urgent first.
const SWEEP_BATCH: u32 = 1000;

/// Pops the first due id from the first priority's set that has one; `KEYS` most urgent first,
/// `ARGV[1]` now in milliseconds.
const POP_DUE: &str = r"
for _, key in ipairs(KEYS) do
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[1], 'LIMIT', 0, 1)
  if due[1] then
    redis.call('ZREM', key, due[1])
    return due[1]
  end
end
return false
";

/// Where workers get their next task; cheap to clone.
#[derive(Clone)]
pub enum Dispatch {
    /// Claim the most urgent due record from the database (the embedded default).
    Database,
    /// Take ids from Redis, claim by id (production).
    Redis(Arc<RedisDispatch>),
}

/// The Redis side of [`Dispatch::Redis`].
pub struct RedisDispatch {
    connection: RedisConnection,
    /// The due set of each priority, critical first.
    due: Vec<String>,
    /// Held by the process sweeping, so one sweep runs per interval however many processes run.
    sweep_lock: String,
    pop: redis::Script,
}

impl Dispatch {
    /// Dispatch through Redis, with keys in `cache`'s namespace.
    pub fn redis(connection: RedisConnection, cache: &Cache) -> Self {
        let due = Priority::ALL.iter().map(|priority| cache.namespaced(&format!("tasks:due:{priority}"))).collect();
        Self::Redis(Arc::new(RedisDispatch {
            connection,
            due,
            sweep_lock: cache.namespaced("tasks:sweep"),
            pop: redis::Script::new(POP_DUE),
        }))
    }

    /// Makes task `id` of priority rank `priority` available to workers from `due` on. Failure is
    /// only logged: the record is stored, and the sweeper or the database fallback finds it.
    pub async fn announce(&self, id: &str, priority: i16, due: DateTime<Utc>) {
        let Self::Redis(redis) = self else { return };
        let result = async {
            let mut connection = redis.connection.get().await?;
            let key = redis.due_set(priority);
            timed(redis::cmd("ZADD").arg(key).arg(due.timestamp_millis()).arg(id).query_async::<()>(&mut connection))
                .await
        };
        if let Err(error) = result.await {
            tracing::warn!(task_id = id, %error, "cannot hand the task to Redis; the sweeper will");
        }
    }

    /// Claims the most urgent due task for `worker` until `lease_until`, if there is one.
    pub async fn claim(
        &self,
        db: &Database,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<TaskRow>, DbError> {
        let Self::Redis(redis) = self else { return db.claim_task(worker, now, lease_until).await };
        for _ in 0..MAX_STALE_POPS {
            match redis.pop_due(now).await {
                Ok(Some(id)) => {
                    if let Some(task) = db.claim_task_by_id(&id, worker, now, lease_until).await? {
                        return Ok(Some(task));
                    }
                    tracing::debug!(task_id = id, "dropped a dispatch of a task that is no longer waiting");
                }
                Ok(None) => return Ok(None),
                Err(error) => {
                    tracing::debug!(%error, "Redis is unreachable; claiming from the database");
                    return db.claim_task(worker, now, lease_until).await;
                }
            }
        }
        Ok(None)
    }

    /// Puts back the ids of tasks due before `due_before` (or whose lease ran out by `now`) that
    /// Redis lacks, unless another process swept in the last `interval`; returns how many.
    pub async fn sweep(
        &self,
        db: &Database,
        now: DateTime<Utc>,
        due_before: DateTime<Utc>,
        interval: std::time::Duration,
    ) -> Result<usize, SweepError> {
        let Self::Redis(redis) = self else { return Ok(0) };
        let mut connection = redis.connection.get().await?;
        let mut lock = redis::cmd("SET");
        lock.arg(&redis.sweep_lock).arg(1).arg("NX").arg("PX").arg(interval.as_millis().max(1) as u64);
        if timed(lock.query_async::<Option<String>>(&mut connection)).await?.is_none() {
            return Ok(0);
        }
        let waiting = db.tasks_to_dispatch(due_before, now, SWEEP_BATCH).await?;
        if waiting.is_empty() {
            return Ok(0);
        }
        let mut restore = redis::pipe();
        for (id, priority, due) in &waiting {
            restore.cmd("ZADD").arg(redis.due_set(*priority)).arg("NX").arg(due.timestamp_millis()).arg(id);
        }
        let added: Vec<usize> = timed(restore.query_async(&mut connection)).await?;
        Ok(added.iter().sum())
    }
}

impl RedisDispatch {
    /// The due set of priority rank `priority` (out-of-range ranks are `low`'s, as in the database).
    fn due_set(&self, priority: i16) -> &str {
        let rank = usize::try_from(Priority::from_rank(priority).rank()).unwrap_or_default();
        &self.due[rank]
    }

    /// The most urgent id due by `now`, taken out of Redis.
    async fn pop_due(&self, now: DateTime<Utc>) -> redis::RedisResult<Option<String>> {
        let mut connection: ConnectionManager = self.connection.get().await?;
        let mut invocation = self.pop.prepare_invoke();
        for key in &self.due {
            invocation.key(key);
        }
        timed(invocation.arg(now.timestamp_millis()).invoke_async(&mut connection)).await
    }
}

/// Why a sweep did not finish; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Database(#[from] DbError),
}
