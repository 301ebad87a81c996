//! Recording how attempts ended, in batches: workers hand their outcomes to the completer, which
//! writes whatever has gathered (up to [`MAX_BATCH`]) in one transaction, then the next batch.
//! An idle queue writes each outcome at once; a busy one writes bigger batches, so the cost per
//! task falls as the load rises. The hand-off is bounded: when writing falls behind, workers wait
//! to hand over (keeping their slots), so the fetcher stops claiming — back-pressure, not a
//! growing backlog. A batch is guarded per task like a single finish: an outcome whose worker lost
//! the lease is not recorded (its attempt row says `lease-lost`), so no task is completed twice.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Wakeup;
use crate::db::{Database, Finish, Outcome};

/// Most outcomes written per transaction.
pub const MAX_BATCH: usize = 512;
/// Outcomes waiting to be written before workers wait to hand theirs over.
const QUEUE: usize = 2 * MAX_BATCH;
/// Writes tried per batch before its outcomes are given up (their tasks run again once their
/// leases end: delivery stays at least once).
const WRITE_TRIES: u32 = 6;
/// The wait before the second try, doubled for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// An outcome with the span of the task it ends, so its log line carries the task's fields.
struct Ended {
    outcome: Outcome,
    span: tracing::Span,
}

/// Where workers hand their outcomes; cheap to clone.
#[derive(Clone)]
pub struct Completer {
    sender: mpsc::Sender<Ended>,
}

impl Completer {
    /// Starts writing outcomes to `db`, waking `wakeup` for the retries they schedule. The writer
    /// stops once every [`Completer`] is dropped and the last outcomes are written.
    pub fn spawn(db: Database, wakeup: Wakeup) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (Self { sender }, tokio::spawn(write(db, wakeup, receiver)))
    }

    /// Hands over `outcome`, waiting while the writer is [`QUEUE`] outcomes behind.
    pub async fn record(&self, outcome: Outcome, span: tracing::Span) {
        if let Err(mpsc::error::SendError(ended)) = self.sender.send(Ended { outcome, span }).await {
            let _entered = ended.span.enter();
            tracing::error!("the outcome writer has stopped; the task runs again when its lease ends");
        }
    }
}

/// Writes batches until every sender is gone.
async fn write(db: Database, wakeup: Wakeup, mut receiver: mpsc::Receiver<Ended>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (outcomes, spans): (Vec<_>, Vec<_>) = batch.drain(..).map(|ended| (ended.outcome, ended.span)).unzip();
        match write_batch(&db, &outcomes).await {
            Some(recorded) => {
                // Finished tasks free places of limited names: the fetcher looks again.
                wakeup.notify_local();
                for ((outcome, span), recorded) in outcomes.iter().zip(&spans).zip(recorded) {
                    report(outcome, recorded, span, &wakeup);
                }
            }
            None => {
                for span in &spans {
                    let _entered = span.enter();
                    tracing::error!("cannot record the task's outcome; it runs again when its lease ends");
                }
            }
        }
    }
}

/// Writes one batch, trying again with backoff while the database fails; which were recorded, or
/// `None` if it kept failing.
async fn write_batch(db: &Database, outcomes: &[Outcome]) -> Option<Vec<bool>> {
    let mut backoff = FIRST_BACKOFF;
    for tries in 1..=WRITE_TRIES {
        match db.finish_tasks(outcomes).await {
            Ok(recorded) => return Some(recorded),
            Err(error) if tries < WRITE_TRIES => {
                tracing::warn!(%error, outcomes = outcomes.len(), "cannot record task outcomes yet; trying again");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(error) => tracing::error!(%error, outcomes = outcomes.len(), "cannot record task outcomes"),
        }
    }
    None
}

/// Logs how a task's attempt ended, and wakes the fetcher when a retry is due.
fn report(outcome: &Outcome, recorded: bool, span: &tracing::Span, wakeup: &Wakeup) {
    let _entered = span.enter();
    if !recorded {
        tracing::warn!("the task's lease was taken over by another worker; this attempt's outcome is dropped");
        return;
    }
    match &outcome.finish {
        Finish::Completed { .. } => tracing::debug!("task completed"),
        Finish::Retrying { error, run_at } => {
            tracing::warn!(%error, %run_at, "task failed; it will run again");
            wakeup.notify_at(*run_at);
        }
        Finish::Dead { error } => tracing::error!(%error, "task failed for good"),
    }
}
