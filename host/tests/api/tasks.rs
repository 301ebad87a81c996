//! Background tasks end to end: scheduled over `/api/tasks` (and by plugins through the queue),
//! validated by their plugin, run by the host's workers in sandboxed instances, retried with
//! backoff, dead after their attempts, revived, cancelled, and recorded attempt by attempt.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, eventually, spawn_app_with, spawn_configured};

const TERMINAL: &[&str] = &["completed", "dead", "cancelled"];

async fn schedule(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request_as(Method::POST, "/api/tasks", token).json(&body).send().await.unwrap()
}

/// Schedules a task and returns its record, failing the test on anything but `201`.
async fn scheduled(app: &TestApp, token: &str, body: Value) -> Value {
    let response = schedule(app, token, body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn task(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.request_as(Method::GET, &format!("/api/tasks/{id}"), token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The task once it reaches `status`.
async fn settled(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(20), &format!("task {id} to be {status}"), || async {
        let task = task(app, token, id).await;
        let now = task["status"].as_str().unwrap().to_owned();
        assert!(now == status || !TERMINAL.contains(&now.as_str()), "task ended {now}, not {status}: {task}");
        (now == status).then_some(task)
    })
    .await
}

#[tokio::test]
async fn a_scheduled_task_runs_once_and_its_record_tells_the_whole_story() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (user, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;

    let response =
        schedule(&app, &token, json!({ "name": "echo", "payload": { "n": 1 }, "correlationId": "order-7" })).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!((created["status"].as_str(), created["priority"].as_str()), (Some("pending"), Some("normal")));

    let done = settled(&app, &token, created["id"].as_str().unwrap(), "completed").await;
    assert_eq!(done["result"]["echo"], json!({ "n": 1 }));
    assert_eq!(done["result"]["scheduledBy"], user.id.as_str(), "the task ran for the user who scheduled it");
    assert_eq!((done["attempts"].as_u64(), done["scheduledBy"].as_str()), (Some(1), Some(user.id.as_str())));
    let history = done["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["outcome"], "completed");
    assert!(done["finishedAt"].is_string() && done["workerId"].is_string(), "{done}");
    assert_eq!(location, format!("/api/tasks/{}", done["id"].as_str().unwrap()));

    let listed: Value = app
        .request_as(Method::GET, "/api/tasks?correlationId=order-7&status=completed", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_schedules_are_refused_up_front() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;
    let (_, plain) = app.user_with_token("plain@example.com", &[]).await;

    for (body, field) in [
        (json!({ "name": "no-such-task", "payload": {} }), "name"),
        (json!({ "name": "echo", "payload": { "reject": true } }), "reject"),
        (json!({ "name": "echo", "payload": { "big": "x".repeat(70 * 1024) } }), "payload"),
        (json!({ "name": "echo", "payload": {}, "maxAttempts": 0 }), "maxAttempts"),
    ] {
        let (status, error) = error_of(schedule(&app, &token, body.clone()).await).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["fields"][field].is_string(), "{field}: {error}");
    }
    let (status, _) = error_of(schedule(&app, &token, json!({ "name": "echo", "colour": 1 })).await).await;
    assert_eq!(status, 400, "unknown fields");
    let (status, _) = error_of(schedule(&app, &plain, json!({ "name": "echo", "payload": {} })).await).await;
    assert_eq!(status, 403, "scheduling needs write:tasks");
    let listed: Value = app.request_as(Method::GET, "/api/tasks", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn failures_retry_with_backoff_then_die_and_a_dead_task_can_be_retried() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;

    let flaky = scheduled(&app, &token, json!({ "name": "flaky", "payload": { "succeedOn": 3 } })).await;
    let done = settled(&app, &token, flaky["id"].as_str().unwrap(), "completed").await;
    let history = done["history"].as_array().unwrap();
    let outcomes: Vec<&str> = history.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["retrying", "retrying", "completed"]);
    let started = |i: usize| chrono::DateTime::parse_from_rfc3339(history[i]["startedAt"].as_str().unwrap()).unwrap();
    assert!(started(1) - started(0) >= chrono::Duration::milliseconds(50), "backoff before attempt 2");
    assert!(started(2) - started(1) >= chrono::Duration::milliseconds(100), "a longer one before attempt 3");

    let hopeless = scheduled(&app, &token, json!({ "name": "flaky", "payload": { "succeedOn": 9 } })).await;
    let id = hopeless["id"].as_str().unwrap();
    let dead = settled(&app, &token, id, "dead").await;
    assert_eq!((dead["attempts"].as_u64(), dead["lastError"].as_str()), (Some(3), Some("not yet: attempt 3")));

    let failed = scheduled(&app, &token, json!({ "name": "fail", "payload": {} })).await;
    let failed = settled(&app, &token, failed["id"].as_str().unwrap(), "dead").await;
    assert_eq!(failed["attempts"], 1, "a permanent failure is not retried");

    let revived = app.request_as(Method::POST, &format!("/api/tasks/{id}/retry"), &token).send().await.unwrap();
    assert_eq!(revived.status(), 200);
    let dead_again = settled(&app, &token, id, "dead").await;
    assert_eq!(dead_again["attempts"], 6, "a retried task gets its attempts again");
    let (status, _) = error_of(
        app.request_as(Method::POST, &format!("/api/tasks/{}/retry", done["id"].as_str().unwrap()), &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "only dead tasks are retried");
}

#[tokio::test]
async fn a_trapping_or_hanging_handler_fails_its_attempt_and_the_host_carries_on() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;

    let trap = scheduled(&app, &token, json!({ "name": "trap", "payload": {} })).await;
    let spin = scheduled(&app, &token, json!({ "name": "spin", "payload": {} })).await;
    let trap = settled(&app, &token, trap["id"].as_str().unwrap(), "dead").await;
    assert_eq!(trap["attempts"], 2, "a trap counts as a failed attempt and is retried");
    let last_error = trap["lastError"].as_str().unwrap();
    assert!(last_error.starts_with("the plugin panicked: test-tasks traps on purpose\n"), "message first: {trap}");
    assert!(last_error.contains("wasm backtrace"), "the backtrace after: {trap}");
    let spin = settled(&app, &token, spin["id"].as_str().unwrap(), "dead").await;
    assert!(spin["lastError"].as_str().unwrap().contains("300"), "stopped at its timeout: {spin}");

    let echo = scheduled(&app, &token, json!({ "name": "echo", "payload": {} })).await;
    settled(&app, &token, echo["id"].as_str().unwrap(), "completed").await;
}

#[tokio::test]
async fn priorities_order_a_backlog_and_a_delayed_task_waits() {
    let app = spawn_configured(&["test-tasks"], |config| config.workers.concurrency = 1).await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;

    // Keep the one worker busy while the backlog builds up.
    let blocker =
        scheduled(&app, &token, json!({ "name": "sleep", "payload": { "ms": 1000 }, "priority": "critical" })).await;
    settled(&app, &token, blocker["id"].as_str().unwrap(), "active").await;
    let mut ids = Vec::new();
    for priority in ["low", "normal", "high", "critical"] {
        let body = json!({ "name": "echo", "payload": { "priority": priority }, "priority": priority });
        ids.push((priority, scheduled(&app, &token, body).await["id"].as_str().unwrap().to_owned()));
    }
    let mut started = Vec::new();
    for (priority, id) in &ids {
        let done = settled(&app, &token, id, "completed").await;
        started.push((done["history"][0]["startedAt"].as_str().unwrap().to_owned(), *priority));
    }
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, priority)| *priority).collect();
    assert_eq!(order, ["critical", "high", "normal", "low"]);

    let scheduled_at = Instant::now();
    let delayed = scheduled(&app, &token, json!({ "name": "echo", "payload": {}, "delayMs": 1500 })).await;
    let id = delayed["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(task(&app, &token, id).await["status"], "pending", "not run early");
    settled(&app, &token, id, "completed").await;
    assert!(scheduled_at.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn pending_tasks_can_be_cancelled_and_users_see_only_their_own() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, alice) = app.user_with_token("alice@example.com", &["write:tasks"]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &["write:tasks"]).await;
    let (_, admin) = app.user_with_token("admin@example.com", &["admin"]).await;

    let later = scheduled(&app, &alice, json!({ "name": "echo", "payload": {}, "delayMs": 60000 })).await;
    let path = format!("/api/tasks/{}", later["id"].as_str().unwrap());
    for (method, route) in
        [(Method::GET, path.clone()), (Method::DELETE, path.clone()), (Method::POST, format!("{path}/retry"))]
    {
        let (status, _) = error_of(app.request_as(method.clone(), &route, &bob).send().await.unwrap()).await;
        assert_eq!(status, 404, "{method} {route} as another user");
    }
    let bobs: Value = app.request_as(Method::GET, "/api/tasks", &bob).send().await.unwrap().json().await.unwrap();
    assert_eq!(bobs["items"], json!([]));
    let all: Value = app.request_as(Method::GET, "/api/tasks", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "admin sees everyone's");

    let cancelled = app.request_as(Method::DELETE, &path, &alice).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(task(&app, &alice, later["id"].as_str().unwrap()).await["status"], "cancelled");
    let (status, _) = error_of(app.request_as(Method::DELETE, &path, &alice).send().await.unwrap()).await;
    assert_eq!(status, 409, "only a waiting task can be cancelled");
}

#[tokio::test]
async fn creating_a_user_schedules_a_welcome_email_that_reaches_the_outbox() {
    let app = spawn_app_with(&["users", "send-email"]).await;
    let (_, admin) = app.user_with_token("admin@example.com", &["admin"]).await;

    let body = json!({ "email": "newcomer@example.com", "password": "a long enough password", "displayName": "New" });
    let created = app.request_as(Method::POST, "/api/users", &admin).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let request_id = created.headers()["x-request-id"].to_str().unwrap().to_owned();

    let path = format!("/api/tasks?name=send-email&correlationId={request_id}");
    let task = eventually(Duration::from_secs(20), "the welcome email to be sent", || async {
        let listed: Value = app.request_as(Method::GET, &path, &admin).send().await.unwrap().json().await.unwrap();
        listed["items"].as_array().and_then(|items| items.first().cloned()).filter(|t| t["status"] == "completed")
    })
    .await;
    assert_eq!(task["payload"]["to"], "newcomer@example.com");
    let outbox = app
        .column("SELECT CAST(data AS TEXT) FROM records WHERE plugin = 'send-email' AND collection = 'outbox'")
        .await;
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].contains("newcomer@example.com") && outbox[0].contains("Welcome"), "{outbox:?}");
}

#[tokio::test]
async fn plugins_schedule_only_the_tasks_their_manifest_lists() {
    let app = spawn_app_with(&["test-trap", "test-tasks"]).await;
    let (user, token) = app.user_with_token("caller@example.com", &[]).await;
    let enqueue = |name: &'static str, payload: Value| {
        app.request_as(Method::POST, &format!("/api/trap/enqueue?name={name}"), &token).json(&payload).send()
    };

    let response = enqueue("echo", json!({ "from": "a plugin" })).await.unwrap();
    assert_eq!(response.status(), 200);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let done = settled(&app, &token, &id, "completed").await;
    assert_eq!(done["scheduledBy"], user.id.as_str(), "scheduled by the plugin's caller");
    assert!(done["correlationId"].is_string(), "correlated with the request that scheduled it");

    let (status, error) = error_of(enqueue("fail", json!({})).await.unwrap()).await;
    assert_eq!(status, 403, "`fail` is not in [capabilities] queue: {error}");
    let (status, error) = error_of(enqueue("echo", json!({ "reject": true })).await.unwrap()).await;
    assert_eq!(status, 400, "the handler's validation applies: {error}");
}

/// A connection to the test Redis, if the suite has one.
async fn test_redis() -> Option<redis::aio::MultiplexedConnection> {
    let url = crate::helpers::needs_redis()?;
    Some(redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap())
}

/// Deletes every key of cache namespace `namespace`, as a Redis restarted without persistence would.
async fn forget(redis: &mut redis::aio::MultiplexedConnection, namespace: &str) {
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{namespace}:*")).query_async(redis).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(redis).await.unwrap();
    }
}

#[tokio::test]
async fn tasks_live_in_the_database_so_redis_losing_everything_loses_no_task() {
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let Some(mut redis) = test_redis().await else { return };
    let app = spawn_configured(&["test-tasks"], |config| config.cache_namespace = namespace.clone()).await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;

    let delayed = scheduled(&app, &token, json!({ "name": "echo", "payload": {}, "delayMs": 1500 })).await;
    forget(&mut redis, &namespace).await;
    let done = settled(&app, &token, delayed["id"].as_str().unwrap(), "completed").await;
    assert_eq!(done["attempts"], 1, "{done}");
}

#[tokio::test]
async fn tasks_keep_running_while_redis_is_down_and_after_it_restarts_empty() {
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let Some(mut redis) = test_redis().await else { return };
    let (proxy, redis_url) = crate::proxy::FaultProxy::for_redis(&crate::helpers::redis_url().unwrap()).await;
    let app = spawn_configured(&["test-tasks"], |config| {
        config.redis_url = Some(redis_url.into());
        config.cache_namespace = namespace.clone();
    })
    .await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;
    let before = scheduled(&app, &token, json!({ "name": "echo", "payload": {}, "delayMs": 2000 })).await;

    proxy.cut().await;
    forget(&mut redis, &namespace).await; // restarts empty
    let during = scheduled(&app, &token, json!({ "name": "echo", "payload": { "when": "redis down" } })).await;
    settled(&app, &token, during["id"].as_str().unwrap(), "completed").await;

    proxy.restore();
    let after = scheduled(&app, &token, json!({ "name": "echo", "payload": { "when": "redis back" } })).await;
    settled(&app, &token, after["id"].as_str().unwrap(), "completed").await;
    let before = settled(&app, &token, before["id"].as_str().unwrap(), "completed").await;
    assert_eq!(before["attempts"], 1, "{before}");
}

#[tokio::test]
async fn a_disabled_or_deleted_users_tasks_stop_and_their_records_say_why() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, admin) = app.user_with_token("admin@example.com", &["admin"]).await;
    let (disabled, disabled_token) = app.user_with_token("disabled@example.com", &["write:tasks"]).await;
    let (deleted, deleted_token) = app.user_with_token("deleted@example.com", &["write:tasks"]).await;
    let later = json!({ "name": "echo", "payload": {}, "delayMs": 2000 });
    let of_disabled = scheduled(&app, &disabled_token, later.clone()).await;
    let of_deleted = scheduled(&app, &deleted_token, later).await;

    let patch = autoflow_host::services::identity::UserPatch { disabled: Some(true), ..Default::default() };
    app.auth.identity.update(&disabled.id, patch).await.unwrap();
    app.auth.identity.delete(&deleted.id).await.unwrap();

    for (record, why) in [(&of_disabled, "is disabled"), (&of_deleted, "no longer exists")] {
        let dead = settled(&app, &admin, record["id"].as_str().unwrap(), "dead").await;
        let error = dead["lastError"].as_str().unwrap();
        assert!(error.contains(why) && error.contains("does not run as them"), "{dead}");
        assert_eq!(dead["result"], Value::Null, "the handler never ran: {dead}");
    }
}

#[tokio::test]
async fn validating_a_payload_takes_one_of_the_plugins_slots_like_a_request() {
    let app = spawn_configured(&["test-tasks"], |config| {
        config.limits.plugin_concurrency = 1;
        config.limits.queue_timeout = Duration::from_millis(200);
    })
    .await;
    let (_, token) = app.user_with_token("scheduler@example.com", &["write:tasks"]).await;
    let blocker = scheduled(&app, &token, json!({ "name": "sleep", "payload": { "ms": 1500 } })).await;
    // A claimed task takes its slot a moment after it shows `active`: wait for the slot itself.
    eventually(Duration::from_secs(10), "the blocker to hold the plugin's one slot", || async {
        let registry = app.live.registry();
        (registry.find("test-tasks").unwrap().slots.available_permits() == 0).then_some(())
    })
    .await;

    // The plugin's one slot is running `sleep`: validating another payload must wait for it too.
    let (status, error) = error_of(schedule(&app, &token, json!({ "name": "echo", "payload": {} })).await).await;
    assert_eq!((status, error["code"].as_str()), (503, Some("plugin_busy")), "{error}");

    settled(&app, &token, blocker["id"].as_str().unwrap(), "completed").await;
    scheduled(&app, &token, json!({ "name": "echo", "payload": {} })).await;
}
