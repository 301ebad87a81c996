//! The integrations plugin against a real host (`cargo xtask test` runs it): each user's own
//! connections, their credential a reference to one of the user's secrets.

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_user_connects_a_service_with_one_of_their_secrets() {
    let host = TestHost::start(&["integrations", "secrets"]).await;
    let (ada, bob) = (host.user("ada@example.com", &[]).await, host.user("bob@example.com", &[]).await);
    let secret = ada.post("/api/secrets", json!({ "name": "token", "value": "t0ken" })).await;
    let secret_id = secret.body["id"].as_str().unwrap();

    let body = json!({ "kind": "openai", "name": "Main", "baseUrl": "https://api.example.com", "secretId": secret_id });
    let created = ada.post("/api/integrations", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let location = created.header("location").unwrap().to_owned();
    assert!(!created.body.to_string().contains("t0ken"), "the credential's value is never stored or shown");

    let renamed = ada.patch(&location, json!({ "name": "Primary", "secretId": null })).await;
    assert_eq!((renamed.status, &renamed.body["name"]), (200, &json!("Primary")), "{}", renamed.body);
    assert_eq!(bob.get(&location).await.status, 404);
    let bad = ada.post("/api/integrations", json!({ "kind": "", "name": "x", "baseUrl": "not a url" })).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(ada.delete(&location).await.status, 204);
}
