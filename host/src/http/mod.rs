//! The HTTP surface: host-native endpoints, the fallback that routes to plugins, and the
//! middleware stack (request id → trace → propagate request id).

mod admin;
mod assets;
mod auth;
mod authn;
mod console;
mod dispatch;
mod error;
mod health;
mod json;
mod metrics;
mod openapi;
mod origin;
mod schedules;
mod server;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, Method, Uri};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use authn::{Auth, Caller, SESSION_COOKIE};
pub use error::ApiError;
pub use health::Draining;
pub use server::{ConnectionLimits, serve};

use crate::capabilities::HostRuntime;
use crate::config::{AdminToken, Limits};
use crate::db::Database;
use crate::plugins::LivePlugins;
use crate::plugins::fanout::Fanout;
use crate::plugins::routes::{Reach, RouteMatch};
use crate::tasks::Scheduler;
use crate::telemetry::traces;

/// What every handler can reach: the [`SharedState`] behind one reference count, so the state
/// each request extracts costs no more than an atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The host's services, routes and settings that handlers use.
pub struct SharedState {
    pub runtime: HostRuntime,
    pub plugins: Arc<LivePlugins>,
    pub db: Database,
    pub limits: Limits,
    /// A static token that also opens `/admin` (opt-in; users with `admin` always may).
    pub admin_token: Option<AdminToken>,
    pub auth: Auth,
    /// Announces plugin changes to the other hosts; `None` when running alone.
    pub fanout: Option<Fanout>,
    /// Schedules background tasks.
    pub scheduler: Scheduler,
    /// Set once the process starts shutting down: readiness turns false.
    pub draining: Draining,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the router with its middleware.
pub fn router(state: AppState) -> Router {
    let middleware = ServiceBuilder::new()
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
        .layer(TraceLayer::new_for_http().make_span_with({
            let plugins = state.plugins.clone();
            move |request: &Request| request_span(&plugins, request)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID));
    let admin_only = axum::middleware::from_fn_with_state(state.clone(), admin::require_admin);
    Router::new()
        .route("/health", get(health::health).fallback(method_not_allowed(&["GET"])))
        .route("/health/live", get(health::live).fallback(method_not_allowed(&["GET"])))
        .route("/health/ready", get(health::ready).fallback(method_not_allowed(&["GET"])))
        .route("/metrics", get(metrics::scrape).fallback(method_not_allowed(&["GET"])).route_layer(admin_only))
        .route("/openapi.json", get(openapi::document).fallback(method_not_allowed(&["GET"])))
        .route("/openapi", get(openapi::page).fallback(method_not_allowed(&["GET"])))
        .route("/openapi/page.js", get(openapi::script))
        .route("/openapi/page.css", get(openapi::style))
        .route("/.well-known/jwks.json", get(auth::jwks).fallback(method_not_allowed(&["GET"])))
        .route("/auth/login", post(auth::login).fallback(method_not_allowed(&["POST"])))
        .route("/auth/logout", post(auth::logout).fallback(method_not_allowed(&["POST"])))
        .route("/auth/me", get(auth::me).fallback(method_not_allowed(&["GET"])))
        .nest("/admin", admin::router(state.clone()))
        .merge(console::router())
        .merge(tasks::router())
        .merge(schedules::router())
        .fallback(dispatch::dispatch)
        // One body limit for every route; `/admin` raises it for uploads.
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), origin::refuse_cross_origin_cookie_writes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_request))
        .with_state(state)
        .layer(middleware)
}

/// The operations router for `--metrics-listen`: `/metrics` without authentication (the address
/// is meant for a private network) and the health endpoints; nothing else.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::NotFound { method: method.to_string(), path: uri.path().to_owned() }
        })
        .with_state(state)
}

/// The span of one request: it continues a client's trace (`traceparent`), and once routed names
/// the plugin and route it reached and the status (see `metrics::count_request`). When spans are
/// exported it is named `{method} {declared route}` for the collector.
fn request_span(plugins: &LivePlugins, request: &Request) -> tracing::Span {
    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (method, path) = (request.method(), request.uri().path());
    let name = traces::exporting().then(|| {
        let route = match plugins.registry().route(method.as_str(), path, Reach::Outside) {
            RouteMatch::Found { target, .. } => Some(target.pattern.clone()),
            _ => openapi::host_route(path).map(str::to_owned),
        };
        route.map_or_else(|| method.to_string(), |route| format!("{method} {route}"))
    });
    let span = tracing::info_span!(
        "request",
        %method,
        %path,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        plugin = tracing::field::Empty,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.name = name.as_deref().unwrap_or("request"),
        otel.kind = "server",
    );
    traces::continue_from_headers(&span, request.headers());
    traces::record_trace_id(&span);
    span
}

/// A handler answering a JSON `405` that lists the `allowed` methods, for host-native routes.
fn method_not_allowed(
    allowed: &'static [&'static str],
) -> impl Fn(Method, Uri) -> std::future::Ready<ApiError> + Clone {
    move |method, uri| {
        std::future::ready(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: uri.path().to_owned(),
            allowed: allowed.iter().map(|m| (*m).to_owned()).collect(),
        })
    }
}

/// Longest client-sent request id kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Removes a client's `x-request-id` unless it is a bounded run of characters that cannot forge a
/// log field or a header (letters, digits, `-_.:/+=`), so the host generates one instead.
async fn drop_unsafe_request_id(mut request: Request) -> Request {
    let headers = request.headers();
    let mut values = headers.get_all(&REQUEST_ID).iter();
    let safe = match (values.next(), values.next()) {
        (Some(value), None) => is_safe_request_id(value.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !safe {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

fn is_safe_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// Request ids are UUIDv7: unique and ordered by time.
#[derive(Clone, Copy)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::now_v7().to_string();
        axum::http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_plain_request_ids_are_kept() {
        for safe in ["abc", "0190f1c2-7d1e-7000-8000-000000000000", "Root=1-5759e988-bd862e3fe1be46a994272793"] {
            assert!(is_safe_request_id(safe.as_bytes()), "{safe}");
        }
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for forged in ["", "a b", "a\tb", "x\" level=ERROR", "id\r\nSet-Cookie: x", "é", long.as_str()] {
            assert!(!is_safe_request_id(forged.as_bytes()), "{forged:?}");
        }
    }
}
