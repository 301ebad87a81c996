//! Plugin changes announced to every host sharing the database, over Redis pub/sub.
//!
//! A message carries only a plugin name; each receiving host reads that plugin's build from the
//! database and syncs its own directory ([`LivePlugins::sync_from_db`]), so a message that is
//! duplicated, reordered or meant for a plugin this host never heard of is harmless. After every
//! (re)connection a host syncs all stored builds, catching up on messages it missed.

use std::sync::Arc;

use super::LivePlugins;
use crate::services::cache::Cache;
use crate::services::redis_connection::{RedisConnection, Subscriber, spawn_subscriber};

/// The pub/sub channel plugin changes are announced on, inside the deployment's cache namespace.
const CHANNEL: &str = "plugins";

/// Announces plugin changes; cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    cache: Cache,
}

impl Fanout {
    /// Announcements through `cache`'s Redis.
    pub fn new(cache: Cache) -> Self {
        Self { cache }
    }

    /// Tells every host that plugin `name` changed. A failure is logged: the other hosts also
    /// catch up when their subscription reconnects.
    pub async fn announce(&self, name: &str) {
        self.cache.publish(CHANNEL, name.as_bytes()).await;
    }

    /// Listens for announcements on `redis` and syncs each named plugin from the database.
    pub fn spawn_listener(&self, redis: &RedisConnection, live: Arc<LivePlugins>) -> tokio::task::JoinHandle<()> {
        spawn_subscriber(redis, self.cache.namespaced(CHANNEL), Listener(live))
    }
}

struct Listener(Arc<LivePlugins>);

impl Subscriber for Listener {
    async fn subscribed(&self) {
        if let Err(error) = self.0.sync_all_from_db().await {
            tracing::warn!(%error, "could not catch up on uploaded plugins");
        }
    }

    async fn message(&self, payload: Vec<u8>) {
        let Ok(name) = String::from_utf8(payload) else { return };
        if let Err(error) = self.0.sync_from_db(&name).await {
            tracing::warn!(plugin = name, %error, "could not apply an announced plugin change");
        }
    }
}
