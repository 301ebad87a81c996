//! Schedules: repeatable tasks declared in task plugins' manifests or made through the API. Every
//! host runs a ticker that keeps the stored schedules in step with the loaded manifests and fires
//! the due ones. Each tick runs exactly once across hosts: firing locks the schedule's row, stores
//! the tick's task and moves the schedule to its next tick in one transaction (see
//! [`Database::fire_due_schedules`]), so a second host finds it no longer due, and a host that
//! dies mid-way leaves the tick to the next. Ticks are computed from the stored `next_run_at`, not
//! from a host's clock reading alone, so clocks a few seconds apart fire each tick once, early or
//! late by their difference.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Wakeup;
use super::scheduler::{NewTask, ScheduleError, Scheduler, new_row};
use crate::contract::CallContext;
use crate::db::{Database, DbError, Firing, ScheduleRow, TaskRow};
use crate::plugins::{LivePlugins, Registry};
use crate::spec::{Missed, Timing, is_schedule_name};
use crate::telemetry::metrics::Metrics;

/// The longest a ticker sleeps before looking again (a schedule made by another host, a clock
/// change).
const POLL: Duration = Duration::from_secs(1);
/// Schedules fired per transaction.
const FIRE_BATCH: u32 = 100;
/// Most ticks of one schedule run in one firing (catching up on ticks missed within the grace).
const MAX_TICKS: usize = 100;

/// Nudges this process's ticker when a schedule changed here; cheap to clone.
#[derive(Clone, Default)]
pub struct ScheduleChanges(Arc<Notify>);

impl ScheduleChanges {
    /// Has the ticker look at the schedules again now.
    pub fn changed(&self) {
        self.0.notify_one();
    }
}

/// A schedule to make through the API.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub name: String,
    pub task: String,
    pub timing: Timing,
    /// A JSON value, as text.
    pub payload: String,
    pub missed: Missed,
}

impl Scheduler {
    /// Stores `schedule`, made by `call`'s user (its tasks run as them), after the task's plugin
    /// accepted the payload; returns it.
    pub async fn create_schedule(
        &self,
        schedule: NewSchedule,
        call: CallContext,
    ) -> Result<ScheduleRow, ScheduleError> {
        if !is_schedule_name(&schedule.name) {
            return Err(ScheduleError::Invalid {
                field: "name",
                message: "must be 1-64 characters of a-z, 0-9 and '-', starting with a letter".into(),
            });
        }
        let task = NewTask { name: schedule.task.clone(), payload: schedule.payload.clone(), ..NewTask::default() };
        match self.validate(std::slice::from_ref(&task), &call).await {
            Err(ScheduleError::InBatch { error, .. }) => {
                return Err(match *error {
                    ScheduleError::UnknownTask(name) => {
                        ScheduleError::Invalid { field: "task", message: format!("no plugin handles task `{name}`") }
                    }
                    other => other,
                });
            }
            Err(other) => return Err(other),
            Ok(_) => {}
        }
        let now = Utc::now();
        let Some(next_run_at) = schedule.timing.next_after(now) else {
            return Err(ScheduleError::Invalid { field: "cron", message: "never matches a future time".into() });
        };
        let row = ScheduleRow {
            name: schedule.name,
            plugin: None,
            task: schedule.task,
            cron: schedule.timing.cron().map(str::to_owned),
            timezone: schedule.timing.zone().map(str::to_owned),
            every_ms: schedule.timing.every_ms().and_then(|ms| i64::try_from(ms).ok()),
            payload: schedule.payload,
            missed: schedule.missed.as_str().to_owned(),
            paused: false,
            next_run_at,
            last_run_at: None,
            last_task_id: None,
            created_by: call.user_id().map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        if !self.db.insert_schedule(&row).await? {
            return Err(ScheduleError::ScheduleTaken(row.name));
        }
        tracing::info!(schedule = row.name, task = row.task, next_run_at = %row.next_run_at, "schedule created");
        self.changes.changed();
        Ok(row)
    }

    /// Pauses schedule `name` (no tick runs until it is resumed) or resumes it from its next tick
    /// after now: ticks that passed while it was paused do not run.
    pub async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<ScheduleRow, ScheduleError> {
        let found = self.db.schedule(name).await?.ok_or_else(|| ScheduleError::NoSchedule(name.to_owned()))?;
        let next_run_at = match paused {
            true => found.next_run_at,
            false => timing_of(&found).and_then(|timing| timing.next_after(Utc::now())).unwrap_or(found.next_run_at),
        };
        let row = self.db.set_schedule_paused(name, paused, next_run_at).await?;
        let row = row.ok_or_else(|| ScheduleError::NoSchedule(name.to_owned()))?;
        tracing::info!(schedule = name, paused, "schedule {}", if paused { "paused" } else { "resumed" });
        self.changes.changed();
        Ok(row)
    }

    /// Removes schedule `name`; one a loaded plugin's manifest declares stays (it is the
    /// manifest's to remove).
    pub async fn delete_schedule(&self, name: &str) -> Result<(), ScheduleError> {
        let found = self.db.schedule(name).await?.ok_or_else(|| ScheduleError::NoSchedule(name.to_owned()))?;
        if let Some(plugin) = &found.plugin {
            let registry = self.plugins.registry();
            if registry.plugins().iter().any(|loaded| loaded.manifest.name.as_str() == plugin) {
                return Err(ScheduleError::Declared { name: found.name, plugin: plugin.clone() });
            }
        }
        if !self.db.delete_schedule(name).await? {
            return Err(ScheduleError::NoSchedule(name.to_owned()));
        }
        tracing::info!(schedule = name, "schedule deleted");
        Ok(())
    }
}

/// Starts this process's ticker.
pub(super) fn spawn_ticker(
    db: Database,
    plugins: Arc<LivePlugins>,
    wakeup: Wakeup,
    changes: ScheduleChanges,
) -> JoinHandle<()> {
    tokio::spawn(tick(db, plugins, wakeup, changes))
}

async fn tick(db: Database, plugins: Arc<LivePlugins>, wakeup: Wakeup, changes: ScheduleChanges) {
    let mut synced: Option<Arc<Registry>> = None;
    loop {
        let registry = plugins.registry();
        if !synced.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &registry)) {
            match sync_declared(&db, &registry, synced.as_deref()).await {
                Ok(()) => synced = Some(registry.clone()),
                Err(error) => tracing::warn!(%error, "cannot store the manifests' schedules; trying again"),
            }
        }
        // Only a schedule found due is fired, so an idle ticker costs one read per poll.
        let now = Utc::now();
        let wait = match db.next_schedule_due().await {
            Ok(Some(due)) if due <= now => match fire(&db, &registry, &wakeup, plugins.metrics()).await {
                Ok(true) => continue,
                // Another host may be firing it: look again shortly.
                Ok(false) => Duration::from_millis(10),
                Err(error) => {
                    tracing::warn!(%error, "cannot fire the due schedules; trying again");
                    POLL
                }
            },
            Ok(Some(due)) => (due - now).to_std().unwrap_or_default().min(POLL),
            Ok(None) => POLL,
            Err(error) => {
                tracing::debug!(%error, "cannot read when the next schedule is due; trying again");
                POLL
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changes.0.notified() => {}
        }
    }
}

/// Fires the schedules due now; whether a full batch was fired (more may be due).
async fn fire(db: &Database, registry: &Registry, wakeup: &Wakeup, metrics: &Metrics) -> Result<bool, DbError> {
    let now = Utc::now();
    let fired = db.fire_due_schedules(now, FIRE_BATCH, |schedule| plan(schedule, now, registry)).await?;
    if fired.iter().any(|(_, tasks)| !tasks.is_empty()) {
        wakeup.notify();
    }
    for (schedule, tasks) in &fired {
        for task in tasks {
            tracing::info!(schedule = %schedule.name, task = %task.name, task_id = %task.id, "schedule ticked");
        }
        super::scheduler::count_scheduled(metrics, tasks.iter().map(|task| task.name.as_str()));
    }
    Ok(fired.len() == FIRE_BATCH as usize)
}

/// Stores the schedules every loaded manifest declares, and drops those its plugin no longer
/// declares or those of plugins unloaded since `previous`. (A schedule whose plugin is gone while
/// every host was down stays, its ticks skipped, until an operator deletes it.)
async fn sync_declared(db: &Database, registry: &Registry, previous: Option<&Registry>) -> Result<(), DbError> {
    let now = Utc::now();
    let unloaded = previous
        .into_iter()
        .flat_map(|previous| previous.plugins())
        .filter(|plugin| !registry.plugins().iter().any(|loaded| loaded.manifest.name == plugin.manifest.name));
    for plugin in unloaded {
        db.sync_declared_schedules(plugin.manifest.name.as_str(), &[]).await?;
    }
    for plugin in registry.plugins() {
        let name = plugin.manifest.name.as_str();
        let rows: Vec<ScheduleRow> = plugin
            .manifest
            .schedules
            .iter()
            .filter_map(|spec| {
                let Some(next_run_at) = spec.timing.next_after(now) else {
                    tracing::warn!(plugin = name, schedule = spec.name, "the schedule never ticks again; not stored");
                    return None;
                };
                Some(ScheduleRow {
                    name: spec.name.clone(),
                    plugin: Some(name.to_owned()),
                    task: spec.task.clone(),
                    cron: spec.timing.cron().map(str::to_owned),
                    timezone: spec.timing.zone().map(str::to_owned),
                    every_ms: spec.timing.every_ms().and_then(|ms| i64::try_from(ms).ok()),
                    payload: spec.payload.clone(),
                    missed: spec.missed.as_str().to_owned(),
                    paused: false,
                    next_run_at,
                    last_run_at: None,
                    last_task_id: None,
                    created_by: None,
                    created_at: now,
                    updated_at: now,
                })
            })
            .collect();
        for clash in db.sync_declared_schedules(name, &rows).await? {
            tracing::warn!(
                plugin = name,
                schedule = clash,
                "a schedule of this name exists already (made through the API or by another plugin); \
                 the manifest's is not used: rename one"
            );
        }
    }
    Ok(())
}

/// What firing `schedule` at `now` does: one task per tick due within [`Missed::GRACE`], and for
/// older ticks (every host was down) one task or none as its `missed` policy says; then the next
/// tick after `now`.
fn plan(schedule: &ScheduleRow, now: DateTime<Utc>, registry: &Registry) -> Firing {
    let timing = timing_of(schedule);
    let Some(timing) = timing else {
        tracing::error!(schedule = schedule.name, "the stored schedule's timing is invalid; it is put off a day");
        return Firing { tasks: Vec::new(), next_run_at: now + chrono::Duration::days(1) };
    };
    let grace = chrono::Duration::from_std(Missed::GRACE).unwrap_or_default();
    let (mut on_time, mut missed) = (Vec::new(), None);
    let mut tick = Some(schedule.next_run_at);
    while let Some(due) = tick.filter(|due| *due <= now) {
        if now - due > grace {
            missed = Some(due);
        } else if on_time.len() < MAX_TICKS {
            on_time.push(due);
        }
        tick = timing.next_after(due);
    }
    let next_run_at = tick.or_else(|| timing.next_after(now)).unwrap_or(now + chrono::Duration::days(366));
    let missed = missed.filter(|_| Missed::parse(&schedule.missed) != Some(Missed::Skip));
    if let Some(due) = missed {
        tracing::info!(schedule = schedule.name, last_missed = %due, "ticks were missed while no host ran; running once");
    }
    let Some((_, spec)) = registry.task_handler(&schedule.task) else {
        tracing::warn!(
            schedule = schedule.name,
            task = schedule.task,
            "no plugin handles the schedule's task; tick skipped"
        );
        return Firing { tasks: Vec::new(), next_run_at };
    };
    let tasks: Vec<TaskRow> = missed
        .into_iter()
        .chain(on_time)
        .map(|due| {
            let task = NewTask { name: schedule.task.clone(), payload: schedule.payload.clone(), ..NewTask::default() };
            let mut row = new_row(task, spec, due, None, schedule.created_by.clone());
            row.schedule_name = Some(schedule.name.clone());
            row
        })
        .collect();
    Firing { tasks, next_run_at }
}

/// The timing a stored schedule ticks at.
fn timing_of(schedule: &ScheduleRow) -> Option<Timing> {
    let every = schedule.every_ms.and_then(|ms| u64::try_from(ms).ok());
    Timing::parse(schedule.cron.as_deref(), schedule.timezone.as_deref(), every).ok()
}
