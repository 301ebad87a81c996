//! `/admin`: operating the plugin set of this host. Guarded by a static bearer token from config
//! (`AUTOFLOW_ADMIN_TOKEN`); without one the API is disabled.
//!
//! - `GET /admin/plugins` — every plugin: build, routes, status and the last failed reload.
//! - `GET /admin/plugins/{name}` — one of them.
//! - `POST /admin/plugins/{name}/reload` — reload it from the plugins directory now.

use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::plugins::{LoadedPlugin, PluginName, ReloadFailure, ReloadOutcome};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list_plugins))
        .route("/plugins/{name}", get(get_plugin))
        .route("/plugins/{name}/reload", post(reload_plugin))
        .route_layer(middleware::from_fn_with_state(state, require_admin_token))
}

async fn require_admin_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::ResourceNotFound(
            "the admin API is disabled; set AUTOFLOW_ADMIN_TOKEN to enable it".into(),
        ));
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized("the admin API needs `Authorization: Bearer <admin token>`".into()))
    }
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
    content_hash: Option<String>,
    loaded_at: Option<DateTime<Utc>>,
    /// `compiled` or `cached` (read from the precompiled-artifact cache).
    artifact: Option<&'static str>,
    routes: Vec<RouteView>,
    last_error: Option<ErrorView>,
}

#[derive(Debug, Serialize)]
struct RouteView {
    method: String,
    path: String,
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
            content_hash: serving.map(|p| p.content_hash.clone()),
            loaded_at: serving.map(|p| p.loaded_at),
            artifact: serving.map(|p| p.artifact.as_str()),
            routes: serving
                .map(|p| p.manifest.routes.iter().map(|r| RouteView { method: r.method.clone(), path: r.path.clone() }))
                .into_iter()
                .flatten()
                .collect(),
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
