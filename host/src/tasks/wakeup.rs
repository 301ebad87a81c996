//! Waking the fetcher when a task may be due, and stopping a cancelled task's run: this process's
//! at once, and on PostgreSQL every other process's through `LISTEN`/`NOTIFY`. A wake-up is only a
//! hint (an idle fetcher looks for due tasks every poll interval anyway), so a lost one costs at
//! most one poll interval; a lost cancel is found by the worker's own check of its running tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::db::Database;

/// The notification channel's prefix; the schema follows, so deployments sharing a database in
/// schemas of their own do not wake each other.
const CHANNEL: &str = "autoflow_tasks:";
/// The payload prefix of a notification cancelling the running task whose id follows.
const CANCEL: &str = "cancel:";
/// How long the listener waits before reconnecting after the database failed it.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Wakes the fetcher; cheap to clone.
#[derive(Clone)]
pub struct Wakeup {
    /// The fetcher waits on it; a wake-up with nobody waiting is kept for the next wait.
    local: Arc<Notify>,
    /// Pokes the task sending `NOTIFY` (PostgreSQL only); pokes while it sends fold into one.
    remote: Option<Arc<Notify>>,
    /// The tasks running in this process, each with the signal that stops it.
    running: Running,
    /// Where cancels are sent to the other processes (PostgreSQL only).
    pool: Option<PgPool>,
}

/// Task id → the signal stopping its run.
type Running = Arc<Mutex<HashMap<String, Arc<Notify>>>>;

/// A task's run registered with [`Wakeup::running`]; unregistered when dropped.
pub struct RunningTask {
    id: String,
    stop: Arc<Notify>,
    running: Running,
}

impl RunningTask {
    /// Completes when the task is cancelled.
    pub async fn cancelled(&self) {
        self.stop.notified().await;
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.running.lock().expect("the running tasks lock is never poisoned").remove(&self.id);
    }
}

impl Wakeup {
    /// Wake-ups within this process only.
    pub fn local() -> Self {
        Self { local: Arc::default(), remote: None, running: Running::default(), pool: None }
    }

    /// Wake-ups within this process and, on PostgreSQL, across every process sharing `db`; returns
    /// the background tasks carrying them.
    pub fn spawn(db: &Database) -> (Self, Vec<JoinHandle<()>>) {
        let Database::Postgres(pool) = db else { return (Self::local(), Vec::new()) };
        let wakeup = Self {
            local: Arc::default(),
            remote: Some(Arc::default()),
            running: Running::default(),
            pool: Some(pool.clone()),
        };
        let process = uuid::Uuid::new_v4().simple().to_string();
        let remote = wakeup.remote.clone().unwrap_or_default();
        let tasks = vec![
            tokio::spawn(send(pool.clone(), remote, process.clone())),
            tokio::spawn(listen(pool.clone(), wakeup.clone(), process)),
        ];
        (wakeup, tasks)
    }

    /// Wakes this process's fetcher and the other processes'.
    pub fn notify(&self) {
        self.local.notify_one();
        if let Some(remote) = &self.remote {
            remote.notify_one();
        }
    }

    /// Wakes this process's fetcher only.
    pub fn notify_local(&self) {
        self.local.notify_one();
    }

    /// Wakes this process's fetcher at `due` (a delayed task, a retry after its backoff).
    pub fn notify_at(&self, due: DateTime<Utc>) {
        let Ok(delay) = (due - Utc::now()).to_std() else { return self.local.notify_one() };
        let local = self.local.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            local.notify_one();
        });
    }

    /// Completes at the next wake-up (at once if one came since the last wait).
    pub async fn notified(&self) {
        self.local.notified().await;
    }

    /// Registers the run of task `id` in this process, so a cancel can stop it.
    pub fn running(&self, id: &str) -> RunningTask {
        let stop = Arc::new(Notify::new());
        let mut running = self.running.lock().expect("the running tasks lock is never poisoned");
        running.insert(id.to_owned(), stop.clone());
        RunningTask { id: id.to_owned(), stop, running: self.running.clone() }
    }

    /// Stops the run of task `id` in this process (if it runs here) and, on PostgreSQL, asks the
    /// other processes to.
    pub fn cancel(&self, id: &str) {
        self.stop_local(id);
        if let Some(pool) = self.pool.clone() {
            let payload = format!("{CANCEL}{id}");
            tokio::spawn(async move {
                let Some(channel) = channel_of(&pool).await else { return };
                let notify = sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&pool).await;
                if let Err(error) = notify {
                    tracing::debug!(%error, "cannot tell other processes of a cancel; their workers check");
                }
            });
        }
    }

    /// The ids of the tasks running in this process.
    pub fn running_ids(&self) -> Vec<String> {
        self.running.lock().expect("the running tasks lock is never poisoned").keys().cloned().collect()
    }

    /// Stops the run of task `id` if it runs in this process.
    pub fn stop_local(&self, id: &str) {
        let running = self.running.lock().expect("the running tasks lock is never poisoned");
        if let Some(stop) = running.get(id) {
            stop.notify_one();
        }
    }
}

/// Sends a `NOTIFY` each time it is poked, tagged with this process so its own listener skips it.
async fn send(pool: PgPool, poked: Arc<Notify>, process: String) {
    let mut channel = None;
    loop {
        poked.notified().await;
        if channel.is_none() {
            channel = channel_of(&pool).await;
        }
        let Some(channel) = &channel else { continue };
        let notify = sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(&process).execute(&pool).await;
        if let Err(error) = notify {
            tracing::debug!(%error, "cannot wake other processes' workers; they poll");
        }
    }
}

/// Forwards other processes' `NOTIFY`s to this one's fetcher (and cancels to its runs),
/// reconnecting when the database drops the connection (and waking the fetcher then, for anything
/// missed meanwhile).
async fn listen(pool: PgPool, wakeup: Wakeup, process: String) {
    let local = wakeup.local.clone();
    loop {
        let Some(channel) = channel_of(&pool).await else {
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "cannot listen for task wake-ups; workers poll");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::debug!(%error, "cannot listen for task wake-ups; workers poll");
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.payload() == process => {}
                Ok(Some(notification)) => match notification.payload().strip_prefix(CANCEL) {
                    Some(id) => wakeup.stop_local(id),
                    None => local.notify_one(),
                },
                // The connection dropped; the next receive reconnects and listens again.
                Ok(None) => local.notify_one(),
                Err(error) => {
                    tracing::debug!(%error, "task wake-ups interrupted; workers poll");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    break;
                }
            }
        }
    }
}

/// The channel of the schema `pool` works in, if the database answers.
async fn channel_of(pool: &PgPool) -> Option<String> {
    match sqlx::query_scalar::<_, String>("SELECT current_schema()").fetch_one(pool).await {
        Ok(schema) => Some(format!("{CHANNEL}{schema}")),
        Err(error) => {
            tracing::debug!(%error, "cannot name the task wake-up channel; workers poll");
            None
        }
    }
}
