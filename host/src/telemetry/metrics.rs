//! The host's Prometheus metrics: what happened since start-up (requests, plugin calls, reloads,
//! tasks, logins), recorded where it happens and read at `/metrics`.
//!
//! Each host has its own [`Metrics`] (tests run many hosts in one process), handed down at
//! start-up. Label values are bounded: plugin, route and task names as their manifests declare
//! them, methods from a fixed list, outcomes from fixed words — never raw paths or user ids.
//! Figures read at scrape time (queue depth, pool, builds) are added by the scraper as a
//! [`Snapshot`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets for HTTP requests and plugin calls, in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 15] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Task run buckets, in seconds: 1 ms to 5 min.
const TASK_BUCKETS: [f64; 14] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0, 300.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn task_histogram() -> Histogram {
    Histogram::new(TASK_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One HTTP request: who served it (`plugin` empty for the host's own routes), the route as
/// declared, the method and the status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub plugin: String,
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    call: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    plugin: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskOutcomeLabels {
    task: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
}

/// What kind of call a plugin instance is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// An HTTP request (from a client or another plugin).
    Request,
    /// One attempt of a task.
    Task,
    /// Checking task payloads before they are scheduled.
    Validate,
    /// Reading what a build's code serves, once when it loads.
    Describe,
}

impl CallKind {
    const ALL: [CallKind; 4] = [CallKind::Request, CallKind::Task, CallKind::Validate, CallKind::Describe];

    fn label(self) -> &'static str {
        match self {
            CallKind::Request => "request",
            CallKind::Task => "task",
            CallKind::Validate => "validate",
            CallKind::Describe => "describe",
        }
    }
}

/// Why a plugin call produced no answer, or was never made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Trap,
    Timeout,
    MemoryLimit,
    /// A fresh instance could not be made.
    Instantiate,
    /// Every instance slot stayed taken for as long as the call could wait.
    Busy,
}

impl Refusal {
    const ALL: [Refusal; 5] =
        [Refusal::Trap, Refusal::Timeout, Refusal::MemoryLimit, Refusal::Instantiate, Refusal::Busy];

    fn label(self) -> &'static str {
        match self {
            Refusal::Trap => "trap",
            Refusal::Timeout => "timeout",
            Refusal::MemoryLimit => "memory_limit",
            Refusal::Instantiate => "instantiate",
            Refusal::Busy => "busy",
        }
    }
}

/// How a reload of one plugin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Loaded,
    Unchanged,
    Unloaded,
    Failed,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            ReloadResult::Loaded => "loaded",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Unloaded => "unloaded",
            ReloadResult::Failed => "failed",
        }
    }
}

/// How one attempt of a task ended, as its worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    Completed,
    Retrying,
    Dead,
    Cancelled,
    /// Stopped by a shutdown and handed back to the queue.
    Released,
}

impl TaskEnd {
    fn label(self) -> &'static str {
        match self {
            TaskEnd::Completed => "completed",
            TaskEnd::Retrying => "retrying",
            TaskEnd::Dead => "dead",
            TaskEnd::Cancelled => "cancelled",
            TaskEnd::Released => "released",
        }
    }
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    Failure,
    RateLimited,
}

impl LoginOutcome {
    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
            LoginOutcome::RateLimited => "rate_limited",
        }
    }
}

/// The metrics of one host. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: HistogramFamily<RequestLabels>,
    instantiations: Family<CallLabels, Counter>,
    call_duration: HistogramFamily<CallLabels>,
    refusals: Family<RefusalLabels, Counter>,
    instances: Family<PluginLabels, Gauge>,
    reuses: Family<PluginLabels, Counter>,
    parked: Family<PluginLabels, Gauge>,
    reloads: Family<OutcomeLabels, Counter>,
    tasks_scheduled: Family<TaskLabels, Counter>,
    tasks_started: Family<TaskLabels, Counter>,
    tasks_finished: Family<TaskOutcomeLabels, Counter>,
    task_duration: HistogramFamily<TaskLabels>,
    logins: Family<LoginLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("autoflow");
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by plugin, declared route, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RequestLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its response's head",
            http_duration.clone(),
        );
        let instantiations = Family::default();
        registry.register(
            "plugin_instantiations",
            "Fresh plugin instances made, by plugin and call kind",
            instantiations.clone(),
        );
        let call_duration: HistogramFamily<CallLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Time of a plugin call from instantiation to its answer",
            call_duration.clone(),
        );
        let refusals = Family::default();
        registry.register(
            "plugin_failures",
            "Plugin calls that failed (trap, timeout, memory_limit, instantiate) or found every slot busy",
            refusals.clone(),
        );
        let instances = Family::default();
        registry.register("plugin_instances_in_use", "Plugin instances running now", instances.clone());
        let reuses = Family::default();
        registry.register(
            "plugin_instance_reuses",
            "Requests served by a warm instance of the same caller (plugins with [limits] reuse)",
            reuses.clone(),
        );
        let parked = Family::default();
        registry.register(
            "plugin_instances_warm",
            "Warm instances waiting for their caller's next request",
            parked.clone(),
        );
        let reloads = Family::default();
        registry.register("plugin_reloads", "Plugin reloads, by outcome", reloads.clone());
        let tasks_scheduled = Family::default();
        registry.register("tasks_scheduled", "Tasks scheduled by this host", tasks_scheduled.clone());
        let tasks_started = Family::default();
        registry.register("tasks_started", "Task attempts started by this host's workers", tasks_started.clone());
        let tasks_finished = Family::default();
        registry.register(
            "tasks_finished",
            "Task attempts ended in this host's workers, by outcome",
            tasks_finished.clone(),
        );
        let task_duration: HistogramFamily<TaskLabels> = Family::new_with_constructor(task_histogram);
        registry.register("task_run_duration_seconds", "Time one task attempt ran", task_duration.clone());
        let logins = Family::default();
        registry.register("logins", "Login attempts, by outcome", logins.clone());
        Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                instantiations,
                call_duration,
                refusals,
                instances,
                reuses,
                parked,
                reloads,
                tasks_scheduled,
                tasks_started,
                tasks_finished,
                task_duration,
                logins,
            }),
        }
    }

    /// Counts one answered HTTP request and its latency.
    pub fn http_request(&self, labels: &RequestLabels, elapsed: Duration) {
        self.inner.http_requests.get_or_create(labels).inc();
        self.inner.http_duration.get_or_create(labels).observe(elapsed.as_secs_f64());
    }

    /// The meters of plugin `name`, resolved once so its calls touch no map.
    pub fn plugin(&self, name: &str) -> PluginMeters {
        let inner = &self.inner;
        let call = |kind: CallKind| {
            let labels = CallLabels { plugin: name.to_owned(), call: kind.label() };
            (inner.instantiations.get_or_create_owned(&labels), inner.call_duration.get_or_create_owned(&labels))
        };
        let refusal = |reason: Refusal| {
            inner.refusals.get_or_create_owned(&RefusalLabels { plugin: name.to_owned(), reason: reason.label() })
        };
        PluginMeters {
            calls: Arc::new(CallKind::ALL.map(call)),
            refusals: Arc::new(Refusal::ALL.map(refusal)),
            instances: inner.instances.get_or_create_owned(&PluginLabels { plugin: name.to_owned() }),
            reuses: inner.reuses.get_or_create_owned(&PluginLabels { plugin: name.to_owned() }),
            parked: inner.parked.get_or_create_owned(&PluginLabels { plugin: name.to_owned() }),
        }
    }

    /// Counts a reload of plugin `name`.
    pub fn reload(&self, name: &str, result: ReloadResult) {
        let labels = OutcomeLabels { plugin: name.to_owned(), outcome: result.label() };
        self.inner.reloads.get_or_create(&labels).inc();
    }

    /// Counts `count` tasks named `task` scheduled.
    pub fn tasks_scheduled(&self, task: &str, count: u64) {
        self.inner.tasks_scheduled.get_or_create(&TaskLabels { task: task.to_owned() }).inc_by(count);
    }

    /// Counts an attempt of `task` started.
    pub fn task_started(&self, task: &str) {
        self.inner.tasks_started.get_or_create(&TaskLabels { task: task.to_owned() }).inc();
    }

    /// Counts an attempt of `task` ended, and how long it ran.
    pub fn task_finished(&self, task: &str, end: TaskEnd, ran: Duration) {
        let labels = TaskOutcomeLabels { task: task.to_owned(), outcome: end.label() };
        self.inner.tasks_finished.get_or_create(&labels).inc();
        self.inner.task_duration.get_or_create(&TaskLabels { task: task.to_owned() }).observe(ran.as_secs_f64());
    }

    /// Counts a login attempt.
    pub fn login(&self, outcome: LoginOutcome) {
        self.inner.logins.get_or_create(&LoginLabels { outcome: outcome.label() }).inc();
    }

    /// The exposition in the Prometheus text format: these metrics, then `snapshot`'s.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &snapshot.registry);
        text
    }
}

/// The meters of one plugin: instantiations and call time per call kind, refusals per reason, and
/// the instances running now. Cheap to clone.
/// Indexed by the enums' declaration order (`kind as usize`, `why as usize`).
#[derive(Clone)]
pub struct PluginMeters {
    calls: Arc<[(Counter, Histogram); 4]>,
    refusals: Arc<[Counter; 5]>,
    instances: Gauge,
    reuses: Counter,
    parked: Gauge,
}

impl std::fmt::Debug for PluginMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMeters").finish_non_exhaustive()
    }
}

impl PluginMeters {
    /// Counts a fresh instance made for a call of `kind`.
    pub fn instantiated(&self, kind: CallKind) {
        self.calls[kind as usize].0.inc();
    }

    /// Counts a request served by a warm instance.
    pub fn reused(&self) {
        self.reuses.inc();
    }

    /// Counts warm instances parked (positive) or taken, expired or dropped (negative).
    pub fn warm_parked(&self, delta: i64) {
        self.parked.inc_by(delta);
    }

    /// Records how long a call of `kind` took.
    pub fn called(&self, kind: CallKind, took: Duration) {
        self.calls[kind as usize].1.observe(took.as_secs_f64());
    }

    /// Counts a call that failed or could not be made.
    pub fn refused(&self, why: Refusal) {
        self.refusals[why as usize].inc();
    }

    /// Counts an instance running until the returned guard is dropped.
    pub fn in_use(&self) -> InUse {
        self.instances.inc();
        InUse(self.instances.clone())
    }
}

/// An instance counted as running; dropping it counts it out.
pub struct InUse(Gauge);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Figures read at scrape time, encoded after the host's own metrics.
pub struct Snapshot {
    registry: Registry,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self { registry: Registry::with_prefix("autoflow") }
    }
}

impl Snapshot {
    /// A gauge with one sample per `(labels, value)`; `labels` are `name=value` pairs.
    pub fn gauge<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = ([(&'static str, String); N], f64)>,
    ) {
        let family: Family<[(&'static str, String); N], Gauge<f64, AtomicU64>> = Family::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, help, family);
    }

    /// A counter kept elsewhere (a service's own count since start-up).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.registry.register(name, help, ConstCounter::new(value));
    }

    /// A gauge without labels.
    pub fn value(&mut self, name: &str, help: &str, value: f64) {
        self.registry.register(name, help, ConstGauge::new(value));
    }
}

/// A method as a label: the standard ones by name, anything else as `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];
    KNOWN.into_iter().find(|known| *known == method).unwrap_or("other")
}

/// A short build identifier: the first 12 hex digits of a content hash.
pub fn build_label(content_hash: &str) -> String {
    content_hash.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
    }

    #[test]
    fn plugin_meters_count_into_the_hosts_registry() {
        let metrics = Metrics::new();
        let meters = metrics.plugin("notes");
        meters.instantiated(CallKind::Request);
        meters.refused(Refusal::Busy);
        let guard = meters.in_use();
        let text = metrics.encode(&Snapshot::default());
        assert!(text.contains("autoflow_plugin_instantiations_total{plugin=\"notes\",call=\"request\"} 1"), "{text}");
        assert!(text.contains("autoflow_plugin_failures_total{plugin=\"notes\",reason=\"busy\"} 1"), "{text}");
        assert!(text.contains("autoflow_plugin_instances_in_use{plugin=\"notes\"} 1"), "{text}");
        drop(guard);
        let text = metrics.encode(&Snapshot::default());
        assert!(text.contains("autoflow_plugin_instances_in_use{plugin=\"notes\"} 0"), "{text}");
    }
}
