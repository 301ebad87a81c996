//! `autoflow:platform/queue`: scheduling tasks from plugins, limited to the task names the
//! manifest lists under `[capabilities] queue`. The task is scheduled by the user bound to the
//! instance, and correlated with the request that made it unless the plugin says otherwise.

use std::sync::Arc;
use std::time::Duration;

use super::link::Link;
use crate::runtime::{FieldError, InstanceState, InvalidInput, PluginError, bindings_queue as wit};
use crate::tasks::{NewTask, Priority, ScheduleError, Scheduler};

/// The queue as one plugin may use it.
#[derive(Clone)]
pub struct PluginQueue {
    allowed: Arc<[String]>,
    scheduler: Link<Scheduler>,
}

impl PluginQueue {
    pub fn new(allowed: &[String], scheduler: Link<Scheduler>) -> Self {
        Self { allowed: allowed.into(), scheduler }
    }
}

impl wit::Host for InstanceState {
    async fn enqueue(
        &mut self,
        name: String,
        payload: String,
        options: wit::EnqueueOptions,
    ) -> Result<String, PluginError> {
        let queue = super::granted(self.grants.queue.as_ref(), "queue")?;
        if !queue.allowed.contains(&name) {
            return Err(PluginError::Forbidden(format!("[capabilities] queue does not list task `{name}`")));
        }
        let scheduler = queue.scheduler.get().ok_or_else(|| PluginError::Unavailable("the host is stopping".into()))?;
        let task = NewTask {
            name,
            payload,
            priority: options.priority.map(|p| match p {
                wit::Priority::Critical => Priority::Critical,
                wit::Priority::High => Priority::High,
                wit::Priority::Normal => Priority::Normal,
                wit::Priority::Low => Priority::Low,
            }),
            delay: options.delay_ms.map(Duration::from_millis),
            max_attempts: options.max_attempts,
            correlation_id: options.correlation_id,
        };
        Ok(scheduler.schedule(task, self.grants.chain.clone()).await?.id)
    }
}

impl From<ScheduleError> for PluginError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::UnknownTask(_) => PluginError::Forbidden(error.to_string()),
            ScheduleError::Invalid { field, message } => PluginError::Invalid(InvalidInput {
                message: message.clone(),
                fields: vec![FieldError { field: field.to_owned(), message }],
            }),
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
