//! The users plugin against a real host (`cargo xtask test` runs it): administrators manage
//! accounts; readers read; nobody else sees them.

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn an_admin_creates_updates_and_deletes_a_user_who_can_then_sign_in() {
    let host = TestHost::start(&["users", "send-email"]).await;
    let admin = host.user("admin@example.com", &["admin"]).await;

    let body =
        json!({ "email": "grace@example.com", "password": "a long enough password", "permissions": ["read:users"] });
    let created = admin.post("/api/users", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body.get("passwordHash").is_none() && created.body.get("password").is_none());
    let location = created.header("location").unwrap().to_owned();
    let login = json!({ "email": "grace@example.com", "password": "a long enough password" });
    assert_eq!(host.anonymous().post("/auth/login", login.clone()).await.status, 200);

    let renamed = admin.patch(&location, json!({ "displayName": "Grace H." })).await;
    assert_eq!((renamed.status, &renamed.body["displayName"]), (200, &json!("Grace H.")));
    assert_eq!(admin.patch(&location, json!({ "disabled": true })).await.status, 200);
    assert_eq!(host.anonymous().post("/auth/login", login).await.status, 401, "a disabled user cannot sign in");
    assert_eq!(admin.delete(&location).await.status, 204);
    assert_eq!(admin.get(&location).await.status, 404);
}

#[tokio::test]
async fn readers_read_and_everyone_else_is_refused() {
    let host = TestHost::start(&["users", "send-email"]).await;
    let reader = host.user("reader@example.com", &["read:users"]).await;
    let plain = host.user("plain@example.com", &[]).await;

    let listed = reader.get("/api/users?limit=10").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    let write =
        reader.post("/api/users", json!({ "email": "x@example.com", "password": "a long enough password" })).await;
    assert_eq!((write.status, write.error_code()), (403, Some("forbidden")));
    assert_eq!(plain.get("/api/users").await.status, 403);
    assert_eq!(host.anonymous().get("/api/users").await.status, 401);

    let bad = host
        .user("admin@example.com", &["admin"])
        .await
        .post("/api/users", json!({ "email": "nope", "password": "x" }))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["fields"]["email"].is_string() && bad.body["error"]["fields"]["password"].is_string(),
        "{}",
        bad.body
    );
}
