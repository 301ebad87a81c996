//! Repeatable tasks: when a schedule ticks (a cron expression in a time zone, or a fixed
//! interval), and what becomes of ticks that passed while no host was running.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::is_task_name;

/// The shortest interval a schedule may tick at.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest interval a schedule may tick at.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// When a schedule ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// At the times a cron expression (5 fields, or 6 with seconds first) matches in `zone`.
    Cron { expression: String, zone: chrono_tz::Tz },
    /// Every `interval`, counted from the Unix epoch, so every host computes the same ticks.
    Every(Duration),
}

/// The part of a timing that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingField {
    Cron,
    TimeZone,
    Every,
}

/// Why a timing was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingError {
    pub field: TimingField,
    pub message: String,
}

impl fmt::Display for TimingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn refused(field: TimingField, message: impl Into<String>) -> TimingError {
    TimingError { field, message: message.into() }
}

impl Timing {
    /// The timing given either as a cron expression (with an IANA time zone, UTC if none) or as
    /// an interval in milliseconds — exactly one of the two.
    pub fn parse(cron: Option<&str>, zone: Option<&str>, every_ms: Option<u64>) -> Result<Self, TimingError> {
        match (cron, every_ms) {
            (Some(expression), None) => {
                let zone = match zone {
                    None => chrono_tz::UTC,
                    Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                        refused(TimingField::TimeZone, format!("`{name}` is not an IANA time zone (e.g. Europe/Paris)"))
                    })?,
                };
                croner::Cron::from_str(expression).map_err(|error| {
                    refused(TimingField::Cron, format!("`{expression}` is not a cron expression: {error}"))
                })?;
                let timing = Timing::Cron { expression: expression.to_owned(), zone };
                if timing.next_after(Utc::now()).is_none() {
                    return Err(refused(TimingField::Cron, format!("`{expression}` never matches a future time")));
                }
                Ok(timing)
            }
            (None, Some(ms)) => {
                if zone.is_some() {
                    return Err(refused(TimingField::TimeZone, "applies to a cron expression, not an interval"));
                }
                let interval = Duration::from_millis(ms);
                if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
                    return Err(refused(TimingField::Every, "must be 1000 ms to a year"));
                }
                Ok(Timing::Every(interval))
            }
            (Some(_), Some(_)) => {
                Err(refused(TimingField::Every, "give either a cron expression or an interval, not both"))
            }
            (None, None) => Err(refused(TimingField::Cron, "give a cron expression or an interval")),
        }
    }

    /// The first tick strictly after `after`; `None` if there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron { expression, zone } => {
                let cron = croner::Cron::from_str(expression).ok()?;
                let local = zone.from_utc_datetime(&after.naive_utc());
                cron.find_next_occurrence(&local, false).ok().map(|next| next.with_timezone(&Utc))
            }
            Timing::Every(interval) => {
                let step = i64::try_from(interval.as_millis()).ok()?.max(1);
                let ticks = after.timestamp_millis().div_euclid(step) + 1;
                DateTime::from_timestamp_millis(ticks.checked_mul(step)?)
            }
        }
    }

    /// The cron expression, if this is one.
    pub fn cron(&self) -> Option<&str> {
        match self {
            Timing::Cron { expression, .. } => Some(expression),
            Timing::Every(_) => None,
        }
    }

    /// The time zone's name, for a cron expression.
    pub fn zone(&self) -> Option<&'static str> {
        match self {
            Timing::Cron { zone, .. } => Some(zone.name()),
            Timing::Every(_) => None,
        }
    }

    /// The interval in milliseconds, if this is one.
    pub fn every_ms(&self) -> Option<u64> {
        match self {
            Timing::Every(interval) => u64::try_from(interval.as_millis()).ok(),
            Timing::Cron { .. } => None,
        }
    }
}

/// What happens to ticks that passed more than [`Missed::GRACE`] ago without running (every
/// host was down): they run once, together, or not at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    #[default]
    RunOnce,
    Skip,
}

impl Missed {
    /// A tick this late still runs on its own; an older one is missed.
    pub const GRACE: Duration = Duration::from_secs(30);

    pub fn as_str(self) -> &'static str {
        match self {
            Missed::RunOnce => "run-once",
            Missed::Skip => "skip",
        }
    }

    /// `run-once` or `skip`.
    pub fn parse(text: &str) -> Option<Self> {
        [Missed::RunOnce, Missed::Skip].into_iter().find(|missed| missed.as_str() == text)
    }
}

/// A schedule a task plugin declares in its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// Unique among every schedule of the host.
    pub name: String,
    /// The task each tick schedules.
    pub task: String,
    pub timing: Timing,
    /// A JSON value, as text.
    pub payload: String,
    pub missed: Missed,
}

/// Whether `name` is a valid schedule name (the rules of a task name).
pub fn is_schedule_name(name: &str) -> bool {
    is_task_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_ticks_in_its_time_zone() {
        let timing = Timing::parse(Some("0 9 * * *"), Some("Europe/Paris"), None).unwrap();
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(timing.next_after(at("2026-12-03T10:00:00Z")), Some(at("2026-12-04T08:00:00Z")));
        assert_eq!(timing.next_after(at("2026-07-01T00:00:00Z")), Some(at("2026-07-01T07:00:00Z")));
        let seconds = Timing::parse(Some("*/5 * * * * *"), None, None).unwrap();
        assert_eq!(seconds.next_after(at("2026-12-03T10:00:00Z")), Some(at("2026-12-03T10:00:05Z")));
    }

    #[test]
    fn intervals_tick_on_the_same_instants_for_every_host() {
        let timing = Timing::parse(None, None, Some(60_000)).unwrap();
        assert_eq!(timing.next_after(at("2026-12-03T10:00:00Z")), Some(at("2026-12-03T10:01:00Z")));
        assert_eq!(timing.next_after(at("2026-12-03T10:00:59.999Z")), Some(at("2026-12-03T10:01:00Z")));
    }

    #[test]
    fn bad_timings_name_the_field_at_fault() {
        let field = |cron, zone, every| Timing::parse(cron, zone, every).unwrap_err().field;
        assert_eq!(field(Some("every day"), None, None), TimingField::Cron);
        assert_eq!(field(Some("61 * * * *"), None, None), TimingField::Cron);
        assert_eq!(field(Some("* * * * *"), Some("Mars/Olympus"), None), TimingField::TimeZone);
        assert_eq!(field(None, None, Some(0)), TimingField::Every);
        assert_eq!(field(None, None, Some(999)), TimingField::Every);
        assert_eq!(field(Some("* * * * *"), None, Some(1000)), TimingField::Every);
        assert_eq!(field(None, None, None), TimingField::Cron);
    }
}
