//! Waking idle workers when a task may be due: this process's at once, and with Redis every other
//! process's through pub/sub. A wake-up is only a hint (workers claim from the database, and poll
//! it anyway), so a lost one costs at most one poll interval and a Redis outage loses no task.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::services::cache::Cache;

/// The pub/sub channel, inside the deployment's cache namespace.
const CHANNEL: &str = "tasks:due";
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

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

    /// Forwards other processes' wake-ups to this one's workers, reconnecting forever.
    pub fn spawn_listener(&self, client: redis::Client) -> tokio::task::JoinHandle<()> {
        let (local, channel) = (self.local.clone(), self.cache.channel(CHANNEL));
        tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            let mut messages = pubsub.on_message();
                            while messages.next().await.is_some() {
                                local.notify_waiters();
                            }
                        }
                        Err(error) => tracing::warn!(%error, "could not subscribe to task wake-ups"),
                    },
                    Err(error) => tracing::debug!(%error, "could not connect to Redis for task wake-ups"),
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        })
    }
}
