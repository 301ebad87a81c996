//! The host cache. Needs `[capabilities] cache = true`. Keys are the plugin's own: the host prefixes
//! them with the plugin's name and, in [`Scope::User`], the caller's user id. Any read may miss.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::autoflow::platform::cache as wit;
pub use crate::bindings::autoflow::platform::cache::Scope;
use crate::{Error, Result};

fn millis(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// The bytes under `key`, or `None` on a miss.
pub fn get(scope: Scope, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(wit::get(scope, key)?)
}

/// Stores `value` under `key`, expiring after `ttl` if given.
pub fn set(scope: Scope, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
    Ok(wit::set(scope, key, value, millis(ttl))?)
}

/// Removes `key`.
pub fn delete(scope: Scope, key: &str) -> Result<()> {
    Ok(wit::delete(scope, key)?)
}

/// Atomically adds `by` to the counter under `key` and returns the new value; a new counter
/// expires after `ttl` (a rate-limit window, say).
pub fn increment(scope: Scope, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
    Ok(wit::increment(scope, key, by, millis(ttl))?)
}

/// The value under `key` decoded from JSON; a value that no longer decodes counts as a miss.
pub fn get_json<T: DeserializeOwned>(scope: Scope, key: &str) -> Result<Option<T>> {
    Ok(get(scope, key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize>(scope: Scope, key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::internal(format!("cannot encode cache value: {e}")))?;
    set(scope, key, &bytes, ttl)
}

/// Cache-aside (the original system's `get(key, onMiss)`): the cached value, or `on_miss()`'s,
/// which is then cached for `ttl`. An error from `on_miss` is returned and nothing is cached.
pub fn get_or<T, F>(scope: Scope, key: &str, ttl: Option<Duration>, on_miss: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T>,
{
    if let Some(value) = get_json(scope, key)? {
        return Ok(value);
    }
    let value = on_miss()?;
    set_json(scope, key, &value, ttl)?;
    Ok(value)
}
