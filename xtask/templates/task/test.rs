//! The __NAME__ plugin against a real host (`cargo xtask test` runs it).

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_scheduled_task_runs_to_completion() {
    let host = TestHost::start(&["__NAME__"]).await;
    let ada = host.user("ada@example.com", &["write:tasks"]).await;

    let refused = ada.post("/api/tasks", json!({ "name": "__NAME__", "payload": { "message": "" } })).await;
    assert_eq!((refused.status, refused.error_code()), (400, Some("invalid")));
    let scheduled = ada.post("/api/tasks", json!({ "name": "__NAME__", "payload": { "message": "hi" } })).await;
    assert_eq!(scheduled.status, 201, "{}", scheduled.body);
    let location = scheduled.header("location").unwrap().to_owned();

    let task = ada.finished_task(&location).await;
    assert_eq!(task.body["status"], "completed", "{}", task.body);
    assert_eq!(task.body["result"], json!({ "echoed": "hi", "attempt": 1 }));
}
