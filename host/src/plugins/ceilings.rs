//! The host's ceilings applied to what a manifest asks for: each limit defaults to the host's
//! setting and may not exceed it. This is the one place a manifest meets the host's config.

use std::fmt;
use std::time::Duration;

use crate::config::Limits;
use crate::spec::{Manifest, PluginLimits};

/// The limits `manifest`'s calls run under on a host with `host` limits, or why the manifest asks
/// for more than the host allows.
pub fn apply(manifest: &Manifest, host: &Limits) -> Result<PluginLimits, String> {
    fn pick<T: PartialOrd + Copy + fmt::Display>(asked: Option<T>, ceiling: T, what: &str) -> Result<T, String> {
        match asked {
            Some(value) if value > ceiling => {
                Err(format!("[limits] {what} = {value} is above the host's maximum of {ceiling}"))
            }
            Some(value) => Ok(value),
            None => Ok(ceiling),
        }
    }
    let asked = &manifest.limits;
    let memory_mb = pick(asked.memory_mb, host.plugin_memory_bytes / (1024 * 1024), "memory-mb")?;
    let timeout_ms = pick(asked.timeout_ms, host.request_timeout.as_millis() as u64, "timeout-ms")?;
    let max_concurrency = pick(asked.max_concurrency, host.plugin_concurrency, "max-concurrency")?;
    if max_concurrency == 0 || memory_mb == 0 || timeout_ms == 0 {
        return Err("[limits] values must be greater than zero".into());
    }
    if let Some(task) = manifest.tasks.iter().find(|task| task.timeout.is_some_and(|t| t > host.task_timeout)) {
        return Err(format!(
            "task {}: timeout-ms is above the host's maximum of {} ms",
            task.name,
            host.task_timeout.as_millis()
        ));
    }
    Ok(PluginLimits {
        memory_bytes: memory_mb * 1024 * 1024,
        timeout: Duration::from_millis(timeout_ms),
        max_concurrency,
        reuse: asked.reuse.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature asking for no limits of its own.
    const VALID: &str =
        "name = \"hello\"\nversion = \"1\"\nkind = \"feature\"\n[[routes]]\nmethod = \"GET\"\npath = \"/hello\"";

    #[test]
    fn limits_default_to_the_host_and_may_not_exceed_it() {
        let host = Limits::default();
        let defaults = apply(&Manifest::parse(VALID).unwrap(), &host).unwrap();
        assert_eq!(defaults.memory_bytes, host.plugin_memory_bytes);
        assert_eq!(defaults.timeout, host.request_timeout);

        let lower = Manifest::parse(&format!("{VALID}\n[limits]\nmemory-mb = 16\nmax-concurrency = 2")).unwrap();
        let lower = apply(&lower, &host).unwrap();
        assert_eq!((lower.memory_bytes, lower.max_concurrency), (16 * 1024 * 1024, 2));

        assert_eq!(defaults.reuse, 1, "a fresh instance per request unless a plugin opts in");
        let warm = Manifest::parse(&format!("{VALID}\n[limits]\nreuse = 64")).unwrap();
        assert_eq!(apply(&warm, &host).unwrap().reuse, 64);

        let greedy = Manifest::parse(&format!("{VALID}\n[limits]\nmemory-mb = 100000")).unwrap();
        let err = apply(&greedy, &host).unwrap_err();
        assert!(err.contains("memory-mb = 100000") && err.contains("maximum of 128"), "{err}");
    }

    #[test]
    fn a_task_may_not_run_longer_than_the_host_allows() {
        let host = Limits { task_timeout: Duration::from_secs(10), ..Limits::default() };
        let manifest =
            "name = \"jobs\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"slow\"\ntimeout-ms = 20000";
        let err = apply(&Manifest::parse(manifest).unwrap(), &host).unwrap_err();
        assert!(err.contains("task slow") && err.contains("10000 ms"), "{err}");
    }
}
