//! How a process's task workers behave.

use std::time::Duration;

/// How a pool of workers behaves.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Tasks run at once by this process.
    pub concurrency: usize,
    /// How often an idle worker looks for due tasks (delayed ones, retries, other processes' work).
    pub poll_interval: Duration,
    /// How long past a task's timeout its lease lasts before another worker may take it over.
    pub lease_margin: Duration,
    /// How often the tasks Redis should hold are checked against the database (Redis dispatch);
    /// a task Redis lost runs within about twice this.
    pub sweep_interval: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 2,
            poll_interval: Duration::from_millis(500),
            lease_margin: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(5),
        }
    }
}
