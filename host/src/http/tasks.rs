//! `/api/tasks`: scheduling background tasks and reading their audit trail. Every route needs a
//! signed-in user; users see and manage their own tasks, `admin` everyone's.
//!
//! - `POST /api/tasks` `{"name", "payload", "priority"?, "delayMs"?, "maxAttempts"?,
//!   "correlationId"?, "uniqueKey"?}` → `201` + `Location`; needs `write:tasks` or `admin`. With a
//!   unique key held by a waiting or running task of that name: `200` with that task instead
//! - `POST /api/tasks/batch` `{"tasks": [<as above>, …]}` (1-1000) → `201` `{"items": [<task>, …]}`
//!   in order; all or none: a refused task fails the batch with `400` naming `tasks[i]`
//! - `GET /api/tasks?status=&name=&correlationId=&schedule=&user=&order=&limit=&cursor=` (`user`:
//!   the id of the user who scheduled them, only `admin` may name another; `order`: `oldest`, the
//!   default, or `newest` first)
//! - `GET /api/tasks/{id}` → the task with every attempt (and its progress while it runs)
//! - `POST /api/tasks/{id}/retry` → a dead task runs again (`409` otherwise)
//! - `DELETE /api/tasks/{id}` → cancels a waiting task, or stops a running one where it runs
//!   (the plugin is not asked) and records it `cancelled`, never retried; `409` once finished
//! - `GET /api/tasks/stats` (`admin`) → counts by status and by name and status, and per
//!   priority the waiting tasks due and the age of the oldest
//! - `GET /api/tasks/throughput` (`admin`) → `{"minutes": [{"minute", "completed", "dead"}, …]}`:
//!   the tasks that finished in each of the last 60 minutes, oldest first
//! - `GET /api/tasks/paused`, `PUT`/`DELETE /api/tasks/paused/{name}` (`admin`) → the task names
//!   workers do not claim; pausing lets running tasks finish, and holds across restarts and hosts

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admin::ADMIN_PERMISSION;
use super::authn::Caller;
use super::json::JsonBody;
use super::{ApiError, AppState, method_not_allowed};
use crate::contract::CallContext;
use crate::db::{AttemptRow, Cancel, TaskFilter, TaskRow, TaskStatus};
use crate::spec::{Priority, is_task_name};
use crate::tasks::NewTask;

/// The permission that lets a user schedule tasks over HTTP.
pub const SCHEDULE_PERMISSION: &str = "write:tasks";
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", get(list).post(schedule).fallback(method_not_allowed(&["GET", "POST"])))
        .route("/api/tasks/batch", post(schedule_batch).fallback(method_not_allowed(&["POST"])))
        .route("/api/tasks/stats", get(stats).fallback(method_not_allowed(&["GET"])))
        .route("/api/tasks/throughput", get(throughput).fallback(method_not_allowed(&["GET"])))
        .route("/api/tasks/paused", get(paused).fallback(method_not_allowed(&["GET"])))
        .route("/api/tasks/paused/{name}", put(pause).delete(resume).fallback(method_not_allowed(&["PUT", "DELETE"])))
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
    unique_key: Option<String>,
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
            unique_key: request.unique_key,
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
    schedule: Option<String>,
    /// The user who scheduled them (admin only: everyone else sees their own tasks anyway).
    user: Option<String>,
    /// `oldest` (the default) or `newest` first.
    order: Option<String>,
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
    unique_key: Option<String>,
    /// The schedule whose tick made it.
    schedule: Option<String>,
    /// What the running (or last) attempt reported.
    progress: Option<Value>,
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
            progress: row.progress.as_deref().map(json),
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
            unique_key: row.unique_key,
            schedule: row.schedule_name,
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
    let stored = state.scheduler.schedule(request.into(), call).await?;
    let location = format!("/api/tasks/{}", stored.row.id);
    let status = if stored.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [(LOCATION, location)], Json(TaskView::new(stored.row, None))))
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
    let items: Vec<TaskView> = rows.into_iter().map(|stored| TaskView::new(stored.row, None)).collect();
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "items": items }))))
}

/// The call scheduling tasks for `caller`, if they may.
fn scheduling_call(caller: &Caller) -> Result<CallContext, ApiError> {
    caller.require(&[SCHEDULE_PERMISSION], "scheduling tasks")?;
    Ok(CallContext::for_principal(caller.principal()))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("must be 1-{MAX_LIMIT}")));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(TaskStatus::parse(name).ok_or_else(|| {
            let names: Vec<&str> = TaskStatus::ALL.iter().map(|status| status.as_str()).collect();
            ApiError::invalid_field("status", format!("must be one of {}", names.join(", ")))
        })?),
    };
    let newest_first = match query.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(_) => return Err(ApiError::invalid_field("order", "must be `oldest` or `newest`".into())),
    };
    let user_id = if caller.has(ADMIN_PERMISSION) {
        query.user
    } else if query.user.as_ref().is_some_and(|user| *user != caller.user.id) {
        return Err(ApiError::Forbidden("only `admin` may list the tasks of another user".into()));
    } else {
        Some(caller.user.id.clone())
    };
    let filter = TaskFilter {
        status,
        name: query.name,
        correlation_id: query.correlation_id,
        schedule_name: query.schedule,
        user_id,
        newest_first,
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
    let revived = state.scheduler.retry_dead(&id, attempts).await.map_err(|error| match error {
        error if error.is_unique_violation() => ApiError::Conflict(format!(
            "another task of this name holds its unique key `{}` and waits or runs; retry this one after it",
            row.unique_key.as_deref().unwrap_or_default()
        )),
        error => ApiError::DatabaseUnavailable(error),
    })?;
    match revived {
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
    if state.scheduler.cancel(&id).await.map_err(ApiError::DatabaseUnavailable)? == Cancel::Refused {
        return Err(ApiError::Conflict(format!(
            "only a task waiting to run or running can be cancelled; this one is {}",
            row.status
        )));
    }
    let row = visible_task(&state, &caller, &id).await?;
    Ok(Json(TaskView::new(row, None)))
}

async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(&[], "reading task statistics")?;
    let now = Utc::now();
    let stats = state.db.task_stats(now).await.map_err(ApiError::DatabaseUnavailable)?;
    let mut by_status: serde_json::Map<String, Value> =
        TaskStatus::ALL.iter().map(|status| (status.as_str().to_owned(), Value::from(0))).collect();
    let mut by_name = serde_json::Map::new();
    for (name, status, count) in stats.counts {
        let total = by_status.entry(status.as_str()).or_insert(Value::from(0));
        *total = Value::from(total.as_i64().unwrap_or_default() + count);
        let counts = by_name.entry(name).or_insert_with(|| Value::Object(serde_json::Map::new()));
        counts[status.as_str()] = Value::from(count);
    }
    let waiting: Vec<Value> = stats
        .oldest_due
        .into_iter()
        .map(|(rank, oldest, count)| {
            serde_json::json!({
                "priority": Priority::from_rank(rank),
                "due": count,
                "oldestDueAt": oldest,
                "oldestAgeMs": (now - oldest).num_milliseconds().max(0),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "byStatus": by_status, "byName": by_name, "waiting": waiting })))
}

/// Minutes `GET /api/tasks/throughput` covers.
const THROUGHPUT_MINUTES: i64 = 60;

/// Tasks completed and dead per minute over the last hour, oldest first, every minute listed.
async fn throughput(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(&[], "reading task throughput")?;
    let now = Utc::now();
    let current = now.timestamp().div_euclid(60);
    let first = current - (THROUGHPUT_MINUTES - 1);
    let since = DateTime::from_timestamp(first * 60, 0).unwrap_or(now);
    let counted = state.db.task_throughput(since).await.map_err(ApiError::DatabaseUnavailable)?;
    let minutes: Vec<Value> = (first..=current)
        .map(|minute| {
            let (completed, dead) = counted
                .iter()
                .find(|(at, ..)| *at == minute)
                .map_or((0, 0), |(_, completed, dead)| (*completed, *dead));
            let start = DateTime::from_timestamp(minute * 60, 0).unwrap_or(now);
            serde_json::json!({ "minute": start, "completed": completed, "dead": dead })
        })
        .collect();
    Ok(Json(serde_json::json!({ "minutes": minutes })))
}

async fn paused(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(&[], "pausing task names")?;
    let names = state.db.paused_task_names().await.map_err(ApiError::DatabaseUnavailable)?;
    let items: Vec<Value> = names
        .into_iter()
        .map(|paused| serde_json::json!({ "name": paused.name, "pausedAt": paused.paused_at, "pausedBy": paused.paused_by }))
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &caller, &name, true).await
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &caller, &name, false).await
}

async fn set_paused(state: &AppState, caller: &Caller, name: &str, paused: bool) -> Result<Json<Value>, ApiError> {
    caller.require(&[], "pausing task names")?;
    if !is_task_name(name) {
        return Err(ApiError::invalid_field("name", "must be a task name: 1-64 characters of a-z, 0-9 and '-'".into()));
    }
    state.db.set_task_paused(name, paused, Some(&caller.user.id)).await.map_err(ApiError::DatabaseUnavailable)?;
    tracing::info!(task = name, paused, by = %caller.user.id, "task name {}", if paused { "paused" } else { "resumed" });
    Ok(Json(serde_json::json!({ "name": name, "paused": paused })))
}

/// Task `id` if the caller may see it (theirs, or any for `admin`); `404` otherwise, so other
/// users' task ids are not revealed.
async fn visible_task(state: &AppState, caller: &Caller, id: &str) -> Result<TaskRow, ApiError> {
    let row = state.db.task(id).await.map_err(ApiError::DatabaseUnavailable)?;
    row.filter(|row| caller.has(ADMIN_PERMISSION) || row.user_id.as_deref() == Some(caller.user.id.as_str()))
        .ok_or_else(|| ApiError::ResourceNotFound(format!("no task `{id}`")))
}
