//! Telemetry: one place that sets up `tracing` for the process (log lines, and spans exported
//! over OTLP when an endpoint is configured), the host's [`metrics`], and trace context across
//! the process's edges ([`traces`]).

pub mod metrics;
pub mod traces;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber: human-readable lines, or JSON with `AUTOFLOW_LOG_FORMAT=json`;
/// the level comes from `RUST_LOG` (default `info`). With `otlp_endpoint`, spans are also
/// exported there; flush them with [`traces::Exporter::shutdown`] before the process ends.
pub fn init(otlp_endpoint: Option<&str>) -> Option<traces::Exporter> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AUTOFLOW_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let ansi = std::io::stderr().is_terminal();
    let (text, json) = if json {
        (None, Some(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)))
    } else {
        (Some(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)), None)
    };
    let (exporter, otel) = match otlp_endpoint.map(traces::exporter).transpose() {
        Ok(Some((exporter, tracer))) => {
            // Busy/idle times would read the clock at every poll of a plugin's future (it yields
            // every epoch tick); source locations and thread names add attributes to every span.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_tracked_inactivity(false)
                .with_location(false)
                .with_threads(false);
            (Some(exporter), Some(layer))
        }
        Ok(None) => (None, None),
        Err(error) => {
            eprintln!("autoflow: {error}; traces are not exported");
            (None, None)
        }
    };
    let result = tracing_subscriber::registry().with(filter).with(text).with(json).with(otel).try_init();
    if let Err(error) = result {
        eprintln!("autoflow: logging was already set up: {error}");
    }
    exporter
}
