//! Scheduling background tasks. Needs `[capabilities] queue = ["task-name", …]`. The task runs
//! later in the plugin that handles it, for the current user, correlated with this request.

use std::time::Duration;

use serde::Serialize;

use crate::bindings::autoflow::platform::queue as wit;
pub use crate::bindings::autoflow::platform::queue::Priority;
use crate::{Error, Result};

/// How to run a task; the defaults are the handling plugin's.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub priority: Option<Priority>,
    /// Run no earlier than this from now.
    pub delay: Option<Duration>,
    pub max_attempts: Option<u32>,
    /// Defaults to the id of the request scheduling it.
    pub correlation_id: Option<String>,
    /// While a task of this name with this key waits or runs, `enqueue` returns its id instead of
    /// adding another (e.g. `format!("sync-user:{id}")`). Without one, a task the manifest
    /// declares `unique = true` is keyed by its payload.
    pub unique_key: Option<String>,
}

/// Schedules task `name` with `payload` and returns the task's id. The handling plugin validates
/// the payload first: a rejected one is an `invalid` error.
pub fn enqueue<P: Serialize>(name: &str, payload: &P, options: Options) -> Result<String> {
    let request = request(name, payload, options)?;
    Ok(wit::enqueue(&request.name, &request.payload, &request.options)?)
}

/// Tasks scheduled together, all or none, in one call: the handling plugins validate the batch
/// and the host stores it in one statement — much faster than one `enqueue` per task.
///
/// ```ignore
/// let mut batch = queue::Batch::default();
/// for user in &users {
///     batch.add("send-email", &Email::welcome(user), queue::Options::default())?;
/// }
/// let ids = batch.enqueue()?;
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    tasks: Vec<wit::TaskRequest>,
}

impl Batch {
    /// Most tasks in one batch.
    pub const MAX: usize = 1000;

    /// Adds task `name` with `payload`.
    pub fn add<P: Serialize>(&mut self, name: &str, payload: &P, options: Options) -> Result<&mut Self> {
        self.tasks.push(request(name, payload, options)?);
        Ok(self)
    }

    /// How many tasks it holds.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Schedules every task (1 to [`Batch::MAX`]) and returns their ids in order. When one is
    /// refused none is scheduled, and an `invalid` error's fields read `tasks[i].…`.
    pub fn enqueue(self) -> Result<Vec<String>> {
        Ok(wit::enqueue_many(&self.tasks)?)
    }
}

fn request<P: Serialize>(name: &str, payload: &P, options: Options) -> Result<wit::TaskRequest> {
    let payload = serde_json::to_string(payload).map_err(|e| Error::internal(format!("cannot encode payload: {e}")))?;
    let options = wit::EnqueueOptions {
        priority: options.priority,
        delay_ms: options.delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        max_attempts: options.max_attempts,
        correlation_id: options.correlation_id,
        unique_key: options.unique_key,
    };
    Ok(wit::TaskRequest { name: name.to_owned(), payload, options })
}
