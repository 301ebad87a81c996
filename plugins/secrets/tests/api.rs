//! The secrets plugin against a real host (`cargo xtask test` runs it): values are shown only to
//! their owner, never in listings.

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_secret_is_shown_to_its_owner_only_and_never_listed_with_its_value() {
    let host = TestHost::start(&["secrets"]).await;
    let (ada, bob) = (host.user("ada@example.com", &[]).await, host.user("bob@example.com", &[]).await);

    let created = ada.post("/api/secrets", json!({ "name": "api-token", "value": "s3cr3t" })).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let location = created.header("location").unwrap().to_owned();

    assert_eq!(ada.get(&location).await.body["value"], "s3cr3t");
    let listed = ada.get("/api/secrets").await;
    assert_eq!(listed.body["items"][0]["name"], "api-token");
    assert!(!listed.body.to_string().contains("s3cr3t"), "{}", listed.body);
    assert_eq!(bob.get(&location).await.status, 404);
    assert_eq!(bob.get("/api/secrets").await.body["items"], json!([]));

    let updated = ada.patch(&location, json!({ "value": "rotated" })).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(ada.get(&location).await.body["value"], "rotated");
    assert_eq!(ada.post("/api/secrets", json!({ "name": "" })).await.status, 400);
    assert!(host.anonymous().get("/api/crypto/public-key").await.body.to_string().contains("BEGIN PUBLIC KEY"));
}
