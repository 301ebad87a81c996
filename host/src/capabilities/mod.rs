//! The host side of each `autoflow:platform` interface plugins import, one module each, and the
//! grants that decide which of them a plugin may use.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod http;
mod identity;
pub mod link;
mod log;
pub mod queue;
pub mod records;
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plugins::Manifest;
use crate::runtime::{OUTGOING_HTTP_INTERFACE, PluginError};
use crate::services::cache::Cache;
use crate::services::identity::Identity;

use self::cache::PluginCache;
use self::crypto::PluginCrypto;
use self::link::Link;
use self::queue::PluginQueue;
use self::records::PluginRecords;
use crate::services::crypto::Crypto;
use crate::services::passwords::Passwords;
use crate::services::records::Records;
use crate::tasks::Scheduler;

use self::http::{Chain, InternalLink, OutboundHttp};

/// The interface a plugin imports for the cache; granted by `[capabilities] cache = true`.
pub const CACHE_INTERFACE: &str = "autoflow:platform/cache";

/// The interface a plugin imports for host-held encryption; granted by `[capabilities] crypto = true`.
pub const CRYPTO_INTERFACE: &str = "autoflow:platform/crypto";

/// The interface a plugin imports to manage users; granted by `[capabilities] identity = true`.
pub const IDENTITY_INTERFACE: &str = "autoflow:platform/identity";

/// The interface a plugin imports for JSON documents; granted by declaring `[capabilities.records]`.
pub const RECORDS_INTERFACE: &str = "autoflow:platform/records";

/// The interface a plugin imports to schedule tasks; granted by `[capabilities] queue = [names]`.
pub const QUEUE_INTERFACE: &str = "autoflow:platform/queue";

/// The host services capabilities are built on; shared by every plugin.
#[derive(Clone)]
pub struct HostServices {
    pub identity: Identity,
    /// The host cache (Redis or in-process), namespaced per plugin when granted.
    pub cache: Cache,
    /// Bytes of cache keys and values each plugin may hold.
    pub plugin_cache_quota: u64,
    /// Encryption with the host's keys.
    pub crypto: Crypto,
    /// Argon2id hashing (shared with identity, so the bound on concurrent hashes is host-wide).
    pub passwords: Passwords,
    /// JSON documents in plugins' collections.
    pub records: Records,
    /// The operator's `AUTOFLOW_PLUGIN_<NAME>__<KEY>` settings overrides, by variable name.
    pub config_overrides: Arc<BTreeMap<String, String>>,
    /// Where requests to `{plugin}.autoflow.internal` are served (connected once the HTTP layer exists).
    pub internal: InternalLink,
    /// The task scheduler (connected once the plugins are loaded).
    pub scheduler: Link<Scheduler>,
}

/// What one plugin's instances may use, decided from its manifest when it loads.
#[derive(Clone, Default)]
pub struct Grants {
    /// Where its outbound HTTP may go.
    pub outbound: OutboundHttp,
    /// The identity service, if granted.
    pub identity: Option<Identity>,
    /// Its view of the cache, if granted.
    pub cache: Option<PluginCache>,
    /// Its view of the crypto service, if granted.
    pub crypto: Option<PluginCrypto>,
    /// Its collections, if it declares any.
    pub records: Option<PluginRecords>,
    /// The tasks it may schedule, if any.
    pub queue: Option<PluginQueue>,
    /// Whom the current call acts for (set per call by [`Grants::for_call`]).
    pub chain: Chain,
    /// Its settings (`config`), overrides applied.
    pub config: Arc<BTreeMap<String, String>>,
}

/// `grant` if the manifest gave it, else the `forbidden` error naming the missing grant (a component
/// importing an ungranted interface is refused at load, so this is the second line of defence).
fn granted<'a, T>(grant: Option<&'a T>, capability: &str) -> Result<&'a T, PluginError> {
    grant.ok_or_else(|| {
        PluginError::Forbidden(format!("this plugin's manifest does not grant [capabilities] {capability}"))
    })
}

/// An interface a component imports that its manifest does not grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ungranted {
    pub interface: String,
    /// The manifest line that would grant it.
    pub grant: &'static str,
}

impl Grants {
    /// The grants of a plugin with `manifest`, whose calls are bounded by `timeout`.
    pub fn for_manifest(manifest: &Manifest, services: &HostServices, timeout: std::time::Duration) -> Self {
        let capabilities = &manifest.capabilities;
        let config = config::resolve(manifest.name.as_str(), &manifest.config, &services.config_overrides);
        let outbound_hosts = expand_hosts(&capabilities.outbound_hosts, &config);
        Self {
            outbound: OutboundHttp::new(
                &outbound_hosts,
                !capabilities.outbound_hosts.is_empty(),
                timeout,
                services.internal.clone(),
            ),
            identity: capabilities.identity.then(|| services.identity.clone()),
            cache: capabilities
                .cache
                .then(|| PluginCache::new(services.cache.clone(), manifest.name.as_str(), services.plugin_cache_quota)),
            crypto: capabilities.crypto.then(|| {
                PluginCrypto::new(services.crypto.clone(), services.passwords.clone(), manifest.name.as_str())
            }),
            queue: (!capabilities.queue.is_empty())
                .then(|| PluginQueue::new(&capabilities.queue, services.scheduler.clone())),
            chain: Chain::default(),
            records: (!capabilities.records.is_empty()).then(|| {
                PluginRecords::new(services.records.clone(), manifest.name.as_str(), capabilities.records.clone())
            }),
            config,
        }
    }

    /// These grants for one call acting for `chain` (its internal requests carry it on).
    pub fn for_call(&self, chain: Chain) -> Self {
        Self { outbound: self.outbound.for_call(chain.clone()), chain, ..self.clone() }
    }

    /// The first of `imports` (interface names, possibly versioned) these grants do not cover.
    pub fn check(&self, imports: &[String]) -> Result<(), Ungranted> {
        let rules: [(&str, bool, &'static str); 6] = [
            (OUTGOING_HTTP_INTERFACE, self.outbound.declared(), "[capabilities] outbound-hosts = [\"host:port\", …]"),
            (IDENTITY_INTERFACE, self.identity.is_some(), "[capabilities] identity = true"),
            (CACHE_INTERFACE, self.cache.is_some(), "[capabilities] cache = true"),
            (CRYPTO_INTERFACE, self.crypto.is_some(), "[capabilities] crypto = true"),
            (QUEUE_INTERFACE, self.queue.is_some(), "[capabilities] queue = [\"task-name\", …]"),
            (RECORDS_INTERFACE, self.records.is_some(), "[capabilities.records] <collection> = \"shared\" | \"user\""),
        ];
        for import in imports {
            let unversioned = import.split('@').next().unwrap_or(import);
            if let Some((_, _, grant)) =
                rules.iter().find(|(interface, granted, _)| *interface == unversioned && !granted)
            {
                return Err(Ungranted { interface: import.clone(), grant });
            }
        }
        Ok(())
    }
}

/// The manifest's outbound hosts with each `{{ key }}` replaced by the comma-separated hosts of
/// setting `key` (the operator's override, else the manifest's default).
fn expand_hosts(entries: &[String], config: &BTreeMap<String, String>) -> Vec<String> {
    entries
        .iter()
        .flat_map(|entry| match crate::plugins::manifest::config_reference(entry) {
            Some(key) => config.get(key).map(String::as_str).unwrap_or_default().split(',').map(str::trim).collect(),
            None => vec![entry.as_str()],
        })
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_hosts_expand_settings_the_operator_may_override() {
        let config = BTreeMap::from([("hosts".to_owned(), " a.test:8080, ,b.test ".to_owned())]);
        let entries = ["secrets.autoflow.internal".to_owned(), "{{ hosts }}".to_owned(), "{{missing}}".to_owned()];
        assert_eq!(expand_hosts(&entries, &config), ["secrets.autoflow.internal", "a.test:8080", "b.test"]);
    }
}
