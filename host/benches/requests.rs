//! A request served by a wasm plugin against a native axum route doing the same work, measured
//! in one run: `GET /api/hello/{name}` through the host (request id, tracing, route table, access
//! check, a fresh instance of the `hello` component, its config read and JSON answer) beside a
//! bare axum server whose handler reads the same setting and answers the same JSON with a fresh
//! request id. Latency over one keep-alive connection, then throughput over `CONNECTIONS`; the
//! client runs in the same process, so both sides pay for it alike. Needs the built plugins
//! (`cargo xtask build-plugins`); run with `cargo bench -p autoflow-host --bench requests`
//! (`AUTOFLOW_BENCH_TELEMETRY=logs|traces` to measure with logging or trace export on).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoflow_host::startup::Application;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use common::{Backend, BenchHost, measure, micros, report};

/// Requests timed one after another.
const SEQUENTIAL: usize = 5_000;
/// Concurrent keep-alive connections for the throughput run.
const CONNECTIONS: usize = 16;
/// How long each throughput run lasts.
const THROUGHPUT_RUN: Duration = Duration::from_secs(3);

#[derive(serde::Deserialize)]
struct Greeting {
    greeting: Option<String>,
}

/// The native twin of the `hello` plugin's route.
async fn hello(
    State(settings): State<Arc<Value>>,
    Path(name): Path<String>,
    Query(query): Query<Greeting>,
) -> Json<Value> {
    let greeting = query.greeting.unwrap_or_else(|| settings["greeting"].as_str().unwrap_or("Hello").to_owned());
    Json(json!({ "message": format!("{greeting}, {name}!"), "requestId": uuid::Uuid::now_v7().to_string() }))
}

/// Serves the native route on a free loopback port; returns its base URL.
async fn serve_native() -> String {
    let settings = Arc::new(json!({ "greeting": "Hello" }));
    let app = axum::Router::new().route("/api/hello/{name}", axum::routing::get(hello)).with_state(settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

async fn get(client: &reqwest::Client, url: &str) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Hello, bench!");
}

/// Requests per second over `CONNECTIONS` connections for `THROUGHPUT_RUN`.
async fn throughput(url: &str) -> f64 {
    let client = reqwest::Client::new();
    let served = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + THROUGHPUT_RUN;
    let loops = (0..CONNECTIONS).map(|_| {
        let (client, served, url) = (client.clone(), served.clone(), url.to_owned());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                get(&client, &url).await;
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let started = Instant::now();
    for handle in futures_util::future::join_all(loops).await {
        handle.unwrap();
    }
    served.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// What telemetry the host runs with, from `AUTOFLOW_BENCH_TELEMETRY`: `none` (no subscriber,
/// the default), `logs` (the host's log subscriber at `RUST_LOG`), or `traces` (logs, and every span
/// exported over OTLP to a collector in this process that discards them). Metrics are always on.
async fn telemetry() -> Option<autoflow_host::telemetry::traces::Exporter> {
    match std::env::var("AUTOFLOW_BENCH_TELEMETRY").unwrap_or_default().as_str() {
        "logs" => autoflow_host::telemetry::init(None),
        "traces" => {
            let sink = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { Json(json!({})) }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });
            autoflow_host::telemetry::init(Some(&endpoint))
        }
        _ => None,
    }
}

async fn bench() {
    let exporter = telemetry().await;
    let embedded = Backend { label: "SQLite + in-process cache", database_url: None, redis_url: None };
    let host = BenchHost::new(&embedded, &["hello"]);
    let app = Application::build(host.config.clone()).await.unwrap();
    let wasm = format!("http://{}/api/hello/bench", app.local_addr());
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let native = format!("{}/api/hello/bench", serve_native().await);

    let client = reqwest::Client::new();
    println!("-- GET /api/hello/{{name}}: one connection, {SEQUENTIAL} requests");
    let native_latency = measure(SEQUENTIAL, || get(&client, &native)).await;
    report("native axum route", native_latency);
    let wasm_latency = measure(SEQUENTIAL, || get(&client, &wasm)).await;
    report("wasm plugin through the host", wasm_latency);
    println!(
        "{:<58} median +{:.1} µs   native/wasm {:.2}",
        "cost of the host + plugin",
        micros(wasm_latency.0) - micros(native_latency.0),
        micros(native_latency.0) / micros(wasm_latency.0)
    );

    println!("-- the same, {CONNECTIONS} connections for {THROUGHPUT_RUN:?} each");
    let native_rate = throughput(&native).await;
    println!("{:<58} {native_rate:>8.0} req/s", "native axum route");
    let wasm_rate = throughput(&wasm).await;
    println!(
        "{:<58} {wasm_rate:>8.0} req/s   wasm/native {:.2}",
        "wasm plugin through the host",
        wasm_rate / native_rate
    );
    server.abort();
    if let Some(exporter) = exporter {
        let _ = tokio::task::spawn_blocking(move || exporter.shutdown()).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}
