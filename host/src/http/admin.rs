//! `/admin`: operating the plugin set of this host. Open to users with the `admin` permission and,
//! if the operator opts in with `AUTOFLOW_ADMIN_TOKEN`, to that static bearer token.
//!
//! - `GET /admin/plugins` — every plugin: build, routes with their access, granted capabilities,
//!   limits, status and the last failed reload.
//! - `GET /admin/plugins/{name}` — one of them.
//! - `POST /admin/plugins/{name}/reload` — reload it from the plugins directory now.
//! - `PUT /admin/plugins/{name}` — upload a build (`multipart/form-data` with parts `manifest` and
//!   `component`): validated, stored for every host sharing the database, swapped in everywhere.
//! - `DELETE /admin/plugins/{name}` — delete an uploaded build everywhere.
//! - `GET /admin/stats` — how this host's records reads were served and how many cache
//!   operations degraded because Redis was unreachable.

use std::collections::BTreeMap;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::plugins::{InstallError, LoadedPlugin, ReloadFailure, ReloadOutcome};
use crate::services::records::RecordStats;
use crate::spec::{Access, Capabilities, CollectionScope, PluginKind, PluginLimits, PluginName, RouteSpec};

/// The permission that opens the admin API.
pub const ADMIN_PERMISSION: &str = "admin";

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list_plugins))
        .route("/plugins/{name}", get(get_plugin).put(upload_plugin).delete(delete_plugin))
        .route("/plugins/{name}/reload", post(reload_plugin))
        .route("/stats", get(stats))
        .layer(DefaultBodyLimit::max(state.limits.max_upload_bytes))
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

/// Admits users with the `admin` permission, and the static admin token if one is configured.
pub(super) async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.admin_token {
        // Only a presented token is compared: a missing one never stands in as an empty value.
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|token| !token.is_empty());
        if presented.is_some_and(|token| expected.matches(token)) {
            return Ok(next.run(request).await);
        }
    }
    let caller = state.auth.require(request.headers()).await?;
    if !caller.has(ADMIN_PERMISSION) {
        return Err(ApiError::Forbidden(format!("the admin API needs the `{ADMIN_PERMISSION}` permission")));
    }
    Ok(next.run(request).await)
}

/// Counters of this host since it started.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsView {
    records: RecordStats,
    cache: CacheStatsView,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CacheStatsView {
    /// Reads that missed and writes that were skipped because Redis was unreachable.
    degraded_operations: u64,
}

async fn stats(State(state): State<AppState>) -> Json<StatsView> {
    let services = state.plugins.services();
    Json(StatsView {
        records: services.records.stats(),
        cache: CacheStatsView { degraded_operations: services.cache.degraded_operations() },
    })
}

/// A plugin as the admin API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PluginView {
    name: String,
    /// `serving`; `serving-previous-build` when the newest build failed to load; `failed` when no
    /// build of it serves.
    status: &'static str,
    version: Option<String>,
    /// `feature` or `task`.
    kind: Option<&'static str>,
    description: Option<String>,
    content_hash: Option<String>,
    loaded_at: Option<DateTime<Utc>>,
    /// `compiled` or `cached` (read from the precompiled-artifact cache).
    artifact: Option<&'static str>,
    routes: Vec<RouteView>,
    /// The task names it handles.
    tasks: Vec<String>,
    /// What its manifest grants, as the manifest says it.
    capabilities: Option<CapabilitiesView>,
    limits: Option<LimitsView>,
    last_error: Option<ErrorView>,
}

#[derive(Debug, Serialize)]
struct RouteView {
    method: String,
    path: String,
    /// As the manifest says it: `public`, `authenticated`, `internal`, or `permissions` (any of
    /// those listed).
    access: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    permissions: Vec<String>,
}

impl RouteView {
    fn new(route: &RouteSpec) -> Self {
        let permissions = match &route.access {
            Access::AnyOf(permissions) => permissions.clone(),
            _ => Vec::new(),
        };
        Self { method: route.method.clone(), path: route.path.clone(), access: route.access.keyword(), permissions }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CapabilitiesView {
    outbound_hosts: Vec<String>,
    identity: bool,
    cache: bool,
    crypto: bool,
    /// Collection → `shared` or `user`.
    records: BTreeMap<String, &'static str>,
    queue: Vec<String>,
}

impl From<&Capabilities> for CapabilitiesView {
    fn from(granted: &Capabilities) -> Self {
        let scope = |scope: &CollectionScope| match scope {
            CollectionScope::Shared => "shared",
            CollectionScope::User => "user",
        };
        Self {
            outbound_hosts: granted.outbound_hosts.clone(),
            identity: granted.identity,
            cache: granted.cache,
            crypto: granted.crypto,
            records: granted.records.iter().map(|(name, s)| (name.clone(), scope(s))).collect(),
            queue: granted.queue.clone(),
        }
    }
}

/// The limits its calls run under (its manifest's, within the host's ceilings).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitsView {
    memory_mb: usize,
    timeout_ms: u128,
    max_concurrency: u32,
    reuse: u32,
}

impl From<&PluginLimits> for LimitsView {
    fn from(limits: &PluginLimits) -> Self {
        Self {
            memory_mb: limits.memory_bytes / (1024 * 1024),
            timeout_ms: limits.timeout.as_millis(),
            max_concurrency: limits.max_concurrency,
            reuse: limits.reuse,
        }
    }
}

#[derive(Debug, Serialize)]
struct ErrorView {
    message: String,
    at: DateTime<Utc>,
}

impl PluginView {
    fn new(name: &str, serving: Option<&LoadedPlugin>, failure: Option<ReloadFailure>) -> Self {
        let status = match (serving, &failure) {
            (Some(_), None) => "serving",
            (Some(_), Some(_)) => "serving-previous-build",
            (None, _) => "failed",
        };
        Self {
            name: name.to_owned(),
            status,
            version: serving.map(|p| p.manifest.version.clone()),
            kind: serving.map(|p| match p.manifest.kind {
                PluginKind::Feature => "feature",
                PluginKind::Task => "task",
            }),
            description: serving.and_then(|p| p.manifest.description.clone()),
            content_hash: serving.map(|p| p.content_hash.clone()),
            loaded_at: serving.map(|p| p.loaded_at),
            artifact: serving.map(|p| p.artifact.as_str()),
            routes: serving.map(|p| p.manifest.routes.iter().map(RouteView::new).collect()).unwrap_or_default(),
            tasks: serving.map(|p| p.manifest.tasks.iter().map(|t| t.name.clone()).collect()).unwrap_or_default(),
            capabilities: serving.map(|p| CapabilitiesView::from(&p.manifest.capabilities)),
            limits: serving.map(|p| LimitsView::from(&p.limits)),
            last_error: failure.map(|f| ErrorView { message: f.message, at: f.at }),
        }
    }
}

fn views(state: &AppState) -> Vec<PluginView> {
    let registry = state.plugins.registry();
    let mut failures = state.plugins.failures();
    let mut views: Vec<_> = registry
        .plugins()
        .iter()
        .map(|p| PluginView::new(p.manifest.name.as_str(), Some(p), failures.remove(p.manifest.name.as_str())))
        .collect();
    views.extend(failures.into_iter().map(|(name, failure)| PluginView::new(&name, None, Some(failure))));
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

async fn list_plugins(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "items": views(&state), "nextCursor": null }))
}

fn parse_name(name: &str) -> Result<PluginName, ApiError> {
    PluginName::parse(name).map_err(ApiError::BadRequest)
}

fn view_of(state: &AppState, name: &PluginName) -> Result<PluginView, ApiError> {
    views(state)
        .into_iter()
        .find(|v| v.name == name.as_str())
        .ok_or_else(|| ApiError::ResourceNotFound(format!("there is no plugin '{name}'")))
}

async fn get_plugin(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<PluginView>, ApiError> {
    let name = parse_name(&name)?;
    view_of(&state, &name).map(Json)
}

async fn reload_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name(&name)?;
    let outcome = state
        .plugins
        .reload(name.as_str())
        .await
        .map_err(|errors| ApiError::ReloadFailed { plugin: name.to_string(), reason: errors.to_string() })?;
    let outcome = match outcome {
        ReloadOutcome::Loaded { .. } => "loaded",
        ReloadOutcome::Unchanged => "unchanged",
        ReloadOutcome::Unloaded => "unloaded",
        ReloadOutcome::Absent => {
            return Err(ApiError::ResourceNotFound(format!("there is no plugin '{name}' on disk or serving")));
        }
    };
    let plugin = view_of(&state, &name).ok();
    Ok(Json(serde_json::json!({ "outcome": outcome, "plugin": plugin })))
}

/// Maps a multipart failure: over the upload limit is a 413, anything else a 400.
fn multipart_error(status: StatusCode, text: String, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::BadRequest(text)
    }
}

/// The manifest and component of an upload.
async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
    limit: usize,
) -> Result<(String, Vec<u8>), ApiError> {
    let mut multipart = multipart.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let (mut manifest, mut component) = (None, None);
    while let Some(field) =
        multipart.next_field().await.map_err(|e| multipart_error(e.status(), e.body_text(), limit))?
    {
        let part = field.name().unwrap_or_default().to_owned();
        let slot = match part.as_str() {
            "manifest" => &mut manifest,
            "component" => &mut component,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part `{other}`: send `manifest` and `component`"
                )));
            }
        };
        if slot.is_some() {
            return Err(ApiError::BadRequest(format!("part `{part}` is sent twice: send each part once")));
        }
        let bytes = field.bytes().await.map_err(|e| multipart_error(e.status(), e.body_text(), limit))?;
        *slot = Some(bytes.to_vec());
    }
    match (manifest, component) {
        (Some(manifest), Some(component)) => {
            let manifest = String::from_utf8(manifest)
                .map_err(|_| ApiError::InvalidPlugin("the manifest is not UTF-8 text".into()))?;
            Ok((manifest, component))
        }
        _ => Err(ApiError::BadRequest(
            "an upload needs two parts: `manifest` (plugin.toml) and `component` (plugin.wasm)".into(),
        )),
    }
}

fn install_error(name: &PluginName, error: InstallError) -> ApiError {
    match error {
        InstallError::Invalid(message) => ApiError::InvalidPlugin(message),
        InstallError::Conflict(message) => ApiError::Conflict(message),
        InstallError::Database(source) => ApiError::DatabaseUnavailable(source),
        InstallError::Reload(errors) => ApiError::ReloadFailed { plugin: name.to_string(), reason: errors.to_string() },
        InstallError::Io(source) => ApiError::Internal(format!("writing the build of '{name}': {source}")),
    }
}

async fn upload_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let name = parse_name(&name)?;
    let (manifest, component) = read_upload(multipart, state.limits.max_upload_bytes).await?;
    let was_serving = state.plugins.registry().find(name.as_str()).is_some();
    state.plugins.install(&name, manifest, component).await.map_err(|e| install_error(&name, e))?;
    if let Some(fanout) = &state.fanout {
        fanout.announce(name.as_str()).await;
    }
    let view = view_of(&state, &name)?;
    let status = if was_serving { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, [(LOCATION, format!("/admin/plugins/{name}"))], Json(view)))
}

async fn delete_plugin(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let name = parse_name(&name)?;
    if !state.plugins.uninstall(&name).await.map_err(|e| install_error(&name, e))? {
        return Err(ApiError::ResourceNotFound(format!("there is no uploaded build of plugin '{name}'")));
    }
    if let Some(fanout) = &state.fanout {
        fanout.announce(name.as_str()).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
