//! `autoflow:platform/cache`: the host cache for plugins granted it. Keys are namespaced here, never
//! by the plugin: `plugins/{plugin}/s/{key}` for shared keys and `plugins/{plugin}/u/{user}/{key}`
//! for the user bound to the instance, so neither another plugin's keys nor another user's are
//! reachable (the `s`/`u` markers keep the two scopes apart whatever the key).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;

use super::{Bound, HasBound, Instance, LoadContext, Unit};
use crate::contract::{PluginError, wit::cache as wit};
use crate::services::cache::{Cache, IncrementError, Quota};
use crate::spec::grants::{self, Capability};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// The cache as one plugin sees it: its own keys, within its own quota of bytes.
#[derive(Clone)]
pub struct PluginCache {
    cache: Cache,
    plugin: Arc<str>,
    quota: Quota,
}

impl PluginCache {
    /// `plugin`'s view of `cache`, holding at most `quota_bytes` of keys and values.
    pub fn new(cache: Cache, plugin: &str, quota_bytes: u64) -> Self {
        Self { cache, plugin: plugin.into(), quota: Quota { name: plugin.into(), bytes: quota_bytes } }
    }

    /// The host key for `key` in `scope`, for the caller `user`.
    fn key(&self, scope: wit::Scope, key: &str, user: Option<&str>) -> Result<String, PluginError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(PluginError::invalid(format!(
                "cache keys must be 1-{MAX_KEY_BYTES} bytes without control characters"
            )));
        }
        match scope {
            wit::Scope::Shared => Ok(format!("plugins/{}/s/{key}", self.plugin)),
            wit::Scope::User => {
                let user = user.ok_or_else(|| {
                    PluginError::Unauthorized("the user cache scope needs an authenticated caller".into())
                })?;
                Ok(format!("plugins/{}/u/{user}/{key}", self.plugin))
            }
        }
    }
}

impl Unit for PluginCache {
    const CAPABILITY: &'static Capability = &grants::CACHE;

    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        let (services, plugin) = (load.services, load.manifest.name.as_str());
        Self::CAPABILITY
            .is_granted(load.manifest)
            .then(|| Self::new(services.cache.clone(), plugin, services.plugin_cache_quota))
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasBound<Self>>(linker, |state| state.grants.bound(|grants| grants.cache.as_ref()))
    }
}

impl Bound<'_, PluginCache> {
    /// The plugin's cache and the host key for `key`, or `forbidden` without the grant.
    fn cache_key(&self, scope: wit::Scope, key: &str) -> Result<(&PluginCache, String), PluginError> {
        let cache = self.granted()?;
        Ok((cache, cache.key(scope, key, self.call.user_id())?))
    }
}

impl wit::Host for Bound<'_, PluginCache> {
    #[tracing::instrument(name = "cache.get", skip_all)]
    async fn get(&mut self, scope: wit::Scope, key: String) -> Result<Option<Vec<u8>>, PluginError> {
        let (cache, key) = self.cache_key(scope, &key)?;
        Ok(cache.cache.get(&key).await)
    }

    #[tracing::instrument(name = "cache.set", skip_all)]
    async fn set(
        &mut self,
        scope: wit::Scope,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), PluginError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(PluginError::invalid(format!(
                "cache values are at most {MAX_VALUE_BYTES} bytes, got {}",
                value.len()
            )));
        }
        let (cache, key) = self.cache_key(scope, &key)?;
        let ttl = ttl_ms.map(Duration::from_millis);
        cache
            .cache
            .set_within(&cache.quota, &key, &value, ttl)
            .await
            .map_err(|spent| PluginError::invalid(spent.to_string()))
    }

    #[tracing::instrument(name = "cache.delete", skip_all)]
    async fn delete(&mut self, scope: wit::Scope, key: String) -> Result<(), PluginError> {
        let (cache, key) = self.cache_key(scope, &key)?;
        cache.cache.delete_within(&cache.quota, &key).await;
        Ok(())
    }

    #[tracing::instrument(name = "cache.increment", skip_all)]
    async fn increment(
        &mut self,
        scope: wit::Scope,
        key: String,
        by: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, PluginError> {
        let (cache, key) = self.cache_key(scope, &key)?;
        let ttl = ttl_ms.map(Duration::from_millis);
        cache.cache.increment_within(&cache.quota, &key, by, ttl).await.map_err(|error| match error {
            IncrementError::Unavailable => PluginError::Unavailable(error.to_string()),
            IncrementError::Overflow | IncrementError::NotAnInteger | IncrementError::OverQuota(_) => {
                PluginError::invalid(error.to_string())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_plugins_never_share_a_key() {
        let cache = PluginCache::new(Cache::memory(), "notes", 1024);
        let shared = cache.key(wit::Scope::Shared, "u/alice/x", Some("bob")).unwrap();
        let user = cache.key(wit::Scope::User, "x", Some("alice")).unwrap();
        assert_eq!(shared, "plugins/notes/s/u/alice/x");
        assert_eq!(user, "plugins/notes/u/alice/x");
        assert!(matches!(cache.key(wit::Scope::User, "x", None), Err(PluginError::Unauthorized(_))));
        assert!(matches!(cache.key(wit::Scope::Shared, "", None), Err(PluginError::Invalid(_))));
        assert!(matches!(cache.key(wit::Scope::Shared, &"k".repeat(513), None), Err(PluginError::Invalid(_))));
    }
}
