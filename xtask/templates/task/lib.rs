//! __NAME__: one background task, `__NAME__`, scheduled with `POST /api/tasks`
//! `{"name": "__NAME__", "payload": {"message": "…"}}` (or by another plugin through its queue).

use autoflow_sdk::{Result, Task, TaskError, Tasks, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    message: String,
}

/// Checks a payload when the task is scheduled: a refused one is a `400` to whoever scheduled it.
fn validate(payload: &Payload) -> Result<()> {
    let mut problems = Validation::new();
    problems.check(!payload.message.trim().is_empty(), "message", "must not be empty");
    problems.finish("the payload is not valid")
}

/// Does the work; the output is kept on the task's record. A task runs at least once: use
/// `task.id` to make side effects idempotent, and `TaskError::retry` for a transient failure.
fn run(task: &Task, payload: Payload) -> core::result::Result<Value, TaskError> {
    Ok(json!({ "echoed": payload.message, "attempt": task.attempt }))
}

autoflow_sdk::task!(Tasks::new().task("__NAME__", validate, run));
