//! Hot reload: builds published while the host serves are swapped in without failing a request;
//! broken builds leave the previous one serving and are reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{PluginsDir, TestApp, TestDatabase, eventually, test_config, try_spawn};
use autoflow_host::plugins::WATCH_DEBOUNCE;
use autoflow_host::runtime::ArtifactSource;
use autoflow_host::startup::Application;

/// How long a published build may take to serve; the debounce is 150 ms and a cached reload a
/// few milliseconds, so this is generous on purpose for a loaded CI machine.
const SWITCH_BOUND: Duration = Duration::from_secs(5);

async fn spawn_watching(plugins: PluginsDir) -> TestApp {
    try_spawn(plugins, |config| config.watch = true).await.unwrap_or_else(|(e, _)| panic!("{e}"))
}

fn published_hello() -> PluginsDir {
    let plugins = PluginsDir::new();
    plugins.publish_built("hello", "hello");
    plugins
}

async fn wait_for_greeting(app: &TestApp, expected: &str) -> Duration {
    let started = Instant::now();
    eventually(SWITCH_BOUND, &format!("the greeting {expected:?}"), || async {
        (app.greeting("x").await.as_deref() == Ok(expected)).then_some(())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn a_new_build_is_picked_up_by_the_watcher_and_shown_by_the_admin_api() {
    let app = spawn_watching(published_hello()).await;
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!");

    app.plugins.publish_built("test-hello-v2", "hello");

    wait_for_greeting(&app, "Howdy, x!").await;
    let view = app.admin_plugin("hello").await;
    assert_eq!(view["version"], "2.0.0");
    assert_eq!(view["status"], "serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_fails_no_request() {
    let app = Arc::new(spawn_watching(published_hello()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match app.greeting("x").await {
                        Ok(message) if message == "Hello, x!" || message == "Howdy, x!" => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    let mut switch_times = Vec::new();
    for round in 0..12 {
        let (build, expected) = if round % 2 == 0 { ("test-hello-v2", "Howdy, x!") } else { ("hello", "Hello, x!") };
        app.plugins.publish_built(build, "hello");
        switch_times.push(wait_for_greeting(&app, expected).await);
    }
    stop.store(true, Ordering::Relaxed);

    let (mut served, mut failures) = (0, Vec::new());
    for client in clients {
        let (ok, failed) = client.await.unwrap();
        served += ok;
        failures.extend(failed);
    }
    switch_times.sort();
    eprintln!(
        "reload under load: {served} requests served, {} failed; switch median {:?}, max {:?}",
        failures.len(),
        switch_times[switch_times.len() / 2],
        switch_times.last().unwrap()
    );
    assert!(failures.is_empty(), "failed requests during reloads: {failures:?}");
    assert!(served > 100, "the clients kept the host busy ({served} requests)");
}

#[tokio::test]
async fn a_broken_build_keeps_the_previous_one_serving_and_is_reported() {
    let app = spawn_watching(published_hello()).await;
    let manifest = std::fs::read(app.plugins.path().join("hello/plugin.toml")).unwrap();

    app.plugins.publish_raw("hello", &manifest, b"not a component");

    let view = eventually(SWITCH_BOUND, "the failed reload to be reported", || async {
        let view = app.admin_plugin("hello").await;
        (view["status"] == "serving-previous-build").then_some(view)
    })
    .await;
    assert!(view["lastError"]["message"].as_str().unwrap().contains("not a valid wasm component"), "{view}");
    assert_eq!(view["version"], "0.1.0");
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!", "the previous build keeps serving");

    let response = app.admin(Method::POST, "/admin/plugins/hello/reload").send().await.unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "reload_failed");

    app.plugins.publish_raw("hello", b"name = \"hello\"\nversion = ", b"irrelevant");
    eventually(SWITCH_BOUND, "the bad manifest to be reported", || async {
        let view = app.admin_plugin("hello").await;
        view["lastError"]["message"].as_str().is_some_and(|m| m.contains("invalid manifest")).then_some(())
    })
    .await;
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!");

    app.plugins.publish_built("hello", "hello");
    let view = eventually(SWITCH_BOUND, "a good build to clear the error", || async {
        let view = app.admin_plugin("hello").await;
        (view["status"] == "serving").then_some(view)
    })
    .await;
    assert_eq!(view["lastError"], Value::Null);
}

#[tokio::test]
async fn a_plugin_that_appears_is_loaded_and_one_that_disappears_is_unloaded() {
    let app = spawn_watching(published_hello()).await;
    assert_eq!(app.get("/api/trap/ok").await.status(), 404);

    app.plugins.publish_built("test-trap", "test-trap");
    eventually(SWITCH_BOUND, "test-trap to serve", || async {
        (app.get("/api/trap/ok").await.status() == 200).then_some(())
    })
    .await;

    app.plugins.unpublish("test-trap");
    eventually(SWITCH_BOUND, "test-trap to be unloaded", || async {
        (app.get("/api/trap/ok").await.status() == 404).then_some(())
    })
    .await;
    assert_eq!(app.admin_plugin("test-trap").await, Value::Null);
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!");
}

#[tokio::test]
async fn a_new_plugin_whose_routes_conflict_is_refused_and_reported() {
    let app = spawn_watching(published_hello()).await;

    app.plugins.publish_built("hello", "hello-twin");

    let view = eventually(SWITCH_BOUND, "the conflict to be reported", || async {
        let view = app.admin_plugin("hello-twin").await;
        (view["status"] == "failed").then_some(view)
    })
    .await;
    assert!(view["lastError"]["message"].as_str().unwrap().contains("claimed by both plugin 'hello'"), "{view}");
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!");
}

#[tokio::test]
async fn a_storm_of_writes_loads_far_fewer_builds_than_it_writes() {
    let app = spawn_watching(published_hello()).await;

    // The storm ends on the build that is not serving, so the greeting says when it has settled.
    for round in 0..30 {
        let build = if round % 2 == 0 { "hello" } else { "test-hello-v2" };
        app.plugins.publish_built(build, "hello");
    }
    wait_for_greeting(&app, "Howdy, x!").await;
    // A reload queued behind the last one may still run: count once the count stops moving.
    let mut loaded = app.live.builds_loaded();
    loop {
        tokio::time::sleep(WATCH_DEBOUNCE * 3).await;
        let now = app.live.builds_loaded();
        if now == loaded {
            break;
        }
        loaded = now;
    }

    assert!((1..=4).contains(&loaded), "30 publishes in a burst loaded {loaded} builds");
}

#[tokio::test]
async fn a_restart_with_unchanged_plugins_reads_compiled_artifacts_from_the_cache() {
    let database = TestDatabase::create().await;
    let data = tempfile::TempDir::new().unwrap();
    let plugins = PluginsDir::with(&["hello"]);
    let artifact_of = |app: &Application| app.plugins().registry().find("hello").unwrap().artifact;

    let first = Application::build(test_config(plugins.path(), data.path(), &database)).await.unwrap();
    assert_eq!(artifact_of(&first), ArtifactSource::Compiled);
    first.database().close().await;
    drop(first);

    let second = Application::build(test_config(plugins.path(), data.path(), &database)).await.unwrap();
    assert_eq!(artifact_of(&second), ArtifactSource::Cached);
}

#[tokio::test]
async fn an_idle_host_with_every_example_plugin_loads_each_once_and_then_does_nothing() {
    let examples = crate::helpers::example_plugins();
    assert!(examples.len() >= 7, "every example plugin is built: {examples:?}");
    let names: Vec<&str> = examples.iter().map(String::as_str).collect();
    let app = spawn_watching(PluginsDir::with(&names)).await;
    let loaded_at: Vec<Value> = {
        let mut views = Vec::new();
        for name in &names {
            views.push(app.admin_plugin(name).await["loadedAt"].clone());
        }
        views
    };

    // The host's own reads of plugin.toml and plugin.wasm used to come back as file events, and
    // each reload read the files again: some plugins reloaded about six times a second.
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(app.live.builds_loaded(), 0, "an idle host read no build after start-up");
    for (name, before) in names.iter().zip(&loaded_at) {
        assert_eq!(&app.admin_plugin(name).await["loadedAt"], before, "{name} was not reloaded");
    }
}
