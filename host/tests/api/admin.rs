//! The admin API: its guard, plugin listing, explicit reloads.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_missing_or_wrong_token_is_a_401_with_www_authenticate() {
    let app = spawn_app().await;

    for request in [
        app.client.get(app.url("/admin/plugins")),
        app.client.get(app.url("/admin/plugins")).bearer_auth("wrong"),
        app.client.post(app.url("/admin/plugins/hello/reload")).bearer_auth("test-admin-toke"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with(r#"Bearer realm="autoflow""#), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn the_listing_shows_each_plugins_build_routes_and_status() {
    let app = spawn_app().await;

    let response = app.admin(Method::GET, "/admin/plugins").send().await.unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let hello = &body["items"][0];
    assert_eq!(hello["name"], "hello");
    assert_eq!(hello["status"], "serving");
    assert_eq!(hello["version"], "0.1.0");
    assert_eq!(hello["contentHash"].as_str().unwrap().len(), 64);
    assert_eq!(hello["kind"], "feature");
    assert_eq!(
        hello["routes"][0],
        serde_json::json!({ "method": "GET", "path": "/api/hello/{name}", "access": "public" })
    );
    assert_eq!(hello["lastError"], Value::Null);
    assert!(hello["loadedAt"].as_str().is_some());
}

#[tokio::test]
async fn the_listing_shows_what_each_plugin_is_granted_and_the_limits_it_runs_under() {
    let app = spawn_app_with(&["hello", "users", "notes"]).await;

    let body: Value = app.admin(Method::GET, "/admin/plugins").send().await.unwrap().json().await.unwrap();

    let plugin = |name: &str| body["items"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    let users = plugin("users");
    let listing =
        users["routes"].as_array().unwrap().iter().find(|r| r["method"] == "GET" && r["path"] == "/api/users");
    assert_eq!(listing.unwrap()["access"], "permissions");
    assert_eq!(listing.unwrap()["permissions"], serde_json::json!(["admin", "read:users"]));
    assert_eq!(users["capabilities"]["identity"], true);
    assert_eq!(users["capabilities"]["queue"], serde_json::json!(["send-email"]));
    assert_eq!(users["capabilities"]["crypto"], false);
    let notes = plugin("notes");
    assert!(notes["capabilities"]["records"].as_object().is_some_and(|records| !records.is_empty()), "{notes}");
    let limits = &plugin("hello")["limits"];
    assert!(limits["memoryMb"].as_u64().unwrap() > 0, "{limits}");
    assert!(limits["timeoutMs"].as_u64().unwrap() > 0, "{limits}");
    assert_eq!(limits["reuse"], 1);
}

#[tokio::test]
async fn a_plugin_name_that_is_not_a_name_is_a_400() {
    let app = spawn_app().await;

    let response = app.admin(Method::POST, "/admin/plugins/..%2Fetc/reload").send().await.unwrap();

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("plugin name"), "{body}");
}

#[tokio::test]
async fn reloading_an_unknown_plugin_is_a_404_and_an_unchanged_one_says_so() {
    let app = spawn_app().await;

    let unknown = app.admin(Method::POST, "/admin/plugins/nothing/reload").send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let unchanged = app.admin(Method::POST, "/admin/plugins/hello/reload").send().await.unwrap();
    assert_eq!(unchanged.status(), 200);
    let body: Value = unchanged.json().await.unwrap();
    assert_eq!(body["outcome"], "unchanged");
    assert_eq!(body["plugin"]["status"], "serving");
}
