//! The wasm runtime: one wasmtime [`Engine`] for every plugin, the [`Linker`] holding the host's
//! imports, and the call path that runs a request in a fresh instance under a deadline.

mod bindings;
mod cache;
mod engine;
mod state;
mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

pub use bindings::FeaturePre;
pub(crate) use bindings::autoflow::platform::cache as bindings_cache;
pub(crate) use bindings::autoflow::platform::config as bindings_config;
pub(crate) use bindings::autoflow::platform::crypto as bindings_crypto;
pub(crate) use bindings::autoflow::platform::identity as bindings_identity;
pub(crate) use bindings::autoflow::platform::log as bindings_log;
pub(crate) use bindings::autoflow::platform::queue as bindings_queue;
pub(crate) use bindings::autoflow::platform::records as bindings_records;
pub(crate) use bindings::autoflow::platform::types as bindings_types;
pub use bindings::autoflow::platform::types::{Error as PluginError, FieldError, InvalidInput, Principal};
pub use bindings::exports::autoflow::platform::handler::{Request, Response};
pub use bindings::task::TaskPre;
pub use bindings::task::exports::autoflow::platform::task_handler::{Task, TaskError};
pub use cache::{ArtifactCache, ArtifactSource};
pub use engine::AllocatorKind;
pub use state::InstanceState;

use crate::capabilities::{Grants, HostServices};
use crate::config::Limits;
use crate::plugins::manifest::PluginKind;

/// How often the epoch advances; deadlines are measured in these ticks and a running plugin yields
/// to other tasks at each one.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The limits one plugin's calls run under (resolved from its manifest and the host's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Longest one call may run.
    pub timeout: Duration,
    /// Instances of the plugin running at once.
    pub max_concurrency: u32,
}

/// The interface a plugin imports to make outbound HTTP requests; granted by its manifest.
pub const OUTGOING_HTTP_INTERFACE: &str = "wasi:http/outgoing-handler";

/// Why a plugin call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin tried to grow its memory past its limit and failed.
    #[error("the plugin needed more than its memory limit of {} MiB", .0 / (1024 * 1024))]
    MemoryExceeded(usize),
    /// The plugin ran past its deadline and was stopped.
    #[error("the plugin ran past its deadline of {0:?}")]
    Timeout(Duration),
    /// The plugin trapped (a panic, an out-of-bounds access, `unreachable`, …).
    #[error("the plugin trapped: {0:#}")]
    Trap(wasmtime::Error),
    /// A fresh instance could not be created (pool exhausted, start function failed, …).
    #[error("the plugin could not be instantiated: {0:#}")]
    Instantiate(wasmtime::Error),
}

/// The shared engine and linker plus the epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<InstanceState>,
    allocator: AllocatorKind,
    cache: Option<ArtifactCache>,
    limits: Limits,
    services: HostServices,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine (pooling allocator if the machine allows it), links the host's imports
    /// and starts the epoch ticker. With `cache_dir`, compiled components are kept there. Plugins
    /// are granted capabilities over `services`.
    pub fn new(limits: &Limits, cache_dir: Option<&std::path::Path>, services: HostServices) -> wasmtime::Result<Self> {
        let (engine, allocator) = engine::build(limits)?;
        let cache = cache_dir.map(|dir| ArtifactCache::open(dir, &engine)).transpose()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::Feature::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |state| state)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                allocator,
                cache,
                limits: limits.clone(),
                services,
                ticker_stop,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The host's limits: defaults and ceilings for every plugin.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The services plugin capabilities are built on.
    pub fn services(&self) -> &HostServices {
        &self.inner.services
    }

    /// Which instance allocator the engine ended up with.
    pub fn allocator(&self) -> AllocatorKind {
        self.inner.allocator
    }

    /// Compiles a component, or reads its precompiled form from the cache (CPU-heavy on a miss:
    /// call it off the async threads).
    pub fn load_component(&self, bytes: &[u8], content_hash: &str) -> wasmtime::Result<(Component, ArtifactSource)> {
        match &self.inner.cache {
            Some(cache) => cache.load_or_compile(&self.inner.engine, bytes, content_hash),
            None => Ok((Component::new(&self.inner.engine, bytes)?, ArtifactSource::Compiled)),
        }
    }

    /// The interfaces `component` imports, by name (e.g. `wasi:http/outgoing-handler@0.2.4`).
    pub fn imports(&self, component: &Component) -> Vec<String> {
        component.component_type().imports(&self.inner.engine).map(|(name, _)| name.to_owned()).collect()
    }

    /// Resolves every import of `component` against the host and checks it exports what a plugin
    /// of `kind` must.
    pub fn prepare(&self, kind: PluginKind, component: &Component) -> wasmtime::Result<PluginPre> {
        let pre = self.inner.linker.instantiate_pre(component)?;
        Ok(match kind {
            PluginKind::Feature => PluginPre::Feature(FeaturePre::new(pre)?),
            PluginKind::Task => PluginPre::Task(TaskPre::new(pre)?),
        })
    }

    /// Runs one request in a fresh instance of a feature plugin, under the request deadline.
    /// Must be called inside the tracing span that names the plugin and request: the plugin's logs
    /// and stdio are emitted under it.
    pub async fn handle(
        &self,
        pre: &FeaturePre<InstanceState>,
        limits: &PluginLimits,
        grants: &Grants,
        request: &Request,
    ) -> Result<Result<Response, PluginError>, CallError> {
        let user = request.principal.as_ref().map(|p| p.user_id.clone());
        let mut sandbox = self.sandbox(limits, grants, user);
        let instance = pre.instantiate_async(&mut sandbox.store).await;
        let feature = sandbox.instantiated(instance)?;
        let call = feature.autoflow_platform_handler().call_handle(&mut sandbox.store, request);
        let outcome = tokio::time::timeout(sandbox.timeout, call).await;
        sandbox.finish(outcome)
    }

    /// Asks a task plugin whether `payload` is acceptable for task `name`, acting for `user`.
    pub async fn validate_task(
        &self,
        pre: &TaskPre<InstanceState>,
        limits: &PluginLimits,
        grants: &Grants,
        user: Option<String>,
        name: &str,
        payload: &str,
    ) -> Result<Result<(), PluginError>, CallError> {
        let mut sandbox = self.sandbox(limits, grants, user);
        let instance = pre.instantiate_async(&mut sandbox.store).await;
        let plugin = sandbox.instantiated(instance)?;
        let call = plugin.autoflow_platform_task_handler().call_validate(&mut sandbox.store, name, payload);
        let outcome = tokio::time::timeout(sandbox.timeout, call).await;
        sandbox.finish(outcome)
    }

    /// Runs one attempt of `task` in a fresh instance of a task plugin, acting for the user who
    /// scheduled it, under the task's deadline (`limits.timeout`).
    pub async fn run_task(
        &self,
        pre: &TaskPre<InstanceState>,
        limits: &PluginLimits,
        grants: &Grants,
        task: &Task,
    ) -> Result<Result<String, TaskError>, CallError> {
        let mut sandbox = self.sandbox(limits, grants, task.scheduled_by.clone());
        let instance = pre.instantiate_async(&mut sandbox.store).await;
        let plugin = sandbox.instantiated(instance)?;
        let call = plugin.autoflow_platform_task_handler().call_run(&mut sandbox.store, task);
        let outcome = tokio::time::timeout(sandbox.timeout, call).await;
        sandbox.finish(outcome)
    }

    /// A fresh store for one call: the grants, acting for `user`, memory capped and the deadline set.
    fn sandbox(&self, limits: &PluginLimits, grants: &Grants, user: Option<String>) -> Sandbox {
        let timeout = limits.timeout;
        let state = InstanceState::new(tracing::Span::current(), limits.memory_bytes, grants.clone(), user);
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limits);
        let deadline = Instant::now() + timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // tokio's yield defers the wake until the runtime has polled its timers and I/O;
                // a plain wake-up could be re-polled at once and starve them.
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            }
        });
        Sandbox { store, timeout, memory_limit: limits.memory_bytes }
    }
}

/// A compiled plugin linked against the host, ready to instantiate.
pub enum PluginPre {
    Feature(FeaturePre<InstanceState>),
    Task(TaskPre<InstanceState>),
}

/// The store of one call with what its failures are judged by.
struct Sandbox {
    store: Store<InstanceState>,
    timeout: Duration,
    memory_limit: usize,
}

impl Sandbox {
    /// Why a call failed: its deadline, its memory limit, or a trap.
    fn classify(&self, error: wasmtime::Error) -> CallError {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Timeout(self.timeout),
            _ if self.store.data().limits.memory_exceeded => CallError::MemoryExceeded(self.memory_limit),
            _ => CallError::Trap(error),
        }
    }

    /// The instance, or why it could not be made.
    fn instantiated<T>(&self, result: wasmtime::Result<T>) -> Result<T, CallError> {
        result.map_err(|error| match self.classify(error) {
            CallError::Trap(e) => CallError::Instantiate(e),
            other => other,
        })
    }

    /// The call's answer. The epoch deadline stops running wasm; the host-side timeout that
    /// produced `outcome` also stops a plugin waiting on the host (outbound I/O, database calls).
    fn finish<T>(&self, outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<T, CallError> {
        outcome.map_err(|_| CallError::Timeout(self.timeout))?.map_err(|error| self.classify(error))
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `stop` is set.
fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    let weak = engine.weak();
    drop(engine);
    std::thread::Builder::new()
        .name("autoflow-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawning the epoch ticker thread");
}
