//! The __NAME__ plugin against a real host (`cargo xtask test` runs it).

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_user_creates_an_item_and_finds_it_listed() {
    let host = TestHost::start(&["__NAME__"]).await;
    let ada = host.user("ada@example.com", &[]).await;

    let created = ada.post("/api/__NAME__", json!({ "text": "first" })).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let read = ada.get(created.header("location").unwrap()).await;
    assert_eq!(read.body["text"], "first");
    assert_eq!(ada.get("/api/__NAME__").await.body["items"][0]["text"], "first");

    let blank = ada.post("/api/__NAME__", json!({ "text": " " })).await;
    assert_eq!((blank.status, blank.error_code()), (400, Some("invalid")));
    assert_eq!(host.anonymous().get("/api/__NAME__").await.status, 401);
}
