//! `autoflow:platform/progress`: a running task reports how far it got, and the report goes on
//! its record (`progress`), where the API shows it while the task runs. Every task plugin may
//! report, only from a task's run, and only while its worker still holds the attempt. Reports
//! are sampled (one write per [`MIN_INTERVAL`] per run) so a plugin reporting in a tight loop
//! does not turn into a write per iteration.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::Linker;

use super::{Bound, HasBound, Instance, LoadContext, Unit};
use crate::contract::{PluginError, task_progress as wit};
use crate::db::Database;
use crate::spec::grants::{self, Capability};

/// Reports within this long of the last one written are dropped.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Largest detail, in bytes of JSON.
const MAX_DETAIL: usize = 4 * 1024;

/// The progress reports of one task plugin; each run samples its own.
#[derive(Clone)]
pub struct TaskProgress {
    db: Database,
    /// When this run last wrote a report.
    written: Arc<Mutex<Option<Instant>>>,
}

impl TaskProgress {
    /// The grant for one call: its own sampling.
    pub fn for_call(&self) -> Self {
        Self { db: self.db.clone(), written: Arc::default() }
    }

    /// Whether a report now is written (and if so, notes it).
    fn sample(&self) -> bool {
        let mut written = self.written.lock().expect("the progress lock is never poisoned");
        if written.is_some_and(|at| at.elapsed() < MIN_INTERVAL) {
            return false;
        }
        *written = Some(Instant::now());
        true
    }
}

impl Unit for TaskProgress {
    const CAPABILITY: &'static Capability = &grants::PROGRESS;

    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        Self::CAPABILITY
            .is_granted(load.manifest)
            .then(|| Self { db: load.services.db.clone(), written: Arc::default() })
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasBound<Self>>(linker, |state| state.grants.bound(|grants| grants.progress.as_ref()))
    }
}

impl wit::Host for Bound<'_, TaskProgress> {
    async fn report(&mut self, percent: Option<u8>, detail: Option<String>) -> Result<(), PluginError> {
        let progress = self.granted()?;
        let Some(attempt) = &self.call.attempt else {
            return Err(PluginError::invalid("progress is reported while a task runs, not while validating it"));
        };
        let report = report_json(percent, detail.as_deref())?;
        if !progress.sample() {
            return Ok(());
        }
        match progress.db.report_progress(&attempt.task_id, &attempt.worker, attempt.number, &report).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(PluginError::Conflict("this attempt no longer holds the task (cancelled or taken over)".into()))
            }
            Err(error) => {
                tracing::warn!(%error, "cannot record the task's progress");
                Err(PluginError::Unavailable("the task's record is unavailable".into()))
            }
        }
    }
}

/// The stored report: `{"percent"?, "detail"?}`.
fn report_json(percent: Option<u8>, detail: Option<&str>) -> Result<String, PluginError> {
    if percent.is_some_and(|percent| percent > 100) {
        return Err(PluginError::invalid_field("percent", "must be 0-100".into()));
    }
    let mut report = serde_json::Map::new();
    if let Some(percent) = percent {
        report.insert("percent".into(), Value::from(percent));
    }
    if let Some(detail) = detail {
        if detail.len() > MAX_DETAIL {
            return Err(PluginError::invalid_field("detail", format!("must be at most {MAX_DETAIL} bytes of JSON")));
        }
        let value: Value =
            serde_json::from_str(detail).map_err(|_| PluginError::invalid_field("detail", "must be JSON".into()))?;
        report.insert("detail".into(), value);
    }
    Ok(Value::Object(report).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_checked_and_stored_as_one_object() {
        assert_eq!(
            report_json(Some(40), Some(r#"{"step":"copy"}"#)).unwrap(),
            r#"{"detail":{"step":"copy"},"percent":40}"#
        );
        assert_eq!(report_json(None, None).unwrap(), "{}");
        assert!(report_json(Some(101), None).is_err());
        assert!(report_json(None, Some("not json")).is_err());
        assert!(report_json(None, Some(&format!("\"{}\"", "x".repeat(MAX_DETAIL)))).is_err());
    }
}
