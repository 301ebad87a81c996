//! The `integrations` plugin end to end: validation, the credential as a reference to one of the
//! caller's secrets, and the connection test over allow-listed outbound HTTP.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, send, spawn_configured};
use crate::upstream::{closed_address, echo_server};

/// A host with secrets and integrations, integrations allowed to reach `allowed`, connection tests
/// timing out after 300 ms.
pub async fn spawn(allowed: &[&str]) -> TestApp {
    let allowed = allowed.join(",");
    spawn_configured(&["secrets", "integrations", "ai"], move |config| {
        for plugin in ["INTEGRATIONS", "AI"] {
            config.plugin_overrides.insert(format!("AUTOFLOW_PLUGIN_{plugin}__ALLOWED_HOSTS"), allowed.clone());
        }
        config.plugin_overrides.insert("AUTOFLOW_PLUGIN_INTEGRATIONS__TEST_TIMEOUT_MS".into(), "300".into());
        config.plugin_overrides.insert("AUTOFLOW_PLUGIN_AI__TIMEOUT_MS".into(), "300".into());
    })
    .await
}

/// Creates something through the API and returns its JSON, failing the test on anything but `201`.
pub async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = send(app, token, Method::POST, path, Some(body)).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A secret of `token`'s user holding `value`; returns its id.
pub async fn secret(app: &TestApp, token: &str, value: &str) -> String {
    let created = create(app, token, "/api/secrets", json!({ "name": "credential", "value": value })).await;
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn integrations_are_validated_field_by_field_and_reference_only_the_callers_secrets() {
    let app = spawn(&[]).await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &[]).await;
    let bobs_secret = secret(&app, &bob, "bob's key").await;

    let bad = json!({ "kind": "Open AI", "baseUrl": "ftp://x", "settings": [1], "secretId": bobs_secret, "colour": 1 });
    let (status, error) = error_of(send(&app, &alice, Method::POST, "/api/integrations", Some(bad)).await).await;
    assert_eq!(status, 400);
    for field in ["kind", "name", "baseUrl", "settings", "secretId", "colour"] {
        assert!(error["fields"][field].is_string(), "{field}: {error}");
    }

    let alices_secret = secret(&app, &alice, "alice's key").await;
    let body = json!({ "kind": "openai", "name": " Main ", "baseUrl": "http://127.0.0.1:9/v1",
                       "settings": { "model": "gpt-test" }, "secretId": alices_secret });
    let created = create(&app, &alice, "/api/integrations", body).await;
    assert_eq!((created["name"].as_str(), created["settings"]["model"].as_str()), (Some("Main"), Some("gpt-test")));
    assert!(created.get("value").is_none() && !created.to_string().contains("alice's key"), "{created}");
    let path = format!("/api/integrations/{}", created["id"].as_str().unwrap());

    let patched = send(&app, &alice, Method::PATCH, &path, Some(json!({ "secretId": null, "name": "Renamed" }))).await;
    let patched: Value = patched.json().await.unwrap();
    assert_eq!((patched["name"].as_str(), patched.get("secretId")), (Some("Renamed"), None), "{patched}");

    for (method, body) in
        [(Method::GET, None), (Method::PATCH, Some(json!({ "name": "mine" }))), (Method::DELETE, None)]
    {
        let (status, _) = error_of(send(&app, &bob, method.clone(), &path, body).await).await;
        assert_eq!(status, 404, "{method}");
    }
    let (status, _) = error_of(send(&app, &bob, Method::POST, &format!("{path}/test"), None).await).await;
    assert_eq!(status, 404);
    let listed: Value = send(&app, &bob, Method::GET, "/api/integrations", None).await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn the_connection_test_reaches_allowed_hosts_with_the_credential_and_reports_failures() {
    let (echo, seen) = echo_server(Duration::ZERO).await;
    let (slow, _) = echo_server(Duration::from_secs(3)).await;
    let closed = closed_address().await;
    let (forbidden, forbidden_seen) = echo_server(Duration::ZERO).await;
    let app = spawn(&[&echo, &slow, &closed]).await;
    let (_, token) = app.user_with_token("tester@example.com", &[]).await;
    let secret_id = secret(&app, &token, "sk-echo-secret").await;
    let integration = |base: &str, secret: bool| {
        let mut body = json!({ "kind": "http", "name": "svc", "baseUrl": format!("http://{base}/status") });
        if secret {
            body["secretId"] = secret_id.clone().into();
        }
        body
    };
    let test = |body: Value| {
        let (app, token) = (&app, &token);
        async move {
            let created = create(app, token, "/api/integrations", body).await;
            let path = format!("/api/integrations/{}/test", created["id"].as_str().unwrap());
            send(app, token, Method::POST, &path, None).await
        }
    };

    let reached: Value = test(integration(&echo, true)).await.json().await.unwrap();
    assert_eq!((reached["reachable"].as_bool(), reached["status"].as_u64()), (Some(true), Some(200)), "{reached}");
    assert!(reached["latencyMs"].is_u64());
    assert_eq!(seen.lock().unwrap().as_slice(), ["Bearer sk-echo-secret"], "the credential went to the service");

    let (status, error) = error_of(test(integration(&forbidden, false)).await).await;
    assert_eq!(status, 403);
    assert!(error["message"].as_str().unwrap().contains(&forbidden), "names the host: {error}");
    assert!(forbidden_seen.lock().unwrap().is_empty(), "nothing left the host");

    let (status, error) = error_of(test(integration(&closed, false)).await).await;
    assert_eq!((status, error["code"].as_str()), (502, Some("bad_gateway")), "{error}");

    let started = Instant::now();
    let (status, error) = error_of(test(integration(&slow, false)).await).await;
    assert_eq!((status, error["code"].as_str()), (504, Some("gateway_timeout")), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "answered within the timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn every_spelling_of_an_internal_host_is_served_in_process_and_never_resolved() {
    // Before hosts were normalised, `SECRETS.autoflow.internal` passed the allow-list but was not
    // taken for internal, so the request (with the user's secret as its bearer token) went to DNS.
    let app = spawn(&["a.b.autoflow.internal"]).await;
    let (_, token) = app.user_with_token("spelling@example.com", &[]).await;
    let secret_id = secret(&app, &token, "sk-never-leaves").await;
    for base in [
        "http://SECRETS.autoflow.internal/api/secrets",
        "http://Secrets.Autoflow.Internal./api/secrets",
        "http://secrets.autoflow.internal:80/api/secrets",
    ] {
        let body = json!({ "kind": "http", "name": "internal", "baseUrl": base, "secretId": secret_id });
        let created = create(&app, &token, "/api/integrations", body).await;
        let path = format!("/api/integrations/{}/test", created["id"].as_str().unwrap());
        let response = send(&app, &token, Method::POST, &path, None).await;
        let status = response.status();
        let reached: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{base}: {reached}");
        assert_eq!((reached["reachable"].as_bool(), reached["status"].as_u64()), (Some(true), Some(200)), "{base}");
    }

    // An allowed host under the internal domain that names no single plugin is refused, not resolved.
    let body = json!({ "kind": "http", "name": "nested", "baseUrl": "http://a.b.autoflow.internal/x" });
    let created = create(&app, &token, "/api/integrations", body).await;
    let path = format!("/api/integrations/{}/test", created["id"].as_str().unwrap());
    let (status, error) = error_of(send(&app, &token, Method::POST, &path, None).await).await;
    assert_eq!(status, 403, "{error}");
}
