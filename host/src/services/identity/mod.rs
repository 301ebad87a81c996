//! The identity service (the seed's UsersService and UserAuthenticationService): users with
//! Argon2id passwords and permissions, credential checks, and the cache-aside lookup the
//! authentication middleware makes on every request. Password hashes never leave this module.

pub mod domain;

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use self::domain::{DisplayName, Email, Password, Permissions, UserId};
use super::cache::{Cache, FINAL_VERSION};
use super::passwords::Passwords;
use crate::db::{Database, DbError, UserChanges, UserRow};

/// How long a user stays in the cache; every write through this service replaces it at once.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(60);
/// The largest page [`Identity::list`] returns.
pub const MAX_PAGE: u32 = 100;

/// A user as everyone but this module sees it: no password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub permissions: Vec<String>,
    pub disabled: bool,
    /// Bumped by every password change and disable; access tokens of an older generation are refused.
    #[serde(default)]
    pub credential_generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of users and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub items: Vec<User>,
    pub next_cursor: Option<String>,
}

/// What creating a user takes, unvalidated.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    /// Defaults to the part of the email before `@`.
    pub display_name: Option<String>,
    pub password: SecretString,
    pub permissions: Vec<String>,
}

/// Changes to a user, unvalidated; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub disabled: Option<bool>,
    /// A new password (the policy applies).
    pub password: Option<SecretString>,
}

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{message}")]
    Invalid { message: String, fields: Vec<(String, String)> },
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

/// Collects field errors while parsing input, so every bad field is reported at once.
#[derive(Default)]
struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|message| self.0.push((field.to_owned(), message))).ok()
    }

    fn finish(self) -> Result<(), IdentityError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(IdentityError::Invalid { message: "the user is not valid".into(), fields: self.0 })
        }
    }
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    db: Database,
    passwords: Passwords,
    cache: Cache,
}

impl Identity {
    pub fn new(db: Database, passwords: Passwords, cache: Cache) -> Self {
        Self { db, passwords, cache }
    }

    /// Creates a user; every invalid field is reported, a taken email is [`IdentityError::EmailTaken`].
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, new: NewUser) -> Result<User, IdentityError> {
        let mut errors = FieldErrors::default();
        let email = errors.check("email", Email::parse(&new.email));
        let display_name = match (&new.display_name, &email) {
            (Some(name), _) => errors.check("displayName", DisplayName::parse(name)),
            (None, Some(email)) => DisplayName::parse(email.local_part()).ok(),
            (None, None) => None,
        };
        let password = errors.check("password", Password::parse(new.password));
        let permissions = errors.check("permissions", Permissions::parse(&new.permissions));
        errors.finish()?;
        let (Some(email), Some(display_name), Some(password), Some(permissions)) =
            (email, display_name, password, permissions)
        else {
            return Err(IdentityError::Internal("validation passed without values".into()));
        };
        let hash = self.hash(&password).await?;
        let now = Utc::now();
        let row = UserRow {
            id: UserId::generate().as_str().to_owned(),
            email_key: email.key(),
            email: email.as_str().to_owned(),
            display_name: display_name.as_str().to_owned(),
            password_hash: hash,
            permissions: permissions_json(&permissions),
            disabled: false,
            credential_generation: 0,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        match self.db.insert_user(&row).await {
            Ok(()) => Ok(to_user(row)),
            Err(error) if error.is_unique_violation() => Err(IdentityError::EmailTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// The user with `id`, through the cache. A copy read from the database fills the cache only
    /// if no newer one is there, so a reader racing an update never brings the old row back.
    pub async fn get(&self, id: &str) -> Result<User, IdentityError> {
        let id = UserId::parse(id).ok_or(IdentityError::NotFound)?;
        let key = cache_key(&id);
        if let Some((version, bytes)) = self.cache.get_versioned(&key).await {
            if version == FINAL_VERSION {
                return Err(IdentityError::NotFound);
            }
            if let Ok(user) = serde_json::from_slice(&bytes) {
                return Ok(user);
            }
        }
        let row = self.db.user_by_id(id.as_str()).await?.ok_or(IdentityError::NotFound)?;
        Ok(self.remember(row).await)
    }

    /// The user with `id` as stored now, for a process that may not share its cache with the
    /// process that changed the user (an `autoflow worker` beside a host without Redis): through
    /// the cache only when the cache is shared (Redis), else from the database.
    pub async fn get_current(&self, id: &str) -> Result<User, IdentityError> {
        if self.cache.is_shared() {
            return self.get(id).await;
        }
        let id = UserId::parse(id).ok_or(IdentityError::NotFound)?;
        self.db.user_by_id(id.as_str()).await?.map(to_user).ok_or(IdentityError::NotFound)
    }

    /// Caches `row` (unless a newer copy is cached) and returns it as a [`User`].
    async fn remember(&self, row: UserRow) -> User {
        let version = u64::try_from(row.version).unwrap_or_default();
        let user = to_user(row);
        if let Ok(bytes) = serde_json::to_vec(&user) {
            self.cache.set_if_newer(&cache_key_of(&user.id), version, &bytes, USER_CACHE_TTL).await;
        }
        user
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) users after `cursor`, in creation order.
    pub async fn list(&self, limit: u32, cursor: Option<&str>) -> Result<UserPage, IdentityError> {
        // Ids are UUIDv7 strings, so id order is creation order and "" sorts before them all.
        let after = match cursor {
            Some(cursor) => {
                UserId::parse(cursor).map(|id| id.as_str().to_owned()).ok_or_else(|| IdentityError::Invalid {
                    message: "the cursor is not one this API returned".into(),
                    fields: vec![("cursor".into(), "must be the nextCursor of a previous page".into())],
                })?
            }
            None => String::new(),
        };
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(IdentityError::Invalid {
                message: format!("limit must be between 1 and {MAX_PAGE}"),
                fields: vec![("limit".into(), format!("must be between 1 and {MAX_PAGE}"))],
            });
        }
        // One extra row says whether another page follows.
        let mut rows = self.db.users_page(&after, limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let items: Vec<User> = rows.into_iter().map(to_user).collect();
        let next_cursor = if more { items.last().map(|u| u.id.clone()) } else { None };
        Ok(UserPage { items, next_cursor })
    }

    /// Applies `patch` to user `id`.
    #[tracing::instrument(skip(self, patch))]
    pub async fn update(&self, id: &str, patch: UserPatch) -> Result<User, IdentityError> {
        let id = UserId::parse(id).ok_or(IdentityError::NotFound)?;
        let mut errors = FieldErrors::default();
        let email = patch.email.map(|e| errors.check("email", Email::parse(&e)));
        let display_name = patch.display_name.map(|n| errors.check("displayName", DisplayName::parse(&n)));
        let permissions = patch.permissions.map(|p| errors.check("permissions", Permissions::parse(&p)));
        let password = patch.password.map(|p| errors.check("password", Password::parse(p)));
        errors.finish()?;
        // Every field is valid before anything is written, and all of it is one statement.
        let password_hash = match password.flatten() {
            Some(password) => Some(self.hash(&password).await?),
            None => None,
        };
        let changes = UserChanges {
            email: email.flatten().map(|e| (e.as_str().to_owned(), e.key())),
            display_name: display_name.flatten().map(|n| n.as_str().to_owned()),
            permissions: permissions.flatten().map(|p| permissions_json(&p)),
            disabled: patch.disabled,
            password_hash,
        };
        let updated = self.db.update_user(id.as_str(), &changes).await;
        match updated {
            // The updated row replaces any older copy in the cache, whoever put it there.
            Ok(Some(row)) => Ok(self.remember(row).await),
            Ok(None) => Err(IdentityError::NotFound),
            Err(error) if error.is_unique_violation() => Err(IdentityError::EmailTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes user `id`.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, id: &str) -> Result<(), IdentityError> {
        let id = UserId::parse(id).ok_or(IdentityError::NotFound)?;
        let deleted = self.db.delete_user(id.as_str()).await?;
        // A tombstone no reader's older copy can replace, until it expires.
        self.cache.set_if_newer(&cache_key(&id), FINAL_VERSION, b"", USER_CACHE_TTL).await;
        if deleted { Ok(()) } else { Err(IdentityError::NotFound) }
    }

    /// Replaces user `id`'s password (the policy applies): an update of that field alone, which
    /// like every password change ends the user's existing sessions.
    pub async fn set_password(&self, id: &str, password: SecretString) -> Result<(), IdentityError> {
        self.update(id, UserPatch { password: Some(password), ..UserPatch::default() }).await.map(drop)
    }

    /// The active user with this email and password. A wrong password, an unknown email and a
    /// disabled user all fail alike, in about the same time (an unknown email still costs a hash).
    #[tracing::instrument(skip_all)]
    pub async fn verify_credentials(&self, email: &str, password: &SecretString) -> Result<User, IdentityError> {
        let row = match Email::parse(email) {
            Ok(email) => self.db.user_by_email_key(&email.key()).await?,
            Err(_) => None,
        };
        let (hash, user) = row.map(|row| (row.password_hash.clone(), to_user(row))).unzip();
        let matches = self.passwords.verify(password, hash).await;
        match user {
            Some(user) if matches && !user.disabled => Ok(user),
            _ => Err(IdentityError::InvalidCredentials),
        }
    }
}

impl Identity {
    async fn hash(&self, password: &Password) -> Result<String, IdentityError> {
        self.passwords.hash(password.secret()).await.map_err(|e| IdentityError::Internal(e.to_string()))
    }
}

fn cache_key(id: &UserId) -> String {
    cache_key_of(id.as_str())
}

fn cache_key_of(id: &str) -> String {
    format!("identity/users/{id}")
}

fn permissions_json(permissions: &Permissions) -> String {
    serde_json::Value::from(permissions.as_slice().to_vec()).to_string()
}

fn to_user(row: UserRow) -> User {
    User {
        permissions: serde_json::from_str(&row.permissions).unwrap_or_default(),
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        disabled: row.disabled,
        credential_generation: row.credential_generation,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
