//! `GET /health`: the host is up and its database answers.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.db.ping().await.map_err(ApiError::DatabaseUnavailable)?;
    Ok(Json(json!({
        "status": "ok",
        "database": state.db.backend().to_string(),
        "plugins": state.plugins.registry().plugins().len(),
    })))
}
