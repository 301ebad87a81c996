//! `/api/tasks`: scheduling background tasks and reading their audit trail. Every route needs a
//! signed-in user; users see and manage their own tasks, `admin` everyone's.
//!
//! - `POST /api/tasks` `{"name", "payload", "priority"?, "delayMs"?, "maxAttempts"?,
//!   "correlationId"?}` → `201` + `Location`; needs `write:tasks` or `admin`
//! - `POST /api/tasks/batch` `{"tasks": [<as above>, …]}` (1-1000) → `201` `{"items": [<task>, …]}`
//!   in order; all or none: a refused task fails the batch with `400` naming `tasks[i]`
//! - `GET /api/tasks?status=&name=&correlationId=&limit=&cursor=`
//! - `GET /api/tasks/{id}` → the task with every attempt
//! - `POST /api/tasks/{id}/retry` → a dead task runs again (`409` otherwise)
//! - `DELETE /api/tasks/{id}` → cancels a task still waiting to run (`409` otherwise)

use std::time::Duration;

use axum::extract::{Path, Query, State};
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
use crate::db::{AttemptRow, TaskFilter, TaskRow, TaskStatus};
use crate::spec::Priority;
use crate::tasks::NewTask;

/// The permission that lets a user schedule tasks over HTTP.
pub const SCHEDULE_PERMISSION: &str = "write:tasks";
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", get(list).post(schedule).fallback(method_not_allowed(&["GET", "POST"])))
        .route("/api/tasks/batch", post(schedule_batch).fallback(method_not_allowed(&["POST"])))
        .route("/api/tasks/{id}", get(show).delete(cancel).fallback(method_not_allowed(&["GET", "DELETE"])))
        .route("/api/tasks/{id}/retry", post(retry).fallback(method_not_allowed(&["POST"])))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleRequest {
    name: String,
    #[serde(default)]
    payload: Value,
    priority: Option<Priority>,
    delay_ms: Option<u64>,
    max_attempts: Option<u32>,
    correlation_id: Option<String>,
}

impl From<ScheduleRequest> for NewTask {
    fn from(request: ScheduleRequest) -> Self {
        NewTask {
            name: request.name,
            payload: request.payload.to_string(),
            priority: request.priority,
            delay: request.delay_ms.map(Duration::from_millis),
            max_attempts: request.max_attempts,
            correlation_id: request.correlation_id,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    tasks: Vec<ScheduleRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    status: Option<String>,
    name: Option<String>,
    correlation_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A task as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskView {
    id: String,
    name: String,
    payload: Value,
    priority: Priority,
    status: TaskStatus,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    correlation_id: Option<String>,
    scheduled_by: Option<String>,
    worker_id: Option<String>,
    result: Option<Value>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<AttemptView>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptView {
    attempt: i32,
    worker_id: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    error: Option<String>,
}

impl TaskView {
    fn new(row: TaskRow, history: Option<Vec<AttemptRow>>) -> Self {
        let json = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        Self {
            payload: json(&row.payload),
            result: row.result.as_deref().map(json),
            priority: Priority::from_rank(row.priority),
            id: row.id,
            name: row.name,
            status: row.status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            correlation_id: row.correlation_id,
            scheduled_by: row.user_id,
            worker_id: row.worker_id,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            history: history.map(|attempts| {
                attempts
                    .into_iter()
                    .map(|a| AttemptView {
                        attempt: a.attempt,
                        worker_id: a.worker_id,
                        started_at: a.started_at,
                        finished_at: a.finished_at,
                        outcome: a.outcome,
                        error: a.error,
                    })
                    .collect()
            }),
        }
    }
}

async fn schedule(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonBody<ScheduleRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let call = scheduling_call(&caller)?;
    let JsonBody(request) = body?;
    let row = state.scheduler.schedule(request.into(), call).await?;
    let location = format!("/api/tasks/{}", row.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(TaskView::new(row, None))))
}

async fn schedule_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonBody<BatchRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let call = scheduling_call(&caller)?;
    let JsonBody(request) = body?;
    let tasks = request.tasks.into_iter().map(NewTask::from).collect();
    let rows = state.scheduler.schedule_many(tasks, call).await?;
    let items: Vec<TaskView> = rows.into_iter().map(|row| TaskView::new(row, None)).collect();
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "items": items }))))
}

/// The call scheduling tasks for `caller`, if they may.
fn scheduling_call(caller: &Caller) -> Result<CallContext, ApiError> {
    if !caller.has_any(&[SCHEDULE_PERMISSION.to_owned(), ADMIN_PERMISSION.to_owned()]) {
        return Err(ApiError::Forbidden(format!("scheduling tasks needs the `{SCHEDULE_PERMISSION}` permission")));
    }
    Ok(CallContext { principal: Some(caller.principal()), request_id: String::new(), depth: 0 })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid("limit", format!("must be 1-{MAX_LIMIT}")));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(TaskStatus::parse(name).ok_or_else(|| {
            let names: Vec<&str> = TaskStatus::ALL.iter().map(|status| status.as_str()).collect();
            invalid("status", format!("must be one of {}", names.join(", ")))
        })?),
    };
    let filter = TaskFilter {
        status,
        name: query.name,
        correlation_id: query.correlation_id,
        user_id: (!caller.has(ADMIN_PERMISSION)).then(|| caller.user.id.clone()),
    };
    let rows = state
        .db
        .tasks_page(&filter, query.cursor.as_deref().unwrap_or(""), limit + 1)
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    let more = rows.len() > limit as usize;
    let items: Vec<TaskView> = rows.into_iter().take(limit as usize).map(|row| TaskView::new(row, None)).collect();
    let next_cursor = if more { items.last().map(|t| t.id.clone()) } else { None };
    Ok(Json(serde_json::json!({ "items": items, "nextCursor": next_cursor })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    let row = visible_task(&state, &caller, &id).await?;
    let history = state.db.task_attempts(&id).await.map_err(ApiError::DatabaseUnavailable)?;
    Ok(Json(TaskView::new(row, Some(history))))
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    let row = visible_task(&state, &caller, &id).await?;
    let registry = state.plugins.registry();
    let attempts = registry.task_handler(&row.name).map_or(1, |(_, spec)| spec.max_attempts);
    match state.scheduler.retry_dead(&id, attempts).await.map_err(ApiError::DatabaseUnavailable)? {
        Some(revived) => Ok(Json(TaskView::new(revived, None))),
        None => Err(ApiError::Conflict(format!("only a dead task can be retried; this one is {}", row.status))),
    }
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    let row = visible_task(&state, &caller, &id).await?;
    if !state.db.cancel_task(&id).await.map_err(ApiError::DatabaseUnavailable)? {
        return Err(ApiError::Conflict(format!(
            "only a task waiting to run can be cancelled; this one is {}",
            row.status
        )));
    }
    let row = visible_task(&state, &caller, &id).await?;
    Ok(Json(TaskView::new(row, None)))
}

/// Task `id` if the caller may see it (theirs, or any for `admin`); `404` otherwise, so other
/// users' task ids are not revealed.
async fn visible_task(state: &AppState, caller: &Caller, id: &str) -> Result<TaskRow, ApiError> {
    let row = state.db.task(id).await.map_err(ApiError::DatabaseUnavailable)?;
    row.filter(|row| caller.has(ADMIN_PERMISSION) || row.user_id.as_deref() == Some(caller.user.id.as_str()))
        .ok_or_else(|| ApiError::ResourceNotFound(format!("no task `{id}`")))
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Invalid { message: format!("{field} {message}"), fields: vec![(field.to_owned(), message)] }
}
