//! Repository of uploaded plugin builds (`plugin_builds` table), shared by every host on the database.

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// An uploaded build, or the tombstone of a deleted one (`deleted_at` set, component empty).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PluginBuild {
    pub name: String,
    pub version: String,
    pub content_hash: String,
    pub manifest: String,
    pub component: Vec<u8>,
    pub uploaded_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

const UPSERT: &str = "INSERT INTO plugin_builds \
     (name, version, content_hash, manifest, component, uploaded_at, deleted_at) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (name) DO UPDATE SET \
     version = EXCLUDED.version, content_hash = EXCLUDED.content_hash, manifest = EXCLUDED.manifest, \
     component = EXCLUDED.component, uploaded_at = EXCLUDED.uploaded_at, deleted_at = NULL";
const SELECT_ONE: &str = "SELECT name, version, content_hash, manifest, component, uploaded_at, deleted_at \
     FROM plugin_builds WHERE name = $1";
const SELECT_NAMES: &str = "SELECT name FROM plugin_builds ORDER BY name";
const TOMBSTONE: &str = "UPDATE plugin_builds SET component = $2, deleted_at = $3 \
     WHERE name = $1 AND deleted_at IS NULL";

impl Database {
    /// Stores `build` as the current build of its plugin (replacing any build or tombstone).
    #[tracing::instrument(skip(self, build), fields(plugin = %build.name))]
    pub async fn store_plugin_build(&self, build: &PluginBuild) -> Result<(), DbError> {
        let sql = UPSERT;
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&build.name)
            .bind(&build.version)
            .bind(&build.content_hash)
            .bind(&build.manifest)
            .bind(&build.component)
            .bind(build.uploaded_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The stored build (or tombstone) of plugin `name`.
    pub async fn plugin_build(&self, name: &str) -> Result<Option<PluginBuild>, DbError> {
        let sql = SELECT_ONE;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(name).fetch_optional(pool).await)?)
    }

    /// Names of every stored build and tombstone.
    pub async fn plugin_build_names(&self) -> Result<Vec<String>, DbError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(SELECT_NAMES).fetch_all(pool).await)?)
    }

    /// Turns the build of `name` into a tombstone; `false` if there was no live build.
    #[tracing::instrument(skip(self))]
    pub async fn delete_plugin_build(&self, name: &str) -> Result<bool, DbError> {
        let sql = TOMBSTONE;
        let empty: Vec<u8> = Vec::new();
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(name)
            .bind(&empty)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected > 0)
    }
}
