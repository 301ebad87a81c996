//! Traces over OTLP: the host's `tracing` spans exported with the OpenTelemetry SDK when an
//! endpoint is configured (off by default), and W3C trace context carried across the process's
//! edges: accepted from clients (`traceparent`), sent on outbound requests, and stored with a task
//! so its run continues the trace of the request that scheduled it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The name spans are exported under, unless `OTEL_SERVICE_NAME` says otherwise.
const SERVICE_NAME: &str = "autoflow";
/// Longest the exporter waits for the collector, per batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// Whether spans leave the process: set once an exporter is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported; without, every function here returns at once (they run on the
/// request and scheduling paths).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The exporter's provider, flushed when the process ends.
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Sends every span still buffered, then stops.
    pub fn shutdown(self) {
        if let Err(error) = self.0.shutdown() {
            eprintln!("autoflow: exporting the last spans failed: {error}");
        }
    }
}

/// A batch exporter of spans to the OTLP/HTTP collector at `endpoint` (its base URL: spans go
/// to `{endpoint}/v1/traces`, as with `OTEL_EXPORTER_OTLP_ENDPOINT`), and the tracer layer.
pub fn exporter(endpoint: &str) -> Result<(Exporter, opentelemetry_sdk::trace::Tracer), String> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|error| format!("cannot export traces to {endpoint}: {error}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| SERVICE_NAME.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("autoflow");
    EXPORTING.store(true, Ordering::Relaxed);
    Ok((Exporter(provider), tracer))
}

/// Continues the trace a client sent in `headers` (`traceparent`), if any, in `span`; a span
/// without the tracing layer is left alone.
pub fn continue_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if exporting() && headers.contains_key(TRACEPARENT) {
        let context = TraceContextPropagator::new().extract(&HeaderReader(headers));
        let _ = span.set_parent(context);
    }
}

/// Continues the trace `traceparent` names in `span` (a task run, under the request that
/// scheduled it).
pub fn continue_from(span: &tracing::Span, traceparent: &str) {
    if !exporting() {
        return;
    }
    let carrier = [(TRACEPARENT.to_owned(), traceparent.to_owned())].into_iter().collect();
    let context = TraceContextPropagator::new().extract(&StoredContext(carrier));
    let _ = span.set_parent(context);
}

/// The `traceparent` of the current span, when traces are exported.
pub fn current_traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut carrier = StoredContext(Default::default());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.0.remove(TRACEPARENT)
}

/// Writes the current span's trace context into outgoing `headers` (replacing any).
pub fn inject_into(headers: &mut http::HeaderMap) {
    if !exporting() {
        return;
    }
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderWriter(headers));
    }
}

/// Records the trace id of `span` in its `trace_id` field, so every log line under it (a
/// plugin's included) names the trace; nothing when traces are not exported.
pub fn record_trace_id(span: &tracing::Span) {
    if !exporting() {
        return;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderWriter<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Trace context kept as text (on a task record).
struct StoredContext(std::collections::HashMap<String, String>);

impl Extractor for StoredContext {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for StoredContext {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
