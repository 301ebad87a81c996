//! What a task plugin declares about each task it handles: priority, attempts, backoff, timeout.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How urgent a task is; workers take higher priorities first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::Critical, Priority::High, Priority::Normal, Priority::Low];

    /// The rank stored in the database: lower runs first.
    pub fn rank(self) -> i16 {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
        }
    }

    /// The priority of a stored rank (out-of-range ranks are `low`).
    pub fn from_rank(rank: i16) -> Self {
        match rank {
            0 => Priority::Critical,
            1 => Priority::High,
            2 => Priority::Normal,
            _ => Priority::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// Parses `critical`, `high`, `normal` or `low`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exponential backoff with jitter: attempt `n` waits a random time between half and all of
/// `base × 2^(n-1)`, never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), cap: Duration::from_secs(5 * 60) }
    }
}

impl Backoff {
    /// The wait after failed attempt `attempt` (1-based), with `jitter` in `[0, 1)` choosing where
    /// in the upper half of the window it falls.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let window = self.base.saturating_mul(1 << exponent).min(self.cap);
        window.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// One task a task plugin handles, with the defaults its manifest gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub name: String,
    pub priority: Priority,
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Longest one attempt may run; `None` takes the host's task timeout.
    pub timeout: Option<Duration>,
    /// At most one task of this name with the same payload waits or runs at a time: scheduling
    /// another returns the one there is.
    pub unique: bool,
    /// At most this many of the task run at once, across every host.
    pub concurrency: Option<u32>,
    /// At most `starts` of the task start per `per`, across every host.
    pub rate: Option<RateLimit>,
}

/// A limit on how often a task starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub starts: u32,
    pub per: Duration,
}

impl TaskSpec {
    /// Whether its starts are limited (so claims of it go through its limits).
    pub fn is_limited(&self) -> bool {
        self.concurrency.is_some() || self.rate.is_some()
    }
}

/// Attempts a task gets unless its manifest says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most attempts a task may be given.
pub const MAX_ATTEMPTS: u32 = 100;

/// Whether `name` is a valid task name: 1-64 characters of `a-z`, `0-9` and `-`, starting with a letter.
pub fn is_task_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(1) };
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff.delay(10, 1.0), Duration::from_secs(1), "capped");
        assert_eq!(backoff.delay(u32::MAX, 0.0), Duration::from_millis(500), "no overflow");
    }

    #[test]
    fn priorities_round_trip_through_their_rank_and_name() {
        for priority in [Priority::Critical, Priority::High, Priority::Normal, Priority::Low] {
            assert_eq!(Priority::from_rank(priority.rank()), priority);
            assert_eq!(Priority::parse(priority.as_str()), Some(priority));
        }
        assert!(Priority::Critical < Priority::Low);
    }
}
