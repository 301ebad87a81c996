//! Per-plugin limits, each proven by a hostile route that fails alone while its neighbours work.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{PluginsDir, TestApp, error_of, startup_error, try_spawn};
use autoflow_host::config::Config;

/// `hello` and `test-trap`, the latter's manifest given `limits` (TOML lines of a `[limits]` table).
async fn spawn_with_trap_limits(limits: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    let plugins = PluginsDir::with(&["hello", "test-trap"]);
    plugins.edit_manifest("test-trap", |text| format!("{text}\n[limits]\n{limits}\n"));
    try_spawn(plugins, configure).await.unwrap_or_else(|(e, _)| panic!("{e}"))
}

async fn neighbours_are_fine(app: &TestApp) {
    assert_eq!(app.get("/api/hello/world").await.status(), 200, "another plugin still serves");
    assert_eq!(app.get("/api/trap/ok").await.status(), 200, "the same plugin serves its next request");
}

#[tokio::test]
async fn allocating_past_the_memory_limit_fails_only_that_request() {
    let app = spawn_with_trap_limits("memory-mb = 16", |config| config.limits.plugin_memory_bytes = 64 << 20).await;

    let (status, error) = error_of(app.get("/api/trap/alloc").await).await;

    assert_eq!(status, 500);
    assert_eq!(error["code"], "plugin_memory_exceeded");
    assert!(error["message"].as_str().unwrap().contains("16 MiB"), "{error}");
    neighbours_are_fine(&app).await;
}

#[tokio::test]
async fn without_a_manifest_limit_the_hosts_memory_limit_applies() {
    let app = spawn_with_trap_limits("", |config| config.limits.plugin_memory_bytes = 32 << 20).await;

    let (status, error) = error_of(app.get("/api/trap/alloc").await).await;

    assert_eq!((status, error["code"].as_str().unwrap()), (500, "plugin_memory_exceeded"));
    assert!(error["message"].as_str().unwrap().contains("32 MiB"), "{error}");
}

#[tokio::test]
async fn deep_recursion_traps_cleanly() {
    let app = spawn_with_trap_limits("", |_| {}).await;

    let (status, error) = error_of(app.get("/api/trap/recurse").await).await;

    assert_eq!((status, error["code"].as_str().unwrap()), (500, "plugin_failed"));
    neighbours_are_fine(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_concurrency_limit_a_plugin_answers_503_with_retry_after() {
    let app = spawn_with_trap_limits("max-concurrency = 2", |config| {
        config.limits.queue_timeout = Duration::from_millis(100);
    })
    .await;

    let slow: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/trap/slow?ms=800"));
            tokio::spawn(async move { client.get(url).send().await.unwrap() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/api/hello/world").await.status(), 200, "other plugins keep their slots");

    let (mut served, mut busy) = (0, 0);
    for request in slow {
        let response = request.await.unwrap();
        match response.status().as_u16() {
            200 => served += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let (_, error) = error_of(response).await;
                assert_eq!(error["code"], "plugin_busy");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((served, busy), (2, 4));
}

#[tokio::test]
async fn an_oversized_response_is_a_502() {
    let app = spawn_with_trap_limits("", |config| config.limits.max_response_bytes = 1 << 20).await;

    let (status, error) = error_of(app.get("/api/trap/big-response?bytes=2000000").await).await;

    assert_eq!((status, error["code"].as_str().unwrap()), (502, "bad_plugin_response"));
    assert!(error["message"].as_str().unwrap().contains("exceeds the limit of 1048576 bytes"), "{error}");
    assert_eq!(app.get("/api/trap/big-response?bytes=1000").await.status(), 200);
}

#[tokio::test]
async fn a_manifest_timeout_shortens_the_deadline() {
    let app = spawn_with_trap_limits("timeout-ms = 200", |_| {}).await;

    let (status, error) = error_of(app.get("/api/trap/loop").await).await;

    assert_eq!(status, 504);
    assert!(error["message"].as_str().unwrap().contains("within 200ms"), "{error}");
    neighbours_are_fine(&app).await;
}

#[tokio::test]
async fn a_manifest_asking_for_more_than_the_host_allows_is_refused() {
    let plugins = PluginsDir::with(&["test-trap"]);
    plugins.edit_manifest("test-trap", |text| format!("{text}\n[limits]\nmemory-mb = 100000\n"));

    let error = startup_error(plugins).await;

    assert!(error.contains("test-trap/plugin.toml") && error.contains("above the host's maximum"), "{error}");
}

#[tokio::test]
async fn the_sandbox_grants_no_files_environment_or_sockets() {
    let app = spawn_with_trap_limits("", |_| {}).await;

    let probe: Value = app.get("/api/trap/probe").await.json().await.unwrap();

    for key in ["readRoot", "readEtcPasswd", "writeFile", "tcp"] {
        assert!(probe[key].as_str().unwrap().starts_with("denied"), "{key}: {probe}");
    }
    assert_eq!(probe["env"], 0, "no environment variables reach a plugin");
    assert_eq!(probe["args"], 0);
    assert_eq!(probe["clockWorks"], true, "clocks are allowed");
}

#[tokio::test]
async fn too_many_response_headers_from_a_plugin_are_a_502() {
    let app = spawn_with_trap_limits("", |_| {}).await;

    let (status, error) = error_of(app.get("/api/trap/many-headers?count=500").await).await;

    assert_eq!((status, error["code"].as_str().unwrap()), (502, "bad_plugin_response"));
    assert!(error["message"].as_str().unwrap().contains("501 headers"), "{error}");
    assert_eq!(app.get("/api/trap/many-headers?count=3").await.status(), 200);
}

#[tokio::test]
async fn a_request_with_too_many_headers_is_refused_and_the_server_carries_on() {
    let app = spawn_with_trap_limits("", |_| {}).await;
    let mut request = app.client.get(app.url("/api/hello/world"));
    for i in 0..200 {
        request = request.header(format!("x-flood-{i}"), "v");
    }

    let response = request.send().await.unwrap();

    assert_eq!(response.status(), 431);
    assert_eq!(app.get("/api/hello/world").await.status(), 200);
}
