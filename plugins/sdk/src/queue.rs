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
}

/// Schedules task `name` with `payload` and returns the task's id. The handling plugin validates
/// the payload first: a rejected one is an `invalid` error.
pub fn enqueue<P: Serialize>(name: &str, payload: &P, options: Options) -> Result<String> {
    let payload = serde_json::to_string(payload).map_err(|e| Error::internal(format!("cannot encode payload: {e}")))?;
    let options = wit::EnqueueOptions {
        priority: options.priority,
        delay_ms: options.delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        max_attempts: options.max_attempts,
        correlation_id: options.correlation_id,
    };
    Ok(wit::enqueue(name, &payload, &options)?)
}
