//! Repository of revoked access tokens (`revoked_tokens`), each kept until its token expires.

use chrono::{DateTime, Utc};

use super::{Database, DbError};

const INSERT: &str = "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
const PURGE: &str = "DELETE FROM revoked_tokens WHERE expires_at < $1";
const IS_REVOKED: &str = "SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1 AND expires_at >= $2";
const UNEXPIRED: &str = "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= $1";

impl Database {
    /// Records that token `jti` is revoked until `expires_at`, and forgets revocations of tokens
    /// that have expired since.
    pub async fn insert_revocation(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), DbError> {
        let (insert, purge) = (INSERT, PURGE);
        on_pool!(self, pool => {
            sqlx::query(insert).bind(jti).bind(expires_at).execute(pool).await?;
            sqlx::query(purge).bind(Utc::now()).execute(pool).await?;
        });
        Ok(())
    }

    /// Whether token `jti` is revoked and not yet expired at `now`.
    pub async fn is_revoked(&self, jti: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let sql = IS_REVOKED;
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar(sql).bind(jti).bind(now).fetch_one(pool).await)?;
        Ok(count > 0)
    }

    /// Every revocation whose token has not expired at `now`.
    pub async fn unexpired_revocations(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
        let sql = UNEXPIRED;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(now).fetch_all(pool).await)?)
    }
}
