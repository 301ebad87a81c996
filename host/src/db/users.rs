//! Repository of users (`users` table). Rows carry the password hash; only the identity service
//! reads them.

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// A stored user, hash included.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub email_key: String,
    pub display_name: String,
    pub password_hash: String,
    /// A JSON array of strings.
    pub permissions: String,
    pub disabled: bool,
    /// Bumped by every password change and every disable; tokens of an older generation are refused.
    pub credential_generation: i64,
    /// Bumped by every update: which of two copies of the user is newer.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields to change on a user; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// The new email with its key.
    pub email: Option<(String, String)>,
    pub display_name: Option<String>,
    /// A JSON array of strings.
    pub permissions: Option<String>,
    pub disabled: Option<bool>,
    /// A new password hash; it also bumps the credential generation.
    pub password_hash: Option<String>,
}

impl UserChanges {
    /// Whether these changes end the user's sessions (bump the credential generation): a new
    /// password, or disabling the account, so re-enabling it later revives no old token.
    pub fn ends_sessions(&self) -> bool {
        self.password_hash.is_some() || self.disabled == Some(true)
    }
}

/// The columns of [`UserRow`], in a form `concat!` can use.
macro_rules! columns {
    () => {
        "id, email, email_key, display_name, password_hash, permissions, disabled, credential_generation, \
         version, created_at, updated_at"
    };
}

const INSERT: &str =
    concat!("INSERT INTO users (", columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
const BY_ID: &str = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
const BY_EMAIL: &str = concat!("SELECT ", columns!(), " FROM users WHERE email_key = $1");
const PAGE: &str = concat!("SELECT ", columns!(), " FROM users WHERE id > $1 ORDER BY id LIMIT $2");
const UPDATE: &str = concat!(
    "UPDATE users SET email = COALESCE($2, email), email_key = COALESCE($3, email_key), \
     display_name = COALESCE($4, display_name), permissions = COALESCE($5, permissions), \
     disabled = COALESCE($6, disabled), password_hash = COALESCE($7, password_hash), \
     credential_generation = credential_generation + $9, version = version + 1, updated_at = $8 \
     WHERE id = $1 RETURNING ",
    columns!()
);
const DELETE: &str = "DELETE FROM users WHERE id = $1";
const DELETE_RECORDS: &str = "DELETE FROM records WHERE owner = $1";

impl Database {
    /// Inserts a new user; a taken email key is a unique violation ([`DbError::is_unique_violation`]).
    #[tracing::instrument(skip_all, fields(user = %row.id))]
    pub async fn insert_user(&self, row: &UserRow) -> Result<(), DbError> {
        let sql = INSERT;
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&row.id)
            .bind(&row.email)
            .bind(&row.email_key)
            .bind(&row.display_name)
            .bind(&row.password_hash)
            .bind(&row.permissions)
            .bind(row.disabled)
            .bind(row.credential_generation)
            .bind(row.version)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The user with `id`.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        let sql = BY_ID;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?)
    }

    /// The user whose lower-cased email is `email_key`.
    pub async fn user_by_email_key(&self, email_key: &str) -> Result<Option<UserRow>, DbError> {
        let sql = BY_EMAIL;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(email_key).fetch_optional(pool).await)?)
    }

    /// Up to `limit` users with ids after `after` (`""` for the first page), in id order.
    pub async fn users_page(&self, after: &str, limit: u32) -> Result<Vec<UserRow>, DbError> {
        let sql = PAGE;
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(after).bind(i64::from(limit)).fetch_all(pool).await)?)
    }

    /// Applies `changes` to user `id` and returns the updated row (`None`: no such user).
    #[tracing::instrument(skip(self, changes))]
    pub async fn update_user(&self, id: &str, changes: &UserChanges) -> Result<Option<UserRow>, DbError> {
        let sql = UPDATE;
        let (email, email_key) = changes.email.clone().unzip();
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .bind(email)
            .bind(email_key)
            .bind(&changes.display_name)
            .bind(&changes.permissions)
            .bind(changes.disabled)
            .bind(&changes.password_hash)
            .bind(Utc::now())
            .bind(i64::from(changes.ends_sessions()))
            .fetch_optional(pool)
            .await)?)
    }

    /// Deletes user `id` and, in the same transaction, their documents in plugins' `user`
    /// collections; `false` if there was no such user.
    #[tracing::instrument(skip(self))]
    pub async fn delete_user(&self, id: &str) -> Result<bool, DbError> {
        let users = DELETE;
        let records = DELETE_RECORDS;
        let affected = on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query(records).bind(id).execute(&mut *transaction).await?;
            let affected = sqlx::query(users).bind(id).execute(&mut *transaction).await?.rows_affected();
            transaction.commit().await?;
            affected
        });
        Ok(affected > 0)
    }
}
