//! The database: PostgreSQL in production, an embedded SQLite file by default. Owns connecting,
//! migrating (both dialects' migrations are compiled in) and the repositories built on it.

/// Runs one body against whichever pool `db` holds; the body is type-checked once per backend.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Postgres($pool) => $body,
            $crate::db::Database::Sqlite($pool) => $body,
        }
    };
}

mod plugin_builds;
mod plugins;
mod records;
mod revocations;
mod schedules;
mod serving;
mod task_limits;
mod tasks;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use plugin_builds::PluginBuild;
pub use plugins::PluginRecord;
pub use records::{CollectionRef, RecordRow};
pub use schedules::{Firing, ScheduleRow};
pub use serving::{ClaimError, ServingClaim, Sharing};
pub use task_limits::{LimitedClaim, NameLimits};
pub use tasks::{AttemptRow, Cancel, Finish, Outcome, PausedName, TaskFilter, TaskRow, TaskStats, TaskStatus};
pub use users::{UserChanges, UserRow};

/// Failures talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got a URL with scheme `{0}`)")]
    UnsupportedUrl(String),
    #[error("could not create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("could not connect to the {backend} database: {source}")]
    Connect { backend: Backend, source: sqlx::Error },
    #[error("migrating the {backend} database failed: {source}")]
    Migrate { backend: Backend, source: sqlx::migrate::MigrateError },
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// Concurrent writers kept changing what a write depends on; trying again shortly succeeds.
    #[error("the write met too many concurrent changes: {0}")]
    Contended(String),
}

impl DbError {
    /// Whether the statement broke a unique constraint (e.g. a taken email).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// A connection pool's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Which database engine is behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// A connection pool to either backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Database {
    /// Connects to `url`, or with none to `<data_dir>/autoflow.db` (created if missing).
    pub async fn connect(url: Option<&SecretString>, data_dir: &Path) -> Result<Self, DbError> {
        match url.map(|u| u.expose_secret()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|source| DbError::Connect { backend: Backend::Postgres, source })?;
                let pool = PgPoolOptions::new()
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|source| DbError::Connect { backend: Backend::Postgres, source })?;
                Ok(Database::Postgres(pool))
            }
            Some(url) if url.starts_with("sqlite:") => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|source| DbError::Connect { backend: Backend::Sqlite, source })?;
                Self::connect_sqlite(options).await
            }
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or_default().to_owned();
                Err(DbError::UnsupportedUrl(scheme))
            }
            None => {
                crate::private_fs::create_dir(data_dir)
                    .map_err(|source| DbError::DataDir { path: data_dir.display().to_string(), source })?;
                let options = SqliteConnectOptions::new().filename(data_dir.join("autoflow.db"));
                Self::connect_sqlite(options).await
            }
        }
    }

    /// Opens the SQLite file owner-only: it is created so before SQLite opens it (SQLite gives its
    /// WAL and shared-memory files the database file's mode), and files left looser are tightened.
    async fn connect_sqlite(options: SqliteConnectOptions) -> Result<Self, DbError> {
        let file = options.get_filename().to_owned();
        let is_file = !file.as_os_str().is_empty() && file.as_os_str() != ":memory:";
        let restrict = |suffix: &str| {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            let path = std::path::PathBuf::from(path);
            let result = if suffix.is_empty() {
                crate::private_fs::touch_file(&path)
            } else {
                crate::private_fs::restrict_file(&path)
            };
            result.map_err(|source| DbError::DataDir { path: path.display().to_string(), source })
        };
        if is_file {
            for suffix in ["", "-wal", "-shm"] {
                restrict(suffix)?;
            }
        }
        // In WAL mode `NORMAL` syncs at checkpoints rather than at every commit: a commit survives
        // the process crashing; only an OS crash or power loss may undo the last few.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(ACQUIRE_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect { backend: Backend::Sqlite, source })?;
        Ok(Database::Sqlite(pool))
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self {
            Database::Postgres(_) => Backend::Postgres,
            Database::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The connection pool now: connections open, those idle among them, and the most it opens.
    pub fn pool_status(&self) -> PoolStatus {
        on_pool!(self, pool => PoolStatus {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        })
    }

    /// Applies every pending migration of this backend's dialect.
    #[tracing::instrument(skip(self), fields(backend = %self.backend()))]
    pub async fn migrate(&self) -> Result<(), DbError> {
        let backend = self.backend();
        let result = match self {
            Database::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Database::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
        };
        result.map_err(|source| DbError::Migrate { backend, source })
    }

    /// Picks the statement written for this backend's dialect. Only statements the dialects truly
    /// spell differently (`FOR UPDATE SKIP LOCKED`, `jsonb` casts) exist twice; the rest are written
    /// once with `$n` placeholders, which sqlx-sqlite binds by number as PostgreSQL does.
    fn sql(&self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match self.backend() {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        }
    }

    /// Round-trips a trivial query: is the database answering?
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
