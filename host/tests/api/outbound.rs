//! Outbound HTTP: only to the hosts a manifest allows, bounded by the plugin's timeout; a plugin
//! importing wasi:http without the grant is refused at load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;

use crate::helpers::{PluginsDir, TestApp, startup_error, try_spawn};

/// A real HTTP server on loopback answering `GET /ping` after `delay`; counts the requests it got.
async fn serve(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/ping",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(delay).await;
                "pong"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, hits)
}

/// `test-trap` with its outbound-hosts (and extra manifest lines) replaced.
async fn spawn_trap(outbound_hosts: &str, extra: &str) -> TestApp {
    let plugins = PluginsDir::with(&["test-trap"]);
    plugins.edit_manifest("test-trap", |text| {
        format!("{}\n{extra}\n", text.replace("[\"allowed.invalid\"]", outbound_hosts))
    });
    try_spawn(plugins, |_| {}).await.unwrap_or_else(|(e, _)| panic!("{e}"))
}

async fn fetch(app: &TestApp, url: &str) -> (u16, Value) {
    let response = app.get(&format!("/api/trap/fetch?url={url}")).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_allowed_host_is_reached_and_any_other_is_refused_inside_the_plugin() {
    let (allowed, _) = serve(Duration::ZERO).await;
    let (other, other_hits) = serve(Duration::ZERO).await;
    let app = spawn_trap(&format!("[\"{allowed}\"]"), "").await;

    let (status, body) = fetch(&app, &format!("http://{allowed}/ping")).await;
    assert_eq!((status, body["status"].as_u64(), body["body"].as_str()), (200, Some(200), Some("pong")), "{body}");

    let (status, body) = fetch(&app, &format!("http://{other}/ping")).await;
    assert_eq!(status, 200, "the plugin itself handles the refusal");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&format!("requests to {other} are not allowed")), "{body}");
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "a refused request never leaves the host");
}

#[tokio::test]
async fn a_slow_external_service_is_cut_off_at_the_plugins_timeout() {
    let (slow, _) = serve(Duration::from_secs(20)).await;
    let app = spawn_trap(&format!("[\"{slow}\"]"), "[limits]\ntimeout-ms = 500").await;

    let started = Instant::now();
    let (status, body) = fetch(&app, &format!("http://{slow}/ping")).await;

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let timed_out_in_plugin = status == 200 && body["error"].as_str().is_some_and(|e| e.contains("Timeout"));
    let timed_out_in_host = status == 504 && body["error"]["code"] == "plugin_timeout";
    assert!(timed_out_in_plugin || timed_out_in_host, "{status} {body}");
}

#[tokio::test]
async fn a_plugin_importing_outbound_http_without_the_grant_is_refused_at_load() {
    let plugins = PluginsDir::with(&["test-trap"]);
    plugins.edit_manifest("test-trap", |text| text.replace("outbound-hosts = [\"allowed.invalid\"]\n", ""));

    let error = startup_error(plugins).await;

    assert!(error.contains("plugin 'test-trap' imports `wasi:http/outgoing-handler"), "{error}");
    assert!(error.contains("does not grant it") && error.contains("outbound-hosts"), "{error}");
}

#[tokio::test]
async fn an_outbound_host_written_as_a_url_is_refused_at_load_naming_the_file_and_the_fix() {
    let plugins = PluginsDir::with(&["test-trap"]);
    plugins.edit_manifest("test-trap", |text| text.replace("[\"allowed.invalid\"]", "[\"http://127.0.0.1:8765/\"]"));

    let error = startup_error(plugins).await;

    assert!(error.contains("test-trap/plugin.toml"), "{error}");
    assert!(error.contains("`http://127.0.0.1:8765/` is not `host` or `host:port`: write `127.0.0.1:8765`"), "{error}");
}

#[tokio::test]
async fn an_operator_setting_that_gives_a_url_as_outbound_host_is_refused_at_load() {
    let plugins = PluginsDir::with(&["test-tasks"]);
    let refused = try_spawn(plugins, |config| {
        config
            .plugin_overrides
            .insert("AUTOFLOW_PLUGIN_TEST_TASKS__FETCH_HOSTS".into(), "https://api.example.com".into());
    })
    .await;

    let Err((error, _)) = refused else { panic!("the host started with an outbound host that never matches") };
    let error = error.to_string();
    assert!(error.contains("(from setting `fetch-hosts`, AUTOFLOW_PLUGIN_TEST_TASKS__FETCH_HOSTS)"), "{error}");
    assert!(error.contains("write `api.example.com`"), "{error}");
}
