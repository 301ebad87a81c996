//! Scheduling tasks, one or a batch: each name must be one a loaded task plugin handles, each
//! payload JSON the plugin's `validate` accepts, and then the pending records are stored (a batch
//! in one statement, all or none) and the fetchers woken.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::Wakeup;
use super::schedules::ScheduleChanges;
use crate::capabilities::HostRuntime;
use crate::capabilities::queue::{Scheduled, TaskRequest, TaskScheduler};
use crate::contract::{CallContext, FieldError, InvalidInput, PluginError, wit::queue as wit};
use crate::db::{Cancel, Database, DbError, TaskRow, TaskStatus};
use crate::plugins::LivePlugins;
use crate::runtime::{CallError, CapabilitySet};
use crate::spec::{MAX_ATTEMPTS, Priority, TaskSpec};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::traces;

/// Largest payload, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Longest correlation id, in bytes.
pub const MAX_CORRELATION_ID: usize = 200;
/// Longest delay a task may be scheduled with.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// A task to schedule; `None` options take the task's defaults from its plugin's manifest.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub name: String,
    /// A JSON value, as text.
    pub payload: String,
    pub priority: Option<Priority>,
    pub delay: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub correlation_id: Option<String>,
    /// While a task of this name with this key waits or runs, scheduling returns it instead of
    /// adding another; `None` takes the manifest's `unique` (the payload as the key) if set.
    pub unique_key: Option<String>,
}

/// A task as scheduling left it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub row: TaskRow,
    /// `false` when the task holding the unique key was returned instead.
    pub created: bool,
}

/// Longest unique key, in bytes.
pub const MAX_UNIQUE_KEY: usize = 200;

/// Most tasks scheduled in one call.
pub const MAX_BATCH: usize = 1000;

/// Why a task was not scheduled.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("no plugin handles task `{0}`")]
    UnknownTask(String),
    /// The input is malformed; `field` names the part at fault.
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    /// The handling plugin's `validate` refused the payload.
    #[error("task `{name}` refused the payload")]
    Refused { plugin: String, name: String, error: PluginError },
    /// Every instance slot of the handling plugin stayed busy for the host's queue timeout.
    #[error("plugin '{plugin}' is busy: all {limit} of its instances are running; retry shortly")]
    Busy { plugin: String, limit: u32 },
    /// The handling plugin failed while validating (trap, timeout, …).
    #[error("plugin '{plugin}' failed to validate the payload: {source}")]
    Validator { plugin: String, source: CallError },
    /// Task `index` of a batch was refused, so none of the batch was scheduled.
    #[error("task {index} of the batch: {error}")]
    InBatch { index: usize, error: Box<ScheduleError> },
    /// A batch was empty or larger than [`MAX_BATCH`].
    #[error("a batch holds 1-{MAX_BATCH} tasks (got {0})")]
    BatchSize(usize),
    /// A schedule of this name exists already.
    #[error("a schedule named `{0}` exists already")]
    ScheduleTaken(String),
    #[error("no schedule `{0}`")]
    NoSchedule(String),
    /// The schedule is declared by a loaded plugin's manifest: it goes when the manifest drops it.
    #[error("schedule `{name}` is declared by plugin '{plugin}': remove it from that plugin's manifest, or pause it")]
    Declared { name: String, plugin: String },
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ScheduleError {
    /// This error as it concerns task `index` of a batch: errors about the task itself name it,
    /// errors about the whole batch (busy, database) stay as they are.
    fn at(self, index: usize) -> Self {
        match self {
            ScheduleError::UnknownTask(_) | ScheduleError::Invalid { .. } | ScheduleError::Refused { .. } => {
                ScheduleError::InBatch { index, error: Box::new(self) }
            }
            other => other,
        }
    }

    /// The error about the one task of a single-task batch.
    fn unbatched(self) -> Self {
        match self {
            ScheduleError::InBatch { error, .. } => *error,
            other => other,
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError::Invalid { field, message: message.into() }
}

/// Schedules tasks for the HTTP API and the queue capability. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub(super) db: Database,
    pub(super) plugins: Arc<LivePlugins>,
    runtime: HostRuntime,
    /// Wakes idle fetchers (of every process) when a task is stored.
    wakeup: Wakeup,
    /// Has this process's schedule ticker look again when a schedule changed.
    pub(super) changes: ScheduleChanges,
}

impl Scheduler {
    pub fn new(db: Database, plugins: Arc<LivePlugins>, runtime: HostRuntime, wakeup: Wakeup) -> Self {
        Self { db, plugins, runtime, wakeup, changes: ScheduleChanges::default() }
    }

    /// Starts this process's schedule ticker, which fires due schedules for every host sharing
    /// the database (each tick once).
    pub fn spawn_ticker(&self) -> tokio::task::JoinHandle<()> {
        super::schedules::spawn_ticker(self.db.clone(), self.plugins.clone(), self.wakeup.clone(), self.changes.clone())
    }

    /// Validates and stores `task`, scheduled by `call`'s user (if any); returns the record, which
    /// is the task already holding its unique key if there is one.
    #[tracing::instrument(skip(self, task, call), fields(task = %task.name))]
    pub async fn schedule(&self, task: NewTask, call: CallContext) -> Result<Stored, ScheduleError> {
        let mut stored = self.store(vec![task], call).await.map_err(ScheduleError::unbatched)?;
        let stored = stored.pop().expect("one task stored");
        let (task_id, priority) = (&stored.row.id, Priority::from_rank(stored.row.priority));
        if stored.created {
            tracing::info!(%task_id, %priority, "task scheduled");
        } else {
            tracing::info!(%task_id, "task not added: one with its unique key is waiting or running");
        }
        Ok(stored)
    }

    /// Validates and stores `tasks` all together or not at all (a refused task names its index),
    /// scheduled by `call`'s user (if any); returns the records in order. Each handling plugin
    /// validates its share of the payloads in one instance, and the records go in one statement.
    #[tracing::instrument(skip(self, tasks, call), fields(tasks = tasks.len()))]
    pub async fn schedule_many(&self, tasks: Vec<NewTask>, call: CallContext) -> Result<Vec<Stored>, ScheduleError> {
        if !(1..=MAX_BATCH).contains(&tasks.len()) {
            return Err(ScheduleError::BatchSize(tasks.len()));
        }
        let rows = self.store(tasks, call).await?;
        tracing::info!(tasks = rows.len(), "tasks scheduled");
        Ok(rows)
    }

    /// Checks `tasks` and has each handling plugin validate its share of the payloads (in one
    /// instance, taking a slot as a request does); the task specs, in order.
    pub async fn validate(&self, tasks: &[NewTask], call: &CallContext) -> Result<Vec<TaskSpec>, ScheduleError> {
        for (index, task) in tasks.iter().enumerate() {
            check(task).map_err(|error| error.at(index))?;
        }
        let registry = self.plugins.registry();
        let mut handlers = Vec::with_capacity(tasks.len());
        for (index, task) in tasks.iter().enumerate() {
            let handler = registry.task_handler(&task.name);
            handlers.push(handler.ok_or_else(|| ScheduleError::UnknownTask(task.name.clone()).at(index))?);
        }
        let mut by_plugin: Vec<(&Arc<_>, Vec<usize>)> = Vec::new();
        for (index, (plugin, _)) in handlers.iter().enumerate() {
            match by_plugin.iter_mut().find(|(seen, _)| Arc::ptr_eq(seen, plugin)) {
                Some((_, indexes)) => indexes.push(index),
                None => by_plugin.push((plugin, vec![index])),
            }
        }
        for (plugin, indexes) in by_plugin {
            let pre = plugin.task().expect("a plugin declaring tasks exports task-handler (checked at load)");
            let name = plugin.manifest.name.to_string();
            let span = tracing::info_span!("plugin", plugin = %name, request_id = %call.request_id);
            let grants = plugin.grants.for_call(call.clone());
            let _slot = plugin
                .slot(self.runtime.limits().queue_timeout)
                .await
                .map_err(|busy| ScheduleError::Busy { plugin: name.clone(), limit: busy.limit })?;
            let payloads: Vec<(&str, &str)> =
                indexes.iter().map(|&i| (tasks[i].name.as_str(), tasks[i].payload.as_str())).collect();
            match self
                .runtime
                .validate_tasks(pre, &plugin.limits, &plugin.meters, grants, &payloads)
                .instrument(span)
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err((refused, error))) => {
                    let index = indexes[refused];
                    let refusal = ScheduleError::Refused { plugin: name, name: tasks[index].name.clone(), error };
                    return Err(refusal.at(index));
                }
                Err(source) => return Err(ScheduleError::Validator { plugin: name, source }),
            }
        }
        Ok(handlers.into_iter().map(|(_, spec)| spec.clone()).collect())
    }

    /// Checks, validates and stores a batch, then wakes the fetchers.
    async fn store(&self, tasks: Vec<NewTask>, call: CallContext) -> Result<Vec<Stored>, ScheduleError> {
        let specs = self.validate(&tasks, &call).await?;
        let now = Utc::now();
        let user = call.user_id().map(str::to_owned);
        let request = Some(call.request_id).filter(|id| !id.is_empty());
        // The tasks' runs continue the trace of what scheduled them.
        let trace_parent = traces::current_traceparent();
        let rows: Vec<TaskRow> = tasks
            .into_iter()
            .zip(&specs)
            .map(|(task, spec)| {
                let delay = chrono::Duration::from_std(task.delay.unwrap_or_default()).unwrap_or_default();
                let correlation_id = task.correlation_id.clone().or_else(|| request.clone());
                let row = new_row(task, spec, now + delay, correlation_id, user.clone());
                TaskRow { trace_parent: trace_parent.clone(), ..row }
            })
            .collect();
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let records = self.db.insert_tasks(rows).await?;
        self.hand_out(records.iter().map(|row| row.run_at));
        let stored: Vec<Stored> =
            records.into_iter().zip(ids).map(|(row, id)| Stored { created: row.id == id, row }).collect();
        count_scheduled(self.runtime.metrics(), stored.iter().filter(|s| s.created).map(|s| s.row.name.as_str()));
        Ok(stored)
    }

    /// Makes dead task `id` pending again with `attempts` more attempts; `None` if it is not dead.
    pub async fn retry_dead(&self, id: &str, attempts: u32) -> Result<Option<TaskRow>, DbError> {
        let revived = self.db.revive_task(id, i32::try_from(attempts).unwrap_or(i32::MAX)).await?;
        if let Some(row) = &revived {
            tracing::info!(task_id = %row.id, "dead task made pending again");
            self.hand_out(std::iter::once(row.run_at));
        }
        Ok(revived)
    }

    /// Cancels task `id` if it waits or runs; a running attempt is stopped wherever it runs (at
    /// once in this process and, on PostgreSQL, in the others; otherwise within a worker's check
    /// interval), without asking the plugin, and is not retried.
    pub async fn cancel(&self, id: &str) -> Result<Cancel, DbError> {
        let cancel = self.db.cancel_task(id).await?;
        match &cancel {
            Cancel::Running { worker } => {
                tracing::info!(task_id = %id, %worker, "running task cancelled; stopping its instance");
                self.wakeup.cancel(id);
            }
            Cancel::Waiting => tracing::info!(task_id = %id, "task cancelled"),
            Cancel::Refused => {}
        }
        Ok(cancel)
    }

    /// Wakes the fetchers for tasks stored due at `due`: now for those due already, and this
    /// process's at the earliest of the later ones.
    fn hand_out(&self, due: impl Iterator<Item = chrono::DateTime<Utc>>) {
        let now = Utc::now();
        let (mut ready, mut later) = (false, None::<chrono::DateTime<Utc>>);
        for due in due {
            if due <= now {
                ready = true;
            } else {
                later = Some(later.map_or(due, |earliest| earliest.min(due)));
            }
        }
        if ready {
            self.wakeup.notify();
        }
        if let Some(due) = later {
            self.wakeup.notify_at(due);
        }
    }
}

/// Counts the tasks `names` as scheduled, one metrics update per run of equal names.
pub(super) fn count_scheduled<'a>(metrics: &Metrics, names: impl Iterator<Item = &'a str>) {
    let mut names = names.peekable();
    while let Some(name) = names.next() {
        let mut count = 1;
        while names.next_if_eq(&name).is_some() {
            count += 1;
        }
        metrics.tasks_scheduled(name, count);
    }
}

/// The pending record of `task`, handled as `spec` says, due at `run_at`.
pub fn new_row(
    task: NewTask,
    spec: &TaskSpec,
    run_at: DateTime<Utc>,
    correlation_id: Option<String>,
    user_id: Option<String>,
) -> TaskRow {
    let now = Utc::now();
    let unique_key = task.unique_key.or_else(|| spec.unique.then(|| payload_key(&task.payload)));
    TaskRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: task.name,
        payload: task.payload,
        priority: task.priority.unwrap_or(spec.priority).rank(),
        status: TaskStatus::Pending,
        attempts: 0,
        max_attempts: task.max_attempts.unwrap_or(spec.max_attempts) as i32,
        run_at,
        lease_until: None,
        worker_id: None,
        correlation_id,
        user_id,
        result: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        unique_key,
        schedule_name: None,
        progress: None,
        trace_parent: None,
    }
}

/// The unique key of a task declared unique by payload: the payload's SHA-256, so equal JSON
/// text is one key.
fn payload_key(payload: &str) -> String {
    use sha2::Digest;
    format!("payload:{}", hex::encode(sha2::Sha256::digest(payload.as_bytes())))
}

/// The checks a task passes before its plugin sees it.
fn check(task: &NewTask) -> Result<(), ScheduleError> {
    if task.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid("payload", format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(&task.payload).is_err() {
        return Err(invalid("payload", "must be JSON"));
    }
    if task.max_attempts.is_some_and(|n| !(1..=MAX_ATTEMPTS).contains(&n)) {
        return Err(invalid("maxAttempts", format!("must be 1-{MAX_ATTEMPTS}")));
    }
    if task.delay.is_some_and(|delay| delay > MAX_DELAY) {
        return Err(invalid("delayMs", "must be at most a year"));
    }
    if task.correlation_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_CORRELATION_ID) {
        return Err(invalid("correlationId", format!("must be 1-{MAX_CORRELATION_ID} bytes")));
    }
    if task.unique_key.as_ref().is_some_and(|key| key.is_empty() || key.len() > MAX_UNIQUE_KEY) {
        return Err(invalid("uniqueKey", format!("must be 1-{MAX_UNIQUE_KEY} bytes")));
    }
    Ok(())
}

impl TaskScheduler for Scheduler {
    fn schedule_for_plugin(&self, task: TaskRequest, call: CallContext) -> Scheduled<'_, String> {
        Box::pin(async move { Ok(self.schedule(requested(task), call).await?.row.id) })
    }

    fn schedule_many_for_plugin(&self, tasks: Vec<TaskRequest>, call: CallContext) -> Scheduled<'_, Vec<String>> {
        let tasks = tasks.into_iter().map(requested).collect();
        Box::pin(
            async move { Ok(self.schedule_many(tasks, call).await?.into_iter().map(|task| task.row.id).collect()) },
        )
    }
}

/// The task a plugin asked for.
fn requested(task: TaskRequest) -> NewTask {
    let options = task.options;
    NewTask {
        name: task.name,
        payload: task.payload,
        priority: options.priority.map(|priority| match priority {
            wit::Priority::Critical => Priority::Critical,
            wit::Priority::High => Priority::High,
            wit::Priority::Normal => Priority::Normal,
            wit::Priority::Low => Priority::Low,
        }),
        delay: options.delay_ms.map(Duration::from_millis),
        max_attempts: options.max_attempts,
        correlation_id: options.correlation_id,
        unique_key: options.unique_key,
    }
}

/// How a plugin's `queue.enqueue` sees a task that was not scheduled.
impl From<ScheduleError> for PluginError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::UnknownTask(_) => PluginError::Forbidden(error.to_string()),
            ScheduleError::Invalid { field, message } => PluginError::invalid_field(field, message),
            ScheduleError::Refused { error, .. } => error,
            ScheduleError::InBatch { index, error } => match PluginError::from(*error) {
                PluginError::Invalid(input) => PluginError::Invalid(in_batch(index, input)),
                PluginError::Forbidden(message) => PluginError::Forbidden(format!("tasks[{index}]: {message}")),
                other => other,
            },
            ScheduleError::BatchSize(_) => PluginError::invalid(error.to_string()),
            ScheduleError::Busy { .. } => PluginError::Unavailable(error.to_string()),
            ScheduleError::Validator { .. } => {
                tracing::error!(%error, "queue capability: the task's validator failed");
                PluginError::Unavailable(error.to_string())
            }
            ScheduleError::ScheduleTaken(_) | ScheduleError::NoSchedule(_) | ScheduleError::Declared { .. } => {
                PluginError::invalid(error.to_string())
            }
            ScheduleError::Database(source) => {
                tracing::error!(error = %source, "queue capability: database failure");
                PluginError::Unavailable("the task queue is unavailable".into())
            }
        }
    }
}

/// `input` about task `index` of a batch: its fields read `tasks[index].…`.
pub fn in_batch(index: usize, input: InvalidInput) -> InvalidInput {
    InvalidInput {
        message: format!("tasks[{index}]: {}", input.message),
        fields: input
            .fields
            .into_iter()
            .map(|field| FieldError { field: format!("tasks[{index}].{}", field.field), message: field.message })
            .collect(),
    }
}
