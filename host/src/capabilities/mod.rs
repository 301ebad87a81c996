//! The host side of each `autoflow:platform` interface plugins import, one self-contained
//! [`Unit`] per module: its grant (decided from the manifest when a plugin loads), its host
//! functions and its tests. [`Grants`] is the list of units; the runtime sees it only as a
//! [`CapabilitySet`]. Adding a capability touches its own module and that list.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod http;
mod identity;
pub mod link;
mod log;
mod progress;
pub mod queue;
pub mod records;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, HasSelf, Linker};
use wasmtime_wasi_http::WasiHttpHooks;

use crate::contract::{CallContext, PluginError, wit};
use crate::db::Database;
use crate::runtime::{CapabilitySet, InstanceState, Runtime};
use crate::services::cache::Cache;
use crate::services::crypto::Crypto;
use crate::services::identity::Identity;
use crate::services::passwords::Passwords;
use crate::services::records::Records;
use crate::spec::Manifest;
use crate::spec::grants::Capability;

use self::cache::PluginCache;
use self::crypto::PluginCrypto;
use self::http::{InternalLink, OutboundHttp};
use self::identity::PluginIdentity;
use self::link::Link;
use self::progress::TaskProgress;
use self::queue::{PluginQueue, TaskScheduler};
use self::records::PluginRecords;

/// The store data of every plugin instance: the runtime's state holding the host's grants.
pub type Instance = InstanceState<Grants>;

/// The runtime, linked with the host's capabilities.
pub type HostRuntime = Runtime<Grants>;

/// The host services capabilities are built on; shared by every plugin.
#[derive(Clone)]
pub struct HostServices {
    /// The database, for what a call writes on its task's record (progress).
    pub db: Database,
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
    pub scheduler: Link<dyn TaskScheduler>,
}

/// What a unit decides its grant from when a plugin loads.
pub struct LoadContext<'a> {
    pub manifest: &'a Manifest,
    pub services: &'a HostServices,
    /// The plugin's settings, the operator's overrides applied.
    pub settings: &'a BTreeMap<String, String>,
    /// Longest one of its calls may run.
    pub timeout: Duration,
}

/// One capability: a WIT interface a plugin may import, the manifest line that grants it, and the
/// host functions behind it. The unit's value is one plugin's grant.
pub trait Unit: Clone + Send + Sync + Sized + 'static {
    /// The interface it serves and the manifest line that grants it.
    const CAPABILITY: &'static Capability;

    /// The grant of the plugin loading with `load`, if its manifest asks for this capability.
    fn grant(load: &LoadContext<'_>) -> Option<Self>;

    /// Adds the interface's host functions to `linker`.
    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()>;
}

/// A unit's grant as one call sees it: the grant (if any) and whom the call acts for.
pub struct Bound<'a, U> {
    grant: Option<&'a U>,
    call: &'a CallContext,
}

impl<'a, U: Unit> Bound<'a, U> {
    /// The grant, else the `forbidden` error naming the manifest line that is missing (a component
    /// importing an ungranted interface is refused at load, so this is the second line of defence).
    fn granted(&self) -> Result<&'a U, PluginError> {
        self.grant.ok_or_else(|| {
            let Capability { interface, grant, .. } = U::CAPABILITY;
            PluginError::Forbidden(format!("this plugin's manifest does not grant {interface} (add {grant})"))
        })
    }
}

/// [`HasData`] for a unit whose host functions run on its [`Bound`] grant.
struct HasBound<U>(PhantomData<U>);

impl<U: 'static> HasData for HasBound<U> {
    type Data<'a> = Bound<'a, U>;
}

/// What one plugin's instances may use, decided from its manifest when it loads: the list of units.
#[derive(Clone, Default)]
pub struct Grants {
    /// Whom the current call acts for (set per call by [`CapabilitySet::for_call`]).
    call: CallContext,
    /// Its settings (`config`), overrides applied; every plugin may read its own.
    settings: Arc<BTreeMap<String, String>>,
    /// Where its outbound HTTP may go (nowhere unless declared).
    outbound: OutboundHttp,
    identity: Option<PluginIdentity>,
    cache: Option<PluginCache>,
    crypto: Option<PluginCrypto>,
    records: Option<PluginRecords>,
    queue: Option<PluginQueue>,
    progress: Option<TaskProgress>,
}

impl Grants {
    /// The grants of a plugin with `manifest`, whose calls are bounded by `timeout`; why not, when an
    /// outbound host (as written, or as its setting gives it) could never match a request.
    pub fn for_manifest(manifest: &Manifest, services: &HostServices, timeout: Duration) -> Result<Self, String> {
        let settings = config::resolve(manifest.name.as_str(), &manifest.config, &services.config_overrides);
        crate::spec::hosts::outbound_hosts(manifest, &settings)?;
        let load = LoadContext { manifest, services, settings: &settings, timeout };
        Ok(Self {
            call: CallContext::default(),
            outbound: OutboundHttp::grant(&load).unwrap_or_default(),
            identity: Unit::grant(&load),
            cache: Unit::grant(&load),
            crypto: Unit::grant(&load),
            records: Unit::grant(&load),
            queue: Unit::grant(&load),
            progress: Unit::grant(&load),
            settings,
        })
    }

    /// A unit's grant bound to the current call.
    fn bound<U>(&self, grant: impl FnOnce(&Self) -> Option<&U>) -> Bound<'_, U> {
        Bound { grant: grant(self), call: &self.call }
    }
}

impl CapabilitySet for Grants {
    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::types::add_to_linker::<_, HasSelf<Instance>>(linker, |state| state)?;
        log::add_to_linker(linker)?;
        config::add_to_linker(linker)?;
        OutboundHttp::add_to_linker(linker)?;
        PluginIdentity::add_to_linker(linker)?;
        PluginCache::add_to_linker(linker)?;
        PluginCrypto::add_to_linker(linker)?;
        PluginRecords::add_to_linker(linker)?;
        PluginQueue::add_to_linker(linker)?;
        TaskProgress::add_to_linker(linker)?;
        Ok(())
    }

    fn for_call(&self, call: CallContext) -> Self {
        Self {
            outbound: self.outbound.for_call(call.clone()),
            progress: self.progress.as_ref().map(TaskProgress::for_call),
            call,
            ..self.clone()
        }
    }

    fn http_hooks(&mut self) -> &mut dyn WasiHttpHooks {
        &mut self.outbound
    }
}

/// `autoflow:platform/types` declares types only; linking it lets components import it.
impl wit::types::Host for Instance {}
