//! The cache: Redis when configured (shared by every host), else a bounded in-process cache.
//!
//! A cache must never be why a request fails: when Redis is unreachable a read is a miss and a
//! write is skipped, each logged and counted ([`Cache::degraded_operations`]); while it stays
//! down, reconnection is tried at most once a second (see [`RedisConnection`]) so callers are not
//! slowed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::Expiry;
use moka::ops::compute::Op;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::redis_connection::{RedisConnection, timed};

/// Entries the in-process cache holds at most.
pub const MEMORY_CAPACITY: u64 = 100_000;

/// A value with its own time to live.
#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Option<Duration>,
}

struct EntryTtl;

impl Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: std::time::Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

enum Backend {
    Memory(moka::future::Cache<String, Entry>),
    Redis(RedisConnection),
}

/// A cache of byte values under string keys; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    backend: Arc<Backend>,
    degraded: Arc<AtomicU64>,
    /// Prefix of every key in Redis (`{namespace}:{key}`), so deployments can share a server.
    namespace: Arc<str>,
}

/// The namespace keys live in unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "autoflow";

impl Cache {
    /// The bounded in-process cache.
    pub fn memory() -> Self {
        let cache = moka::future::Cache::builder().max_capacity(MEMORY_CAPACITY).expire_after(EntryTtl).build();
        Self {
            backend: Arc::new(Backend::Memory(cache)),
            degraded: Arc::default(),
            namespace: DEFAULT_NAMESPACE.into(),
        }
    }

    /// Redis over `connection`; connects on first use, so a Redis outage never blocks start-up.
    pub fn redis(connection: RedisConnection) -> Self {
        Self {
            backend: Arc::new(Backend::Redis(connection)),
            degraded: Arc::default(),
            namespace: DEFAULT_NAMESPACE.into(),
        }
    }

    /// The same cache with keys in `namespace` instead of [`DEFAULT_NAMESPACE`].
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// `name` inside this cache's namespace: the Redis key or pub/sub channel other parts of the
    /// host (task dispatch, subscriptions) use, so the deployment's namespace has one spelling.
    pub fn namespaced(&self, name: &str) -> String {
        self.key(name)
    }

    /// Publishes `message` on channel `name` (see [`Cache::namespaced`]) to every process sharing the
    /// Redis; nothing without Redis. A failure is logged and counted, never returned.
    pub async fn publish(&self, name: &str, message: &[u8]) {
        let Backend::Redis(redis) = &*self.backend else { return };
        let channel = self.namespaced(name);
        let Some(mut connection) = self.connection(redis).await else { return };
        let result = timed(connection.publish::<_, _, ()>(&channel, message)).await;
        self.degrade_on_error("publish", &channel, result);
    }

    /// How many operations degraded (a miss or a skipped write) because Redis was unreachable.
    pub fn degraded_operations(&self) -> u64 {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Whether the cache is shared by every host (Redis) rather than this process's own.
    pub fn is_shared(&self) -> bool {
        matches!(&*self.backend, Backend::Redis(_))
    }

    /// The values under `keys`, in one round trip; unlike [`Cache::get`], an unreachable cache is
    /// an error rather than a miss.
    pub async fn try_get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, redis::RedisError> {
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        match &*self.backend {
            Backend::Memory(cache) => {
                let mut values = Vec::with_capacity(keys.len());
                for key in &keys {
                    values.push(cache.get(key).await.map(|entry| entry.value.to_vec()));
                }
                Ok(values)
            }
            Backend::Redis(redis) => {
                let result = async { timed(redis.get().await?.mget(&keys)).await }.await;
                if result.is_err() {
                    self.degraded.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
        }
    }

    /// The value under `key`; `None` when absent, expired or the cache is unreachable.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let key = &self.key(key);
        match &*self.backend {
            Backend::Memory(cache) => cache.get(key).await.map(|e| e.value.to_vec()),
            Backend::Redis(redis) => {
                let mut connection = self.connection(redis).await?;
                self.degrade_on_error("get", key, timed(connection.get::<_, Option<Vec<u8>>>(key)).await).flatten()
            }
        }
    }

    /// Stores `value` under `key`, expiring after `ttl` if given.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let key = &self.key(key);
        match &*self.backend {
            Backend::Memory(cache) => cache.insert(key.to_owned(), Entry { value: value.into(), ttl }).await,
            Backend::Redis(redis) => {
                let Some(mut connection) = self.connection(redis).await else { return };
                let result = match ttl {
                    Some(ttl) => timed(connection.pset_ex::<_, _, ()>(key, value, millis(ttl))).await,
                    None => timed(connection.set::<_, _, ()>(key, value)).await,
                };
                self.degrade_on_error("set", key, result);
            }
        }
    }

    /// Stores `value` under `key` for `ttl` unless the key holds a value already (a cache fill that
    /// must not overwrite a concurrent writer's fresher entry).
    pub async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) {
        let key = &self.key(key);
        match &*self.backend {
            Backend::Memory(cache) => {
                cache.entry(key.to_owned()).or_insert(Entry { value: value.into(), ttl: Some(ttl) }).await;
            }
            Backend::Redis(redis) => {
                let Some(mut connection) = self.connection(redis).await else { return };
                let mut set = redis::cmd("SET");
                set.arg(key).arg(value).arg("NX").arg("PX").arg(millis(ttl));
                let result = timed(set.query_async::<Option<String>>(&mut connection)).await;
                self.degrade_on_error("set_if_absent", key, result);
            }
        }
    }

    /// Stores `value` under `key` as version `version` for `ttl`, unless the entry there is of
    /// that version or a newer one: a writer's fresh copy is never replaced by an older one that a
    /// concurrent reader loaded before the write. Read it back with [`Cache::get_versioned`].
    pub async fn set_if_newer(&self, key: &str, version: u64, value: &[u8], ttl: Duration) {
        let key = &self.key(key);
        let mut stored = format!("{version}:").into_bytes();
        stored.extend_from_slice(value);
        match &*self.backend {
            Backend::Memory(cache) => {
                let entry = Entry { value: stored.into(), ttl: Some(ttl) };
                cache
                    .entry(key.to_owned())
                    .and_compute_with(|current| {
                        let held = current.and_then(|e| split_version(&e.value().value).map(|(held, _)| held));
                        let newer = held.is_some_and(|held| held >= version);
                        std::future::ready(if newer { Op::Nop } else { Op::Put(entry) })
                    })
                    .await;
            }
            Backend::Redis(redis) => {
                let Some(mut connection) = self.connection(redis).await else { return };
                let script = SET_IF_NEWER.get_or_init(|| redis::Script::new(SET_IF_NEWER_LUA));
                let mut invocation = script.key(key);
                invocation.arg(version).arg(stored).arg(millis(ttl));
                let result = timed(invocation.invoke_async::<i64>(&mut connection)).await;
                self.degrade_on_error("set_if_newer", key, result);
            }
        }
    }

    /// The version and value [`Cache::set_if_newer`] stored under `key`.
    pub async fn get_versioned(&self, key: &str) -> Option<(u64, Vec<u8>)> {
        let bytes = self.get(key).await?;
        split_version(&bytes).map(|(version, value)| (version, value.to_vec()))
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) {
        let key = &self.key(key);
        match &*self.backend {
            Backend::Memory(cache) => cache.invalidate(key).await,
            Backend::Redis(redis) => {
                let Some(mut connection) = self.connection(redis).await else { return };
                let result = timed(connection.del::<_, ()>(key)).await;
                self.degrade_on_error("delete", key, result);
            }
        }
    }

    /// Atomically adds `by` to the integer under `key` (absent = 0) and returns the new value; a new
    /// key expires after `ttl`. A value that is no integer, or a sum past the 64-bit range, is
    /// refused and left as it was.
    pub async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, IncrementError> {
        let key = &self.key(key);
        match &*self.backend {
            Backend::Memory(cache) => {
                let mut outcome = Err(IncrementError::Unavailable);
                cache
                    .entry(key.to_owned())
                    .and_compute_with(|current| {
                        let (before, ttl) = match &current {
                            Some(e) => (parse_counter(&e.value().value), e.value().ttl),
                            None => (Some(0), ttl),
                        };
                        let sum = before
                            .ok_or(IncrementError::NotAnInteger)
                            .and_then(|before| before.checked_add(by).ok_or(IncrementError::Overflow));
                        let op = match sum {
                            Ok(sum) => Op::Put(Entry { value: sum.to_string().into_bytes().into(), ttl }),
                            Err(_) => Op::Nop,
                        };
                        outcome = sum;
                        std::future::ready(op)
                    })
                    .await;
                outcome
            }
            Backend::Redis(redis) => {
                let mut connection = self.connection(redis).await.ok_or(IncrementError::Unavailable)?;
                let mut pipe = redis::pipe();
                pipe.atomic().incr(key, by);
                if let Some(ttl) = ttl {
                    pipe.cmd("PEXPIRE").arg(key).arg(millis(ttl)).arg("NX").ignore();
                }
                match timed(pipe.query_async::<(i64,)>(&mut connection)).await {
                    Ok((value,)) => Ok(value),
                    // Redis refuses both before changing anything: `ERR increment or decrement would
                    // overflow`, `ERR value is not an integer or out of range`.
                    Err(error) if error.to_string().contains("would overflow") => Err(IncrementError::Overflow),
                    Err(error) if error.to_string().contains("not an integer") => Err(IncrementError::NotAnInteger),
                    Err(error) => {
                        self.degrade_on_error::<()>("increment", key, Err(error));
                        Err(IncrementError::Unavailable)
                    }
                }
            }
        }
    }

    /// The Redis connection, or `None` (counted) while Redis is unreachable.
    async fn connection(&self, redis: &RedisConnection) -> Option<ConnectionManager> {
        let connection = redis.get().await;
        if connection.is_err() {
            self.degraded.fetch_add(1, Ordering::Relaxed);
        }
        connection.ok()
    }

    fn degrade_on_error<T>(&self, operation: &str, key: &str, result: redis::RedisResult<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.degraded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(operation, key, %error, "cache operation degraded: Redis failed");
                None
            }
        }
    }
}

/// A version above every version a write reaches, exact in Redis's Lua numbers (doubles): a
/// tombstone stored with it stays until it expires.
pub const FINAL_VERSION: u64 = 1 << 53;

/// [`Cache::set_if_newer`] on Redis: `KEYS[1]`, `ARGV` = version, versioned value, TTL in ms.
const SET_IF_NEWER_LUA: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+):'))
  if version and version >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

static SET_IF_NEWER: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();

/// A versioned value's version and the value itself.
fn split_version(stored: &[u8]) -> Option<(u64, &[u8])> {
    let colon = stored.iter().position(|b| *b == b':')?;
    let version = std::str::from_utf8(&stored[..colon]).ok()?.parse().ok()?;
    Some((version, &stored[colon + 1..]))
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn parse_counter(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok())
}

/// Why [`Cache::increment`] did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IncrementError {
    #[error("the counter would pass the 64-bit integer range")]
    Overflow,
    #[error("the value under this key is not an integer")]
    NotAnInteger,
    #[error("the cache cannot count right now")]
    Unavailable,
}
