//! Repository of plugins' JSON documents (`records` table). The service above it owns validation,
//! caching and the rules of scope; this module only stores rows.

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// Where documents live: one plugin's collection and, for a `user` collection, one owner (`""` for
/// a shared collection).
#[derive(Debug, Clone, Copy)]
pub struct CollectionRef<'a> {
    pub plugin: &'a str,
    pub collection: &'a str,
    pub owner: &'a str,
}

/// A stored document; `data` is JSON object text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordRow {
    pub id: String,
    pub data: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`RecordRow`] as selected: PostgreSQL hands JSONB back as text.
macro_rules! select {
    (postgres) => {
        "SELECT id, data::text AS data, version, created_at, updated_at FROM records "
    };
    (sqlite) => {
        "SELECT id, data, version, created_at, updated_at FROM records "
    };
}

/// The same columns after `RETURNING`.
macro_rules! returning {
    (postgres) => {
        " RETURNING id, data::text AS data, version, created_at, updated_at"
    };
    (sqlite) => {
        " RETURNING id, data, version, created_at, updated_at"
    };
}

const GET_POSTGRES: &str =
    concat!(select!(postgres), "WHERE plugin = $1 AND collection = $2 AND owner = $3 AND id = $4");
const GET_SQLITE: &str = concat!(select!(sqlite), "WHERE plugin = ?1 AND collection = ?2 AND owner = ?3 AND id = ?4");
const PAGE_POSTGRES: &str =
    concat!(select!(postgres), "WHERE plugin = $1 AND collection = $2 AND owner = $3 AND id > $4 ORDER BY id LIMIT $5");
const PAGE_SQLITE: &str =
    concat!(select!(sqlite), "WHERE plugin = ?1 AND collection = ?2 AND owner = ?3 AND id > ?4 ORDER BY id LIMIT ?5");
const INSERT_POSTGRES: &str = "INSERT INTO records (plugin, collection, owner, id, data, version, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)";
const INSERT_SQLITE: &str = "INSERT INTO records (plugin, collection, owner, id, data, version, created_at, \
     updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const UPDATE_POSTGRES: &str = concat!(
    "UPDATE records SET data = $5::jsonb, version = version + 1, updated_at = $7 \
     WHERE plugin = $1 AND collection = $2 AND owner = $3 AND id = $4 AND version = $6",
    returning!(postgres)
);
const UPDATE_SQLITE: &str = concat!(
    "UPDATE records SET data = ?5, version = version + 1, updated_at = ?7 \
     WHERE plugin = ?1 AND collection = ?2 AND owner = ?3 AND id = ?4 AND version = ?6",
    returning!(sqlite)
);
const DELETE: &str = "DELETE FROM records WHERE plugin = $1 AND collection = $2 AND owner = $3 AND id = $4";

impl Database {
    /// Document `id` of `collection`.
    pub async fn record(&self, collection: CollectionRef<'_>, id: &str) -> Result<Option<RecordRow>, DbError> {
        let sql = self.sql(GET_POSTGRES, GET_SQLITE);
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(collection.plugin)
            .bind(collection.collection)
            .bind(collection.owner)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Up to `limit` documents of `collection` with ids after `after` (`""` for the first page), in
    /// id order.
    pub async fn records_page(
        &self,
        collection: CollectionRef<'_>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<RecordRow>, DbError> {
        let sql = self.sql(PAGE_POSTGRES, PAGE_SQLITE);
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(collection.plugin)
            .bind(collection.collection)
            .bind(collection.owner)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?)
    }

    /// Inserts `row` into `collection`; a taken id is a unique violation.
    pub async fn insert_record(&self, collection: CollectionRef<'_>, row: &RecordRow) -> Result<(), DbError> {
        let sql = self.sql(INSERT_POSTGRES, INSERT_SQLITE);
        on_pool!(self, pool => sqlx::query(sql)
            .bind(collection.plugin)
            .bind(collection.collection)
            .bind(collection.owner)
            .bind(&row.id)
            .bind(&row.data)
            .bind(row.version)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Replaces the data of document `id` if it is still at `version`, bumping the version; the
    /// updated row, or `None` when the document is gone or at another version.
    pub async fn update_record(
        &self,
        collection: CollectionRef<'_>,
        id: &str,
        version: i64,
        data: &str,
    ) -> Result<Option<RecordRow>, DbError> {
        let sql = self.sql(UPDATE_POSTGRES, UPDATE_SQLITE);
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(collection.plugin)
            .bind(collection.collection)
            .bind(collection.owner)
            .bind(id)
            .bind(data)
            .bind(version)
            .bind(Utc::now())
            .fetch_optional(pool)
            .await)?)
    }

    /// Deletes document `id`; `false` if there was none.
    pub async fn delete_record(&self, collection: CollectionRef<'_>, id: &str) -> Result<bool, DbError> {
        let sql = DELETE;
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(collection.plugin)
            .bind(collection.collection)
            .bind(collection.owner)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected > 0)
    }
}
