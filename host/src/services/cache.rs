//! The cache: Redis when configured (shared by every host), else an in-process cache bounded by
//! bytes ([`MEMORY_CAPACITY_BYTES`]). Writes made for a [`Quota`] (each plugin's) are counted
//! against it on both backends, so one plugin cannot evict or exhaust everyone else's entries.
//!
//! A cache must never be why a request fails: when Redis is unreachable a read is a miss and a
//! write is skipped, each logged and counted ([`Cache::degraded_operations`]); while it stays
//! down, reconnection is tried at most once a second (see [`RedisConnection`]) so callers are not
//! slowed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::redis_connection::{RedisConnection, timed};
use crate::config::DEFAULT_CACHE_NAMESPACE;

/// Bytes (keys and values) the in-process cache holds at most.
pub const MEMORY_CAPACITY_BYTES: u64 = 256 * 1024 * 1024;

/// A value with its own time to live, and the quota it counts against.
#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Option<Duration>,
    quota: Option<Arc<str>>,
}

impl Entry {
    fn new(value: impl Into<Arc<[u8]>>, ttl: Option<Duration>) -> Self {
        Self { value: value.into(), ttl, quota: None }
    }
}

/// A budget of cache bytes (keys and values) that the writes made for it share: one per plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub name: Arc<str>,
    pub bytes: u64,
}

/// A write refused because its quota is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cache quota of {quota} bytes is spent: delete entries or give them shorter TTLs")]
pub struct QuotaExceeded {
    pub quota: u64,
}

/// What each quota of the in-process cache has in use, in bytes.
type Usage = std::sync::Mutex<std::collections::HashMap<Arc<str>, u64>>;

/// The bytes an entry counts for.
fn weight(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
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
    Memory { cache: moka::future::Cache<String, Entry>, usage: Arc<Usage> },
    Redis(RedisConnection),
}

/// How [`Cache::get`] calls went.
#[derive(Default)]
struct ReadCounts {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A cache of byte values under string keys; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    backend: Arc<Backend>,
    degraded: Arc<AtomicU64>,
    reads: Arc<ReadCounts>,
    /// Prefix of every key in Redis (`{namespace}:{key}`), so deployments can share a server.
    namespace: Arc<str>,
}

impl Cache {
    /// The in-process cache, bounded by [`MEMORY_CAPACITY_BYTES`].
    pub fn memory() -> Self {
        Self::memory_of(MEMORY_CAPACITY_BYTES)
    }

    /// An in-process cache of at most `bytes`.
    pub fn memory_of(bytes: u64) -> Self {
        let usage = Arc::new(Usage::default());
        let released = usage.clone();
        let cache = moka::future::Cache::builder()
            .max_capacity(bytes)
            .weigher(|key: &String, entry: &Entry| u32::try_from(weight(key, &entry.value)).unwrap_or(u32::MAX))
            .expire_after(EntryTtl)
            // However an entry goes (replaced, deleted, expired, evicted), its quota gets it back.
            .eviction_listener(move |key: Arc<String>, entry: Entry, _| {
                if let Some(name) = &entry.quota {
                    release(&released, name, weight(&key, &entry.value));
                }
            })
            .build();
        Self {
            backend: Arc::new(Backend::Memory { cache, usage }),
            degraded: Arc::default(),
            reads: Arc::default(),
            namespace: DEFAULT_CACHE_NAMESPACE.into(),
        }
    }

    /// Redis over `connection`; connects on first use, so a Redis outage never blocks start-up.
    pub fn redis(connection: RedisConnection) -> Self {
        Self {
            backend: Arc::new(Backend::Redis(connection)),
            degraded: Arc::default(),
            reads: Arc::default(),
            namespace: DEFAULT_CACHE_NAMESPACE.into(),
        }
    }

    /// The same cache with keys in `namespace` instead of [`DEFAULT_CACHE_NAMESPACE`].
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// `name` inside this cache's namespace: the Redis key or pub/sub channel other parts of the
    /// host (plugin-change subscriptions) use, so the deployment's namespace has one spelling.
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

    /// Whether Redis answers a `PING` (within [`REDIS_TIMEOUT`](super::redis_connection::REDIS_TIMEOUT));
    /// `None` for the in-process cache, which has nothing to reach.
    pub async fn ping(&self) -> Option<Result<(), redis::RedisError>> {
        let Backend::Redis(redis) = &*self.backend else { return None };
        let result = match redis.get().await {
            Ok(mut connection) => timed(redis::cmd("PING").query_async::<()>(&mut connection)).await,
            Err(error) => Err(error),
        };
        Some(result)
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
            Backend::Memory { cache, .. } => {
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
        let value = match &*self.backend {
            Backend::Memory { cache, .. } => cache.get(key).await.map(|e| e.value.to_vec()),
            Backend::Redis(redis) => match self.connection(redis).await {
                Some(mut connection) => {
                    let found = timed(connection.get::<_, Option<Vec<u8>>>(key)).await;
                    self.degrade_on_error("get", key, found).flatten()
                }
                None => None,
            },
        };
        let counter = if value.is_some() { &self.reads.hits } else { &self.reads.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// Reads by [`Cache::get`] since start-up that found a value, and those that did not.
    pub fn reads(&self) -> (u64, u64) {
        (self.reads.hits.load(Ordering::Relaxed), self.reads.misses.load(Ordering::Relaxed))
    }

    /// Stores `value` under `key`, expiring after `ttl` if given.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let key = &self.key(key);
        match &*self.backend {
            Backend::Memory { cache, .. } => cache.insert(key.to_owned(), Entry::new(value, ttl)).await,
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
            Backend::Memory { cache, .. } => {
                cache.entry(key.to_owned()).or_insert(Entry::new(value, Some(ttl))).await;
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
        let stored = versioned(version, value);
        match &*self.backend {
            Backend::Memory { cache, .. } => {
                let entry = Entry::new(stored, Some(ttl));
                cache
                    .entry(key.to_owned())
                    .and_compute_with(|current| {
                        let newer = holds_version(current.as_ref().map(|e| e.value()), version);
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
            Backend::Memory { cache, .. } => cache.invalidate(key).await,
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
            Backend::Memory { cache, .. } => increment_entry(cache, key, by, ttl, None).await,
            Backend::Redis(redis) => {
                let mut connection = self.connection(redis).await.ok_or(IncrementError::Unavailable)?;
                let mut pipe = redis::pipe();
                pipe.atomic().incr(key, by);
                if let Some(ttl) = ttl {
                    pipe.cmd("PEXPIRE").arg(key).arg(millis(ttl)).arg("NX").ignore();
                }
                let result = timed(pipe.query_async::<(i64,)>(&mut connection)).await.map(|(value,)| value);
                self.counted(key, result, 0)
            }
        }
    }

    /// A Redis counter's outcome: Redis refuses an overflow or a non-integer before changing
    /// anything (`ERR increment or decrement would overflow`, `ERR value is not an integer…`).
    fn counted(&self, key: &str, result: redis::RedisResult<i64>, quota_bytes: u64) -> Result<i64, IncrementError> {
        match result {
            Ok(value) => Ok(value),
            Err(error) if error.to_string().contains("would overflow") => Err(IncrementError::Overflow),
            Err(error) if error.to_string().contains("not an integer") => Err(IncrementError::NotAnInteger),
            Err(error) if error.code() == Some(QUOTA_SPENT) => Err(IncrementError::OverQuota(quota_bytes)),
            Err(error) => {
                self.degrade_on_error::<()>("increment", key, Err(error));
                Err(IncrementError::Unavailable)
            }
        }
    }

    /// Stores `value` under `key` for `quota`, unless that would take the quota past its bytes
    /// (what `key` held before is given back first). An unreachable Redis skips the write, as
    /// [`Cache::set`] does.
    pub async fn set_within(
        &self,
        quota: &Quota,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), QuotaExceeded> {
        self.store_within(quota, key, value, ttl, Fill::Always).await
    }

    /// Stores `value` under `key` as version `version` for `quota`, as [`Cache::set_if_newer`]
    /// does: with `replace` whatever is there, else only over an older version (or none), so
    /// writes that finish out of order never leave the older one. Read it with
    /// [`Cache::get_versioned`].
    pub async fn set_versioned_within(
        &self,
        quota: &Quota,
        key: &str,
        version: u64,
        value: &[u8],
        ttl: Duration,
        replace: bool,
    ) -> Result<(), QuotaExceeded> {
        let stored = versioned(version, value);
        let fill = if replace { Fill::Always } else { Fill::IfNewer(version) };
        self.store_within(quota, key, &stored, Some(ttl), fill).await
    }

    async fn store_within(
        &self,
        quota: &Quota,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        fill: Fill,
    ) -> Result<(), QuotaExceeded> {
        let key = &self.key(key);
        let needed = weight(key, value);
        match &*self.backend {
            Backend::Memory { cache, usage } => {
                let current = cache.get(key).await;
                if let Fill::IfNewer(version) = fill
                    && holds_version(current.as_ref(), version)
                {
                    return Ok(());
                }
                let held = current
                    .filter(|entry| entry.quota.as_ref() == Some(&quota.name))
                    .map_or(0, |entry| weight(key, &entry.value));
                reserve(cache, usage, quota, needed, held).await?;
                let entry = Entry { value: value.into(), ttl, quota: Some(quota.name.clone()) };
                let stored = match fill {
                    Fill::Always => {
                        cache.insert(key.to_owned(), entry).await;
                        true
                    }
                    Fill::IfNewer(version) => {
                        let result = cache
                            .entry(key.to_owned())
                            .and_compute_with(|current| {
                                let newer = holds_version(current.as_ref().map(|e| e.value()), version);
                                std::future::ready(if newer { Op::Nop } else { Op::Put(entry) })
                            })
                            .await;
                        !matches!(result, CompResult::Unchanged(_) | CompResult::StillNone(_))
                    }
                };
                if !stored {
                    // Another writer got there first: the room reserved is not used.
                    release(usage, &quota.name, needed);
                }
                Ok(())
            }
            Backend::Redis(redis) => {
                let Some(mut connection) = self.connection(redis).await else { return Ok(()) };
                let script =
                    SET_WITHIN.get_or_init(|| redis::Script::new(&format!("{PURGE_EXPIRED_LUA}{SET_WITHIN_LUA}")));
                let mut invocation = script.key(key);
                invocation
                    .key(self.quota_keys(quota))
                    .arg(value)
                    .arg(ttl.map_or(0, millis))
                    .arg(quota.bytes)
                    .arg(needed);
                match fill {
                    Fill::Always => invocation.arg(0).arg(0),
                    Fill::IfNewer(version) => invocation.arg(1).arg(version),
                };
                match timed(invocation.invoke_async::<i64>(&mut connection)).await {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(QuotaExceeded { quota: quota.bytes }),
                    Err(error) => {
                        self.degrade_on_error::<()>("set_within", key, Err(error));
                        Ok(())
                    }
                }
            }
        }
    }

    /// Removes `key`, giving its bytes back to `quota`.
    pub async fn delete_within(&self, quota: &Quota, key: &str) {
        let Backend::Redis(redis) = &*self.backend else { return self.delete(key).await };
        let key = &self.key(key);
        let Some(mut connection) = self.connection(redis).await else { return };
        let script = DELETE_WITHIN.get_or_init(|| redis::Script::new(DELETE_WITHIN_LUA));
        let mut invocation = script.key(key);
        invocation.key(self.quota_keys(quota));
        let result = timed(invocation.invoke_async::<i64>(&mut connection)).await;
        self.degrade_on_error("delete_within", key, result);
    }

    /// [`Cache::increment`] for `quota`: a new counter takes room in it like any entry.
    pub async fn increment_within(
        &self,
        quota: &Quota,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, IncrementError> {
        let full = self.key(key);
        let needed = weight(&full, COUNTER_ROOM);
        match &*self.backend {
            Backend::Memory { cache, usage } => {
                // A new counter must fit its longest value; once put, it counts for what it holds.
                let is_new = cache.get(&full).await.is_none();
                if is_new {
                    reserve(cache, usage, quota, needed, 0).await.map_err(|e| IncrementError::OverQuota(e.quota))?;
                }
                let counted = increment_entry(cache, &full, by, ttl, Some((usage, &quota.name))).await;
                if is_new {
                    release(usage, &quota.name, needed);
                }
                counted
            }
            Backend::Redis(redis) => {
                let mut connection = self.connection(redis).await.ok_or(IncrementError::Unavailable)?;
                let script = INCREMENT_WITHIN
                    .get_or_init(|| redis::Script::new(&format!("{PURGE_EXPIRED_LUA}{INCREMENT_WITHIN_LUA}")));
                let mut invocation = script.key(&full);
                invocation.key(self.quota_keys(quota)).arg(by).arg(ttl.map_or(0, millis)).arg(quota.bytes).arg(needed);
                let result = timed(invocation.invoke_async::<String>(&mut connection)).await;
                let result = result.and_then(|text| {
                    text.parse().map_err(|_| redis::RedisError::from((redis::ErrorKind::Parse, "not an integer")))
                });
                self.counted(&full, result, quota.bytes)
            }
        }
    }

    /// The Redis keys that account for `quota`: each entry's size (with the total under the
    /// empty field) and each entry's expiry time.
    fn quota_keys(&self, quota: &Quota) -> Vec<String> {
        vec![self.key(&format!("quota/{}/sizes", quota.name)), self.key(&format!("quota/{}/expiry", quota.name))]
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

/// Adds `by` to the in-process counter under the full `key`, leaving it as it was on failure; with
/// `quota`, the counter's bytes count against that quota of `usage`.
async fn increment_entry(
    cache: &moka::future::Cache<String, Entry>,
    key: &str,
    by: i64,
    ttl: Option<Duration>,
    quota: Option<(&Usage, &Arc<str>)>,
) -> Result<i64, IncrementError> {
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
                Ok(sum) => {
                    let name = quota.map(|(_, name)| name.clone());
                    let entry = Entry { value: sum.to_string().into_bytes().into(), ttl, quota: name };
                    // The entry it replaces is given back by the eviction listener.
                    if let Some((usage, name)) = quota {
                        let mut usage = usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        *usage.entry(name.clone()).or_default() += weight(key, &entry.value);
                    }
                    Op::Put(entry)
                }
                Err(_) => Op::Nop,
            };
            outcome = sum;
            std::future::ready(op)
        })
        .await;
    outcome
}

/// Takes `needed` bytes from `quota` (`held` of them are the entry being replaced, given back by the
/// eviction listener once replaced). Entries that expired but were not yet swept are swept first.
async fn reserve(
    cache: &moka::future::Cache<String, Entry>,
    usage: &Usage,
    quota: &Quota,
    needed: u64,
    held: u64,
) -> Result<(), QuotaExceeded> {
    for swept in [false, true] {
        if swept {
            cache.run_pending_tasks().await;
        }
        let mut usage = usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let used = usage.entry(quota.name.clone()).or_default();
        if used.saturating_sub(held).saturating_add(needed) <= quota.bytes {
            *used += needed;
            return Ok(());
        }
    }
    Err(QuotaExceeded { quota: quota.bytes })
}

/// Gives `bytes` back to quota `name`.
fn release(usage: &Usage, name: &str, bytes: u64) {
    let mut usage = usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(used) = usage.get_mut(name) {
        *used = used.saturating_sub(bytes);
    }
}

/// Room a counter takes besides its key: the longest 64-bit integer.
const COUNTER_ROOM: &[u8] = b"-9223372036854775808";

/// The code of the error a quota script raises when the quota is spent.
const QUOTA_SPENT: &str = "QUOTA";

/// Quota scripts: `KEYS[2]` maps each entry (full key) to its size, the empty field to the total;
/// `KEYS[3]` holds each entry by expiry time. First, up to 256 expired entries are given back.
const PURGE_EXPIRED_LUA: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 256)) do
  local size = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  redis.call('HDEL', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
  redis.call('HINCRBY', KEYS[2], '', -size)
end
local held = tonumber(redis.call('HGET', KEYS[2], KEYS[1]) or '0')
local used = tonumber(redis.call('HGET', KEYS[2], '') or '0')
local function account(size, ttl)
  redis.call('HSET', KEYS[2], KEYS[1], size)
  redis.call('HINCRBY', KEYS[2], '', size - held)
  if ttl > 0 then redis.call('ZADD', KEYS[3], now + ttl, KEYS[1]) else redis.call('ZADD', KEYS[3], '+inf', KEYS[1]) end
end
"#;

/// `ARGV` = value, TTL in ms (0: none), quota bytes, the entry's size, then the [`Fill`]: 0
/// always, 1 only over a version below `ARGV[6]`. 1 stored (or kept), 0 over quota.
const SET_WITHIN_LUA: &str = r#"
local ttl, size = tonumber(ARGV[2]), tonumber(ARGV[4])
if ARGV[5] == '1' then
  local current = redis.call('GET', KEYS[1])
  local version = current and tonumber(string.match(current, '^(%d+):'))
  if version and version >= tonumber(ARGV[6]) then return 1 end
end
if used - held + size > tonumber(ARGV[3]) then return 0 end
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[1]) end
account(size, ttl)
return 1
"#;

/// `ARGV` = by, TTL in ms (0: none), quota bytes, a counter's size. The new value, as text: Lua's
/// numbers are doubles, which would round a 64-bit counter.
const INCREMENT_WITHIN_LUA: &str = r#"
local ttl, size = tonumber(ARGV[2]), tonumber(ARGV[4])
if held == 0 and used + size > tonumber(ARGV[3]) then return redis.error_reply('QUOTA spent') end
redis.call('INCRBY', KEYS[1], ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl, 'NX') end
if held == 0 then account(size, ttl) end
return redis.call('GET', KEYS[1])
"#;

/// `KEYS` as for the quota scripts: removes the entry and gives its size back.
const DELETE_WITHIN_LUA: &str = r#"
redis.call('DEL', KEYS[1])
local held = tonumber(redis.call('HGET', KEYS[2], KEYS[1]) or '0')
redis.call('HDEL', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('HINCRBY', KEYS[2], '', -held)
return 1
"#;

static SET_WITHIN: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
static INCREMENT_WITHIN: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
static DELETE_WITHIN: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();

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

/// When a write for a quota stores its value.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Always,
    /// Unless the entry there is of this version or a newer one.
    IfNewer(u64),
}

/// Whether `entry` holds a versioned value of `version` or newer.
fn holds_version(entry: Option<&Entry>, version: u64) -> bool {
    entry.and_then(|entry| split_version(&entry.value)).is_some_and(|(held, _)| held >= version)
}

/// `value` as version `version`, as [`split_version`] reads it.
fn versioned(version: u64, value: &[u8]) -> Vec<u8> {
    let mut stored = format!("{version}:").into_bytes();
    stored.extend_from_slice(value);
    stored
}

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
    #[error("the cache quota of {0} bytes is spent: delete entries or give them shorter TTLs")]
    OverQuota(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_process_cache_is_bounded_by_bytes_not_entries() {
        let cache = Cache::memory_of(64 * 1024);
        let value = vec![7u8; 4096];
        for n in 0..64 {
            cache.set(&format!("big/{n}"), &value, None).await;
        }
        let Backend::Memory { cache: inner, .. } = &*cache.backend else { unreachable!() };
        inner.run_pending_tasks().await;
        assert!(inner.weighted_size() <= 64 * 1024, "holds {} bytes", inner.weighted_size());
        let mut kept = 0;
        for n in 0..64 {
            kept += usize::from(cache.get(&format!("big/{n}")).await.is_some());
        }
        assert!((1..=16).contains(&kept), "{kept} values of 4 KiB in 64 KiB");
    }

    #[tokio::test]
    async fn versioned_writes_that_finish_out_of_order_keep_the_newest() {
        let cache = Cache::memory();
        // Room for about three entries: a dropped write that kept its room would soon spend it.
        let quota = Quota { name: "plugin-a".into(), bytes: 40 };
        let ttl = Duration::from_secs(60);
        let held = |cache: &Cache| {
            let cache = cache.clone();
            async move { cache.get_versioned("doc").await }
        };
        cache.set_versioned_within(&quota, "doc", 5, b"five", ttl, false).await.unwrap();
        cache.set_versioned_within(&quota, "doc", 4, b"four", ttl, false).await.unwrap();
        assert_eq!(held(&cache).await, Some((5, b"five".to_vec())), "an older write finishing late is dropped");
        cache.set_versioned_within(&quota, "doc", 6, b"six", ttl, false).await.unwrap();
        assert_eq!(held(&cache).await, Some((6, b"six".to_vec())));
        cache.set_versioned_within(&quota, "doc", FINAL_VERSION, b"gone", ttl, false).await.unwrap();
        cache.set_versioned_within(&quota, "doc", 7, b"seven", ttl, false).await.unwrap();
        assert_eq!(held(&cache).await.map(|(version, _)| version), Some(FINAL_VERSION), "a tombstone stays");
        cache.set_versioned_within(&quota, "doc", 1, b"again", ttl, true).await.unwrap();
        assert_eq!(held(&cache).await, Some((1, b"again".to_vec())), "a replacing write overwrites anything");
        for _ in 0..10 {
            cache.set_versioned_within(&quota, "doc", 0, b"stale", ttl, false).await.unwrap();
        }
        cache
            .set_versioned_within(&quota, "doc", 2, b"two", ttl, false)
            .await
            .expect("dropped writes gave their room back");
        assert_eq!(held(&cache).await, Some((2, b"two".to_vec())));
    }

    #[tokio::test]
    async fn a_quota_refuses_writes_past_its_bytes_and_gets_them_back_when_entries_go() {
        let cache = Cache::memory();
        let quota = Quota { name: "plugin-a".into(), bytes: 1000 };
        let other = Quota { name: "plugin-b".into(), bytes: 1000 };
        cache.set_within(&quota, "a/1", &[0; 480], None).await.unwrap();
        cache.set_within(&quota, "a/2", &[0; 480], None).await.unwrap();
        assert_eq!(cache.set_within(&quota, "a/3", &[0; 480], None).await, Err(QuotaExceeded { quota: 1000 }));
        cache.set_within(&quota, "a/2", &[1; 480], None).await.expect("replacing an entry reuses its room");
        cache.set_within(&other, "b/1", &[0; 480], None).await.expect("another quota is untouched");
        assert_eq!(cache.increment_within(&quota, "a/n", 1, None).await, Err(IncrementError::OverQuota(1000)));

        cache.delete_within(&quota, "a/1").await;
        let counters = Quota { name: "plugin-c".into(), bytes: 100 };
        for _ in 0..3 {
            cache.increment_within(&counters, "c", 1, None).await.unwrap();
        }
        cache.delete_within(&counters, "c").await;
        cache.set_within(&counters, "v", &[0; 85], None).await.expect("a deleted counter gave all its room back");
        cache.set_within(&quota, "a/3", &[0; 480], Some(Duration::from_millis(50))).await.unwrap();
        assert_eq!(cache.get("a/1").await, None);
        // The in-process cache sweeps expired entries on a timer wheel of about a second.
        let started = std::time::Instant::now();
        while cache.set_within(&quota, "a/4", &[0; 480], None).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(5), "an expired entry never gave its room back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
