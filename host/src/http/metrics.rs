//! `GET /metrics` in the Prometheus text format, and the middleware counting every request by
//! plugin, declared route, method and status.
//!
//! On the main listener `/metrics` is admin-only; `--metrics-listen` serves it (with the health
//! endpoints) unauthenticated on an address of its own, for a scraper on a private network.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::AppState;
use crate::spec::Priority;
use crate::telemetry::metrics::{self, RequestLabels, Snapshot, build_label, method_label};

/// The plugin route a response came from, put on it by the dispatcher for the request counter.
#[derive(Debug, Clone)]
pub struct PluginRoute {
    pub plugin: String,
    /// The route's pattern as its manifest declares it.
    pub route: String,
}

/// Counts the request once its response is ready, and names its route, plugin and status on the
/// request's span. Host routes count under their matched path with an empty `plugin`; requests no
/// route matched count under `unmatched`.
pub async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method().as_str());
    let host_route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    // Taken, not cloned: nothing after this reads it.
    let (plugin, route) = match response.extensions_mut().remove::<PluginRoute>() {
        Some(target) => (target.plugin, target.route),
        None => (String::new(), host_route.unwrap_or_else(|| "unmatched".to_owned())),
    };
    let status = response.status().as_u16();
    let span = tracing::Span::current();
    span.record("route", route.as_str());
    span.record("status", status);
    if !plugin.is_empty() {
        span.record("plugin", plugin.as_str());
    }
    let labels = RequestLabels { plugin, route, method, status };
    state.plugins.metrics().http_request(&labels, started.elapsed());
    response
}

/// The exposition: the host's counters, then what is read now (plugin builds, the database pool,
/// the queue, the services' own counts).
pub async fn scrape(State(state): State<AppState>) -> Response {
    let mut snapshot = Snapshot::default();
    let registry = state.plugins.registry();
    snapshot.gauge(
        "plugin_build_info",
        "The build each plugin serves (1 per plugin)",
        registry.plugins().iter().map(|plugin| {
            let labels = [
                ("plugin", plugin.manifest.name.to_string()),
                ("version", plugin.manifest.version.clone()),
                ("build", build_label(&plugin.content_hash)),
            ];
            (labels, 1.0)
        }),
    );
    snapshot.gauge(
        "plugin_reload_failing",
        "Plugins whose newest build failed to load (the previous build serves)",
        state.plugins.failures().into_keys().map(|plugin| ([("plugin", plugin)], 1.0)),
    );
    let pool = state.db.pool_status();
    snapshot.gauge(
        "db_pool_connections",
        "Database connections open, by state",
        [
            ([("state", "in_use".to_owned())], f64::from(pool.open.saturating_sub(pool.idle))),
            ([("state", "idle".to_owned())], f64::from(pool.idle)),
        ],
    );
    snapshot.value("db_pool_max_connections", "Most database connections the pool opens", f64::from(pool.max));
    let now = Utc::now();
    let due = state.db.oldest_due(now).await;
    let answered = f64::from(u8::from(due.is_ok()));
    snapshot.value("database_up", "Whether the database answered this scrape", answered);
    match due {
        Ok(due) => {
            let priority = |rank: i16| Priority::from_rank(rank).as_str().to_owned();
            snapshot.gauge(
                "queue_depth",
                "Tasks due and waiting to be claimed, by priority",
                due.iter().map(|(rank, _, count)| ([("priority", priority(*rank))], *count as f64)),
            );
            snapshot.gauge(
                "queue_oldest_age_seconds",
                "How long the longest-waiting due task has waited, by priority",
                due.iter().map(|(rank, oldest, _)| {
                    let age = (now - *oldest).num_milliseconds().max(0) as f64 / 1000.0;
                    ([("priority", priority(*rank))], age)
                }),
            );
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read the queue depth"),
    }
    let services = state.plugins.services();
    let records = services.records.stats();
    snapshot.counter("records_cache_hits", "Records reads answered from the cache", records.cache_hits);
    snapshot.counter("records_cache_misses", "Records reads the cache could not answer", records.cache_misses);
    snapshot.counter("records_database_reads", "Records reads that went to the database", records.database_reads);
    snapshot.counter("records_writes", "Records creates, updates and deletes", records.writes);
    let (hits, misses) = services.cache.reads();
    snapshot.counter("cache_hits", "Cache reads that found a value (plugins' and the host's own)", hits);
    snapshot.counter("cache_misses", "Cache reads that found nothing (or Redis was unreachable)", misses);
    snapshot.counter(
        "cache_degraded_operations",
        "Cache operations that degraded (a miss or a skipped write) because Redis was unreachable",
        services.cache.degraded_operations(),
    );
    snapshot.value(
        "draining",
        "Whether this process is shutting down",
        f64::from(u8::from(state.draining.is_draining())),
    );
    let text = state.plugins.metrics().encode(&snapshot);
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
