//! The ai plugin against a real host (`cargo xtask test` runs it): requests are checked before any
//! provider is called, and only the caller's own integrations can be used. (A call through to a
//! provider is tested by the host's suite, against a stand-in provider.)

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_chat_needs_valid_messages_and_one_of_the_callers_integrations() {
    let host = TestHost::start(&["ai", "integrations", "secrets"]).await;
    let (ada, bob) = (host.user("ada@example.com", &[]).await, host.user("bob@example.com", &[]).await);
    let integration = json!({ "kind": "openai", "name": "Main", "baseUrl": "https://api.example.com" });
    let integration_id = ada.post("/api/integrations", integration).await.body["id"].as_str().unwrap().to_owned();

    let empty = ada.post("/api/ai/chat", json!({ "integrationId": integration_id, "messages": [] })).await;
    assert_eq!((empty.status, empty.error_code()), (400, Some("invalid")), "{}", empty.body);
    let messages = json!([{ "role": "user", "content": "Hi" }]);
    let others = bob.post("/api/ai/chat", json!({ "integrationId": integration_id, "messages": messages })).await;
    assert_eq!(others.status, 404, "another user's integration is not found: {}", others.body);
    assert_eq!(host.anonymous().post("/api/ai/chat", json!({})).await.status, 401);
}
