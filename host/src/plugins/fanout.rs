//! Plugin changes announced to every host sharing the database, over Redis pub/sub.
//!
//! A message carries only a plugin name; each receiving host reads that plugin's build from the
//! database and syncs its own directory ([`LivePlugins::sync_from_db`]), so a message that is
//! duplicated, reordered or meant for a plugin this host never heard of is harmless. After every
//! (re)connection a host syncs all stored builds, catching up on messages it missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;

use super::LivePlugins;

/// The pub/sub channel plugin changes are announced on.
pub const CHANNEL: &str = "autoflow:plugins";
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Announces plugin changes; cheap to clone. Changes are rare, so each announcement opens its
/// own connection and a Redis outage never blocks start-up.
#[derive(Clone)]
pub struct Fanout {
    client: redis::Client,
}

impl Fanout {
    pub fn new(client: redis::Client) -> Self {
        Self { client }
    }

    /// Tells every host that plugin `name` changed. A failure is logged: the other hosts also
    /// catch up when their subscription reconnects.
    pub async fn announce(&self, name: &str) {
        let result = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            connection.publish::<_, _, ()>(CHANNEL, name).await
        };
        if let Err(error) = result.await {
            tracing::warn!(plugin = name, %error, "could not announce the plugin change to other hosts");
        }
    }
}

/// Listens for announcements and syncs each named plugin from the database, reconnecting forever.
pub fn spawn_listener(client: redis::Client, live: Arc<LivePlugins>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                    Ok(()) => {
                        if let Err(error) = live.sync_all_from_db().await {
                            tracing::warn!(%error, "could not catch up on uploaded plugins");
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(name) = message.get_payload::<String>() else { continue };
                            if let Err(error) = live.sync_from_db(&name).await {
                                tracing::warn!(plugin = name, %error, "could not apply an announced plugin change");
                            }
                        }
                        tracing::warn!("lost the Redis subscription for plugin changes; reconnecting");
                    }
                    Err(error) => tracing::warn!(%error, "could not subscribe to plugin changes"),
                },
                Err(error) => tracing::warn!(%error, "could not connect to Redis for plugin changes"),
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    })
}
