//! The hello plugin against a real host (`cargo xtask test` runs it).

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn anyone_is_greeted_by_name() {
    let host = TestHost::start(&["hello"]).await;

    let greeting = host.anonymous().get("/api/hello/Ada").await;

    assert_eq!(greeting.status, 200);
    assert_eq!(greeting.body["message"], "Hello, Ada!");
    assert_eq!(greeting.body["requestId"].as_str(), greeting.header("x-request-id"));
}

#[tokio::test]
async fn echo_returns_the_body_and_names_a_signed_in_caller() {
    let host = TestHost::start(&["hello"]).await;
    let ada = host.user("ada@example.com", &[]).await;

    let anonymous = host.anonymous().post("/api/echo?x=1", json!({ "a": [1, 2] })).await;
    let signed_in = ada.post("/api/echo", json!(null)).await;

    assert_eq!((anonymous.status, &anonymous.body["echo"]), (200, &json!({ "a": [1, 2] })));
    assert_eq!((&anonymous.body["query"]["x"], &anonymous.body["userId"]), (&json!("1"), &json!(null)));
    assert_eq!(signed_in.body["userId"], json!(ada.id));
    assert!(signed_in.body["headers"].get("authorization").is_none(), "the caller's credentials never reach a plugin");
}
