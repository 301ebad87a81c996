//! The cache capability as plugins use it (through `test-cache`): keys namespaced by plugin and
//! user, TTLs, atomic counters, cache-aside, limits and the grant.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, error_of, spawn_app_with, spawn_configured};

async fn call(app: &TestApp, token: Option<&str>, method: Method, path: &str, body: Vec<u8>) -> reqwest::Response {
    let request = app.client.request(method, app.url(&format!("/api/test-cache/{path}"))).body(body);
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn shared_keys_round_trip_under_the_plugins_namespace() {
    let app = spawn_app_with(&["test-cache"]).await;

    assert_eq!(call(&app, None, Method::PUT, "shared/greeting", b"hi".to_vec()).await.status(), 204);
    let read = call(&app, None, Method::GET, "shared/greeting", vec![]).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"hi");
    assert_eq!(app.auth.cache.get("plugins/test-cache/s/greeting").await.as_deref(), Some(&b"hi"[..]));

    assert_eq!(call(&app, None, Method::DELETE, "shared/greeting", vec![]).await.status(), 204);
    assert_eq!(call(&app, None, Method::GET, "shared/greeting", vec![]).await.status(), 404);
}

#[tokio::test]
async fn a_user_never_sees_another_users_keys_and_anonymous_callers_have_none() {
    let app = spawn_app_with(&["test-cache"]).await;
    let (alice, alice_token) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob_token) = app.user_with_token("bob@example.com", &[]).await;

    call(&app, Some(&alice_token), Method::PUT, "user/draft", b"alice's".to_vec()).await;

    let own = call(&app, Some(&alice_token), Method::GET, "user/draft", vec![]).await;
    assert_eq!(own.bytes().await.unwrap().as_ref(), b"alice's");
    assert_eq!(call(&app, Some(&bob_token), Method::GET, "user/draft", vec![]).await.status(), 404);
    assert_eq!(call(&app, None, Method::GET, "shared/draft", vec![]).await.status(), 404, "scopes are apart");
    let key = format!("plugins/test-cache/u/{}/draft", alice.id);
    assert_eq!(app.auth.cache.get(&key).await.as_deref(), Some(&b"alice's"[..]));
    let (status, error) = error_of(call(&app, None, Method::GET, "user/draft", vec![]).await).await;
    assert_eq!((status, error["code"].as_str()), (401, Some("unauthorized")));
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    let app = spawn_app_with(&["test-cache"]).await;

    call(&app, None, Method::PUT, "shared/brief?ttl-ms=300", b"x".to_vec()).await;
    call(&app, None, Method::PUT, "shared/lasting", b"y".to_vec()).await;
    assert_eq!(call(&app, None, Method::GET, "shared/brief", vec![]).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(800)).await;

    assert_eq!(call(&app, None, Method::GET, "shared/brief", vec![]).await.status(), 404);
    assert_eq!(call(&app, None, Method::GET, "shared/lasting", vec![]).await.status(), 200);
}

#[tokio::test]
async fn concurrent_increments_are_atomic_and_cache_aside_computes_once() {
    let app = spawn_app_with(&["test-cache"]).await;

    let increments = (0..20).map(|_| call(&app, None, Method::POST, "shared/hits/increment", vec![]));
    for response in futures_util::future::join_all(increments).await {
        assert_eq!(response.status(), 200);
    }
    let total: Value = call(&app, None, Method::POST, "shared/hits/increment?by=0", vec![]).await.json().await.unwrap();
    assert_eq!(total["value"], 20);

    for _ in 0..3 {
        let value: Value =
            call(&app, None, Method::GET, "shared/report/cache-aside", vec![]).await.json().await.unwrap();
        assert_eq!(value["value"], 1, "the value is computed on the first miss only");
    }
}

#[tokio::test]
async fn oversized_values_and_keys_are_refused() {
    let app = spawn_app_with(&["test-cache"]).await;

    let (status, error) = error_of(call(&app, None, Method::PUT, "shared/big", vec![b'x'; 600 * 1024]).await).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")));
    assert!(error["message"].as_str().unwrap().contains("at most 524288 bytes"), "{error}");
    let long_key = "k".repeat(600);
    let (status, _) = error_of(call(&app, None, Method::PUT, &format!("shared/{long_key}"), b"x".to_vec()).await).await;
    assert_eq!(status, 400);
    assert_eq!(call(&app, None, Method::GET, "shared/big", vec![]).await.status(), 404, "nothing was stored");
}

#[tokio::test]
async fn an_increment_past_the_integer_range_or_of_a_non_integer_is_invalid_and_changes_nothing() {
    let app = spawn_app_with(&["test-cache"]).await;
    let increment = |key: &'static str, by: i64| {
        let app = &app;
        async move { call(app, None, Method::POST, &format!("shared/{key}/increment?by={by}"), vec![]).await }
    };

    let first: Value = increment("edge", i64::MAX - 1).await.json().await.unwrap();
    assert_eq!(first["value"], i64::MAX - 1);
    for by in [2, i64::MAX] {
        let (status, error) = error_of(increment("edge", by).await).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "by {by}: {error}");
    }
    let low: Value = increment("low", i64::MIN).await.json().await.unwrap();
    assert_eq!(low["value"], i64::MIN);
    let (status, _) = error_of(increment("low", -1).await).await;
    assert_eq!(status, 400, "under the range too");
    let unchanged: Value = increment("edge", 0).await.json().await.unwrap();
    assert_eq!(unchanged["value"], i64::MAX - 1, "a refused increment leaves the counter as it was");

    call(&app, None, Method::PUT, "shared/text", b"not a number".to_vec()).await;
    let (status, error) = error_of(increment("text", 1).await).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "{error}");
    let kept = call(&app, None, Method::GET, "shared/text", vec![]).await;
    assert_eq!(kept.bytes().await.unwrap().as_ref(), b"not a number");
}

#[tokio::test]
async fn a_plugin_fills_only_its_own_quota_and_gets_room_back_as_entries_go() {
    let app = spawn_configured(&["test-cache"], |config| config.limits.plugin_cache_bytes = 8 * 1024).await;
    app.auth.cache.set("host/kept", b"the host's own entry", None).await;
    let kib = vec![b'x'; 1024];
    let put = |key: String, ttl: Option<u64>| {
        let (app, kib) = (&app, kib.clone());
        async move {
            let path = match ttl {
                Some(ttl) => format!("shared/{key}?ttl-ms={ttl}"),
                None => format!("shared/{key}"),
            };
            call(app, None, Method::PUT, &path, kib).await
        }
    };

    let mut stored = 0;
    for n in 0..20 {
        let response = put(format!("fill-{n}"), None).await;
        if response.status() != 204 {
            let (status, error) = error_of(response).await;
            assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "{error}");
            assert!(error["message"].as_str().unwrap().contains("quota"), "{error}");
            break;
        }
        stored += 1;
    }
    assert!((5..=7).contains(&stored), "{stored} KiB values fit in an 8 KiB quota");
    // Fill what is left with small values, so that not even a counter fits.
    for n in 0..100 {
        if call(&app, None, Method::PUT, &format!("shared/small-{n}"), vec![b'y'; 16]).await.status() != 204 {
            break;
        }
    }
    let (status, error) = error_of(call(&app, None, Method::POST, "shared/new-counter/increment", vec![]).await).await;
    assert_eq!(status, 400, "a new counter needs room too: {error}");
    assert!(error["message"].as_str().unwrap().contains("quota"), "{error}");
    assert_eq!(put("fill-0".into(), None).await.status(), 204, "an entry can be replaced in its own room");

    assert_eq!(call(&app, None, Method::DELETE, "shared/fill-0", vec![]).await.status(), 204);
    assert_eq!(put("after-delete".into(), Some(300)).await.status(), 204, "a deleted entry gave its room back");
    // Expired entries are swept within a second or two (Redis: on the next write; in-process: by a
    // timer wheel), and their room is given back.
    crate::helpers::eventually(Duration::from_secs(5), "an expired entry to give its room back", || async {
        (put("after-expiry".into(), None).await.status() == 204).then_some(())
    })
    .await;
    assert_eq!(app.auth.cache.get("host/kept").await.as_deref(), Some(&b"the host's own entry"[..]));
}
