//! Real HTTP servers on loopback standing in for external services: an echo server, a slow one,
//! an address nobody listens on, and a minimal OpenAI-compatible chat-completions API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The API key the fake provider accepts.
pub const PROVIDER_KEY: &str = "sk-test-provider-key";

/// Serves `app` on a free loopback port; returns `host:port`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Answers every request `200` after `delay`, remembering the `Authorization` headers it saw.
pub async fn echo_server(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(any(
        move |State(seen): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap| async move {
            let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            seen.lock().unwrap().push(authorization.to_owned());
            tokio::time::sleep(delay).await;
            Json(json!({ "ok": true }))
        },
    ));
    (serve(app.with_state(seen.clone())).await, seen)
}

/// A loopback address with nothing listening.
pub async fn closed_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `POST /v1/chat/completions` like OpenAI's: `401` without [`PROVIDER_KEY`], `500` for model
/// `broken`, a 2 s wait for model `slow`, else the last message echoed back.
pub async fn chat_provider() -> String {
    async fn complete(headers: HeaderMap, Json(request): Json<Value>) -> (StatusCode, Json<Value>) {
        let authorized =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {PROVIDER_KEY}"));
        if !authorized {
            return (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "message": "Incorrect API key provided" } })));
        }
        let model = request["model"].as_str().unwrap_or_default().to_owned();
        match model.as_str() {
            "broken" => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": { "message": "model overloaded" } })),
                );
            }
            "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
            _ => {}
        }
        let last =
            request["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].clone()).unwrap_or_default();
        let answer = json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": format!("echo: {}", last.as_str().unwrap_or_default()) }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 },
        });
        (StatusCode::OK, Json(answer))
    }
    serve(Router::new().route("/v1/chat/completions", post(complete))).await
}
