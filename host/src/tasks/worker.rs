//! Workers: each claims the most urgent due task (through [`Dispatch`]), runs it in a fresh sandboxed
//! instance of its plugin under the task's deadline and memory limit, and records the outcome:
//! completed, retrying after a backoff, or dead once its attempts are spent. A task whose worker
//! vanished is claimed again when its lease runs out, so delivery is at least once; a worker that
//! lost its lease has its result discarded, so a record is never completed twice. With Redis
//! dispatch, the pool also runs the sweeper that gives Redis back what it lost.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::capabilities::HostRuntime;
use crate::config::WorkerSettings;
use crate::contract::{CallContext, Principal, Task, TaskError};
use crate::db::{Database, Finish, TaskRow};
use crate::plugins::LivePlugins;
use crate::runtime::CapabilitySet;
use crate::services::identity::{Identity, IdentityError};
use crate::tasks::{Dispatch, Wakeup};

/// Largest result kept on a record, in bytes.
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// What the workers share.
struct Context {
    db: Database,
    plugins: Arc<LivePlugins>,
    runtime: HostRuntime,
    identity: Identity,
    settings: WorkerSettings,
    dispatch: Dispatch,
    wakeup: Wakeup,
    stop: watch::Receiver<bool>,
}

/// A running pool of workers; [`Workers::shutdown`] lets in-flight tasks finish.
pub struct Workers {
    concurrency: usize,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `settings.concurrency` workers taking tasks from `dispatch`, woken by `wakeup` when
    /// a task is scheduled, and the dispatch sweeper if `dispatch` needs one.
    pub fn spawn(
        db: Database,
        plugins: Arc<LivePlugins>,
        runtime: HostRuntime,
        identity: Identity,
        dispatch: Dispatch,
        wakeup: Wakeup,
        settings: WorkerSettings,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let context = Arc::new(Context { db, plugins, runtime, identity, settings, dispatch, wakeup, stop: stopped });
        let process = uuid::Uuid::new_v4().simple().to_string();
        let mut handles: Vec<_> = (0..settings.concurrency)
            .map(|n| {
                let worker = format!("{}-{}-{n}", std::process::id(), &process[..8]);
                tokio::spawn(work(context.clone(), worker))
            })
            .collect();
        if matches!(context.dispatch, Dispatch::Redis(_)) {
            handles.push(tokio::spawn(sweep(context)));
        }
        Self { concurrency: settings.concurrency, stop, handles }
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.concurrency
    }

    /// Whether none do.
    pub fn is_empty(&self) -> bool {
        self.concurrency == 0
    }

    /// Stops taking tasks and waits for the ones running to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// One worker's loop: claim, run, record; wait when there is nothing due.
async fn work(context: Arc<Context>, worker: String) {
    let mut stop = context.stop.clone();
    // Until the worker knows the task's own timeout, the lease covers the longest any task may run.
    let claim_lease = context.runtime.limits().task_timeout + context.settings.lease_margin;
    let claim_lease = chrono::Duration::from_std(claim_lease).unwrap_or(chrono::Duration::MAX);
    while !*stop.borrow() {
        let now = Utc::now();
        match context.dispatch.claim(&context.db, &worker, now, now + claim_lease).await {
            Ok(Some(task)) => run(&context, &worker, task).await,
            Ok(None) => {
                tokio::select! {
                    _ = context.wakeup.notified() => {}
                    _ = tokio::time::sleep(context.settings.poll_interval) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) => {
                tracing::warn!(worker, %error, "cannot claim tasks: the database failed");
                tokio::select! {
                    _ = tokio::time::sleep(context.settings.poll_interval) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Every `sweep_interval`, gives dispatch back the due tasks it lost.
async fn sweep(context: Arc<Context>) {
    let mut stop = context.stop.clone();
    let interval = context.settings.sweep_interval;
    let grace = chrono::Duration::from_std(interval).unwrap_or_default();
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => break,
        }
        let now = Utc::now();
        match context.dispatch.sweep(&context.db, now, now - grace, interval).await {
            Ok(0) => {}
            Ok(restored) => {
                tracing::warn!(restored, "dispatch had lost due tasks; they were handed out again");
                context.wakeup.notify().await;
            }
            Err(error) => tracing::debug!(%error, "dispatch sweep skipped"),
        }
    }
}

/// Runs one claimed attempt and records how it ended.
async fn run(context: &Context, worker: &str, task: TaskRow) {
    let span = tracing::info_span!("task", task = %task.name, task_id = %task.id, attempt = task.attempts);
    let finish = attempt(context, worker, &task).instrument(span.clone()).await;
    let _entered = span.enter();
    match context.db.finish_task(&task.id, worker, task.attempts, &finish).await {
        Ok(true) => match &finish {
            Finish::Completed { .. } => tracing::info!("task completed"),
            Finish::Retrying { error, run_at } => {
                tracing::warn!(%error, %run_at, "task failed; it will run again");
                context.dispatch.announce(&task.id, task.priority, *run_at).await;
            }
            Finish::Dead { error } => tracing::error!(%error, "task failed for good"),
        },
        Ok(false) => {
            tracing::warn!("the task's lease was taken over by another worker; this attempt's outcome is dropped")
        }
        Err(error) => tracing::error!(%error, "cannot record the task's outcome; it runs again when its lease ends"),
    }
}

/// Runs the attempt and says how the record should end.
async fn attempt(context: &Context, worker: &str, task: &TaskRow) -> Finish {
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
    let lease = chrono::Duration::from_std(limits.timeout + context.settings.lease_margin).unwrap_or_default();
    if let Err(error) = context.db.extend_lease(&task.id, worker, task.attempts, Utc::now() + lease).await {
        tracing::warn!(%error, "cannot extend the task's lease");
    }
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
    let _slot = plugin.slots.acquire().await;
    let grants = plugin.grants.for_call(CallContext {
        principal,
        request_id: task.correlation_id.clone().unwrap_or_else(|| task.id.clone()),
        depth: 0,
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
    match context.runtime.run_task(pre, &limits, grants, &input).instrument(span).await {
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
