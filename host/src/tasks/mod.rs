//! Background tasks: what task plugins declare ([`TaskSpec`]), scheduling them ([`Scheduler`]) and
//! the workers that run them ([`Workers`]), which [`Dispatch`] hands due tasks to: through Redis
//! when it is configured, straight from the database otherwise. The database record is the source
//! of truth: a task is pending until a worker claims it with a lease, and a lease that runs out (a
//! worker that died) makes it claimable again.

mod dispatch;
pub mod scheduler;
mod wakeup;
pub mod worker;

pub use dispatch::{Dispatch, SweepError};
pub use scheduler::{NewTask, ScheduleError, Scheduler};
pub use wakeup::Wakeup;
pub use worker::Workers;
