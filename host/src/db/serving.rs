//! Which `autoflow serve` processes share a database. Hosts without Redis keep revocations and
//! users in a cache of their own, so one host would never learn of another's logouts or disables:
//! such a host therefore serves a database alone. Every serving host holds a claim for as long as
//! it runs — shared when it has Redis, exclusive when it has none — on PostgreSQL an advisory lock
//! per schema, on SQLite a lock on a file beside the database; both end with the process.

use std::time::{Duration, Instant};

use sqlx::Connection;

use super::{Database, DbError};

/// How long a start waits for a conflicting claim to end (a host still shutting down).
const CLAIM_PATIENCE: Duration = Duration::from_secs(3);

/// How a host claims the database it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// With Redis: any number of hosts, all with Redis.
    Shared,
    /// Without Redis: this host alone.
    Exclusive,
}

/// Why the claim was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "another `autoflow serve` uses this database{}: hosts learn of each other's logouts and \
         disabled users only through Redis, so set REDIS_URL (the same for every host) on each of them, \
         or run one host",
        if *.0 == Sharing::Exclusive { ", and this host has no Redis" } else { " without Redis" }
    )]
    Taken(Sharing),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot lock {path}: {source}")]
    LockFile { path: String, source: std::io::Error },
}

/// A held claim; dropping it ends it.
#[derive(Debug)]
pub enum ServingClaim {
    Postgres(sqlx::PgConnection),
    Sqlite(std::fs::File),
    /// An in-memory SQLite database: no other process can share it.
    Private,
}

impl Database {
    /// Claims this database for a serving host, waiting briefly for a conflicting claim to end.
    pub async fn claim_serving(&self, sharing: Sharing) -> Result<ServingClaim, ClaimError> {
        let deadline = Instant::now() + CLAIM_PATIENCE;
        loop {
            match self.try_claim(sharing).await? {
                Some(claim) => return Ok(claim),
                None if Instant::now() >= deadline => return Err(ClaimError::Taken(sharing)),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn try_claim(&self, sharing: Sharing) -> Result<Option<ServingClaim>, ClaimError> {
        match self {
            Database::Postgres(pool) => {
                let mut connection = pool.acquire().await.map_err(DbError::from)?.detach();
                let function = match sharing {
                    Sharing::Shared => "pg_try_advisory_lock_shared",
                    Sharing::Exclusive => "pg_try_advisory_lock",
                };
                // One lock per schema: deployments (and tests) in other schemas do not meet.
                let sql = format!("SELECT {function}(hashtext('autoflow-serve:' || current_schema())::bigint)");
                let taken: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut connection)
                    .await
                    .map_err(DbError::from)?;
                if taken {
                    Ok(Some(ServingClaim::Postgres(connection)))
                } else {
                    let _ = connection.close().await;
                    Ok(None)
                }
            }
            Database::Sqlite(pool) => {
                let file = pool.connect_options().get_filename().to_owned();
                if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
                    return Ok(Some(ServingClaim::Private));
                }
                let mut path = file.into_os_string();
                path.push(".serving");
                let path = std::path::PathBuf::from(path);
                let failed = |source| ClaimError::LockFile { path: path.display().to_string(), source };
                let lock = crate::private_fs::file_options().truncate(false).read(true).open(&path).map_err(failed)?;
                let locked = match sharing {
                    Sharing::Shared => lock.try_lock_shared(),
                    Sharing::Exclusive => lock.try_lock(),
                };
                match locked {
                    Ok(()) => Ok(Some(ServingClaim::Sqlite(lock))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(source)) => Err(failed(source)),
                }
            }
        }
    }
}
