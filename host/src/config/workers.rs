//! How a process's task workers behave.

use std::time::Duration;

/// How a pool of workers behaves.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Tasks run at once by this process.
    pub concurrency: usize,
    /// How often an idle fetcher looks for due tasks when no wake-up came (delayed tasks scheduled
    /// by another process, leases that ran out, wake-ups lost with a connection).
    pub poll_interval: Duration,
    /// How long past a task's timeout its lease lasts before another worker may take it over.
    pub lease_margin: Duration,
    /// How long finished tasks (completed, dead, cancelled) and their attempts are kept.
    pub retention: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 50,
            poll_interval: Duration::from_millis(500),
            lease_margin: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}
