//! Waking idle workers when a task may be due: this process's at once, and with Redis every other
//! process's through pub/sub. A wake-up is only a hint (idle workers look for due tasks every poll
//! interval anyway), so a lost one costs at most one poll interval and a Redis outage loses no task.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::services::cache::Cache;
use crate::services::redis_connection::{RedisConnection, Subscriber, spawn_subscriber};

/// The pub/sub channel, inside the deployment's cache namespace.
const CHANNEL: &str = "tasks:due";

/// Wakes workers; cheap to clone.
#[derive(Clone)]
pub struct Wakeup {
    local: Arc<Notify>,
    cache: Cache,
}

impl Wakeup {
    /// Wake-ups through `cache`'s Redis, if it has one.
    pub fn new(cache: Cache) -> Self {
        Self { local: Arc::default(), cache }
    }

    /// Wakes this process's idle workers and announces it to the other processes.
    pub async fn notify(&self) {
        self.local.notify_waiters();
        self.cache.publish(CHANNEL, b"due").await;
    }

    /// Completes at the next wake-up.
    pub async fn notified(&self) {
        self.local.notified().await;
    }

    /// Forwards other processes' wake-ups on `redis` to this one's workers.
    pub fn spawn_listener(&self, redis: &RedisConnection) -> tokio::task::JoinHandle<()> {
        spawn_subscriber(redis, self.cache.namespaced(CHANNEL), Listener(self.local.clone()))
    }
}

struct Listener(Arc<Notify>);

impl Subscriber for Listener {
    async fn message(&self, _: Vec<u8>) {
        self.0.notify_waiters();
    }
}
