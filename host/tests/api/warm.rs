//! Warm instances (`[limits] reuse`): an instance serves one caller's requests in sequence and
//! never another caller's; a failed call, an idle spell and a reload each drop it. `test-warm`
//! keeps a counter and its first caller in globals, so each answer shows which instance served it.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{PluginsDir, TestApp, eventually, try_spawn};

async fn spawn(configure: impl FnOnce(&mut autoflow_host::config::Config), manifest: fn(String) -> String) -> TestApp {
    let plugins = PluginsDir::with(&["test-warm"]);
    plugins.edit_manifest("test-warm", manifest);
    match try_spawn(plugins, configure).await {
        Ok(app) => app,
        Err((error, _)) => panic!("the host failed to start: {error}"),
    }
}

async fn spawn_default() -> TestApp {
    spawn(|_| {}, |text| text).await
}

/// What `GET /api/warm/count` answers: how many requests its instance has served, whom it served
/// first and whom it serves now (user ids; `null` for anonymous).
async fn count(app: &TestApp, token: Option<&str>) -> Value {
    let response = app.get_as("/api/warm/count", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn served(app: &TestApp, token: Option<&str>) -> u64 {
    count(app, token).await["served"].as_u64().unwrap()
}

#[tokio::test]
async fn a_warm_instance_serves_one_callers_requests_and_never_anothers() {
    let app = spawn_default().await;
    let (alice, alice_token) = app.user_with_token("alice@example.com", &[]).await;
    let (bob, bob_token) = app.user_with_token("bob@example.com", &[]).await;

    for expected in 1..=3 {
        let answer = count(&app, Some(&alice_token)).await;
        assert_eq!(answer["served"], expected, "alice's requests share one instance: {answer}");
        assert_eq!(answer["firstCaller"], alice.id.as_str());
    }
    let answer = count(&app, Some(&bob_token)).await;
    assert_eq!(answer["served"], 1, "bob never gets alice's instance: {answer}");
    assert_eq!(answer["firstCaller"], bob.id.as_str());
    let answer = count(&app, None).await;
    assert_eq!(answer["served"], 1, "anonymous requests get their own: {answer}");
    assert_eq!(answer["firstCaller"], Value::Null);
    assert_eq!(served(&app, None).await, 2, "anonymous requests share theirs");
    assert_eq!(served(&app, Some(&alice_token)).await, 4, "alice's instance waited for her");
}

#[tokio::test]
async fn a_plugin_that_does_not_opt_in_gets_a_fresh_instance_per_request() {
    let app = spawn(|_| {}, |text| text.replace("reuse = 1000", "reuse = 1")).await;
    for _ in 0..3 {
        assert_eq!(served(&app, None).await, 1);
    }
}

#[tokio::test]
async fn an_instance_serves_at_most_reuse_requests() {
    let app = spawn(|_| {}, |text| text.replace("reuse = 1000", "reuse = 3")).await;
    let mut counts = Vec::new();
    for _ in 0..7 {
        counts.push(served(&app, None).await);
    }
    assert_eq!(counts, [1, 2, 3, 1, 2, 3, 1]);
}

#[tokio::test]
async fn a_failed_call_discards_its_instance_and_a_plugin_error_does_not() {
    let app = spawn_default().await;
    let (_, token) = app.user_with_token("carol@example.com", &[]).await;
    let call = |path: &'static str| app.request_as(Method::GET, path, &token).send();

    assert_eq!(served(&app, Some(&token)).await, 1);
    assert_eq!(call("/api/warm/refuse").await.unwrap().status(), 409);
    assert_eq!(served(&app, Some(&token)).await, 3, "an error answered by the plugin keeps the instance");

    assert_eq!(call("/api/warm/panic").await.unwrap().status(), 500);
    assert_eq!(served(&app, Some(&token)).await, 1, "after a trap the next request gets a fresh instance");

    assert_eq!(served(&app, Some(&token)).await, 2);
    assert_eq!(call("/api/warm/slow").await.unwrap().status(), 504);
    assert_eq!(served(&app, Some(&token)).await, 1, "after a timeout the next request gets a fresh instance");
}

#[tokio::test]
async fn an_idle_instance_is_dropped() {
    let app = spawn(|config| config.limits.warm_idle = Duration::from_millis(200), |text| text).await;
    assert_eq!(served(&app, None).await, 1);
    assert_eq!(served(&app, None).await, 2);
    let plugin = app.live.registry().find("test-warm").cloned().unwrap();
    eventually(Duration::from_secs(3), "the idle instance to be swept", || async {
        (plugin.warm.parked() == 0).then_some(())
    })
    .await;
    assert_eq!(served(&app, None).await, 1);
}

#[tokio::test]
async fn a_reload_drops_the_warm_instances_of_the_old_build() {
    let app = spawn_default().await;
    assert_eq!(served(&app, None).await, 1);
    assert_eq!(served(&app, None).await, 2);
    let old = app.live.registry().find("test-warm").cloned().unwrap();
    assert_eq!(old.warm.parked(), 1);

    app.plugins.edit_manifest("test-warm", |text| text.replace("version = \"0.1.0\"", "version = \"0.2.0\""));
    let response = app.admin(Method::POST, "/admin/plugins/test-warm/reload").send().await.unwrap();
    assert_eq!(response.status(), 200);

    assert_eq!(old.warm.parked(), 0, "the replaced build keeps no instance");
    assert_eq!(served(&app, None).await, 1, "the new build starts fresh");
}

#[tokio::test]
async fn callers_never_share_an_instance_under_concurrency() {
    const USERS: usize = 8;
    const REQUESTS: u64 = 25;
    let app = spawn_default().await;
    let mut callers = vec![(None, None)];
    for n in 0..USERS {
        let (user, token) = app.user_with_token(&format!("user{n}@example.com"), &[]).await;
        callers.push((Some(user.id.to_string()), Some(token)));
    }

    // Each caller sends its requests on two lanes at once, every caller at the same time.
    let lanes = callers.iter().flat_map(|caller| [caller, caller]).map(|(id, token)| async {
        let mut counts = Vec::new();
        for _ in 0..REQUESTS {
            let answer = count(&app, token.as_deref()).await;
            let id = id.as_deref().map_or(Value::Null, Value::from);
            assert_eq!(answer["caller"], id);
            assert_eq!(answer["firstCaller"], id, "a request ran in an instance that served another caller");
            counts.push(answer["served"].as_u64().unwrap());
        }
        counts
    });
    let counts = futures_util::future::join_all(lanes).await;

    let reused = counts.iter().flatten().filter(|&&served| served > 1).count();
    assert!(reused > counts.len() * REQUESTS as usize / 2, "most requests ran warm: {counts:?}");
}
