//! Requests served by wasm plugins against native axum routes doing the same work, measured in
//! one run. `GET /api/hello/{name}` through the host (request id, tracing, route table, access
//! check, an instance of the `hello` component, its config read and JSON answer) beside a bare
//! axum server whose handler reads the same setting and answers the same JSON with a fresh request
//! id: with a fresh instance per request, with warm instances (`[limits] reuse`), and with a
//! bearer token (the native twin authenticates it with the host's own service). `POST /api/echo`
//! with 1 KiB and 64 KiB JSON bodies beside a native echo. Latency over one keep-alive connection,
//! then throughput and latency under load over `CONNECTIONS`; the client runs in the same process,
//! so both sides pay for it alike. Then start-up to the first served request with ten plugins
//! from cached artifacts, and the memory a host takes on while 1,000 requests wait inside plugins
//! at once (each plugin fetching from a slow server) against a native proxy doing the same, each in
//! a process of its own. With wrk installed, hello is also measured by wrk from a process of its
//! own (native, fresh and warm servers each in a child process, alternating rounds). Needs the
//! built plugins (`cargo xtask build-plugins`); run with `cargo
//! bench -p autoflow-host --bench requests` (`AUTOFLOW_BENCH_TELEMETRY=logs|traces` to measure
//! with logging or trace export on), or `cargo xtask bench` for the report.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use autoflow_host::http::Auth;
use autoflow_host::services::identity::NewUser;
use autoflow_host::startup::Application;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use common::{Backend, BenchHost, Measured, measure, micros, record, report};

/// Requests timed one after another.
const SEQUENTIAL: usize = 5_000;
/// Concurrent keep-alive connections for the throughput runs.
const CONNECTIONS: usize = 32;
/// How long each throughput run lasts.
const THROUGHPUT_RUN: Duration = Duration::from_secs(3);
/// The plugins a host starts with in the start-up scenario.
const TEN_PLUGINS: [&str; 10] = [
    "hello",
    "notes",
    "bookmarks",
    "users",
    "secrets",
    "send-email",
    "integrations",
    "ai",
    "test-records",
    "test-cache",
];
/// Requests waiting at once in the memory scenario, and how long each waits.
const SLOW_REQUESTS: usize = 1_000;
const SLOW_WAIT: Duration = Duration::from_secs(5);
/// Set in the child processes of the memory scenario: `host` or `native`.
const MEMORY_PROBE: &str = "AUTOFLOW_BENCH_MEMORY_PROBE";
/// Set in the child processes the external load generator measures: one of `WRK_SIDES`.
const SERVE: &str = "AUTOFLOW_BENCH_SERVE";
/// What wrk measures, each in a process of its own: the native twin, then hello through a host
/// with fresh and with warm instances.
const WRK_SIDES: [&str; 3] = ["native", "fresh", "warm"];
/// Rounds of wrk, alternating the sides; each side's median round by rate is reported.
const WRK_ROUNDS: usize = 3;
const WRK_DURATION: &str = "3s";
const BENCH: &str = "requests";
const BACKEND: &str = "SQLite + in-process cache";

#[derive(serde::Deserialize)]
struct Greeting {
    greeting: Option<String>,
}

/// What the native twins share: the hello plugin's setting and the host's authentication.
struct Native {
    settings: Value,
    auth: Auth,
}

fn greet(settings: &Value, name: &str, query: Greeting) -> Json<Value> {
    let greeting = query.greeting.unwrap_or_else(|| settings["greeting"].as_str().unwrap_or("Hello").to_owned());
    Json(json!({ "message": format!("{greeting}, {name}!"), "requestId": uuid::Uuid::now_v7().to_string() }))
}

/// The native twin of the `hello` plugin's route.
async fn hello(
    State(native): State<Arc<Native>>,
    Path(name): Path<String>,
    Query(query): Query<Greeting>,
) -> Json<Value> {
    greet(&native.settings, &name, query)
}

/// The same, after authenticating the bearer token as the host does.
async fn hello_authenticated(
    State(native): State<Arc<Native>>,
    Path(name): Path<String>,
    Query(query): Query<Greeting>,
    headers: HeaderMap,
) -> Json<Value> {
    assert!(native.auth.authenticate(&headers).await.unwrap().is_some());
    greet(&native.settings, &name, query)
}

/// The native twin of the `hello` plugin's `POST /api/echo`.
async fn echo(headers: HeaderMap, Query(query): Query<Map<String, Value>>, Json(body): Json<Value>) -> Json<Value> {
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), Value::from(String::from_utf8_lossy(v.as_bytes()))))
        .collect();
    Json(json!({ "echo": body, "query": query, "headers": headers, "userId": null }))
}

/// Serves the native routes on a free loopback port; returns its base URL.
async fn serve_native(auth: Auth) -> String {
    let native = Arc::new(Native { settings: json!({ "greeting": "Hello" }), auth });
    let app = axum::Router::new()
        .route("/api/hello/{name}", axum::routing::get(hello))
        .route("/api/authenticated/{name}", axum::routing::get(hello_authenticated))
        .route("/api/echo", axum::routing::post(echo))
        .with_state(native);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// One request of a scenario, checked.
#[derive(Clone)]
enum Call {
    Hello { url: String, token: Option<String> },
    Echo { url: String, body: Arc<Value> },
}

impl Call {
    async fn send(&self, client: &reqwest::Client) {
        match self {
            Call::Hello { url, token } => {
                let request = client.get(url);
                let request = match token {
                    Some(token) => request.bearer_auth(token),
                    None => request,
                };
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["message"], "Hello, bench!");
            }
            Call::Echo { url, body } => {
                let response = client.post(url).json(&**body).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let answer: Value = response.json().await.unwrap();
                assert_eq!(answer["echo"], **body);
            }
        }
    }
}

/// Requests per second over `CONNECTIONS` connections for `THROUGHPUT_RUN`, with their latency.
async fn throughput(call: &Call) -> (f64, (Duration, Duration)) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + THROUGHPUT_RUN;
    let loops = (0..CONNECTIONS).map(|_| {
        let (client, call) = (client.clone(), call.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                call.send(&client).await;
                latencies.push(started.elapsed());
            }
            latencies
        })
    });
    let started = Instant::now();
    let mut latencies = Vec::new();
    for handle in futures_util::future::join_all(loops).await {
        latencies.extend(handle.unwrap());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    (rate, (at(0.5), at(0.99)))
}

/// Measures one scenario through the host and natively: latency over one connection, then
/// throughput (and latency under load) over `CONNECTIONS`; prints and records both.
async fn compare(scenario: &str, wasm: Call, native: Call, targets: [Option<&str>; 2]) {
    let client = reqwest::Client::new();
    println!("-- {scenario}");
    let native_latency = measure(SEQUENTIAL, || native.send(&client)).await;
    report("native axum route, one connection", native_latency);
    let wasm_latency = measure(SEQUENTIAL, || wasm.send(&client)).await;
    report("through the host, one connection", wasm_latency);
    println!(
        "{:<58} median +{:.1} µs   native/wasm {:.2}",
        "cost of the host + plugin",
        micros(wasm_latency.0) - micros(native_latency.0),
        micros(native_latency.0) / micros(wasm_latency.0)
    );
    let one = format!("{scenario}, one connection");
    record(BENCH, BACKEND, &one, Measured::Latency(wasm_latency), Some(Measured::Latency(native_latency)), targets[0]);

    let (native_rate, native_loaded) = throughput(&native).await;
    report(&format!("native axum route, {CONNECTIONS} connections: {native_rate:.0} req/s"), native_loaded);
    let (wasm_rate, wasm_loaded) = throughput(&wasm).await;
    report(&format!("through the host, {CONNECTIONS} connections: {wasm_rate:.0} req/s"), wasm_loaded);
    println!("{:<58} wasm/native {:.2}", "", wasm_rate / native_rate);
    let rate = |per_second, latency| Measured::Rate { per_second, unit: "req/s", latency: Some(latency) };
    let many = format!("{scenario}, {CONNECTIONS} connections");
    record(BENCH, BACKEND, &many, rate(wasm_rate, wasm_loaded), Some(rate(native_rate, native_loaded)), targets[1]);
}

/// What the host runs with, from `AUTOFLOW_BENCH_TELEMETRY`: `none` (no subscriber,
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

/// A host serving `plugins` (each manifest changed by `edit`), running until the bench ends.
async fn serve(plugins: &[&str], edit: fn(&str, String) -> String) -> (Application, BenchHost) {
    let embedded = Backend { label: "SQLite + in-process cache", database_url: None, redis_url: None };
    let host = BenchHost::new(&embedded, plugins);
    for name in plugins {
        let manifest = host.config.plugins_dir.join(name).join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, edit(name, text)).unwrap();
    }
    (Application::build(host.config.clone()).await.unwrap(), host)
}

/// A signed-in user's bearer token on `app`.
async fn token(app: &Application) -> String {
    let auth = app.auth();
    let user = auth
        .identity
        .create(NewUser {
            email: "bench@example.com".into(),
            display_name: None,
            password: SecretString::from("benchmark password"),
            permissions: Vec::new(),
        })
        .await
        .unwrap();
    auth.tokens.issue(&user.id, &user.permissions, user.credential_generation).unwrap().token
}

/// Time from building a host with `TEN_PLUGINS` (their artifacts cached by an earlier start on
/// the same data directory) to its first answered request.
async fn start_up() -> Duration {
    let embedded = Backend { label: "SQLite + in-process cache", database_url: None, redis_url: None };
    let host = BenchHost::new(&embedded, &TEN_PLUGINS);
    let warm_cache = Application::build(host.config.clone()).await.unwrap();
    drop(warm_cache);
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let app = Application::build(host.config.clone()).await.unwrap();
        let url = format!("http://{}/api/hello/bench", app.local_addr());
        let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
        Call::Hello { url, token: None }.send(&client).await;
        samples.push(started.elapsed());
        server.abort();
        let _ = server.await;
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// This process's resident memory, in MiB.
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default();
    kib / 1024.0
}

/// A server whose one route answers after `SLOW_WAIT`; returns its address and how many
/// requests have reached it.
async fn serve_slow() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(SLOW_WAIT).await;
                "done"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, slow).await.unwrap() });
    (address, arrived)
}

/// In a child process: how much this process's memory grows while `SLOW_REQUESTS` requests wait
/// at once, either in the `test-trap` plugin's outbound fetch through a host (`host`) or in a
/// native axum route proxying the same fetch (`native`). Prints the growth in MiB.
async fn memory_probe(side: &str) {
    let (slow, arrived) = serve_slow().await;
    let slow_url = format!("http://{slow}/slow");
    let (url, _dirs) = if side == "host" {
        let embedded = Backend { label: "SQLite + in-process cache", database_url: None, redis_url: None };
        let mut host = BenchHost::new(&embedded, &["test-trap"]);
        let manifest = host.config.plugins_dir.join("test-trap/plugin.toml");
        let text = std::fs::read_to_string(&manifest).unwrap().replace("\"allowed.invalid\"", "\"127.0.0.1\"");
        std::fs::write(&manifest, text).unwrap();
        host.config.limits.plugin_concurrency = SLOW_REQUESTS as u32;
        host.config.limits.max_instances = 2 * SLOW_REQUESTS as u32;
        let app = Application::build(host.config.clone()).await.unwrap();
        let url = format!("http://{}/api/trap/fetch?url={slow_url}", app.local_addr());
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        (url, Some(host))
    } else {
        let client = reqwest::Client::new();
        let proxy = axum::Router::new().route(
            "/fetch",
            axum::routing::get(move || async move {
                let body = client.get(slow_url).send().await.unwrap().text().await.unwrap();
                Json(json!({ "status": 200, "body": body }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/fetch", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, proxy).await.unwrap() });
        (url, None)
    };
    let client = reqwest::Client::builder().pool_max_idle_per_host(SLOW_REQUESTS).build().unwrap();
    // One request first, so what every run pays once (compiling, pools) is not counted.
    client.get(&url).send().await.unwrap().error_for_status().unwrap();
    let before = resident_mib();
    let requests: Vec<_> = (0..SLOW_REQUESTS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let answer: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                assert_eq!(answer["body"], "done", "{answer}");
            })
        })
        .collect();
    // Sampled until every request waits on the slow server, and a little longer.
    let mut peak = before;
    let started = Instant::now();
    while arrived.load(Ordering::Relaxed) < SLOW_REQUESTS + 1 {
        let waiting = arrived.load(Ordering::Relaxed) - 1;
        assert!(started.elapsed() < SLOW_WAIT, "only {waiting} of {SLOW_REQUESTS} requests were waiting at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak = peak.max(resident_mib());
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(resident_mib());
    }
    for request in requests {
        request.await.unwrap();
    }
    println!("{}", peak - before);
}

/// Runs this bench again as a child process probing `side`'s memory; its growth in MiB.
fn probe_in_child(side: &str) -> f64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--bench")
        .env(MEMORY_PROBE, side)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the {side} memory probe failed: {}", String::from_utf8_lossy(&output.stderr));
    stdout.lines().last().and_then(|line| line.trim().parse().ok()).expect("the probe prints its growth in MiB")
}

/// In a child process: serves `side`'s hello, prints its URL, and serves until it is killed.
async fn serve_for_wrk(side: &str) {
    let reuse = |_: &str, text: String| format!("{text}\n[limits]\nreuse = 1000\n");
    let (app, _dirs) = serve(&["hello"], if side == "warm" { reuse } else { |_, text| text }).await;
    let base = match side {
        "native" => serve_native(app.auth().clone()).await,
        _ => {
            let base = format!("http://{}", app.local_addr());
            tokio::spawn(app.run_until_stopped(std::future::pending()));
            base
        }
    };
    println!("{base}/api/hello/bench");
    std::future::pending::<()>().await;
}

/// One wrk run: requests per second, and the median and 99th-percentile latency.
struct WrkRun {
    rate: f64,
    latency: (Duration, Duration),
}

/// Runs wrk (one thread, `CONNECTIONS` connections) against `url` and reads its report.
fn wrk(url: &str) -> WrkRun {
    let connections = CONNECTIONS.to_string();
    let output = std::process::Command::new("wrk")
        .args(["--threads", "1", "--connections", &connections, "--duration", WRK_DURATION, "--latency", url])
        .output()
        .expect("running wrk");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !report.contains("Non-2xx"), "wrk against {url} failed:\n{report}");
    let value = |label: &str| {
        let line = report.lines().find(|line| line.trim_start().starts_with(label)).expect(label);
        line.trim_start()[label.len()..].trim().to_owned()
    };
    let duration = |text: String| {
        let split = text.find(|c: char| c.is_ascii_alphabetic()).expect("a unit");
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().expect("a latency");
        let seconds = match unit {
            "us" => number / 1e6,
            "ms" => number / 1e3,
            "s" => number,
            other => panic!("wrk printed a latency in `{other}`"),
        };
        Duration::from_secs_f64(seconds)
    };
    WrkRun {
        rate: value("Requests/sec:").parse().expect("a rate"),
        latency: (duration(value("50%")), duration(value("99%"))),
    }
}

/// hello measured by wrk, a load generator in a process of its own (as `wasmtime serve` and the
/// other hosts are usually measured), beside the native twin in the same run: absolute rates
/// without the in-process client's share of the cores. Skipped without wrk.
fn external_client() {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        println!("-- wrk is not installed: the external-client runs are skipped (`cargo xtask bench` installs it)");
        return;
    }
    let mut servers: Vec<(std::process::Child, String)> = WRK_SIDES
        .iter()
        .map(|side| {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .arg("--bench")
                .env(SERVE, side)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
            (child, line.trim().to_owned())
        })
        .collect();
    let mut runs: Vec<Vec<WrkRun>> = WRK_SIDES.iter().map(|_| Vec::new()).collect();
    for _ in 0..WRK_ROUNDS {
        for (side, (_, url)) in servers.iter().enumerate() {
            runs[side].push(wrk(url));
        }
    }
    for (child, _) in &mut servers {
        let _ = child.kill();
        let _ = child.wait();
    }
    let median = |side: usize| {
        let mut rounds: Vec<&WrkRun> = runs[side].iter().collect();
        rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        rounds[rounds.len() / 2]
    };
    let rate = |run: &WrkRun| Measured::Rate { per_second: run.rate, unit: "req/s", latency: Some(run.latency) };
    let native = median(0);
    println!(
        "-- GET /api/hello/{{name}} under wrk ({CONNECTIONS} connections, a process of its own; median of {WRK_ROUNDS})"
    );
    report(&format!("native axum route: {:.0} req/s", native.rate), native.latency);
    for (side, label, target) in
        [(1, "fresh instance", None), (2, "warm instances", Some("≥ 60k req/s and ≥ 0.4 of native"))]
    {
        let ours = median(side);
        report(&format!("through the host, {label}: {:.0} req/s", ours.rate), ours.latency);
        println!("{:<58} wasm/native {:.2}", "", ours.rate / native.rate);
        let scenario = format!("GET /api/hello/{{name}}, {label}, wrk {CONNECTIONS} connections");
        record(BENCH, BACKEND, &scenario, rate(ours), Some(rate(native)), target);
    }
}

async fn bench() {
    let exporter = telemetry().await;
    let (fresh, _fresh_dirs) = serve(&["hello"], |_, text| text).await;
    let (warm, _warm_dirs) = serve(&["hello"], |_, text| format!("{text}\n[limits]\nreuse = 1000\n")).await;
    let bearer = token(&fresh).await;
    let native = serve_native(fresh.auth().clone()).await;
    let (fresh_url, warm_url) = (format!("http://{}", fresh.local_addr()), format!("http://{}", warm.local_addr()));
    let _servers = [fresh, warm].map(|app| tokio::spawn(app.run_until_stopped(std::future::pending())));

    let hello = |base: &str, token: Option<&str>| Call::Hello {
        url: format!("{base}/api/hello/bench"),
        token: token.map(str::to_owned),
    };
    let native_hello = hello(&native, None);
    let fresh_targets = [None, Some("≥ 0.6 of native, p99 ≤ 2 ms")];
    compare("GET /api/hello/{name}, fresh instance", hello(&fresh_url, None), native_hello.clone(), fresh_targets)
        .await;
    let warm_targets = [None, Some("≥ 60k req/s and ≥ 0.4 of native")];
    compare("GET /api/hello/{name}, warm instances", hello(&warm_url, None), native_hello, warm_targets).await;
    let authenticated = Call::Hello { url: format!("{native}/api/authenticated/bench"), token: Some(bearer.clone()) };
    compare("GET /api/hello/{name} with a bearer token", hello(&fresh_url, Some(&bearer)), authenticated, [None, None])
        .await;
    for (label, bytes) in [("1 KiB", 1024), ("64 KiB", 64 * 1024)] {
        let body = Arc::new(json!({ "data": "x".repeat(bytes - 12) }));
        let echo = |base: &str| Call::Echo { url: format!("{base}/api/echo"), body: body.clone() };
        compare(&format!("POST /api/echo, {label} JSON"), echo(&fresh_url), echo(&native), [None, None]).await;
    }

    tokio::task::spawn_blocking(external_client).await.unwrap();

    let took = start_up().await;
    println!(
        "-- start-up with {} plugins from cached artifacts to the first served request: {took:?}",
        TEN_PLUGINS.len()
    );
    let amount = Measured::Amount { value: took.as_secs_f64() * 1e3, unit: "ms" };
    record(
        BENCH,
        BACKEND,
        "start-up, 10 plugins from cached artifacts, to the first served request",
        amount,
        None,
        Some("≤ 200 ms"),
    );

    let (ours, native) = (probe_in_child("host"), probe_in_child("native"));
    println!(
        "-- memory growth while {SLOW_REQUESTS} requests wait at once: host {ours:.1} MiB, native proxy {native:.1} MiB"
    );
    let mib = |value| Measured::Amount { value, unit: "MiB" };
    let scenario = format!("memory growth with {SLOW_REQUESTS} requests waiting in plugins at once (outbound fetch)");
    record(BENCH, BACKEND, &scenario, mib(ours), Some(mib(native)), None);

    if let Some(exporter) = exporter {
        let _ = tokio::task::spawn_blocking(move || exporter.shutdown()).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if let Ok(side) = std::env::var(SERVE) {
        return runtime.block_on(serve_for_wrk(&side));
    }
    match std::env::var(MEMORY_PROBE) {
        Ok(side) => runtime.block_on(memory_probe(&side)),
        Err(_) => runtime.block_on(bench()),
    }
}
