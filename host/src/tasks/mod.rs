//! Background tasks: what task plugins declare ([`TaskSpec`](crate::spec::TaskSpec)), scheduling
//! them one by one or in bulk ([`Scheduler`]) and the workers that run them ([`Workers`]). The
//! database record is the source of truth: a task is pending until a process's fetcher claims it
//! with a lease (many at once, as many as it has free workers), and a lease that runs out (a
//! process that died) makes it claimable again. Outcomes are written in batches by the
//! completer; a [`Wakeup`] tells idle fetchers that work is due, so polling is only a fallback.
//! Schedules (repeatable tasks) are fired by a ticker in every host, each tick once.

mod completer;
pub mod scheduler;
mod schedules;
mod wakeup;
pub mod worker;

pub use scheduler::{NewTask, ScheduleError, Scheduler, Stored};
pub use schedules::NewSchedule;
pub use wakeup::Wakeup;
pub use worker::Workers;
