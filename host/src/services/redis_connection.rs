//! One lazily made, self-reconnecting Redis connection, shared by the cache and the
//! pub/sub announcements, and the resubscribing loop every subscriber runs in.
//!
//! Redis must never be why the host stalls: connecting happens on first use (so an outage never
//! blocks start-up), every operation is bounded by [`REDIS_TIMEOUT`], and while Redis stays down a
//! new connection is tried at most once per [`RETRY_AFTER`], failing fast in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// Longest one Redis operation (or connection attempt) may take before it counts as a failure.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest subscribing may take before the subscriber tries again.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a failed connection attempt the next one is made.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Redis at one address, connected on demand; clones share the connection.
#[derive(Clone)]
pub struct RedisConnection(Arc<Shared>);

struct Shared {
    client: redis::Client,
    /// The connection once made (it reconnects by itself), or when the last attempt failed.
    state: Mutex<Result<ConnectionManager, Option<Instant>>>,
}

impl RedisConnection {
    /// Redis at `client`; nothing is connected until [`RedisConnection::get`].
    pub fn new(client: redis::Client) -> Self {
        Self(Arc::new(Shared { client, state: Mutex::new(Err(None)) }))
    }

    /// The shared connection, or an error at once while Redis was found unreachable in the last
    /// [`RETRY_AFTER`].
    pub async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        let mut state = self.0.state.lock().await;
        match &*state {
            Ok(connection) => return Ok(connection.clone()),
            Err(Some(failed_at)) if failed_at.elapsed() < RETRY_AFTER => {
                return Err(redis::RedisError::from((redis::ErrorKind::Io, "Redis was unreachable moments ago")));
            }
            Err(_) => {}
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        // The attempt as a whole is bounded too: callers wait on this lock meanwhile.
        let attempt = self.0.client.get_connection_manager_with_config(config);
        match timed(attempt).await {
            Ok(connection) => {
                *state = Ok(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                tracing::warn!(%error, "Redis cannot be reached");
                *state = Err(Some(Instant::now()));
                Err(error)
            }
        }
    }
}

/// Bounds a Redis operation by [`REDIS_TIMEOUT`].
pub async fn timed<T>(operation: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(REDIS_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "Redis operation timed out"))))
}

/// What a pub/sub subscription does with what arrives.
pub trait Subscriber: Send + Sync + 'static {
    /// Runs after each (re)subscription, e.g. to catch up on what was published meanwhile.
    fn subscribed(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Handles one published payload.
    fn message(&self, payload: Vec<u8>) -> impl Future<Output = ()> + Send;
}

/// How long a lost subscription waits before subscribing again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Subscribes `subscriber` to `channel` on `redis` (over a connection of its own), subscribing
/// again for ever after the connection is lost (a Redis outage at start-up included).
pub fn spawn_subscriber(
    redis: &RedisConnection,
    channel: String,
    subscriber: impl Subscriber,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;

    let client = redis.0.client.clone();
    tokio::spawn(async move {
        loop {
            let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await.map(|()| pubsub)
            });
            match subscribed.await {
                Ok(Ok(mut pubsub)) => {
                    subscriber.subscribed().await;
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        subscriber.message(message.get_payload_bytes().to_vec()).await;
                    }
                    tracing::warn!(channel, "lost a Redis subscription; subscribing again");
                }
                Ok(Err(error)) => tracing::debug!(channel, %error, "could not subscribe to a Redis channel"),
                Err(_) => tracing::debug!(channel, "subscribing to a Redis channel timed out"),
            }
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    })
}
