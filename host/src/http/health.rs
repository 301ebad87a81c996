//! Health for load balancers and orchestrators:
//! - `GET /health/live`: the process answers (restart it if not).
//! - `GET /health/ready`: it should get traffic: the database answers, Redis answers when one is
//!   configured, the plugins are loaded, and it is not draining. `503` otherwise, with the state
//!   of each dependency.
//! - `GET /health`: the host is up and its database answers (`503` if not), as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// Longest one dependency check of `/health/ready` may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether this process is shutting down: set once, at the first signal. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on readiness is false.
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.db.ping().await.map_err(ApiError::DatabaseUnavailable)?;
    Ok(Json(json!({
        "status": "ok",
        "database": state.db.backend().to_string(),
        "plugins": state.plugins.registry().plugins().len(),
    })))
}

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // The causes are logged, not shown: the endpoint is public.
    let database = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: the database does not answer");
                Err("unreachable".to_owned())
            }
            Err(_) => Err(format!("no answer within {}ms", CHECK_TIMEOUT.as_millis())),
        }
    };
    let redis = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.plugins.services().cache.ping()).await {
            Ok(None) => None,
            Ok(Some(Ok(()))) => Some(Ok(())),
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "readiness: Redis does not answer");
                Some(Err("unreachable".to_owned()))
            }
            Err(_) => Some(Err(format!("no answer within {}ms", CHECK_TIMEOUT.as_millis()))),
        }
    };
    let (database, redis) = tokio::join!(database, redis);
    let draining = state.draining.is_draining();
    let registry = state.plugins.registry();
    let failing: Vec<String> = state.plugins.failures().into_keys().collect();
    let ready = database.is_ok() && redis.as_ref().is_none_or(Result::is_ok) && !draining;

    let mut checks = serde_json::Map::new();
    checks.insert("database".into(), check(database, json!({ "backend": state.db.backend().to_string() })));
    checks.insert(
        "redis".into(),
        match redis {
            Some(result) => check(result, json!({})),
            None => json!({ "status": "not_configured" }),
        },
    );
    checks.insert(
        "plugins".into(),
        json!({ "status": "ok", "loaded": registry.plugins().len(), "failingReloads": failing }),
    );
    checks.insert("draining".into(), json!({ "status": if draining { "draining" } else { "ok" } }));
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks });
    (status, Json(body))
}

/// A dependency's check: `ok`, or `failed` with the reason, plus `extra` fields.
fn check(result: Result<(), String>, extra: Value) -> Value {
    let mut value = match result {
        Ok(()) => json!({ "status": "ok" }),
        Err(error) => json!({ "status": "failed", "error": error }),
    };
    if let (Value::Object(fields), Value::Object(extra)) = (&mut value, extra) {
        fields.extend(extra);
    }
    value
}
