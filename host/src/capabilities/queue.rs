//! `autoflow:platform/queue`: scheduling tasks from plugins, limited to the task names the
//! manifest lists under `[capabilities] queue`. The task is scheduled by the user bound to the
//! instance, and correlated with the request that made it unless the plugin says otherwise.
//!
//! The task engine is built above the capabilities, so it reaches this unit as a late-bound
//! [`TaskScheduler`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::Linker;

use super::link::Link;
use super::{Bound, HasBound, Instance, LoadContext, Unit};
use crate::contract::{CallContext, PluginError, wit::queue as wit};
use crate::spec::grants::{self, Capability};

/// A task a plugin asks to schedule.
pub use wit::TaskRequest;

/// A boxed future of the scheduler's answer.
pub type Scheduled<'a, T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send + 'a>>;

/// Schedules the tasks plugins ask for; the task engine implements it.
pub trait TaskScheduler: Send + Sync {
    /// Schedules `task` for the user `call` acts for; the task's id, or why it was refused.
    fn schedule_for_plugin(&self, task: TaskRequest, call: CallContext) -> Scheduled<'_, String>;

    /// Schedules `tasks` all together or not at all; their ids in order, or why the batch was
    /// refused (naming the task at fault).
    fn schedule_many_for_plugin(&self, tasks: Vec<TaskRequest>, call: CallContext) -> Scheduled<'_, Vec<String>>;
}

/// The queue as one plugin may use it.
#[derive(Clone)]
pub struct PluginQueue {
    allowed: Arc<[String]>,
    scheduler: Link<dyn TaskScheduler>,
}

impl Unit for PluginQueue {
    const CAPABILITY: &'static Capability = &grants::QUEUE;

    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        let allowed = &load.manifest.capabilities.queue;
        Self::CAPABILITY
            .is_granted(load.manifest)
            .then(|| Self { allowed: allowed.as_slice().into(), scheduler: load.services.scheduler.clone() })
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasBound<Self>>(linker, |state| state.grants.bound(|grants| grants.queue.as_ref()))
    }
}

impl wit::Host for Bound<'_, PluginQueue> {
    #[tracing::instrument(name = "queue.enqueue", skip_all, fields(task = %name))]
    async fn enqueue(
        &mut self,
        name: String,
        payload: String,
        options: wit::EnqueueOptions,
    ) -> Result<String, PluginError> {
        let scheduler = self.scheduler_for([name.as_str()])?;
        scheduler.schedule_for_plugin(TaskRequest { name, payload, options }, self.call.clone()).await
    }

    #[tracing::instrument(name = "queue.enqueue_many", skip_all)]
    async fn enqueue_many(&mut self, tasks: Vec<TaskRequest>) -> Result<Vec<String>, PluginError> {
        let scheduler = self.scheduler_for(tasks.iter().map(|task| task.name.as_str()))?;
        scheduler.schedule_many_for_plugin(tasks, self.call.clone()).await
    }
}

impl Bound<'_, PluginQueue> {
    /// The scheduler, if the manifest lists every task in `names`.
    fn scheduler_for<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Arc<dyn TaskScheduler>, PluginError> {
        let queue = self.granted()?;
        if let Some(name) = names.into_iter().find(|name| !queue.allowed.iter().any(|allowed| allowed == name)) {
            return Err(PluginError::Forbidden(format!("[capabilities] queue does not list task `{name}`")));
        }
        queue.scheduler.get().ok_or_else(|| PluginError::Unavailable("the host is stopping".into()))
    }
}
