//! A misbehaving plugin fails its own request and nothing else.

use serde_json::Value;

use std::time::Duration;

use crate::helpers::{TestApp, error_of, spawn_app_with, spawn_configured};

async fn spawn() -> TestApp {
    spawn_app_with(&["hello", "test-trap"]).await
}

#[tokio::test]
async fn a_panicking_plugin_fails_only_its_request() {
    let app = spawn().await;

    let response = app.get("/api/trap/panic").await;

    assert_eq!(response.status(), 500);
    let error = error_of(response).await.1;
    assert_eq!(error["code"], "plugin_failed");
    assert_eq!(error["message"], "plugin 'test-trap' failed while handling the request");

    assert_eq!(app.get("/api/trap/ok").await.status(), 200, "the same plugin serves its next request");
    assert_eq!(app.get("/api/hello/world").await.status(), 200, "other plugins are unaffected");
}

#[tokio::test]
async fn panics_served_concurrently_with_good_requests_do_not_disturb_them() {
    let app = spawn().await;

    let requests = (0..40).map(|i| {
        let (client, address) = (app.client.clone(), app.address.clone());
        let path = if i % 2 == 0 { "/api/trap/panic" } else { "/api/hello/world" };
        async move { (path, client.get(format!("{address}{path}")).send().await.unwrap().status().as_u16()) }
    });
    let results = run_concurrently(requests).await;

    for (path, status) in results {
        let expected = if path == "/api/trap/panic" { 500 } else { 200 };
        assert_eq!(status, expected, "{path}");
    }
}

// One thread runs both the server and this client: the neighbour is only served if the loop yields.
#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline_while_other_requests_are_served() {
    let app = spawn_configured(&["hello", "test-trap"], |config| {
        config.limits.request_timeout = Duration::from_millis(500);
    })
    .await;

    let looping = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/api/trap/loop"));
        async move { client.get(url).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Served while the loop is still spinning: a running plugin yields instead of holding its thread.
    for _ in 0..5 {
        assert_eq!(app.get("/api/hello/world").await.status(), 200);
    }
    assert!(!looping.is_finished(), "the neighbour's requests finished before the loop's deadline");

    let response = looping.await.unwrap();
    assert_eq!(response.status(), 504);
    let error = error_of(response).await.1;
    assert_eq!(error["code"], "plugin_timeout");
    assert_eq!(error["message"], "plugin 'test-trap' did not answer within 500ms");
    assert_eq!(app.get("/api/trap/ok").await.status(), 200, "the plugin serves its next request");
}

#[tokio::test]
async fn an_invalid_status_from_a_plugin_is_a_502() {
    let app = spawn().await;

    let response = app.get("/api/trap/bad-status").await;

    assert_eq!(response.status(), 502);
    let error = error_of(response).await.1;
    assert_eq!(error["code"], "bad_plugin_response");
    assert!(error["message"].as_str().unwrap().contains("status 42"), "{error}");
}

#[tokio::test]
async fn a_malformed_header_from_a_plugin_is_a_502() {
    let app = spawn().await;

    let response = app.get("/api/trap/bad-header").await;

    assert_eq!(response.status(), 502);
    let error = error_of(response).await.1;
    assert_eq!(error["code"], "bad_plugin_response");
    assert!(error["message"].as_str().unwrap().contains("header name"), "{error}");
}

#[tokio::test]
async fn a_single_value_header_sent_twice_by_a_plugin_is_a_502_naming_it() {
    let app = spawn().await;

    let response = app.get("/api/trap/duplicate-header").await;

    assert_eq!(response.status(), 502);
    let error = error_of(response).await.1;
    assert_eq!(error["code"], "bad_plugin_response");
    assert!(error["message"].as_str().unwrap().contains("header `content-type` twice"), "{error}");
}

#[tokio::test]
async fn a_header_set_again_by_the_sdk_replaces_the_first() {
    let app = spawn().await;

    let response = app.get("/api/trap/problem").await;

    assert_eq!(response.status(), 400);
    let types: Vec<_> =
        response.headers().get_all("content-type").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(types, ["application/problem+json"], "one content-type, the one set last");
}

#[tokio::test]
async fn an_internal_error_is_a_500_that_does_not_leak_the_plugins_message() {
    let app = spawn().await;

    let response = app.get("/api/trap/internal").await;

    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(!text.contains("secret"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "internal");
    assert_eq!(body["error"]["message"], "internal error");
}

/// Runs the futures as concurrent tasks and collects their outputs in order.
async fn run_concurrently<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}
