//! The `notes` example plugin end to end: each user's own notes over records, a per-user create
//! rate limit in the cache, limits from `[config]`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, spawn_app_with, spawn_configured};

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let request = app.request_as(method, path, token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_user_creates_reads_updates_lists_and_deletes_their_notes() {
    let app = spawn_app_with(&["notes"]).await;
    let (_, token) = app.user_with_token("writer@example.com", &[]).await;

    let created = send(&app, &token, Method::POST, "/api/notes", Some(json!({ "title": "  Groceries " }))).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(created.headers()["etag"], "\"1\"");
    let note: Value = created.json().await.unwrap();
    assert_eq!(location, format!("/api/notes/{}", note["id"].as_str().unwrap()));
    assert_eq!(
        (note["title"].as_str(), note["body"].as_str(), note["pinned"].as_bool()),
        (Some("Groceries"), Some(""), Some(false))
    );

    let read: Value = send(&app, &token, Method::GET, &location, None).await.json().await.unwrap();
    assert_eq!(read, note);

    let patched = send(&app, &token, Method::PATCH, &location, Some(json!({ "pinned": true, "body": "milk" }))).await;
    assert_eq!((patched.status().as_u16(), patched.headers()["etag"].to_str().unwrap()), (200, "\"2\""));
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (patched["title"].as_str(), patched["body"].as_str(), patched["pinned"].as_bool()),
        (Some("Groceries"), Some("milk"), Some(true))
    );

    for title in ["Two", "Three"] {
        send(&app, &token, Method::POST, "/api/notes", Some(json!({ "title": title }))).await;
    }
    let first: Value = send(&app, &token, Method::GET, "/api/notes?limit=2", None).await.json().await.unwrap();
    let cursor = first["nextCursor"].as_str().unwrap();
    let rest: Value = send(&app, &token, Method::GET, &format!("/api/notes?limit=2&cursor={cursor}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len() + rest["items"].as_array().unwrap().len(), 3);
    assert!(rest["nextCursor"].is_null());

    assert_eq!(send(&app, &token, Method::DELETE, &location, None).await.status(), 204);
    assert_eq!(send(&app, &token, Method::GET, &location, None).await.status(), 404);
}

#[tokio::test]
async fn another_users_notes_are_not_found_on_every_route() {
    let app = spawn_app_with(&["notes"]).await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &[]).await;
    let note: Value =
        send(&app, &alice, Method::POST, "/api/notes", Some(json!({ "title": "private" }))).await.json().await.unwrap();
    let path = format!("/api/notes/{}", note["id"].as_str().unwrap());

    let listed: Value = send(&app, &bob, Method::GET, "/api/notes", None).await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
    for (method, body) in
        [(Method::GET, None), (Method::PATCH, Some(json!({ "title": "mine now" }))), (Method::DELETE, None)]
    {
        let (status, error) = error_of(send(&app, &bob, method.clone(), &path, body).await).await;
        assert_eq!((status, error["code"].as_str()), (404, Some("not_found")), "{method}");
    }
    let still: Value = send(&app, &alice, Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!((still["title"].as_str(), still["version"].as_u64()), (Some("private"), Some(1)));
    assert_eq!(app.client.get(app.url("/api/notes")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn invalid_notes_name_each_field_and_if_match_guards_updates() {
    let app = spawn_app_with(&["notes"]).await;
    let (_, token) = app.user_with_token("careful@example.com", &[]).await;

    let bad = json!({ "title": " ", "body": "x".repeat(20_001) });
    let (status, error) = error_of(send(&app, &token, Method::POST, "/api/notes", Some(bad)).await).await;
    assert_eq!(status, 400);
    assert!(error["fields"]["title"].is_string() && error["fields"]["body"].is_string(), "{error}");
    let (status, _) =
        error_of(send(&app, &token, Method::POST, "/api/notes", Some(json!({ "title": "a", "colour": 1 }))).await)
            .await;
    assert_eq!(status, 400, "unknown fields are refused");

    let note: Value =
        send(&app, &token, Method::POST, "/api/notes", Some(json!({ "title": "v1" }))).await.json().await.unwrap();
    let path = format!("/api/notes/{}", note["id"].as_str().unwrap());
    let stale = app.request_as(Method::PATCH, &path, &token).header("if-match", "\"1\"");
    assert_eq!(stale.json(&json!({ "title": "v2" })).send().await.unwrap().status(), 200);
    let stale = app.request_as(Method::PATCH, &path, &token).header("if-match", "\"1\"");
    let (status, error) = error_of(stale.json(&json!({ "title": "lost update" })).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (412, Some("precondition_failed")));
    let garbage = app.request_as(Method::PATCH, &path, &token).header("if-match", "W/\"x\"");
    assert_eq!(garbage.json(&json!({ "title": "x" })).send().await.unwrap().status(), 400);
    let current: Value = send(&app, &token, Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!(current["title"], "v2");
}

#[tokio::test]
async fn creates_are_rate_limited_per_user_from_config() {
    let app = spawn_configured(&["notes"], |config| {
        config.plugin_overrides.insert("AUTOFLOW_PLUGIN_NOTES__CREATES_PER_MINUTE".into(), "2".into());
    })
    .await;
    let (_, eager) = app.user_with_token("eager@example.com", &[]).await;
    let (_, other) = app.user_with_token("other@example.com", &[]).await;

    for _ in 0..2 {
        let created = send(&app, &eager, Method::POST, "/api/notes", Some(json!({ "title": "n" }))).await;
        assert_eq!(created.status(), 201);
    }
    let refused = send(&app, &eager, Method::POST, "/api/notes", Some(json!({ "title": "n" }))).await;
    assert_eq!(refused.headers()["retry-after"], "60");
    let (status, error) = error_of(refused).await;
    assert_eq!((status, error["code"].as_str()), (429, Some("rate_limited")));
    let others = send(&app, &other, Method::POST, "/api/notes", Some(json!({ "title": "n" }))).await;
    assert_eq!(others.status(), 201, "the limit is per user");
}

#[tokio::test]
async fn cross_site_writes_with_the_session_cookie_are_refused_and_bearer_clients_are_unaffected() {
    let app = spawn_app_with(&["notes"]).await;
    let (_, token) = app.user_with_token("victim@example.com", &[]).await;
    let cookie = format!("autoflow_session={token}");
    let host = app.address.trim_start_matches("http://").to_owned();
    let body = r#"{"title": "planted"}"#;
    let post = |headers: &[(&str, &str)]| {
        let mut request = app.client.post(app.url("/api/notes")).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    // What a form on another site can send: the cookie, a `text/plain` body, its own origin.
    let refused = [
        vec![("cookie", cookie.as_str()), ("content-type", "text/plain"), ("origin", "http://evil.test")],
        vec![("cookie", cookie.as_str()), ("content-type", "application/json"), ("origin", "http://evil.test")],
        vec![("cookie", cookie.as_str()), ("content-type", "text/plain"), ("sec-fetch-site", "cross-site")],
        vec![("cookie", cookie.as_str()), ("content-type", "application/json"), ("sec-fetch-site", "same-site")],
        vec![("cookie", cookie.as_str()), ("content-type", "application/json"), ("origin", "null")],
    ];
    for headers in &refused {
        let (status, error) = error_of(post(headers).await.unwrap()).await;
        assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")), "{headers:?}: {error}");
    }
    // Without an origin to judge by, a JSON route still refuses a body that is not sent as JSON.
    let (status, error) = error_of(post(&[("cookie", &cookie), ("content-type", "text/plain")]).await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (415, Some("unsupported_media_type")), "{error}");
    let listed: Value = send(&app, &token, Method::GET, "/api/notes", None).await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]), "nothing was created");

    let origin = format!("http://{host}");
    let same_origin = [("cookie", cookie.as_str()), ("content-type", "application/json"), ("origin", origin.as_str())];
    assert_eq!(post(&same_origin).await.unwrap().status(), 201, "the host's own pages may write");
    let bearer = format!("Bearer {token}");
    let from_elsewhere =
        [("authorization", bearer.as_str()), ("content-type", "application/json"), ("origin", "http://evil.test")];
    assert_eq!(post(&from_elsewhere).await.unwrap().status(), 201, "a bearer token is no ambient credential");
    let logout =
        app.client.post(app.url("/auth/logout")).header("cookie", &cookie).header("origin", "http://evil.test");
    assert_eq!(logout.send().await.unwrap().status(), 403, "host routes are covered too");
}
