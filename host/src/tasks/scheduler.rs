//! Scheduling tasks, one or a batch: each name must be one a loaded task plugin handles, each
//! payload JSON the plugin's `validate` accepts, and then the pending records are stored (a batch
//! in one statement, all or none) and the fetchers woken.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::Instrument;

use super::Wakeup;
use crate::capabilities::HostRuntime;
use crate::capabilities::queue::{Scheduled, TaskRequest, TaskScheduler};
use crate::contract::{CallContext, FieldError, InvalidInput, PluginError, wit::queue as wit};
use crate::db::{Database, DbError, TaskRow, TaskStatus};
use crate::plugins::LivePlugins;
use crate::runtime::{CallError, CapabilitySet};
use crate::spec::{MAX_ATTEMPTS, Priority};

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
}

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
    db: Database,
    plugins: Arc<LivePlugins>,
    runtime: HostRuntime,
    /// Wakes idle fetchers (of every process) when a task is stored.
    wakeup: Wakeup,
}

impl Scheduler {
    pub fn new(db: Database, plugins: Arc<LivePlugins>, runtime: HostRuntime, wakeup: Wakeup) -> Self {
        Self { db, plugins, runtime, wakeup }
    }

    /// Validates and stores `task`, scheduled by `call`'s user (if any); returns the record.
    #[tracing::instrument(skip(self, task, call), fields(task = %task.name))]
    pub async fn schedule(&self, task: NewTask, call: CallContext) -> Result<TaskRow, ScheduleError> {
        let mut rows = self.store(vec![task], call).await.map_err(ScheduleError::unbatched)?;
        let row = rows.pop().expect("one task stored");
        tracing::info!(task_id = %row.id, priority = %Priority::from_rank(row.priority), "task scheduled");
        Ok(row)
    }

    /// Validates and stores `tasks` all together or not at all (a refused task names its index),
    /// scheduled by `call`'s user (if any); returns the records in order. Each handling plugin
    /// validates its share of the payloads in one instance, and the records go in one statement.
    #[tracing::instrument(skip(self, tasks, call), fields(tasks = tasks.len()))]
    pub async fn schedule_many(&self, tasks: Vec<NewTask>, call: CallContext) -> Result<Vec<TaskRow>, ScheduleError> {
        if !(1..=MAX_BATCH).contains(&tasks.len()) {
            return Err(ScheduleError::BatchSize(tasks.len()));
        }
        let rows = self.store(tasks, call).await?;
        tracing::info!(tasks = rows.len(), "tasks scheduled");
        Ok(rows)
    }

    /// Checks, validates and stores a batch, then wakes the fetchers.
    async fn store(&self, tasks: Vec<NewTask>, call: CallContext) -> Result<Vec<TaskRow>, ScheduleError> {
        for (index, task) in tasks.iter().enumerate() {
            check(task).map_err(|error| error.at(index))?;
        }
        let registry = self.plugins.registry();
        let mut handlers = Vec::with_capacity(tasks.len());
        for (index, task) in tasks.iter().enumerate() {
            let handler = registry.task_handler(&task.name);
            handlers.push(handler.ok_or_else(|| ScheduleError::UnknownTask(task.name.clone()).at(index))?);
        }
        // Each plugin validates its tasks' payloads in one instance, taking a slot as a request does.
        let mut by_plugin: Vec<(&Arc<_>, Vec<usize>)> = Vec::new();
        for (index, (plugin, _)) in handlers.iter().enumerate() {
            match by_plugin.iter_mut().find(|(seen, _)| Arc::ptr_eq(seen, plugin)) {
                Some((_, indexes)) => indexes.push(index),
                None => by_plugin.push((plugin, vec![index])),
            }
        }
        for (plugin, indexes) in by_plugin {
            let pre = plugin.task().expect("a plugin handling tasks is a task plugin");
            let name = plugin.manifest.name.to_string();
            let span = tracing::info_span!("plugin", plugin = %name, request_id = %call.request_id);
            let grants = plugin.grants.for_call(call.clone());
            let _slot = plugin
                .slot(self.runtime.limits().queue_timeout)
                .await
                .map_err(|busy| ScheduleError::Busy { plugin: name.clone(), limit: busy.limit })?;
            let payloads: Vec<(&str, &str)> =
                indexes.iter().map(|&i| (tasks[i].name.as_str(), tasks[i].payload.as_str())).collect();
            match self.runtime.validate_tasks(pre, &plugin.limits, grants, &payloads).instrument(span).await {
                Ok(Ok(())) => {}
                Ok(Err((refused, error))) => {
                    let index = indexes[refused];
                    let refusal = ScheduleError::Refused { plugin: name, name: tasks[index].name.clone(), error };
                    return Err(refusal.at(index));
                }
                Err(source) => return Err(ScheduleError::Validator { plugin: name, source }),
            }
        }

        let now = Utc::now();
        let user = call.user_id().map(str::to_owned);
        let request = Some(call.request_id).filter(|id| !id.is_empty());
        let rows: Vec<TaskRow> = tasks
            .into_iter()
            .zip(&handlers)
            .map(|(task, (_, spec))| {
                let delay = chrono::Duration::from_std(task.delay.unwrap_or_default()).unwrap_or_default();
                TaskRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    name: task.name,
                    payload: task.payload,
                    priority: task.priority.unwrap_or(spec.priority).rank(),
                    status: TaskStatus::Pending,
                    attempts: 0,
                    max_attempts: task.max_attempts.unwrap_or(spec.max_attempts) as i32,
                    run_at: now + delay,
                    lease_until: None,
                    worker_id: None,
                    correlation_id: task.correlation_id.or_else(|| request.clone()),
                    user_id: user.clone(),
                    result: None,
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                    finished_at: None,
                }
            })
            .collect();
        self.db.insert_tasks(&rows).await?;
        self.hand_out(rows.iter().map(|row| row.run_at));
        Ok(rows)
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
    Ok(())
}

impl TaskScheduler for Scheduler {
    fn schedule_for_plugin(&self, task: TaskRequest, call: CallContext) -> Scheduled<'_, String> {
        Box::pin(async move { Ok(self.schedule(requested(task), call).await?.id) })
    }

    fn schedule_many_for_plugin(&self, tasks: Vec<TaskRequest>, call: CallContext) -> Scheduled<'_, Vec<String>> {
        let tasks = tasks.into_iter().map(requested).collect();
        Box::pin(async move { Ok(self.schedule_many(tasks, call).await?.into_iter().map(|row| row.id).collect()) })
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
