//! Telemetry: one place that sets up `tracing` for the process, and the host's [`metrics`].

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: human-readable lines, or JSON with `AUTOFLOW_LOG_FORMAT=json`;
/// the level comes from `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AUTOFLOW_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    if let Err(error) = result {
        eprintln!("autoflow: logging was already set up: {error}");
    }
}
