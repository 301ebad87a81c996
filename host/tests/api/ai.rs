//! The `ai` plugin end to end against a real OpenAI-compatible server on loopback: the caller's
//! integration and secret chosen by the host's user scoping, the provider's failures as 502/504.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::send;
use crate::helpers::{TestApp, error_of};
use crate::integrations::{create, secret, spawn};
use crate::upstream::{PROVIDER_KEY, chat_provider};

/// An OpenAI integration of `token`'s user at `provider` with the credential `key`; returns its id.
async fn integration(app: &TestApp, token: &str, provider: &str, key: &str) -> String {
    let secret_id = secret(app, token, key).await;
    let body = json!({ "kind": "openai", "name": "provider", "baseUrl": format!("http://{provider}/v1"),
                       "settings": { "model": "gpt-test" }, "secretId": secret_id });
    create(app, token, "/api/integrations", body).await["id"].as_str().unwrap().to_owned()
}

async fn chat(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    send(app, token, Method::POST, "/api/ai/chat", Some(body)).await
}

fn hello(integration: &str) -> Value {
    json!({ "integrationId": integration, "messages": [{ "role": "user", "content": "hello" }] })
}

#[tokio::test]
async fn a_chat_goes_to_the_callers_provider_with_their_credential() {
    let provider = chat_provider().await;
    let app = spawn(&[&provider]).await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &[]).await;
    let id = integration(&app, &alice, &provider, PROVIDER_KEY).await;

    let response = chat(&app, &alice, hello(&id)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["message"], json!({ "role": "assistant", "content": "echo: hello" }));
    assert_eq!((answer["model"].as_str(), answer["usage"]["total_tokens"].as_u64()), (Some("gpt-test"), Some(5)));

    let (status, error) = error_of(chat(&app, &bob, hello(&id)).await).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")), "bob cannot use alice's integration");
}

#[tokio::test]
async fn provider_failures_are_clear_gateway_errors() {
    let provider = chat_provider().await;
    let app = spawn(&[&provider]).await;
    let (_, token) = app.user_with_token("user@example.com", &[]).await;
    let good = integration(&app, &token, &provider, PROVIDER_KEY).await;
    let wrong_key = integration(&app, &token, &provider, "sk-wrong").await;

    let (status, error) = error_of(chat(&app, &token, hello(&wrong_key)).await).await;
    assert_eq!(status, 502);
    assert!(
        error["message"].as_str().unwrap().contains("401")
            && error["message"].as_str().unwrap().contains("Incorrect API key"),
        "{error}"
    );

    let mut broken = hello(&good);
    broken["model"] = "broken".into();
    let (status, error) = error_of(chat(&app, &token, broken).await).await;
    assert_eq!(status, 502);
    assert!(error["message"].as_str().unwrap().contains("model overloaded"), "{error}");

    let mut slow = hello(&good);
    slow["model"] = "slow".into();
    let (status, error) = error_of(chat(&app, &token, slow).await).await;
    assert_eq!((status, error["code"].as_str()), (504, Some("gateway_timeout")), "{error}");
}

#[tokio::test]
async fn chats_are_validated_and_providers_must_be_allowed() {
    let provider = chat_provider().await;
    let app = spawn(&[]).await;
    let (_, token) = app.user_with_token("user@example.com", &[]).await;
    let id = integration(&app, &token, &provider, PROVIDER_KEY).await;

    let (status, error) = error_of(chat(&app, &token, hello(&id)).await).await;
    assert_eq!(status, 403);
    assert!(error["message"].as_str().unwrap().contains(&provider), "names the host: {error}");

    let bad = json!({ "integrationId": id, "messages": [{ "role": "robot", "content": "hi" }], "temperature": 9 });
    let (status, error) = error_of(chat(&app, &token, bad).await).await;
    assert_eq!(status, 400);
    assert!(error["fields"]["messages[0].role"].is_string() && error["fields"]["temperature"].is_string(), "{error}");
    let (status, _) = error_of(chat(&app, &token, json!({ "integrationId": id, "messages": [] })).await).await;
    assert_eq!(status, 400);
    let (status, _) = error_of(chat(&app, &token, hello("no-such-integration")).await).await;
    assert_eq!(status, 404);
}
