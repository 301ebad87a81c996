//! The queue engine's batch paths: tasks scheduled in bulk (over `/api/tasks/batch` and by plugins
//! through `queue.enqueue-many`) all or none, outcomes recorded in batches that skip an attempt
//! whose lease was lost, and a claim whose process died before its outcome was written.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, eventually, spawn_app_with, spawn_configured};
use autoflow_host::db::{Finish, Outcome, TaskStatus};

async fn schedule_batch(app: &TestApp, token: &str, tasks: Value) -> reqwest::Response {
    app.request_as(Method::POST, "/api/tasks/batch", token).json(&json!({ "tasks": tasks })).send().await.unwrap()
}

async fn task(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.request_as(Method::GET, &format!("/api/tasks/{id}"), token).send().await.unwrap();
    response.json().await.unwrap()
}

async fn completed(app: &TestApp, token: &str, id: &str) -> Value {
    eventually(Duration::from_secs(20), &format!("task {id} to complete"), || async {
        let task = task(app, token, id).await;
        assert_ne!(task["status"], "dead", "{task}");
        (task["status"] == "completed").then_some(task)
    })
    .await
}

async fn listed(app: &TestApp, token: &str) -> Vec<Value> {
    let listed: Value =
        app.request_as(Method::GET, "/api/tasks?limit=100", token).send().await.unwrap().json().await.unwrap();
    listed["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_batch_is_scheduled_all_or_none_and_a_refused_task_is_named() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (user, token) = app.user_with_token("bulk@example.com", &["write:tasks"]).await;

    let refused = json!([
        { "name": "echo", "payload": { "n": 0 } },
        { "name": "echo", "payload": { "n": 1 } },
        { "name": "echo", "payload": { "reject": true } },
    ]);
    let (status, error) = error_of(schedule_batch(&app, &token, refused).await).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["fields"]["tasks[2].reject"].is_string(), "the refused task is named: {error}");
    let (status, error) =
        error_of(schedule_batch(&app, &token, json!([{ "name": "nope", "payload": {} }])).await).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["fields"]["tasks[0].name"].is_string(), "{error}");
    let (status, _) = error_of(schedule_batch(&app, &token, json!([])).await).await;
    assert_eq!(status, 400, "an empty batch");
    let too_many: Vec<Value> = (0..1001).map(|_| json!({ "name": "echo", "payload": {} })).collect();
    let (status, _) = error_of(schedule_batch(&app, &token, json!(too_many)).await).await;
    assert_eq!(status, 400, "a batch past 1000 tasks");
    assert!(listed(&app, &token).await.is_empty(), "nothing of a refused batch was stored");

    let tasks: Vec<Value> =
        (0..5).map(|n| json!({ "name": "echo", "payload": { "n": n }, "priority": "high" })).collect();
    let response = schedule_batch(&app, &token, json!(tasks)).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let items = created["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for (n, item) in items.iter().enumerate() {
        assert_eq!((item["payload"]["n"].as_u64(), item["priority"].as_str()), (Some(n as u64), Some("high")));
        let done = completed(&app, &token, item["id"].as_str().unwrap()).await;
        assert_eq!(done["result"]["echo"]["n"], n, "{done}");
        assert_eq!(done["scheduledBy"], user.id.as_str());
        assert_eq!(done["history"].as_array().unwrap().len(), 1, "{done}");
    }
}

#[tokio::test]
async fn plugins_schedule_batches_through_the_queue_all_or_none() {
    let app = spawn_app_with(&["test-trap", "test-tasks"]).await;
    let (user, token) = app.user_with_token("caller@example.com", &[]).await;
    let enqueue = |name: &'static str, payloads: Value| {
        app.request_as(Method::POST, &format!("/api/trap/enqueue-many?name={name}"), &token).json(&payloads).send()
    };

    let (status, error) = error_of(enqueue("echo", json!([{}, { "reject": true }, {}])).await.unwrap()).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["fields"]["tasks[1].reject"].is_string(), "the refused task is named: {error}");
    let (status, error) = error_of(enqueue("fail", json!([{}])).await.unwrap()).await;
    assert_eq!(status, 403, "`fail` is not in [capabilities] queue: {error}");

    let response = enqueue("echo", json!([{ "n": 0 }, { "n": 1 }, { "n": 2 }])).await.unwrap();
    assert_eq!(response.status(), 200);
    let ids: Vec<String> = serde_json::from_value(response.json::<Value>().await.unwrap()["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 3);
    for (n, id) in ids.iter().enumerate() {
        let done = completed(&app, &token, id).await;
        assert_eq!(done["result"]["echo"]["n"], n, "in order: {done}");
        assert_eq!(done["scheduledBy"], user.id.as_str(), "scheduled by the plugin's caller");
    }
    assert_eq!(app.db.count_tasks(TaskStatus::Completed).await.unwrap(), 3, "only the accepted batch was stored");
}

#[tokio::test]
async fn a_batch_of_outcomes_with_a_lost_lease_records_the_rest_and_completes_nothing_twice() {
    // No workers: the test claims and finishes as two workers itself.
    let app = spawn_configured(&["test-tasks"], |config| config.workers.concurrency = 0).await;
    let (_, token) = app.user_with_token("bulk@example.com", &["admin"]).await;
    let tasks: Vec<Value> = (0..3).map(|n| json!({ "name": "echo", "payload": { "n": n } })).collect();
    assert_eq!(schedule_batch(&app, &token, json!(tasks)).await.status(), 201);

    let now = Utc::now();
    let first = app.db.claim_tasks("worker-a", now, now + chrono::Duration::milliseconds(1), 10).await.unwrap();
    assert_eq!(first.len(), 3, "one claim takes every due task it has room for");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // worker-a's lease ran out: worker-b takes over one task.
    let now = Utc::now();
    let taken = app.db.claim_tasks("worker-b", now, now + chrono::Duration::seconds(60), 1).await.unwrap();
    assert_eq!((taken.len(), taken[0].attempts), (1, 2), "{taken:?}");

    let outcome = |worker: &str, id: &str, attempt: i32, result: &str| Outcome {
        id: id.to_owned(),
        worker: worker.to_owned(),
        attempt,
        finish: Finish::Completed { result: result.to_owned() },
        at: Utc::now(),
    };
    let late: Vec<_> = first.iter().map(|task| outcome("worker-a", &task.id, 1, r#""from a""#)).collect();
    let recorded = app.db.finish_tasks(&late).await.unwrap();
    let lost: Vec<bool> = first.iter().map(|task| task.id != taken[0].id).collect();
    assert_eq!(recorded, lost, "the batch records all but the attempt whose lease was lost");
    let recorded = app.db.finish_tasks(&[outcome("worker-b", &taken[0].id, 2, r#""from b""#)]).await.unwrap();
    assert_eq!(recorded, [true]);
    assert_eq!(app.db.finish_tasks(&late).await.unwrap(), [false; 3], "a finished attempt is never finished again");

    for task in &first {
        let record = self::task(&app, &token, &task.id).await;
        let history = record["history"].as_array().unwrap();
        assert_eq!(record["status"], "completed", "{record}");
        if task.id == taken[0].id {
            assert_eq!((record["result"].as_str(), record["attempts"].as_u64()), (Some("from b"), Some(2)), "{record}");
            assert_eq!(
                (history[0]["outcome"].as_str(), history[1]["outcome"].as_str()),
                (Some("lease-lost"), Some("completed"))
            );
        } else {
            assert_eq!((record["result"].as_str(), history.len()), (Some("from a"), 1), "{record}");
            assert_eq!(history[0]["outcome"], "completed", "{record}");
        }
    }
}

#[tokio::test]
async fn a_claim_whose_process_died_before_its_outcome_was_written_runs_again() {
    let app =
        spawn_configured(&["test-tasks"], |config| config.workers.poll_interval = Duration::from_millis(100)).await;
    let (_, token) = app.user_with_token("bulk@example.com", &["write:tasks"]).await;
    let response = schedule_batch(&app, &token, json!([{ "name": "echo", "payload": {}, "delayMs": 5000 }])).await;
    let created: Value = response.json().await.unwrap();
    let id = created["items"][0]["id"].as_str().unwrap().to_owned();

    // A process claims it (as if its delay had passed) and dies before writing any outcome.
    let due = Utc::now() + chrono::Duration::seconds(6);
    let lease = Utc::now() + chrono::Duration::milliseconds(300);
    let claimed = app.db.claim_tasks("crashed-1-deadbeef", due, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);

    let done = completed(&app, &token, &id).await;
    let history = done["history"].as_array().unwrap();
    assert_eq!((done["attempts"].as_u64(), history.len()), (Some(2), 2), "{done}");
    assert_eq!(history[0]["workerId"], "crashed-1-deadbeef");
    assert!(history[0]["outcome"].is_null(), "the crashed attempt never finished: {done}");
    assert_eq!(history[1]["outcome"], "completed", "{done}");
}

#[tokio::test]
async fn finished_tasks_are_removed_after_the_retention_period_and_waiting_ones_stay() {
    let app = spawn_configured(&["test-tasks"], |config| config.workers.retention = Duration::from_millis(400)).await;
    let (_, token) = app.user_with_token("bulk@example.com", &["write:tasks"]).await;
    let tasks = json!([{ "name": "echo", "payload": {} }, { "name": "echo", "payload": {}, "delayMs": 60000 }]);
    let created: Value = schedule_batch(&app, &token, tasks).await.json().await.unwrap();
    let (done, waiting) = (created["items"][0]["id"].as_str().unwrap(), created["items"][1]["id"].as_str().unwrap());
    completed(&app, &token, done).await;

    eventually(Duration::from_secs(10), "the finished task to be removed", || async {
        let response = app.request_as(Method::GET, &format!("/api/tasks/{done}"), &token).send().await.unwrap();
        (response.status() == 404).then_some(())
    })
    .await;
    assert!(app.db.task_attempts(done).await.unwrap().is_empty(), "its attempts went with it");
    assert_eq!(task(&app, &token, waiting).await["status"], "pending", "a waiting task is kept however old");
}
