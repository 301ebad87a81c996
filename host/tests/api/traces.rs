//! Traces over OTLP: with a collector in the test, a request that schedules a task yields one
//! trace covering the request (continuing the client's `traceparent`), the task's run, and the
//! task's outbound call, whose `traceparent` reaches the remote server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::cli::{autoflow, start_serving_logged, terminate};
use crate::helpers::{PluginsDir, TestDatabase, eventually};

/// The trace the test's client starts, and its span.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP (JSON) collector on loopback keeping every span it receives.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(spans): State<Arc<Mutex<Vec<Value>>>>, body: Bytes| async move {
                let export: Value = serde_json::from_slice(&body).expect("an OTLP/JSON export");
                for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        spans.lock().unwrap().extend(scope["spans"].as_array().into_iter().flatten().cloned());
                    }
                }
                axum::Json(json!({}))
            }),
        )
        .with_state(spans.clone());
    (serve(app).await, spans)
}

/// A remote service remembering the `traceparent` of each request.
async fn remote() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/ping",
            get(|State(seen): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap| async move {
                let parent = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default();
                seen.lock().unwrap().push(parent.to_owned());
                "pong"
            }),
        )
        .with_state(seen.clone());
    (serve(app).await, seen)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

fn lower(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_ascii_lowercase()
}

#[tokio::test]
async fn a_request_its_task_and_the_tasks_outbound_call_share_one_trace() {
    let (database, data, plugins) = (
        TestDatabase::create().await,
        tempfile::TempDir::new().unwrap(),
        PluginsDir::with(&["test-trap", "test-tasks"]),
    );
    let (collector, spans) = collector().await;
    let (remote, seen) = remote().await;
    let mut command = autoflow(&database, data.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--plugins"]).arg(plugins.path());
    command.args(["--otlp-endpoint", &format!("http://{collector}")]);
    command.env("AUTOFLOW_PLUGIN_TEST_TASKS__FETCH_HOSTS", &remote).env("OTEL_BSP_SCHEDULE_DELAY", "100");
    command.env("NO_COLOR", "1");
    let (mut child, address, logged) = start_serving_logged(command);

    let response = reqwest::Client::new()
        .post(format!("http://{address}/api/trap/enqueue?name=fetch"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({ "url": format!("http://{remote}/ping") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = eventually(Duration::from_secs(20), "the task's outbound call", || async {
        seen.lock().unwrap().first().cloned()
    })
    .await;
    assert!(sent.starts_with(&format!("00-{TRACE_ID}-")), "the outbound call carries the trace: {sent}");

    terminate(&child);
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "{exit}");
    let spans = spans.lock().unwrap().clone();
    let named = |name: &str| -> Vec<&Value> { spans.iter().filter(|span| span["name"] == name).collect() };
    let request = named("POST /api/trap/enqueue");
    assert_eq!(request.len(), 1, "one request span: {spans:#?}");
    let task = named("task fetch");
    assert_eq!(task.len(), 1, "one task span: {spans:#?}");
    let outbound: Vec<&Value> =
        spans.iter().filter(|span| span["name"].as_str().is_some_and(|n| n.starts_with("GET 127.0.0.1"))).collect();
    assert_eq!(outbound.len(), 1, "one outbound span: {spans:#?}");
    for span in request.iter().chain(&task).chain(&outbound) {
        assert_eq!(lower(&span["traceId"]), TRACE_ID, "one trace: {span}");
    }
    assert_eq!(lower(&request[0]["parentSpanId"]), CLIENT_SPAN, "the request continues the client's span");
    let outbound_id = lower(&outbound[0]["spanId"]);
    assert!(sent.contains(&outbound_id), "the remote saw the outbound span as its parent: {sent} vs {outbound_id}");
    let logged = logged.lock().unwrap().clone();
    let fetched = logged.iter().find(|line| line.contains("fetched")).expect("the plugin's log line");
    assert!(fetched.contains(&format!("trace_id={TRACE_ID}")), "a plugin's log line names the trace: {fetched}");
    let enqueue = named("queue.enqueue");
    assert_eq!(enqueue.len(), 1, "the plugin's capability call has a span of its own: {spans:#?}");
    assert_eq!(lower(&enqueue[0]["traceId"]), TRACE_ID);
    let parent = lower(&task[0]["parentSpanId"]);
    assert!(
        spans.iter().any(|span| lower(&span["spanId"]) == parent && lower(&span["traceId"]) == TRACE_ID),
        "the task's run hangs under the span that scheduled it: {:#?}",
        task[0]
    );
}
