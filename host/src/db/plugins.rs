//! Repository of the plugin builds a host has loaded (`plugins` table).

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// One loaded plugin build, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PluginRecord {
    pub name: String,
    pub version: String,
    pub content_hash: String,
    pub loaded_at: DateTime<Utc>,
}

const UPSERT: &str = "INSERT INTO plugins (name, version, content_hash, loaded_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, \
     content_hash = EXCLUDED.content_hash, loaded_at = EXCLUDED.loaded_at";
const SELECT_ALL: &str = "SELECT name, version, content_hash, loaded_at FROM plugins ORDER BY name";

impl Database {
    /// Records that `record.name` now serves the build `record.content_hash`.
    #[tracing::instrument(skip(self, record), fields(plugin = %record.name))]
    pub async fn record_plugin_loaded(&self, record: &PluginRecord) -> Result<(), DbError> {
        let sql = UPSERT;
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&record.name)
            .bind(&record.version)
            .bind(&record.content_hash)
            .bind(record.loaded_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Every recorded plugin build, by name.
    pub async fn loaded_plugins(&self) -> Result<Vec<PluginRecord>, DbError> {
        Ok(on_pool!(self, pool => sqlx::query_as(SELECT_ALL).fetch_all(pool).await)?)
    }
}
