//! The send-email task against a real host (`cargo xtask test` runs it).

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn an_email_is_checked_when_scheduled_and_delivered_when_run() {
    let host = TestHost::start(&["send-email"]).await;
    let ada = host.user("ada@example.com", &["write:tasks"]).await;

    let bad = ada
        .post("/api/tasks", json!({ "name": "send-email", "payload": { "to": "nobody", "subject": "", "body": "" } }))
        .await;
    assert_eq!((bad.status, bad.error_code()), (400, Some("invalid")), "{}", bad.body);

    let email = json!({ "to": "grace@example.com", "subject": "Hello", "body": "Welcome." });
    let scheduled = ada.post("/api/tasks", json!({ "name": "send-email", "payload": email })).await;
    assert_eq!(scheduled.status, 201, "{}", scheduled.body);
    let location = scheduled.header("location").unwrap().to_owned();
    let task = ada.finished_task(&location).await;
    assert_eq!(task.body["status"], "completed", "{}", task.body);
}
