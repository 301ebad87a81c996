//! The `secrets` plugin end to end: values sealed at rest, listed without values, shown to their
//! owner only, and accepted encrypted to the host's public key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{captured_logs, encrypt_to, error_of, send, spawn_app_with};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn values_are_sealed_at_rest_listed_without_values_and_shown_to_their_owner() {
    let app = spawn_app_with(&["secrets"]).await;
    let (_, token) = app.user_with_token("keeper@example.com", &[]).await;

    let body = json!({ "name": "openai", "description": "prod key", "value": "sk-plaintext-123" });
    let created = send(&app, &token, Method::POST, "/api/secrets", Some(body)).await;
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let created = json_of(created, 201).await;
    assert!(created.get("value").is_none(), "creating does not echo the value: {created}");

    let listed = send(&app, &token, Method::GET, "/api/secrets", None).await.text().await.unwrap();
    assert!(listed.contains("openai") && !listed.contains("sk-plaintext-123"), "{listed}");
    let shown = json_of(send(&app, &token, Method::GET, &location, None).await, 200).await;
    assert_eq!((shown["name"].as_str(), shown["value"].as_str()), (Some("openai"), Some("sk-plaintext-123")));

    let stored = app.column("SELECT CAST(data AS TEXT) FROM records").await.join("\n");
    assert!(stored.contains("sealed") && !stored.contains("sk-plaintext-123"), "{stored}");

    send(&app, &token, Method::PATCH, &location, Some(json!({ "value": "sk-rotated-456" }))).await;
    send(&app, &token, Method::PATCH, &location, Some(json!({ "name": "openai-prod" }))).await;
    let shown = json_of(send(&app, &token, Method::GET, &location, None).await, 200).await;
    assert_eq!((shown["name"].as_str(), shown["value"].as_str()), (Some("openai-prod"), Some("sk-rotated-456")));

    assert_eq!(send(&app, &token, Method::DELETE, &location, None).await.status(), 204);
    assert_eq!(send(&app, &token, Method::GET, &location, None).await.status(), 404);
    let logs = captured_logs();
    assert!(!logs.contains("sk-plaintext-123") && !logs.contains("sk-rotated-456"), "a value reached the log");
}

#[tokio::test]
async fn a_client_may_send_the_value_encrypted_to_the_hosts_public_key() {
    let app = spawn_app_with(&["secrets"]).await;
    let (_, token) = app.user_with_token("careful@example.com", &[]).await;
    let key = json_of(app.get("/api/crypto/public-key").await, 200).await;
    assert_eq!(key["algorithm"], "RSA-OAEP-256");

    assert_eq!(key["label"], "autoflow:plugin:secrets");
    let (pem, label) = (key["publicKey"].as_str().unwrap(), key["label"].as_str().unwrap());
    let encrypted = BASE64.encode(encrypt_to(pem, label, "never in clear".as_bytes()));
    let body = json!({ "name": "db", "encryptedValue": encrypted });
    let created = json_of(send(&app, &token, Method::POST, "/api/secrets", Some(body)).await, 201).await;
    let path = format!("/api/secrets/{}", created["id"].as_str().unwrap());
    let shown = json_of(send(&app, &token, Method::GET, &path, None).await, 200).await;
    assert_eq!(shown["value"], "never in clear");

    for (body, field) in [
        (json!({ "name": "x", "encryptedValue": "%%% not base64" }), "encryptedValue"),
        (json!({ "name": "x", "encryptedValue": BASE64.encode([1u8; 256]) }), "encryptedValue"),
        (json!({ "name": "x", "value": "a", "encryptedValue": encrypted }), "value"),
        (json!({ "name": "x" }), "value"),
        (json!({ "name": " ", "value": "a" }), "name"),
    ] {
        let (status, error) =
            error_of(send(&app, &token, Method::POST, "/api/secrets", Some(body.clone())).await).await;
        assert_eq!(status, 400, "{body}");
        assert!(error["fields"][field].is_string(), "{body}: {error}");
    }
    let (status, error) = error_of(
        send(&app, &token, Method::POST, "/api/secrets", Some(json!({ "name": "", "description": "d".repeat(1001) })))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    let fields = error["fields"].as_object().unwrap();
    assert!(["name", "description", "value"].iter().all(|f| fields.contains_key(*f)), "every bad field: {error}");
}

#[tokio::test]
async fn another_users_secret_is_not_found_on_every_route() {
    let app = spawn_app_with(&["secrets"]).await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &[]).await;
    let body = json!({ "name": "alice's", "value": "alice-only" });
    let created = json_of(send(&app, &alice, Method::POST, "/api/secrets", Some(body)).await, 201).await;
    let path = format!("/api/secrets/{}", created["id"].as_str().unwrap());

    for (method, body) in
        [(Method::GET, None), (Method::PATCH, Some(json!({ "value": "bob's now" }))), (Method::DELETE, None)]
    {
        let (status, error) = error_of(send(&app, &bob, method.clone(), &path, body).await).await;
        assert_eq!((status, error["code"].as_str()), (404, Some("not_found")), "{method}");
    }
    let listed = json_of(send(&app, &bob, Method::GET, "/api/secrets", None).await, 200).await;
    assert_eq!(listed["items"], json!([]));
    let shown = json_of(send(&app, &alice, Method::GET, &path, None).await, 200).await;
    assert_eq!(shown["value"], "alice-only");
    assert_eq!(app.client.get(app.url("/api/secrets")).send().await.unwrap().status(), 401);
}
