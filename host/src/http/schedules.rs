//! `/api/schedules`: repeatable tasks. Task plugins declare schedules in their manifests; users
//! with `write:schedules` make their own (whose tasks run as them), and see and manage only
//! those; `admin` sees and manages every schedule. Each run is an ordinary task, listed with
//! `GET /api/tasks?schedule={name}`.
//!
//! - `GET /api/schedules` → `{"items": [<schedule>, …]}` (needs `read:schedules`,
//!   `write:schedules` or `admin`)
//! - `POST /api/schedules` `{"name", "task", "cron"?, "timezone"?, "everyMs"?, "payload"?,
//!   "missed"?}` → `201` + `Location`; exactly one of `cron` (5 fields, or 6 with seconds first;
//!   in `timezone`, UTC by default) and `everyMs` (≥ 1000); `missed` is `run-once` (default) or
//!   `skip`: what becomes of ticks that passed while no host ran
//! - `GET /api/schedules/{name}`
//! - `POST /api/schedules/{name}/pause`, `POST /api/schedules/{name}/resume` → the schedule;
//!   resuming starts from the next tick after now
//! - `DELETE /api/schedules/{name}` → `204`; a schedule a loaded plugin's manifest declares is
//!   that manifest's to remove (`409`)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admin::ADMIN_PERMISSION;
use super::authn::Caller;
use super::json::JsonBody;
use super::{ApiError, AppState, method_not_allowed};
use crate::contract::CallContext;
use crate::db::ScheduleRow;
use crate::spec::{Missed, Timing, TimingField};
use crate::tasks::NewSchedule;

/// The permission to make and manage one's own schedules.
pub const WRITE_PERMISSION: &str = "write:schedules";
/// The permission to see one's own schedules.
pub const READ_PERMISSION: &str = "read:schedules";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/schedules", get(list).post(create).fallback(method_not_allowed(&["GET", "POST"])))
        .route("/api/schedules/{name}", get(show).delete(delete).fallback(method_not_allowed(&["GET", "DELETE"])))
        .route("/api/schedules/{name}/pause", post(pause).fallback(method_not_allowed(&["POST"])))
        .route("/api/schedules/{name}/resume", post(resume).fallback(method_not_allowed(&["POST"])))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateRequest {
    name: String,
    task: String,
    cron: Option<String>,
    timezone: Option<String>,
    every_ms: Option<u64>,
    #[serde(default)]
    payload: Value,
    missed: Option<String>,
}

/// A schedule as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleView {
    name: String,
    task: String,
    cron: Option<String>,
    timezone: Option<String>,
    every_ms: Option<i64>,
    payload: Value,
    missed: String,
    paused: bool,
    /// When it ticks next (a paused schedule: when it would have).
    next_run_at: DateTime<Utc>,
    last_run_at: Option<DateTime<Utc>>,
    last_task_id: Option<String>,
    /// The plugin whose manifest declares it, if one does.
    plugin: Option<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(row: ScheduleRow) -> Self {
        Self {
            payload: serde_json::from_str(&row.payload).unwrap_or(Value::String(row.payload)),
            name: row.name,
            task: row.task,
            cron: row.cron,
            timezone: row.timezone,
            every_ms: row.every_ms,
            missed: row.missed,
            paused: row.paused,
            next_run_at: row.next_run_at,
            last_run_at: row.last_run_at,
            last_task_id: row.last_task_id,
            plugin: row.plugin,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(&[READ_PERMISSION, WRITE_PERMISSION], "reading schedules")?;
    let rows = state.db.schedules().await.map_err(ApiError::DatabaseUnavailable)?;
    let items: Vec<ScheduleView> =
        rows.into_iter().filter(|row| may_see(&caller, row)).map(ScheduleView::from).collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonBody<CreateRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[WRITE_PERMISSION], "changing schedules")?;
    let JsonBody(request) = body?;
    let timing =
        Timing::parse(request.cron.as_deref(), request.timezone.as_deref(), request.every_ms).map_err(|error| {
            let field = match error.field {
                TimingField::Cron => "cron",
                TimingField::TimeZone => "timezone",
                TimingField::Every => "everyMs",
            };
            ApiError::invalid_field(field, error.message)
        })?;
    let missed = match request.missed.as_deref() {
        None => Missed::default(),
        Some(text) => {
            Missed::parse(text).ok_or_else(|| ApiError::invalid_field("missed", "must be run-once or skip".into()))?
        }
    };
    let schedule =
        NewSchedule { name: request.name, task: request.task, timing, payload: request.payload.to_string(), missed };
    let call = CallContext::for_principal(caller.principal());
    let row = state.scheduler.create_schedule(schedule, call).await?;
    let location = format!("/api/schedules/{}", row.name);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(ScheduleView::from(row))))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    caller.require(&[READ_PERMISSION, WRITE_PERMISSION], "reading schedules")?;
    Ok(Json(visible(&state, &caller, &name).await?.into()))
}

async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &caller, &name, true).await
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &caller, &name, false).await
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    caller.require(&[WRITE_PERMISSION], "changing schedules")?;
    visible(state, caller, name).await?;
    Ok(Json(state.scheduler.set_schedule_paused(name, paused).await?.into()))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[WRITE_PERMISSION], "changing schedules")?;
    visible(&state, &caller, &name).await?;
    state.scheduler.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the caller may see `row`: `admin` every schedule, others their own.
fn may_see(caller: &Caller, row: &ScheduleRow) -> bool {
    caller.has(ADMIN_PERMISSION) || row.created_by.as_deref() == Some(caller.user.id.as_str())
}

/// Schedule `name` if the caller may see it; `404` otherwise, so others' schedules are not revealed.
async fn visible(state: &AppState, caller: &Caller, name: &str) -> Result<ScheduleRow, ApiError> {
    let row = state.db.schedule(name).await.map_err(ApiError::DatabaseUnavailable)?;
    row.filter(|row| may_see(caller, row)).ok_or_else(|| ApiError::ResourceNotFound(format!("no schedule `{name}`")))
}
