//! The wasm runtime: one wasmtime [`Engine`] for every plugin, the [`Linker`] holding the host's
//! imports, and the call path that runs a request in a fresh instance (or, for a plugin that opts
//! in, a warm one of the same caller's) under a deadline.
//!
//! The runtime knows the host's capabilities only as a [`CapabilitySet`]: something that adds its
//! units' functions to the linker and is bound to each call. It never names a capability.

mod cache;
mod engine;
mod state;
mod stdio;
mod warm;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpHooks;

pub use cache::{ArtifactCache, ArtifactSource};
pub use engine::AllocatorKind;
pub use state::InstanceState;
pub use warm::{Caller, IdleBudget, WarmInstances};

use crate::config::Limits;
use crate::contract::{CallContext, FeaturePre, PluginError, Request, Response, Task, TaskError, TaskPre};
use crate::spec::description::Description;
use crate::spec::{Manifest, PluginKind, PluginLimits};
use crate::telemetry::metrics::{CallKind, Metrics, PluginMeters, Refusal};
use warm::WarmInstance;

/// What one plugin may use, as the runtime sees it: a set of capability units that add their
/// functions to the linker once and are bound to each call. The host's capabilities implement it.
pub trait CapabilitySet: Clone + Send + Sync + Sized + 'static {
    /// Adds every unit's host functions (and `wasi:http`) to `linker`.
    fn add_to_linker(linker: &mut Linker<InstanceState<Self>>) -> wasmtime::Result<()>;

    /// These grants bound to one call: whom it acts for, which request it serves.
    fn for_call(&self, call: CallContext) -> Self;

    /// Where the instance's outbound `wasi:http` requests are decided.
    fn http_hooks(&mut self) -> &mut dyn WasiHttpHooks;
}

/// How often the epoch advances; deadlines are measured in these ticks and a running plugin yields
/// to other tasks at each one.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a plugin call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin tried to grow its memory past its limit and failed.
    #[error("the plugin needed more than its memory limit of {} MiB", .0 / (1024 * 1024))]
    MemoryExceeded(usize),
    /// The plugin ran past its deadline and was stopped.
    #[error("the plugin ran past its deadline of {0:?}")]
    Timeout(Duration),
    /// The plugin panicked: its message (from its panic report), then the trap with its backtrace.
    #[error("the plugin panicked: {message}\n{trap:#}")]
    Panicked { message: String, trap: wasmtime::Error },
    /// The plugin trapped (an out-of-bounds access, `unreachable`, …).
    #[error("the plugin trapped: {0:#}")]
    Trap(wasmtime::Error),
    /// A fresh instance could not be created (pool exhausted, start function failed, …).
    #[error("the plugin could not be instantiated: {0:#}")]
    Instantiate(wasmtime::Error),
}

/// The shared engine and linker plus the epoch ticker, for plugins granted capabilities `G`.
/// Cheap to clone.
pub struct Runtime<G: CapabilitySet> {
    inner: Arc<RuntimeInner<G>>,
}

impl<G: CapabilitySet> Clone for Runtime<G> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

struct RuntimeInner<G: CapabilitySet> {
    engine: Engine,
    linker: Linker<InstanceState<G>>,
    allocator: AllocatorKind,
    cache: Option<ArtifactCache>,
    limits: Limits,
    metrics: Metrics,
    idle_budget: IdleBudget,
    ticker_stop: Arc<AtomicBool>,
}

impl<G: CapabilitySet> Drop for RuntimeInner<G> {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl<G: CapabilitySet> Runtime<G> {
    /// Creates the engine (pooling allocator if the machine allows it), links WASI and the
    /// capabilities of `G` and starts the epoch ticker. With `cache_dir`, compiled components are
    /// kept there. Plugin calls are counted in `metrics`.
    pub fn new(limits: &Limits, cache_dir: Option<&std::path::Path>, metrics: Metrics) -> wasmtime::Result<Self> {
        let (engine, allocator) = engine::build(limits)?;
        let cache = cache_dir.map(|dir| ArtifactCache::open(dir, &engine)).transpose()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        G::add_to_linker(&mut linker)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                allocator,
                cache,
                idle_budget: IdleBudget::new(idle_capacity(limits)),
                limits: limits.clone(),
                metrics,
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

    /// The host's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Which instance allocator the engine ended up with.
    pub fn allocator(&self) -> AllocatorKind {
        self.inner.allocator
    }

    /// Where instances of a build with `limits` wait between calls (none unless it opts in).
    pub fn warm_instances(&self, limits: &PluginLimits, meters: &PluginMeters) -> WarmInstances<G> {
        let budget = self.inner.idle_budget.clone();
        WarmInstances::new(limits.reuse, self.inner.limits.warm_idle, budget, meters.clone())
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

    /// Resolves every import of `component` against the host and checks it exports what `manifest`
    /// says it does: `handler` for routes, `task-handler` for tasks.
    pub fn prepare(&self, manifest: &Manifest, component: &Component) -> wasmtime::Result<PluginPre<G>> {
        let pre = self.inner.linker.instantiate_pre(component)?;
        let handler = (manifest.kind == PluginKind::Feature).then(|| FeaturePre::new(pre.clone())).transpose()?;
        let task_handler = manifest.handles_tasks().then(|| TaskPre::new(pre)).transpose()?;
        Ok(PluginPre { handler, task_handler })
    }

    /// Runs one request in an instance of a feature plugin, under the request deadline, with
    /// `grants` bound to the request's call: a warm instance that served the same caller if
    /// `warm` has one, else a fresh one, parked in `warm` afterwards if the call succeeded. Must be
    /// called inside the tracing span that names the plugin and request: the plugin's logs and
    /// stdio are emitted under it.
    pub async fn handle(
        &self,
        pre: &FeaturePre<InstanceState<G>>,
        warm: &WarmInstances<G>,
        limits: &PluginLimits,
        meters: &PluginMeters,
        grants: G,
        request: &Request,
    ) -> Result<Result<Response, PluginError>, CallError> {
        let caller: Caller = request.principal.as_ref().map(|principal| principal.user_id.clone());
        let (mut sandbox, feature, served) = match warm.take(&caller) {
            Some(WarmInstance { store, feature, served, .. }) => {
                meters.reused();
                (self.rebound(store, limits, meters, CallKind::Request, grants), feature, served)
            }
            None => {
                let mut sandbox = self.sandbox(limits, meters, CallKind::Request, grants);
                let instance = pre.instantiate_async(&mut sandbox.store).await;
                let feature = sandbox.instantiated(instance)?;
                (sandbox, feature, 0)
            }
        };
        let call = feature.autoflow_platform_handler().call_handle(&mut sandbox.store, request);
        let outcome = tokio::time::timeout(sandbox.timeout, call).await;
        let answer = sandbox.finish(outcome)?;
        if warm.enabled() && !sandbox.store.data().limits.memory_exceeded {
            warm.park(WarmInstance { caller, store: sandbox.store, feature, served: served + 1 });
        }
        Ok(answer)
    }

    /// Asks a task plugin whether each `(name, payload)` is acceptable, in order, in one instance
    /// acting for the user `grants` are bound to, under one deadline for them all; the index and
    /// error of the first refused.
    pub async fn validate_tasks(
        &self,
        pre: &TaskPre<InstanceState<G>>,
        limits: &PluginLimits,
        meters: &PluginMeters,
        grants: G,
        payloads: &[(&str, &str)],
    ) -> Result<Result<(), (usize, PluginError)>, CallError> {
        let mut sandbox = self.sandbox(limits, meters, CallKind::Validate, grants);
        let instance = pre.instantiate_async(&mut sandbox.store).await;
        let plugin = sandbox.instantiated(instance)?;
        let store = &mut sandbox.store;
        let calls = async {
            for (index, (name, payload)) in payloads.iter().enumerate() {
                if let Err(error) =
                    plugin.autoflow_platform_task_handler().call_validate(&mut *store, name, payload).await?
                {
                    return Ok(Err((index, error)));
                }
            }
            Ok(Ok(()))
        };
        let outcome = tokio::time::timeout(sandbox.timeout, calls).await;
        sandbox.finish(outcome)
    }

    /// Runs one attempt of `task` in a fresh instance of a task plugin, with `grants` bound to the
    /// user who scheduled it, under the task's deadline (`limits.timeout`).
    pub async fn run_task(
        &self,
        pre: &TaskPre<InstanceState<G>>,
        limits: &PluginLimits,
        meters: &PluginMeters,
        grants: G,
        task: &Task,
    ) -> Result<Result<String, TaskError>, CallError> {
        let mut sandbox = self.sandbox(limits, meters, CallKind::Task, grants);
        let instance = pre.instantiate_async(&mut sandbox.store).await;
        let plugin = sandbox.instantiated(instance)?;
        let call = plugin.autoflow_platform_task_handler().call_run(&mut sandbox.store, task);
        let outcome = tokio::time::timeout(sandbox.timeout, call).await;
        sandbox.finish(outcome)
    }

    /// What the code of a loaded build serves and uses, from its `description` export, called in
    /// a fresh instance under the plugin's limits.
    pub async fn describe(
        &self,
        pre: &PluginPre<G>,
        limits: &PluginLimits,
        meters: &PluginMeters,
        grants: G,
    ) -> Result<Description, CallError> {
        let mut sandbox = self.sandbox(limits, meters, CallKind::Describe, grants);
        Ok(match (&pre.handler, &pre.task_handler) {
            (Some(pre), _) => {
                let instance = pre.instantiate_async(&mut sandbox.store).await;
                let feature = sandbox.instantiated(instance)?;
                let call = feature.autoflow_platform_description().call_describe(&mut sandbox.store);
                let outcome = tokio::time::timeout(sandbox.timeout, call).await;
                sandbox.finish(outcome)?.into()
            }
            (None, Some(pre)) => {
                let instance = pre.instantiate_async(&mut sandbox.store).await;
                let plugin = sandbox.instantiated(instance)?;
                let call = plugin.autoflow_platform_description().call_describe(&mut sandbox.store);
                let outcome = tokio::time::timeout(sandbox.timeout, call).await;
                sandbox.finish(outcome)?.into()
            }
            (None, None) => Description::default(),
        })
    }

    /// A fresh store for one call of `kind`: its bound grants, memory capped and the deadline
    /// set; the call is counted in `meters`.
    fn sandbox<'m>(
        &self,
        limits: &PluginLimits,
        meters: &'m PluginMeters,
        kind: CallKind,
        grants: G,
    ) -> Sandbox<'m, G> {
        let state = InstanceState::new(tracing::Span::current(), limits.memory_bytes, grants);
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limits);
        Sandbox::start(store, limits, meters, kind)
    }

    /// The store of a warm instance bound to its next call of `kind`: `grants`, the current span
    /// and a new deadline.
    fn rebound<'m>(
        &self,
        mut store: Store<InstanceState<G>>,
        limits: &PluginLimits,
        meters: &'m PluginMeters,
        kind: CallKind,
        grants: G,
    ) -> Sandbox<'m, G> {
        store.data_mut().rebind(tracing::Span::current(), grants);
        Sandbox::start(store, limits, meters, kind)
    }
}

/// Instances that may idle across every plugin: a quarter of the pool, so fresh instances always
/// find room.
fn idle_capacity(limits: &Limits) -> usize {
    (limits.max_instances / 4) as usize
}

/// A compiled plugin linked against the host, ready to instantiate through the exports its
/// manifest uses.
pub struct PluginPre<G: CapabilitySet> {
    /// `handler`, for a feature plugin's routes.
    pub handler: Option<FeaturePre<InstanceState<G>>>,
    /// `task-handler`, for a plugin that handles tasks.
    pub task_handler: Option<TaskPre<InstanceState<G>>>,
}

/// The store of one call with what its failures are judged by and where it is counted.
struct Sandbox<'m, G: CapabilitySet> {
    store: Store<InstanceState<G>>,
    timeout: Duration,
    memory_limit: usize,
    meters: &'m PluginMeters,
    kind: CallKind,
    started: Instant,
}

impl<'m, G: CapabilitySet> Sandbox<'m, G> {
    /// Starts a call of `kind` in `store`: its deadline set from now, counted in `meters`.
    fn start(
        mut store: Store<InstanceState<G>>,
        limits: &PluginLimits,
        meters: &'m PluginMeters,
        kind: CallKind,
    ) -> Self {
        let timeout = limits.timeout;
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
        Sandbox { store, timeout, memory_limit: limits.memory_bytes, meters, kind, started: Instant::now() }
    }

    /// Why a call failed: its deadline, its memory limit, or a trap.
    fn classify(&self, error: wasmtime::Error) -> CallError {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Timeout(self.timeout),
            _ if self.store.data().limits.memory_exceeded => CallError::MemoryExceeded(self.memory_limit),
            _ => match self.store.data().panic.take_message() {
                Some(message) => CallError::Panicked { message, trap: error },
                None => CallError::Trap(error),
            },
        }
    }

    /// The instance, or why it could not be made.
    fn instantiated<T>(&self, result: wasmtime::Result<T>) -> Result<T, CallError> {
        let result = result.map_err(|error| match self.classify(error) {
            CallError::Trap(e) => CallError::Instantiate(e),
            other => other,
        });
        match &result {
            Ok(_) => self.meters.instantiated(self.kind),
            Err(error) => self.count(error),
        }
        result
    }

    /// The call's answer. The epoch deadline stops running wasm; the host-side timeout that
    /// produced `outcome` also stops a plugin waiting on the host (outbound I/O, database calls).
    fn finish<T>(&self, outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<T, CallError> {
        let result = match outcome {
            Ok(answer) => answer.map_err(|error| self.classify(error)),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        };
        self.meters.called(self.kind, self.started.elapsed());
        if let Err(error) = &result {
            self.count(error);
        }
        result
    }

    fn count(&self, error: &CallError) {
        self.meters.refused(match error {
            CallError::MemoryExceeded(_) => Refusal::MemoryLimit,
            CallError::Timeout(_) => Refusal::Timeout,
            CallError::Trap(_) | CallError::Panicked { .. } => Refusal::Trap,
            CallError::Instantiate(_) => Refusal::Instantiate,
        });
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
