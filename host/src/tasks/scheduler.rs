//! Scheduling a task: the name must be one a loaded task plugin handles, the payload must be JSON
//! the plugin's `validate` accepts, and then a pending record is stored, handed to dispatch and
//! the workers woken.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::Instrument;

use super::{Dispatch, Wakeup};
use crate::capabilities::HostRuntime;
use crate::capabilities::queue::{TaskRequest, TaskScheduler};
use crate::contract::{CallContext, PluginError, wit::queue as wit};
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
    #[error(transparent)]
    Database(#[from] DbError),
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
    dispatch: Dispatch,
    /// Wakes idle workers (of every process) when a task is stored.
    wakeup: Wakeup,
}

impl Scheduler {
    pub fn new(
        db: Database,
        plugins: Arc<LivePlugins>,
        runtime: HostRuntime,
        dispatch: Dispatch,
        wakeup: Wakeup,
    ) -> Self {
        Self { db, plugins, runtime, dispatch, wakeup }
    }

    /// Validates and stores `task`, scheduled by `call`'s user (if any); returns the record.
    #[tracing::instrument(skip(self, task, call), fields(task = %task.name))]
    pub async fn schedule(&self, task: NewTask, call: CallContext) -> Result<TaskRow, ScheduleError> {
        if task.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(invalid("payload", format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")));
        }
        if serde_json::from_str::<serde_json::Value>(&task.payload).is_err() {
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
        let registry = self.plugins.registry();
        let (plugin, spec) =
            registry.task_handler(&task.name).ok_or_else(|| ScheduleError::UnknownTask(task.name.clone()))?;
        let pre = plugin.task().expect("a plugin handling tasks is a task plugin");
        let user = call.user_id().map(str::to_owned);
        let span = tracing::info_span!("plugin", plugin = %plugin.manifest.name, request_id = %call.request_id);
        let grants = plugin.grants.for_call(call.clone());
        // Validation runs an instance of the plugin, so it takes a slot like a request does.
        let _slot = plugin
            .slot(self.runtime.limits().queue_timeout)
            .await
            .map_err(|busy| ScheduleError::Busy { plugin: plugin.manifest.name.to_string(), limit: busy.limit })?;
        match self.runtime.validate_task(pre, &plugin.limits, grants, &task.name, &task.payload).instrument(span).await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let plugin = plugin.manifest.name.to_string();
                return Err(ScheduleError::Refused { plugin, name: task.name, error });
            }
            Err(source) => {
                return Err(ScheduleError::Validator { plugin: plugin.manifest.name.to_string(), source });
            }
        }

        let now = Utc::now();
        let delay = chrono::Duration::from_std(task.delay.unwrap_or_default()).unwrap_or_default();
        let row = TaskRow {
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
            correlation_id: task.correlation_id.or_else(|| Some(call.request_id).filter(|id| !id.is_empty())),
            user_id: user,
            result: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        self.db.insert_task(&row).await?;
        tracing::info!(task_id = %row.id, priority = %Priority::from_rank(row.priority), "task scheduled");
        self.hand_out(&row).await;
        Ok(row)
    }

    /// Makes dead task `id` pending again with `attempts` more attempts; `None` if it is not dead.
    pub async fn retry_dead(&self, id: &str, attempts: u32) -> Result<Option<TaskRow>, DbError> {
        let revived = self.db.revive_task(id, i32::try_from(attempts).unwrap_or(i32::MAX)).await?;
        if let Some(row) = &revived {
            tracing::info!(task_id = %row.id, "dead task made pending again");
            self.hand_out(row).await;
        }
        Ok(revived)
    }

    /// Gives a waiting record to dispatch and wakes idle workers.
    async fn hand_out(&self, row: &TaskRow) {
        self.dispatch.announce(&row.id, row.priority, row.run_at).await;
        self.wakeup.notify().await;
    }
}

impl TaskScheduler for Scheduler {
    fn schedule_for_plugin(
        &self,
        task: TaskRequest,
        call: CallContext,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, PluginError>> + Send + '_>> {
        let options = task.options;
        let task = NewTask {
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
        };
        Box::pin(async move { Ok(self.schedule(task, call).await?.id) })
    }
}

/// How a plugin's `queue.enqueue` sees a task that was not scheduled.
impl From<ScheduleError> for PluginError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::UnknownTask(_) => PluginError::Forbidden(error.to_string()),
            ScheduleError::Invalid { field, message } => PluginError::invalid_field(field, message),
            ScheduleError::Refused { error, .. } => error,
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
