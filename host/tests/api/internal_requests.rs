//! Internal requests: a plugin calling `http://{plugin}.autoflow.internal/…` reaches that plugin's
//! routes in-process, as the same user, only if its manifest allows the host, and never deeper
//! than the chain limit.

use serde_json::{Value, json};

use crate::helpers::{PluginsDir, TestApp, try_spawn};

/// `test-trap` (allowed to call `notes` and itself) beside `notes` and `hello`.
async fn spawn() -> TestApp {
    let plugins = PluginsDir::with(&["test-trap", "notes", "hello"]);
    plugins.edit_manifest("test-trap", |text| {
        text.replace("[\"allowed.invalid\"]", "[\"notes.autoflow.internal\", \"test-trap.autoflow.internal\"]")
    });
    try_spawn(plugins, |_| {}).await.unwrap_or_else(|(e, _)| panic!("{e}"))
}

/// What `test-trap` got fetching `url`, as `token`'s user if given.
async fn fetch(app: &TestApp, token: Option<&str>, url: &str) -> Value {
    let path = format!("/api/trap/fetch?url={}", urlencode(url));
    let response = app.get_as(&path, token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn a_plugin_calls_another_plugins_routes_in_process_as_the_same_user() {
    let app = spawn().await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &[]).await;
    let created = app.request_as(reqwest::Method::POST, "/api/notes", &alice).json(&json!({ "title": "alice's" }));
    assert_eq!(created.send().await.unwrap().status(), 201);

    let as_alice = fetch(&app, Some(&alice), "http://notes.autoflow.internal/api/notes").await;
    assert_eq!(as_alice["status"], 200, "{as_alice}");
    let notes: Value = serde_json::from_str(as_alice["body"].as_str().unwrap()).unwrap();
    assert_eq!(notes["items"][0]["title"], "alice's");

    let as_bob = fetch(&app, Some(&bob), "http://notes.autoflow.internal/api/notes").await;
    let notes: Value = serde_json::from_str(as_bob["body"].as_str().unwrap()).unwrap();
    assert_eq!(notes["items"], json!([]), "the internal request acts for bob: {as_bob}");

    let anonymous = fetch(&app, None, "http://notes.autoflow.internal/api/notes").await;
    assert_eq!(anonymous["status"], 401, "{anonymous}");
}

#[tokio::test]
async fn internal_requests_need_the_grant_and_reach_only_the_named_plugin() {
    let app = spawn().await;

    let ungranted = fetch(&app, None, "http://hello.autoflow.internal/api/hello/x").await;
    assert!(ungranted["error"].as_str().unwrap().contains("not allowed"), "{ungranted}");

    let elsewhere = fetch(&app, None, "http://notes.autoflow.internal/api/trap/ok").await;
    assert_eq!(elsewhere["status"], 404, "a path of another plugin: {elsewhere}");
    let unknown = fetch(&app, None, "http://notes.autoflow.internal/nowhere").await;
    assert_eq!(unknown["status"], 404, "{unknown}");
}

#[tokio::test]
async fn a_chain_of_internal_requests_is_cut_at_its_depth_limit() {
    let app = spawn().await;
    let chain = |links: usize| {
        (0..links).fold("http://test-trap.autoflow.internal/api/trap/ok".to_owned(), |inner, _| {
            format!("http://test-trap.autoflow.internal/api/trap/fetch?url={}", urlencode(&inner))
        })
    };

    let short = fetch(&app, None, &chain(2)).await.to_string();
    assert!(short.contains("still standing") && !short.contains("not allowed"), "{short}");
    let long = fetch(&app, None, &chain(6)).await.to_string();
    assert!(long.contains("508") && long.contains("chain_too_deep") && !long.contains("still standing"), "{long}");
}

#[tokio::test]
async fn an_internal_route_is_reachable_from_plugins_only_and_never_shown_outside() {
    let plugins = PluginsDir::with(&["test-trap", "notes"]);
    plugins.edit_manifest("test-trap", |text| text.replace("[\"allowed.invalid\"]", "[\"notes.autoflow.internal\"]"));
    let list = "[[routes]]\nmethod = \"GET\"\npath = \"/api/notes\"\n";
    let by_id = "path = \"/api/notes/{id}\"\n";
    plugins.edit_manifest("notes", |text| {
        let text = text.replacen(list, &format!("{list}access = \"internal\"\n"), 1);
        text.replace(by_id, &format!("{by_id}access = \"internal\"\n"))
    });
    let app = try_spawn(plugins, |_| {}).await.unwrap_or_else(|(e, _)| panic!("{e}"));
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let created = app.request_as(reqwest::Method::POST, "/api/notes", &alice).json(&json!({ "title": "alice's" }));
    let created = created.send().await.unwrap();
    assert_eq!(created.status(), 201, "a public method of the same path stays public");
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let outside = app.request_as(method, &format!("/api/notes/{id}"), &alice).send().await.unwrap();
        assert_eq!(outside.status(), 404, "from outside an internal route does not exist");
    }
    let listing = app.request_as(reqwest::Method::GET, "/api/notes", &alice).send().await.unwrap();
    assert_eq!(listing.status(), 405);
    assert_eq!(listing.headers()["allow"], "POST", "a 405 never names an internal method");

    let inside = fetch(&app, Some(&alice), "http://notes.autoflow.internal/api/notes").await;
    assert_eq!(inside["status"], 200, "{inside}");
    let notes: Value = serde_json::from_str(inside["body"].as_str().unwrap()).unwrap();
    assert_eq!(notes["items"][0]["title"], "alice's");
    let one = fetch(&app, Some(&alice), &format!("http://notes.autoflow.internal/api/notes/{id}")).await;
    assert_eq!(one["status"], 200, "{one}");

    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let listed = &document["paths"]["/api/notes"];
    assert!(listed["post"].is_object() && listed["get"].is_null(), "{listed}");
    assert!(document["paths"]["/api/notes/{id}"].is_null(), "{}", document["paths"]);
}

#[tokio::test]
async fn the_sdk_has_an_internal_request_helper_for_every_method() {
    let app = spawn().await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let relay = |method: &str, path: String, body: Value| {
        let call = json!({ "method": method, "plugin": "notes", "path": path, "body": body });
        let request = app.request_as(reqwest::Method::POST, "/api/trap/relay", &alice).json(&call);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };

    let (status, created) = relay("POST", "/api/notes".into(), json!({ "title": "relayed" })).await;
    assert_eq!((status, &created["answer"]["title"]), (200, &json!("relayed")), "{created}");
    let path = format!("/api/notes/{}", created["answer"]["id"].as_str().unwrap());
    let (_, patched) = relay("PATCH", path.clone(), json!({ "pinned": true })).await;
    assert_eq!(patched["answer"]["pinned"], true, "{patched}");
    let (status, refused) = relay("PATCH", path.clone(), json!({ "title": "" })).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("invalid")),
        "the other plugin's 400 comes back"
    );
    let (_, read) = relay("GET", path.clone(), Value::Null).await;
    assert_eq!((read["found"].as_bool(), &read["answer"]["title"]), (Some(true), &json!("relayed")));
    let (_, deleted) = relay("DELETE", path.clone(), Value::Null).await;
    assert_eq!(deleted["found"], true, "{deleted}");
    let (_, again) = relay("DELETE", path.clone(), Value::Null).await;
    assert_eq!(again["found"], false, "a 404 is `false`, not an error: {again}");
    let (_, gone) = relay("GET", path, Value::Null).await;
    assert_eq!(gone["found"], false);
}
