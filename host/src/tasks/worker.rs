//! Workers: one fetcher per process claims as many due tasks as there are free worker slots, in
//! one statement, and runs each in a fresh sandboxed instance of its plugin under the task's
//! deadline and memory limit; the [`Completer`] records the outcomes in batches: completed,
//! retrying after a backoff, or dead once its attempts are spent. A task whose process vanished is
//! claimed again when its lease runs out, so delivery is at least once; an attempt that lost its
//! lease has its outcome dropped, so a record is never completed twice. The same loop removes
//! finished tasks once they are older than the retention period.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::completer::Completer;
use crate::capabilities::HostRuntime;
use crate::config::WorkerSettings;
use crate::contract::{Attempt, CallContext, Principal, Task, TaskError};
use crate::db::{Database, Finish, NameLimits, Outcome, TaskRow};
use crate::plugins::{LivePlugins, Registry};
use crate::runtime::CapabilitySet;
use crate::services::identity::{Identity, IdentityError};
use crate::tasks::Wakeup;
use crate::telemetry::metrics::{Metrics, TaskEnd};
use crate::telemetry::traces;

/// Largest result kept on a record, in bytes.
const MAX_RESULT_BYTES: usize = 64 * 1024;
/// How often a process checks that the tasks it runs are still its own.
const RUNNING_CHECK: std::time::Duration = std::time::Duration::from_millis(500);
/// Finished tasks removed per retention statement.
const RETENTION_BATCH: u32 = 1000;

/// What the fetcher and the runs share.
struct Context {
    db: Database,
    plugins: Arc<LivePlugins>,
    runtime: HostRuntime,
    identity: Identity,
    settings: WorkerSettings,
    wakeup: Wakeup,
    completer: Completer,
    /// This process's name on the tasks it claims.
    worker: String,
}

/// A running pool of workers; [`Workers::shutdown`] lets in-flight tasks finish, or hands them
/// back to the queue once the shutdown timeout is over.
pub struct Workers {
    concurrency: usize,
    stop: watch::Sender<bool>,
    /// Set when the shutdown timeout is over: the runs still going are dropped.
    abandon: watch::Sender<bool>,
    fetcher: JoinHandle<()>,
    /// The outcome writer, the retention sweep and the running checks.
    others: Vec<JoinHandle<()>>,
    db: Database,
    wakeup: Wakeup,
    worker: String,
}

impl Workers {
    /// Starts a fetcher running up to `settings.concurrency` tasks at once, woken by `wakeup` when
    /// a task may be due, the outcome writer, and the retention sweep.
    pub fn spawn(
        db: Database,
        plugins: Arc<LivePlugins>,
        runtime: HostRuntime,
        identity: Identity,
        wakeup: Wakeup,
        settings: WorkerSettings,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (abandon, abandoned) = watch::channel(false);
        let (completer, writer) = Completer::spawn(db.clone(), wakeup.clone());
        let process = uuid::Uuid::new_v4().simple().to_string();
        let worker = format!("{}-{}", std::process::id(), &process[..8]);
        let (db_handle, wakeup_handle, worker_name) = (db.clone(), wakeup.clone(), worker.clone());
        let context = Arc::new(Context { db, plugins, runtime, identity, settings, wakeup, completer, worker });
        let retention = tokio::spawn(retain(context.clone(), stopped.clone()));
        let checks = tokio::spawn(check_running(context.clone(), stopped.clone()));
        // The writer ends once the fetcher and every run have dropped their completers.
        let fetcher = tokio::spawn(fetch(context, stopped, abandoned));
        Self {
            concurrency: settings.concurrency,
            stop,
            abandon,
            fetcher,
            others: vec![writer, retention, checks],
            db: db_handle,
            wakeup: wakeup_handle,
            worker: worker_name,
        }
    }

    /// How many tasks this process runs at once.
    pub fn len(&self) -> usize {
        self.concurrency
    }

    /// Whether it runs none.
    pub fn is_empty(&self) -> bool {
        self.concurrency == 0
    }

    /// Stops claiming tasks and waits up to `timeout` for the ones running to finish; those still
    /// running then are stopped and handed back to the queue, due at once and without spending an
    /// attempt, so another worker takes them without waiting for their leases to run out. Returns
    /// once every outcome is written.
    pub async fn shutdown(mut self, timeout: std::time::Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(timeout, &mut self.fetcher).await.is_err() {
            tracing::warn!(?timeout, "tasks still running at the end of the shutdown timeout; handing them back");
            let _ = self.abandon.send(true);
            let _ = self.fetcher.await;
        }
        for handle in self.others {
            let _ = handle.await;
        }
        match self.db.release_tasks(&self.worker).await {
            Ok(0) => {}
            Ok(released) => {
                tracing::info!(released, "running tasks handed back to the queue");
                self.wakeup.notify();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot hand the running tasks back; they run again when their leases end")
            }
        }
    }
}

/// The fetcher: waits for a free slot, claims as many due tasks as there are free slots, starts
/// them; when fewer were due than asked for, waits for a wake-up or the poll interval.
async fn fetch(context: Arc<Context>, mut stop: watch::Receiver<bool>, mut abandon: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(context.settings.concurrency));
    let mut running = JoinSet::new();
    // Until a run knows its task's own timeout, the lease covers the longest any task may run.
    let lease = context.runtime.limits().task_timeout + context.settings.lease_margin;
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    // The registry whose tasks' limits were last stored: stored again before claiming after a reload.
    let mut declared: Option<Arc<Registry>> = None;
    while !*stop.borrow() {
        while running.try_join_next().is_some() {}
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the slots are never closed"),
            _ = stop.changed() => break,
        };
        let mut free = vec![first];
        free.extend(std::iter::from_fn(|| slots.clone().try_acquire_owned().ok()));
        let wanted = free.len();
        let (tasks, full) = claim(&context, &mut declared, lease, wanted).await;
        for (task, slot) in tasks.into_iter().zip(free) {
            running.spawn(run(context.clone(), task, slot));
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = context.wakeup.notified() => {}
            _ = tokio::time::sleep(context.settings.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    loop {
        tokio::select! {
            next = running.join_next() => if next.is_none() { return },
            _ = abandon.wait_for(|abandoned| *abandoned) => break,
        }
    }
    // The runs still going are dropped: their instances stop at the next epoch tick, and the
    // shutdown hands their tasks back.
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// Claims up to `wanted` tasks: the limited names' within their limits, then any others; and
/// whether as many were due as asked for. First stores the tasks' limits when the plugins changed
/// since `declared`.
async fn claim(
    context: &Context,
    declared: &mut Option<Arc<Registry>>,
    lease: chrono::Duration,
    wanted: usize,
) -> (Vec<TaskRow>, bool) {
    let registry = context.plugins.registry();
    if !declared.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &registry)) {
        match context.db.declare_task_limits(&declared_limits(&registry)).await {
            Ok(()) => *declared = Some(registry.clone()),
            Err(error) => tracing::warn!(%error, "cannot store the tasks' limits; trying again"),
        }
    }
    let now = Utc::now();
    let mut tasks = Vec::new();
    if has_limits(&registry) {
        match context.db.claim_limited_tasks(&context.worker, lease, wanted).await {
            Ok(claim) => {
                if let Some(reopens) = claim.reopens_at {
                    context.wakeup.notify_at(reopens);
                }
                tasks = claim.tasks;
            }
            Err(error) => {
                tracing::warn!(worker = context.worker, %error, "cannot claim limited tasks: the database failed")
            }
        }
    }
    let rest = wanted - tasks.len();
    if rest == 0 {
        return (tasks, true);
    }
    match context.db.claim_tasks(&context.worker, now, now + lease, rest).await {
        Ok(more) => {
            let full = more.len() == rest;
            tasks.extend(more);
            (tasks, full)
        }
        Err(error) => {
            tracing::warn!(worker = context.worker, %error, "cannot claim tasks: the database failed");
            (tasks, false)
        }
    }
}

/// The limits the loaded tasks declare.
fn declared_limits(registry: &Registry) -> Vec<NameLimits> {
    registry
        .plugins()
        .iter()
        .flat_map(|plugin| &plugin.manifest.tasks)
        .filter(|spec| spec.is_limited())
        .map(|spec| NameLimits {
            name: spec.name.clone(),
            concurrency: spec.concurrency,
            rate: spec.rate.map(|rate| (rate.starts, u64::try_from(rate.per.as_millis()).unwrap_or(u64::MAX))),
        })
        .collect()
}

/// Whether any loaded task has limits.
fn has_limits(registry: &Registry) -> bool {
    registry.plugins().iter().flat_map(|plugin| &plugin.manifest.tasks).any(|spec| spec.is_limited())
}

/// Runs one claimed attempt in its slot and hands its outcome to the completer. A cancel stops
/// the attempt where it is (its instance is dropped at the next epoch tick or host call); the
/// record says `cancelled` already, so there is no outcome to write.
async fn run(context: Arc<Context>, task: TaskRow, _slot: OwnedSemaphorePermit) {
    let span = tracing::info_span!(
        "task",
        task = %task.name,
        task_id = %task.id,
        attempt = task.attempts,
        trace_id = tracing::field::Empty,
        otel.name = %format!("task {}", task.name),
        otel.kind = "consumer",
    );
    if let Some(traceparent) = &task.trace_parent {
        traces::continue_from(&span, traceparent);
    }
    traces::record_trace_id(&span);
    let running = context.wakeup.running(&task.id);
    let meter = RunMeter::start(context.runtime.metrics(), &task.name);
    let finish = tokio::select! {
        finish = attempt(&context, &task).instrument(span.clone()) => finish,
        () = running.cancelled() => {
            span.in_scope(|| tracing::info!("task cancelled while running; its instance was stopped"));
            meter.end(TaskEnd::Cancelled);
            return;
        }
    };
    drop(running);
    meter.end(match finish {
        Finish::Completed { .. } => TaskEnd::Completed,
        Finish::Retrying { .. } => TaskEnd::Retrying,
        Finish::Dead { .. } => TaskEnd::Dead,
    });
    let outcome =
        Outcome { id: task.id, worker: context.worker.clone(), attempt: task.attempts, finish, at: Utc::now() };
    context.completer.record(outcome, span).await;
}

/// One attempt counted from its start to its end; an attempt dropped before it ended (a shutdown
/// that handed it back) is counted `released`.
struct RunMeter<'a> {
    metrics: &'a Metrics,
    task: &'a str,
    started: Instant,
    ended: bool,
}

impl<'a> RunMeter<'a> {
    fn start(metrics: &'a Metrics, task: &'a str) -> Self {
        metrics.task_started(task);
        Self { metrics, task, started: Instant::now(), ended: false }
    }

    fn end(mut self, end: TaskEnd) {
        self.ended = true;
        self.metrics.task_finished(self.task, end, self.started.elapsed());
    }
}

impl Drop for RunMeter<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.metrics.task_finished(self.task, TaskEnd::Released, self.started.elapsed());
        }
    }
}

/// Every [`RUNNING_CHECK`], stops the runs of this process whose tasks are no longer its own to
/// run: cancelled from a process that could not tell this one at once, or taken over by another
/// worker after the lease ran out.
async fn check_running(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RUNNING_CHECK) => {}
            _ = stop.changed() => return,
        }
        let running = context.wakeup.running_ids();
        match context.db.tasks_gone_from(&context.worker, &running).await {
            Ok(gone) => gone.iter().for_each(|id| context.wakeup.stop_local(id)),
            Err(error) => tracing::debug!(%error, "cannot check the running tasks; trying later"),
        }
    }
}

/// Every sweep interval, removes the tasks that finished longer ago than the retention period, a
/// bounded batch per statement so no statement holds the table for long.
async fn retain(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let retention = context.settings.retention;
    let interval = (retention / 4).clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(60));
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let before = Utc::now() - retention;
        let mut removed = 0;
        loop {
            match context.db.delete_finished_tasks(before, RETENTION_BATCH).await {
                Ok(count) => {
                    removed += count;
                    if count < u64::from(RETENTION_BATCH) || *stop.borrow() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot remove finished tasks past their retention; trying later");
                    break;
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "finished tasks past their retention removed");
        }
    }
}

/// Runs the attempt and says how the record should end.
async fn attempt(context: &Context, task: &TaskRow) -> Finish {
    let registry = context.plugins.registry();
    let Some((plugin, spec)) = registry.task_handler(&task.name) else {
        return retry_or_dead(task, crate::spec::Backoff::default(), format!("no plugin handles task `{}`", task.name));
    };
    let Some(pre) = plugin.task() else {
        return Finish::Dead { error: format!("plugin '{}' is not a task plugin", plugin.manifest.name) };
    };
    let host_timeout = context.runtime.limits().task_timeout;
    let limits =
        crate::spec::PluginLimits { timeout: spec.timeout.unwrap_or(host_timeout).min(host_timeout), ..plugin.limits };
    // A task runs as the user who scheduled it only while that user may act: checked before
    // every attempt, so disabling or deleting the user stops their tasks.
    let principal = match &task.user_id {
        Some(user) => match principal_of(&context.identity, user).await {
            Ok(principal) => Some(principal),
            Err(Stopped::Refused(reason)) => return Finish::Dead { error: reason },
            Err(Stopped::Unchecked(error)) => return retry_or_dead(task, spec.backoff, error),
        },
        None => None,
    };
    // Like a request, a task waits for one of its plugin's instance slots.
    let _slot = plugin.wait_for_slot().await;
    let grants = plugin.grants.for_call(CallContext {
        principal,
        request_id: task.correlation_id.clone().unwrap_or_else(|| task.id.clone()),
        depth: 0,
        attempt: Some(Attempt { task_id: task.id.clone(), worker: context.worker.clone(), number: task.attempts }),
    });
    let input = Task {
        id: task.id.clone(),
        name: task.name.clone(),
        payload: task.payload.clone(),
        attempt: u32::try_from(task.attempts).unwrap_or_default(),
        correlation_id: task.correlation_id.clone(),
        scheduled_by: task.user_id.clone(),
    };
    let span = tracing::info_span!("plugin", plugin = %plugin.manifest.name, request_id = %task.id);
    match context.runtime.run_task(pre, &limits, &plugin.meters, grants, &input).instrument(span).await {
        Ok(Ok(output)) if output.len() > MAX_RESULT_BYTES => {
            Finish::Dead { error: format!("the task's output of {} bytes exceeds {MAX_RESULT_BYTES}", output.len()) }
        }
        Ok(Ok(output)) => Finish::Completed { result: output },
        Ok(Err(TaskError::Fail(error))) => Finish::Dead { error },
        Ok(Err(TaskError::Retry(error))) => retry_or_dead(task, spec.backoff, error),
        Err(error) => retry_or_dead(task, spec.backoff, error.to_string()),
    }
}

/// Another attempt after the backoff if attempts remain, else dead.
fn retry_or_dead(task: &TaskRow, backoff: crate::spec::Backoff, error: String) -> Finish {
    if task.attempts >= task.max_attempts {
        return Finish::Dead { error };
    }
    let attempt = u32::try_from(task.attempts).unwrap_or(1);
    let delay = backoff.delay(attempt, rand_unit());
    Finish::Retrying { error, run_at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default() }
}

/// Why a task does not run as its user.
enum Stopped {
    /// The user is gone or disabled: the task ends, saying so.
    Refused(String),
    /// The user could not be looked up: the attempt is tried again.
    Unchecked(String),
}

/// The scheduling user as a principal with their current permissions, if they still may act.
/// Read as stored now even when this worker's process does not share a cache with the host that
/// changed the user.
async fn principal_of(identity: &Identity, user: &str) -> Result<Principal, Stopped> {
    match identity.get_current(user).await {
        Ok(found) if found.disabled => Err(Stopped::Refused(format!(
            "the user who scheduled this task ({user}) is disabled; it does not run as them"
        ))),
        Ok(found) => Ok(Principal { user_id: found.id, permissions: found.permissions }),
        Err(IdentityError::NotFound) => Err(Stopped::Refused(format!(
            "the user who scheduled this task ({user}) no longer exists; it does not run as them"
        ))),
        Err(error) => Err(Stopped::Unchecked(format!("cannot check the user who scheduled this task: {error}"))),
    }
}

/// A number in `[0, 1)` for jitter.
fn rand_unit() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 256.0
}
