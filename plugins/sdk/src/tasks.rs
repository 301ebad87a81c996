//! Task plugins: each task name the manifest declares under `[[tasks]]` maps to a validator, run
//! when the task is scheduled (a rejected payload is a `400` to whoever scheduled it), and a
//! runner, run by a worker later, at least once: use [`Task::id`] to make side effects idempotent.
//!
//! ```ignore
//! fn validate(payload: &Email) -> Result<()> { … }
//! fn run(task: &Task, payload: Email) -> Result<serde_json::Value, TaskError> { … }
//!
//! autoflow_sdk::task!(Tasks::new().task("send-email", validate, run));
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::autoflow::platform::types as wit_types;
use crate::bindings::exports::autoflow::platform::description as wit_description;
use crate::bindings::exports::autoflow::platform::task_handler as wit;
use crate::records::Collection;
use crate::{Error, Result};

/// Reports how far the running task got: `percent` done (0-100) and/or a small JSON `detail`
/// (at most 4 KiB), shown on the task's record (`progress`) while it runs. Reports are sampled: one
/// within 100 ms of the last one written is dropped. Fails outside a run (in a validator), and
/// with `conflict` once the attempt lost the task (cancelled): stop working then.
///
/// ```ignore
/// for (done, row) in rows.iter().enumerate() {
///     import(row)?;
///     tasks::progress(Some((done * 100 / rows.len()) as u8), Some(&json!({ "rows": done })))?;
/// }
/// ```
pub fn progress<D: Serialize>(percent: Option<u8>, detail: Option<&D>) -> Result<()> {
    let detail = detail
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::internal(format!("cannot encode the progress detail: {e}")))?;
    Ok(crate::bindings::autoflow::platform::progress::report(percent, detail.as_deref())?)
}

/// One run of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The same on every attempt: the key for idempotent side effects.
    pub id: String,
    pub name: String,
    /// 1 on the first run.
    pub attempt: u32,
    pub correlation_id: Option<String>,
    /// The user who scheduled it (also the user records and cache calls act for).
    pub scheduled_by: Option<String>,
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// Transient: run again after the backoff, while attempts remain.
    Retry(String),
    /// Permanent: do not run again.
    Fail(String),
}

impl TaskError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Retry(message.into())
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Self::Fail(message.into())
    }
}

/// A platform error during a run: worth retrying when the host was unavailable, else final.
impl From<Error> for TaskError {
    fn from(error: Error) -> Self {
        match error {
            Error::Unavailable(message) | Error::Internal(message) => TaskError::Retry(message),
            other => TaskError::Fail(other.to_string()),
        }
    }
}

type Validator = Box<dyn Fn(&str) -> Result<()>>;
type Runner = Box<dyn Fn(&Task, &str) -> core::result::Result<String, TaskError>>;

/// The plugin's task table: name → validator and runner, each taking the payload decoded as `P`,
/// and the records collections they use. The host compares it with the manifest's `[[tasks]]` and
/// `[capabilities.records]` when the plugin loads.
#[derive(Default)]
pub struct Tasks {
    tasks: Vec<(String, Validator, Runner)>,
    collections: Vec<&'static str>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers task `name`: `validate` checks a payload when the task is scheduled, `run` does
    /// the work and returns its output (kept on the task's record).
    pub fn task<P, O>(
        mut self,
        name: &str,
        validate: fn(&P) -> Result<()>,
        run: fn(&Task, P) -> core::result::Result<O, TaskError>,
    ) -> Self
    where
        P: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        let validator = Box::new(move |payload: &str| validate(&decode::<P>(payload)?));
        let runner = Box::new(move |task: &Task, payload: &str| {
            let payload = decode::<P>(payload).map_err(|e| TaskError::fail(e.to_string()))?;
            let output = run(task, payload)?;
            serde_json::to_string(&output).map_err(|e| TaskError::fail(format!("cannot encode the output: {e}")))
        });
        self.tasks.push((name.to_owned(), validator, runner));
        self
    }

    /// Declares that the tasks use `collection` (it must be granted under `[capabilities.records]`).
    pub fn collection<T>(mut self, collection: &Collection<T>) -> Self {
        self.collections.push(collection.name());
        self
    }

    /// The task names and collections, for the host's comparison with the manifest.
    #[doc(hidden)]
    pub fn describe(&self) -> wit_description::Contents {
        wit_description::Contents {
            routes: Vec::new(),
            tasks: self.tasks.iter().map(|(name, _, _)| name.clone()).collect(),
            collections: self.collections.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    #[doc(hidden)]
    pub fn validate(&self, name: &str, payload: &str) -> core::result::Result<(), wit_types::Error> {
        let (_, validate, _) = self.find(name).map_err(wit_types::Error::from)?;
        validate(payload).map_err(Into::into)
    }

    #[doc(hidden)]
    pub fn run(&self, task: wit::Task) -> core::result::Result<String, wit::TaskError> {
        let (_, _, run) = self.find(&task.name).map_err(|e| wit::TaskError::Fail(e.to_string()))?;
        let context = Task {
            id: task.id,
            name: task.name,
            attempt: task.attempt,
            correlation_id: task.correlation_id,
            scheduled_by: task.scheduled_by,
        };
        run(&context, &task.payload).map_err(|error| match error {
            TaskError::Retry(message) => wit::TaskError::Retry(message),
            TaskError::Fail(message) => wit::TaskError::Fail(message),
        })
    }

    fn find(&self, name: &str) -> Result<&(String, Validator, Runner)> {
        self.tasks
            .iter()
            .find(|(task, _, _)| task == name)
            .ok_or_else(|| Error::not_found(format!("this plugin handles no task `{name}`")))
    }
}

fn decode<P: DeserializeOwned>(payload: &str) -> Result<P> {
    serde_json::from_str(payload).map_err(|e| Error::invalid_field("payload", e.to_string()))
}
