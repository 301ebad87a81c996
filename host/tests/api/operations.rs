//! What an operator reads: `/metrics` (parsed with a Prometheus exposition parser, never matched
//! as text) changing as requests, failures, reloads, tasks and logins happen; the health
//! endpoints for load balancers, with a cut Redis and a cut database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, PASSWORD, PluginsDir, TestApp, eventually, needs_python, needs_redis, spawn_configured, try_spawn,
};
use crate::proxy::{FaultProxy, spawn_behind_database_proxy};

/// One sample of a scrape.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// One scrape of `/metrics`, parsed by the official Prometheus client's exposition parser.
struct Scrape(Vec<Sample>);

impl Scrape {
    async fn of(client: &reqwest::Client, url: String, token: Option<&str>) -> Self {
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let text = response.text().await.unwrap();
        let Some(parsed) = parse_exposition(&text) else { panic!("no exposition parser: see needs_python") };
        Self(serde_json::from_str(&parsed).unwrap())
    }

    async fn admin(app: &TestApp) -> Self {
        Self::of(&app.client, app.url("/metrics"), Some(ADMIN_TOKEN)).await
    }

    /// The sum of the samples of `metric` whose labels include `labels` (0 if none).
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|sample| sample.name == metric)
            .filter(|sample| {
                labels.iter().all(|(name, value)| sample.labels.get(*name).map(String::as_str) == Some(value))
            })
            .map(|sample| sample.value)
            .sum()
    }

    /// Every value label `name` takes in this scrape.
    fn label_values(&self, name: &str) -> Vec<String> {
        self.0.iter().filter_map(|sample| sample.labels.get(name).cloned()).collect()
    }

    /// The `(plugin, version)` pairs `autoflow_plugin_build_info` shows.
    fn builds(&self) -> Vec<(String, String)> {
        let samples = self.0.iter().filter(|sample| sample.name == "autoflow_plugin_build_info");
        samples.map(|s| (s.labels["plugin"].clone(), s.labels["version"].clone())).collect()
    }
}

/// The samples of a Prometheus text exposition as JSON, parsed by `prometheus_client.parser`
/// (which refuses a malformed exposition); `None` when the tests' Python is not installed.
fn parse_exposition(text: &str) -> Option<String> {
    use std::io::Write;
    const PARSE: &str = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        samples = [{'name': s.name, 'labels': s.labels, 'value': s.value}\n\
                   for family in text_string_to_metric_families(sys.stdin.read()) for s in family.samples]\n\
        json.dump(samples, sys.stdout)\n";
    let python = needs_python()?;
    let mut child = std::process::Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

async fn spawn() -> TestApp {
    spawn_configured(&["hello", "test-trap", "test-tasks"], |config| {
        config.limits.request_timeout = Duration::from_millis(400);
    })
    .await
}

#[tokio::test]
async fn metrics_follow_requests_failures_reloads_tasks_and_logins() {
    if needs_python().is_none() {
        return;
    }
    let app = spawn().await;
    let before = Scrape::admin(&app).await;

    for name in ["a", "b", "c"] {
        assert_eq!(app.get(&format!("/api/hello/{name}")).await.status(), 200);
    }
    assert_eq!(app.get("/api/trap/panic").await.status(), 500);
    assert_eq!(app.get("/api/trap/loop").await.status(), 504);
    assert_eq!(app.get("/api/nothing/here").await.status(), 404);
    app.create_user("ops@example.com", &["write:tasks"]).await;
    assert_eq!(app.login("ops@example.com", "not the password").await.status(), 401);
    let login: Value = app.login("ops@example.com", PASSWORD).await.json().await.unwrap();
    let token = login["token"].as_str().unwrap();
    let scheduled = app.request_as(Method::POST, "/api/tasks", token).json(&json!({ "name": "echo", "payload": {} }));
    let task: Value = scheduled.send().await.unwrap().json().await.unwrap();
    let task_url = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    eventually(Duration::from_secs(20), "the task to complete", || async {
        let record: Value = app.request_as(Method::GET, &task_url, token).send().await.unwrap().json().await.unwrap();
        (record["status"] == "completed").then_some(())
    })
    .await;
    assert_eq!(app.upload_built("test-hello-v2", "hello").await.status(), 200);

    let after = Scrape::admin(&app).await;
    let delta = |metric: &str, labels: &[(&str, &str)]| after.value(metric, labels) - before.value(metric, labels);
    let hello = [("plugin", "hello"), ("route", "/api/hello/{name}"), ("method", "GET"), ("status", "200")];
    assert_eq!(delta("autoflow_http_requests_total", &hello), 3.0, "requests by declared route");
    assert_eq!(delta("autoflow_http_request_duration_seconds_count", &hello), 3.0, "and their latency");
    let trap = [("plugin", "test-trap"), ("route", "/api/trap/panic"), ("status", "500")];
    assert_eq!(delta("autoflow_http_requests_total", &trap), 1.0);
    let unmatched = [("plugin", ""), ("route", "unmatched"), ("status", "404")];
    assert_eq!(delta("autoflow_http_requests_total", &unmatched), 1.0);
    let login_route = [("route", "/auth/login"), ("status", "401")];
    assert_eq!(delta("autoflow_http_requests_total", &login_route), 1.0, "host routes count under their path");
    assert!(
        !after.label_values("route").iter().any(|route| route.contains("/api/hello/a") || route.contains("nothing")),
        "raw paths never become label values"
    );

    let failures =
        |reason: &str| delta("autoflow_plugin_failures_total", &[("plugin", "test-trap"), ("reason", reason)]);
    assert_eq!(failures("trap"), 1.0);
    assert_eq!(failures("timeout"), 1.0);
    let instantiations = [("plugin", "hello"), ("call", "request")];
    assert_eq!(delta("autoflow_plugin_instantiations_total", &instantiations), 3.0);
    assert_eq!(after.value("autoflow_plugin_instances_in_use", &[("plugin", "hello")]), 0.0, "none running now");

    assert_eq!(delta("autoflow_logins_total", &[("outcome", "failure")]), 1.0);
    assert_eq!(delta("autoflow_logins_total", &[("outcome", "success")]), 1.0);

    for metric in ["autoflow_tasks_scheduled_total", "autoflow_tasks_started_total"] {
        assert_eq!(delta(metric, &[("task", "echo")]), 1.0, "{metric}");
    }
    assert_eq!(delta("autoflow_tasks_finished_total", &[("task", "echo"), ("outcome", "completed")]), 1.0);
    assert_eq!(delta("autoflow_task_run_duration_seconds_count", &[("task", "echo")]), 1.0);
    let validated = [("plugin", "test-tasks"), ("call", "validate")];
    assert_eq!(delta("autoflow_plugin_instantiations_total", &validated), 1.0);

    assert_eq!(delta("autoflow_plugin_reloads_total", &[("plugin", "hello"), ("outcome", "loaded")]), 1.0);
    assert!(before.builds().contains(&("hello".into(), "0.1.0".into())), "{:?}", before.builds());
    let hello_builds: Vec<_> = after.builds().into_iter().filter(|(plugin, _)| plugin == "hello").collect();
    assert_eq!(hello_builds.len(), 1, "one build per plugin: {hello_builds:?}");
    assert_ne!(hello_builds[0].1, "0.1.0", "the new build's version");
    assert_eq!(after.value("autoflow_database_up", &[]), 1.0);
    assert!(after.value("autoflow_db_pool_max_connections", &[]) >= 1.0);
}

#[tokio::test]
async fn a_failed_reload_and_busy_refusals_are_counted() {
    if needs_python().is_none() {
        return;
    }
    let app = spawn_configured(&["hello", "test-trap"], |config| {
        config.limits.plugin_concurrency = 1;
        config.limits.queue_timeout = Duration::from_millis(50);
    })
    .await;
    let before = Scrape::admin(&app).await;

    let slow = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/api/trap/slow?ms=600"));
        async move { client.get(url).send().await.unwrap().status() }
    });
    eventually(Duration::from_secs(5), "the slow request to take the only slot", || async {
        let in_use = Scrape::admin(&app).await.value("autoflow_plugin_instances_in_use", &[("plugin", "test-trap")]);
        (in_use == 1.0).then_some(())
    })
    .await;
    assert_eq!(app.get("/api/trap/ok").await.status(), 503);
    assert_eq!(slow.await.unwrap(), 200);
    std::fs::write(app.plugins.path().join("hello/plugin.wasm"), "not wasm").unwrap();
    let reload = app.admin(Method::POST, "/admin/plugins/hello/reload").send().await.unwrap();
    assert!(!reload.status().is_success(), "{}", reload.status());

    let after = Scrape::admin(&app).await;
    let delta = |metric: &str, labels: &[(&str, &str)]| after.value(metric, labels) - before.value(metric, labels);
    assert_eq!(delta("autoflow_plugin_failures_total", &[("plugin", "test-trap"), ("reason", "busy")]), 1.0);
    assert_eq!(after.value("autoflow_plugin_instances_in_use", &[("plugin", "test-trap")]), 0.0);
    assert_eq!(delta("autoflow_plugin_reloads_total", &[("plugin", "hello"), ("outcome", "failed")]), 1.0);
    assert_eq!(after.value("autoflow_plugin_reload_failing", &[("plugin", "hello")]), 1.0);
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!", "the previous build keeps serving");
}

#[tokio::test]
async fn metrics_are_for_admins_on_the_main_listener_and_open_on_the_metrics_listener() {
    if needs_python().is_none() {
        return;
    }
    let app = spawn_configured(&["hello"], |config| config.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics = app.metrics.clone().expect("a metrics listener");

    assert_eq!(app.get("/metrics").await.status(), 401);
    let (_, token) = app.user_with_token("reader@example.com", &["read:users"]).await;
    assert_eq!(app.request_as(Method::GET, "/metrics", &token).send().await.unwrap().status(), 403);

    app.get("/api/hello/world").await;
    let scrape = Scrape::of(&app.client, format!("http://{metrics}/metrics"), None).await;
    let hello = [("plugin", "hello"), ("route", "/api/hello/{name}")];
    assert_eq!(scrape.value("autoflow_http_requests_total", &hello), 1.0);
    let ready = app.client.get(format!("http://{metrics}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let other = app.client.get(format!("http://{metrics}/api/hello/world")).send().await.unwrap();
    assert_eq!(other.status(), 404, "the metrics listener serves nothing else");
}

#[tokio::test]
async fn liveness_and_readiness_report_each_dependency() {
    let app = spawn_configured(&["hello"], |_| {}).await;

    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap()["status"], "ok");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["plugins"]["loaded"], 1);
    assert_eq!(body["checks"]["draining"]["status"], "ok");
    let redis = if crate::helpers::redis_url().is_some() { "ok" } else { "not_configured" };
    assert_eq!(body["checks"]["redis"]["status"], redis);
    assert_eq!(app.client.post(app.url("/health/ready")).send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn readiness_fails_while_redis_is_cut_and_recovers() {
    let Some(redis) = needs_redis() else { return };
    let (proxy, through) = FaultProxy::for_redis(&redis).await;
    let app = try_spawn(PluginsDir::with(&["hello"]), |config| config.redis_url = Some(through.into()))
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));
    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut().await;
    let body = eventually(Duration::from_secs(10), "readiness to see Redis gone", || async {
        let response = app.get("/health/ready").await;
        (response.status() == 503).then_some(response)
    })
    .await
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["redis"]["status"], "failed");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(app.get("/health/live").await.status(), 200, "the process itself is alive");

    proxy.restore();
    eventually(Duration::from_secs(15), "readiness to see Redis back", || async {
        (app.get("/health/ready").await.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_cut_and_metrics_still_answer() {
    if needs_python().is_none() {
        return;
    }
    let Some((app, proxy, _database)) = spawn_behind_database_proxy(&["hello"]).await else { return };
    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut().await;
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "failed");
    assert!(!body.to_string().contains(&proxy.address.to_string()), "no connection details leak: {body}");
    assert_eq!(Scrape::admin(&app).await.value("autoflow_database_up", &[]), 0.0);

    proxy.restore();
    eventually(Duration::from_secs(15), "readiness to see the database back", || async {
        (app.get("/health/ready").await.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cache_reads_are_counted_as_hits_and_misses() {
    if needs_python().is_none() {
        return;
    }
    let app = spawn_configured(&["test-cache"], |_| {}).await;
    let url = |key: &str| app.url(&format!("/api/test-cache/shared/{key}"));
    let before = Scrape::admin(&app).await;

    assert_eq!(app.client.get(url("absent")).send().await.unwrap().status(), 404);
    assert_eq!(app.client.put(url("present")).body("v").send().await.unwrap().status(), 204);
    assert_eq!(app.client.get(url("present")).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(url("present")).send().await.unwrap().status(), 200);

    let after = Scrape::admin(&app).await;
    let delta = |metric: &str| after.value(metric, &[]) - before.value(metric, &[]);
    assert_eq!(delta("autoflow_cache_hits_total"), 2.0);
    assert_eq!(delta("autoflow_cache_misses_total"), 1.0);
}
