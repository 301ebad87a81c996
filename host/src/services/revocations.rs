//! Revoked access tokens (logout). The database keeps every revocation until its token expires;
//! with Redis, the cache holds a copy for the per-request check, with a marker saying the copy is
//! complete. A cache that lost its data (a restart without persistence) has lost the marker too,
//! so the copy is reloaded from the database; while Redis is unreachable the database answers.
//! Without Redis (one process), the copy is a map of this process's, loaded from the database on
//! first use. Either way a revocation is never forgotten, and the usual check costs one Redis round
//! trip or a map lookup.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use super::cache::Cache;
use crate::db::{Database, DbError};

/// Present in the cache while it holds every unexpired revocation.
const LOADED_MARKER: &str = "auth/revoked/loaded";

/// Unexpired revocations by token id, with when each token expires.
type RevokedMap = RwLock<HashMap<String, DateTime<Utc>>>;

/// Revoking tokens and checking for revocation; cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    db: Database,
    cache: Cache,
    /// Without Redis: every unexpired revocation, loaded on first use.
    local: Arc<OnceCell<RevokedMap>>,
}

impl Revocations {
    pub fn new(db: Database, cache: Cache) -> Self {
        Self { db, cache, local: Arc::default() }
    }

    /// Revokes token `jti` until `expires_at`.
    pub async fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), DbError> {
        self.db.insert_revocation(jti, expires_at).await?;
        if self.cache.is_shared() {
            self.cache.set(&cache_key(jti), b"1", Some(time_left(expires_at))).await;
        } else {
            // After the map is loaded, so a load racing this revocation cannot miss it.
            let mut revoked = self.local_map().await?.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Utc::now();
            revoked.retain(|_, expires| *expires >= now);
            revoked.insert(jti.to_owned(), expires_at);
        }
        Ok(())
    }

    /// This process's map of revocations, loaded from the database on first use.
    async fn local_map(&self) -> Result<&RevokedMap, DbError> {
        self.local
            .get_or_try_init(|| async {
                let revoked = self.db.unexpired_revocations(Utc::now()).await?;
                Ok(RwLock::new(revoked.into_iter().collect()))
            })
            .await
    }

    /// Whether token `jti` is revoked.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, DbError> {
        if !self.cache.is_shared() {
            let revoked = self.local_map().await?.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            return Ok(revoked.get(jti).is_some_and(|expires| *expires >= Utc::now()));
        }
        let key = cache_key(jti);
        match self.cache.try_get_many(&[LOADED_MARKER, &key]).await.as_deref() {
            Ok([_, Some(_)]) => Ok(true),
            Ok([Some(_), None]) => Ok(false),
            Ok(_) => self.reload(jti).await,
            Err(_) => self.db.is_revoked(jti, Utc::now()).await,
        }
    }

    /// Copies every unexpired revocation into the cache, marks the copy complete, and answers
    /// for `jti` from what was loaded.
    async fn reload(&self, jti: &str) -> Result<bool, DbError> {
        let revoked = self.db.unexpired_revocations(Utc::now()).await?;
        for (id, expires_at) in &revoked {
            self.cache.set(&cache_key(id), b"1", Some(time_left(*expires_at))).await;
        }
        self.cache.set(LOADED_MARKER, b"1", None).await;
        tracing::info!(revocations = revoked.len(), "loaded token revocations into the cache");
        Ok(revoked.iter().any(|(id, _)| id == jti))
    }
}

fn cache_key(jti: &str) -> String {
    format!("auth/revoked/{jti}")
}

/// How long until `expires_at` (at least a second, so a fresh entry never expires at once).
fn time_left(expires_at: DateTime<Utc>) -> Duration {
    (expires_at - Utc::now()).to_std().unwrap_or_default().max(Duration::from_secs(1))
}
