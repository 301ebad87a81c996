//! What teams steer tasks with: unique tasks, pausing a task name, cancelling a running task,
//! the operator's figures, and schedules (repeatable tasks) from the API and from manifests.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PluginsDir, TestApp, error_of, eventually, spawn_app_with, startup_error, try_spawn};

async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.request_as(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn task(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, task) = send(app, Method::GET, &format!("/api/tasks/{id}"), token, None).await;
    assert_eq!(status, 200, "{task}");
    task
}

async fn status_becomes(app: &TestApp, token: &str, id: &str, wanted: &str, within: Duration) -> Value {
    eventually(within, &format!("task {id} to be {wanted}"), || async {
        let task = task(app, token, id).await;
        (task["status"] == wanted).then_some(task)
    })
    .await
}

/// Every task a schedule's ticks made, oldest first.
async fn runs_of(app: &TestApp, token: &str, schedule: &str) -> Vec<Value> {
    let (status, page) =
        send(app, Method::GET, &format!("/api/tasks?schedule={schedule}&limit=100"), token, None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn concurrent_schedules_of_one_unique_key_make_one_task() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("unique@example.com", &["write:tasks"]).await;
    let body = json!({ "name": "echo", "payload": { "n": 1 }, "delayMs": 60000, "uniqueKey": "sync-7" });
    let attempts = (0..20).map(|_| send(&app, Method::POST, "/api/tasks", &token, Some(body.clone())));
    let answers = futures_util::future::join_all(attempts).await;
    let ids: BTreeSet<&str> = answers.iter().map(|(_, task)| task["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every client got the one task: {answers:?}");
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "one answer created it, the others found it: {answers:?}");
    assert!(answers.iter().all(|(status, _)| [200, 201].contains(status)));
    let (_, listed) = send(&app, Method::GET, "/api/tasks?name=echo", &token, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Another key, or the same key once the holder finished, is a new task.
    let other = json!({ "name": "echo", "payload": {}, "uniqueKey": "sync-8" });
    let (status, first) = send(&app, Method::POST, "/api/tasks", &token, Some(other.clone())).await;
    assert_eq!(status, 201);
    status_becomes(&app, &token, first["id"].as_str().unwrap(), "completed", Duration::from_secs(20)).await;
    let (status, second) = send(&app, Method::POST, "/api/tasks", &token, Some(other)).await;
    assert_eq!(status, 201, "the key is free once its task finished");
    assert_ne!(first["id"], second["id"]);

    let (status, error) =
        send(&app, Method::POST, "/api/tasks", &token, Some(json!({ "name": "echo", "uniqueKey": "" }))).await;
    assert_eq!((status, error["error"]["fields"]["uniqueKey"].is_string()), (400, true), "{error}");
}

#[tokio::test]
async fn a_task_declared_unique_is_keyed_by_its_payload_even_within_a_batch() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("unique@example.com", &["write:tasks"]).await;
    let task = |n: u32| json!({ "name": "dedupe", "payload": { "n": n }, "delayMs": 60000 });
    let (status, batch) =
        send(&app, Method::POST, "/api/tasks/batch", &token, Some(json!({ "tasks": [task(1), task(2), task(1)] })))
            .await;
    assert_eq!(status, 201, "{batch}");
    let ids: Vec<&str> = batch["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], ids[2], "the same payload is the same task");
    assert_ne!(ids[0], ids[1]);
    let (status, again) = send(&app, Method::POST, "/api/tasks", &token, Some(task(2))).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(ids[1])));
}

#[tokio::test]
async fn a_dead_task_whose_unique_key_was_taken_since_is_not_retried_beside_the_new_one() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("unique@example.com", &["write:tasks"]).await;
    let body = json!({ "name": "fail", "uniqueKey": "only-one" });
    let (_, dead) = send(&app, Method::POST, "/api/tasks", &token, Some(body.clone())).await;
    let dead_id = dead["id"].as_str().unwrap();
    status_becomes(&app, &token, dead_id, "dead", Duration::from_secs(20)).await;
    let (_, paused) = app.user_with_token("ops@example.com", &["admin"]).await;
    send(&app, Method::PUT, "/api/tasks/paused/fail", &paused, None).await;
    let (status, holder) = send(&app, Method::POST, "/api/tasks", &token, Some(body)).await;
    assert_eq!(status, 201, "the dead task no longer holds the key: {holder}");
    let (status, error) = send(&app, Method::POST, &format!("/api/tasks/{dead_id}/retry"), &token, None).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("only-one"), "{error}");
}

#[tokio::test]
async fn a_paused_task_name_waits_while_others_run_and_resumes() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, admin) = app.user_with_token("ops@example.com", &["admin"]).await;
    let (status, _) = send(&app, Method::PUT, "/api/tasks/paused/echo", &admin, None).await;
    assert_eq!(status, 200);
    let (_, paused) = send(&app, Method::GET, "/api/tasks/paused", &admin, None).await;
    assert_eq!(paused["items"][0]["name"], "echo", "{paused}");

    let (_, held) = send(&app, Method::POST, "/api/tasks", &admin, Some(json!({ "name": "echo" }))).await;
    let (_, other) =
        send(&app, Method::POST, "/api/tasks", &admin, Some(json!({ "name": "sleep", "payload": { "ms": 1 } }))).await;
    status_becomes(&app, &admin, other["id"].as_str().unwrap(), "completed", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        task(&app, &admin, held["id"].as_str().unwrap()).await["status"],
        "pending",
        "a paused name is not claimed"
    );

    let (status, _) = send(&app, Method::DELETE, "/api/tasks/paused/echo", &admin, None).await;
    assert_eq!(status, 200);
    status_becomes(&app, &admin, held["id"].as_str().unwrap(), "completed", Duration::from_secs(20)).await;

    let (_, user) = app.user_with_token("user@example.com", &["write:tasks"]).await;
    let (status, _) = send(&app, Method::PUT, "/api/tasks/paused/echo", &user, None).await;
    assert_eq!(status, 403, "pausing is for operators");
    let (status, error) = send(&app, Method::PUT, "/api/tasks/paused/Not%20A%20Name", &admin, None).await;
    assert_eq!((status, error["error"]["fields"]["name"].is_string()), (400, true), "{error}");
}

#[tokio::test]
async fn cancelling_a_running_task_stops_its_instance_and_it_is_not_retried() {
    // One instance at a time: another task of the plugin runs only once the looping one is gone.
    let plugins = PluginsDir::with(&["test-tasks"]);
    plugins.edit_manifest("test-tasks", |manifest| format!("{manifest}\n[limits]\nmax-concurrency = 1\n"));
    let app = spawn(plugins).await;
    let (_, token) = app.user_with_token("cancel@example.com", &["write:tasks"]).await;
    let (_, stuck) = send(&app, Method::POST, "/api/tasks", &token, Some(json!({ "name": "loop" }))).await;
    let id = stuck["id"].as_str().unwrap();
    status_becomes(&app, &token, id, "active", Duration::from_secs(20)).await;

    let asked = Instant::now();
    let (status, cancelled) = send(&app, Method::DELETE, &format!("/api/tasks/{id}"), &token, None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    // The instance is gone: its slot is free, so another task of the plugin runs, and the
    // cancelled one never runs again.
    let (_, next) = send(&app, Method::POST, "/api/tasks", &token, Some(json!({ "name": "echo" }))).await;
    status_becomes(&app, &token, next["id"].as_str().unwrap(), "completed", Duration::from_secs(20)).await;
    assert!(asked.elapsed() < Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let record = task(&app, &token, id).await;
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("cancelled"), Some(1)), "{record}");
    assert_eq!(record["history"][0]["outcome"], "cancelled", "{record}");
    let (status, _) = send(&app, Method::DELETE, &format!("/api/tasks/{id}"), &token, None).await;
    assert_eq!(status, 409, "a finished task cannot be cancelled again");
}

/// The attempts' `(started, finished)` of every task listed by `query`, all of which completed.
async fn completed_attempts(
    app: &TestApp,
    token: &str,
    query: &str,
    count: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let (_, page) = send(app, Method::GET, &format!("/api/tasks?{query}&limit=100"), token, None).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), count, "{page}");
    let mut attempts = Vec::new();
    for item in items {
        let task = status_becomes(app, token, item["id"].as_str().unwrap(), "completed", Duration::from_secs(60)).await;
        for attempt in task["history"].as_array().unwrap() {
            let time = |key: &str| attempt[key].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            attempts.push((time("startedAt"), time("finishedAt")));
        }
    }
    attempts
}

/// The most attempts running at one instant.
fn most_at_once(attempts: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    attempts
        .iter()
        .map(|(start, _)| attempts.iter().filter(|(s, f)| s <= start && start < f).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_concurrency_limit_is_never_exceeded_and_other_tasks_keep_flowing() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("limits@example.com", &["write:tasks"]).await;
    let task = |name: &str| json!({ "name": name, "payload": { "ms": 100 } });
    let tasks: Vec<Value> = (0..30).flat_map(|_| [task("limited"), task("sleep")]).collect();
    let (status, _) = send(&app, Method::POST, "/api/tasks/batch", &token, Some(json!({ "tasks": tasks }))).await;
    assert_eq!(status, 201);

    let limited = completed_attempts(&app, &token, "name=limited", 30).await;
    let others = completed_attempts(&app, &token, "name=sleep", 30).await;
    assert!(most_at_once(&limited) <= 2, "at most two at once: {}", most_at_once(&limited));
    assert_eq!(limited.len(), 30, "a limited task waits, it never fails or retries");
    let limited_done = limited.iter().map(|a| a.1).max().unwrap();
    let others_done = others.iter().map(|a| a.1).max().unwrap();
    assert!(
        others_done + chrono::Duration::milliseconds(500) < limited_done,
        "the others are not held to the limit: they finished at {others_done}, the limited ones at {limited_done}"
    );
    assert!(most_at_once(&others) > 2, "the others ran side by side: {}", most_at_once(&others));
}

#[tokio::test]
async fn a_rate_limit_spreads_starts_over_windows() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("limits@example.com", &["write:tasks"]).await;
    let tasks: Vec<Value> = (0..12).map(|n| json!({ "name": "rated", "payload": { "n": n } })).collect();
    let (status, _) = send(&app, Method::POST, "/api/tasks/batch", &token, Some(json!({ "tasks": tasks }))).await;
    assert_eq!(status, 201);
    let mut starts: Vec<DateTime<Utc>> =
        completed_attempts(&app, &token, "name=rated", 12).await.into_iter().map(|(start, _)| start).collect();
    starts.sort();
    assert_eq!(starts.len(), 12, "each ran once");
    // Five per second: the twelve take three windows, so the last starts two seconds after the first.
    let spread = starts[11] - starts[0];
    assert!(spread >= chrono::Duration::milliseconds(1900), "12 starts at 5/s spread over {spread}");
    for (i, start) in starts.iter().enumerate() {
        let within = starts.iter().filter(|s| *s >= start && **s < *start + chrono::Duration::seconds(1)).count();
        assert!(within <= 10, "start {i}: {within} starts within a second (two windows at most)");
    }
}

#[tokio::test]
async fn a_running_task_shows_its_progress_on_its_record() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("progress@example.com", &["write:tasks"]).await;
    let (_, started) =
        send(&app, Method::POST, "/api/tasks", &token, Some(json!({ "name": "progress", "payload": { "ms": 1500 } })))
            .await;
    let id = started["id"].as_str().unwrap();
    let running = eventually(Duration::from_secs(20), "progress on the running task", || async {
        let task = task(&app, &token, id).await;
        (task["status"] == "active" && !task["progress"].is_null()).then_some(task)
    })
    .await;
    assert_eq!(running["progress"], json!({ "percent": 50, "detail": { "step": "half" } }), "{running}");
    let done = status_becomes(&app, &token, id, "completed", Duration::from_secs(20)).await;
    assert_eq!(done["progress"]["percent"], 50, "the last report stays on the record: {done}");
}

#[tokio::test]
async fn the_operator_reads_counts_by_status_and_name_and_the_oldest_waiting_age() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, admin) = app.user_with_token("ops@example.com", &["admin"]).await;
    send(&app, Method::PUT, "/api/tasks/paused/echo", &admin, None).await;
    for priority in ["high", "low", "low"] {
        send(&app, Method::POST, "/api/tasks", &admin, Some(json!({ "name": "echo", "priority": priority }))).await;
    }
    let (_, failing) = send(&app, Method::POST, "/api/tasks", &admin, Some(json!({ "name": "fail" }))).await;
    status_becomes(&app, &admin, failing["id"].as_str().unwrap(), "dead", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (status, stats) = send(&app, Method::GET, "/api/tasks/stats", &admin, None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (stats["byStatus"]["pending"].as_i64(), stats["byStatus"]["dead"].as_i64()),
        (Some(3), Some(1)),
        "{stats}"
    );
    assert_eq!(stats["byStatus"]["completed"], 0, "every status is listed");
    assert_eq!(
        (stats["byName"]["echo"]["pending"].as_i64(), stats["byName"]["fail"]["dead"].as_i64()),
        (Some(3), Some(1))
    );
    let waiting = stats["waiting"].as_array().unwrap();
    let low = waiting.iter().find(|w| w["priority"] == "low").unwrap();
    assert_eq!(low["due"], 2, "{stats}");
    assert!(low["oldestAgeMs"].as_i64().unwrap() >= 50, "{stats}");
    assert!(waiting.iter().any(|w| w["priority"] == "high" && w["due"] == 1));

    let (_, user) = app.user_with_token("user@example.com", &["write:tasks"]).await;
    let (status, _) = send(&app, Method::GET, "/api/tasks/stats", &user, None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_api_schedule_ticks_once_per_interval_pauses_resumes_and_is_its_makers_own() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (alice_user, alice) = app.user_with_token("alice@example.com", &["write:schedules", "write:tasks"]).await;
    let body = json!({ "name": "heartbeat", "task": "echo", "everyMs": 1000, "payload": { "beat": true } });
    let (status, created) = send(&app, Method::POST, "/api/schedules", &alice, Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["paused"].as_bool(), created["missed"].as_str()), (Some(false), Some("run-once")));
    let (status, _) = send(&app, Method::POST, "/api/schedules", &alice, Some(body)).await;
    assert_eq!(status, 409, "the name is taken");

    let runs = eventually(Duration::from_secs(20), "three ticks", || async {
        let runs = runs_of(&app, &alice, "heartbeat").await;
        (runs.len() >= 3).then_some(runs)
    })
    .await;
    let ticks: BTreeSet<&str> = runs.iter().map(|run| run["runAt"].as_str().unwrap()).collect();
    assert_eq!(ticks.len(), runs.len(), "one task per tick: {runs:?}");
    for run in &runs {
        assert_eq!(
            (run["schedule"].as_str(), run["scheduledBy"].as_str()),
            (Some("heartbeat"), Some(alice_user.id.as_str()))
        );
    }
    let first =
        status_becomes(&app, &alice, runs[0]["id"].as_str().unwrap(), "completed", Duration::from_secs(20)).await;
    assert_eq!(first["result"]["echo"], json!({ "beat": true }));

    let (status, paused) = send(&app, Method::POST, "/api/schedules/heartbeat/pause", &alice, None).await;
    assert_eq!((status, paused["paused"].as_bool()), (200, Some(true)));
    let before = runs_of(&app, &alice, "heartbeat").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(runs_of(&app, &alice, "heartbeat").await.len(), before, "a paused schedule does not tick");
    let (_, resumed) = send(&app, Method::POST, "/api/schedules/heartbeat/resume", &alice, None).await;
    assert_eq!(resumed["paused"], false);
    eventually(Duration::from_secs(20), "a tick after resuming", || async {
        (runs_of(&app, &alice, "heartbeat").await.len() > before).then_some(())
    })
    .await;
    assert_eq!(runs_of(&app, &alice, "heartbeat").await.len(), before + 1, "ticks missed while paused do not run");

    let (_, bob) = app.user_with_token("bob@example.com", &["write:schedules"]).await;
    let (_, listed) = send(&app, Method::GET, "/api/schedules", &bob, None).await;
    assert_eq!(listed["items"], json!([]), "others' schedules are not shown");
    for (method, path) in [(Method::GET, "/api/schedules/heartbeat"), (Method::DELETE, "/api/schedules/heartbeat")] {
        let (status, _) = send(&app, method, path, &bob, None).await;
        assert_eq!(status, 404);
    }
    let (_, plain) = app.user_with_token("plain@example.com", &[]).await;
    let (status, _) = send(&app, Method::GET, "/api/schedules", &plain, None).await;
    assert_eq!(status, 403);

    let (status, _) = send(&app, Method::DELETE, "/api/schedules/heartbeat", &alice, None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, Method::GET, "/api/schedules/heartbeat", &alice, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("alice@example.com", &["write:schedules"]).await;
    for (body, field) in [
        (json!({ "name": "s", "task": "echo", "cron": "every day" }), "cron"),
        (json!({ "name": "s", "task": "echo", "cron": "61 * * * *" }), "cron"),
        (json!({ "name": "s", "task": "echo", "cron": "* * * * *", "timezone": "Mars/Base" }), "timezone"),
        (json!({ "name": "s", "task": "echo", "everyMs": 0 }), "everyMs"),
        (json!({ "name": "s", "task": "echo" }), "cron"),
        (json!({ "name": "s", "task": "echo", "everyMs": 1000, "missed": "later" }), "missed"),
        (json!({ "name": "Bad Name", "task": "echo", "everyMs": 1000 }), "name"),
        (json!({ "name": "s", "task": "no-such-task", "everyMs": 1000 }), "task"),
    ] {
        let (status, error) = send(&app, Method::POST, "/api/schedules", &token, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["error"]["fields"][field].is_string(), "{body}: {error}");
    }
    let refused = json!({ "name": "s", "task": "echo", "everyMs": 1000, "payload": { "reject": true } });
    let (status, error) = send(&app, Method::POST, "/api/schedules", &token, Some(refused)).await;
    assert_eq!(status, 400, "the task's plugin validates the payload: {error}");
    let (status, cron) = send(
        &app,
        Method::POST,
        "/api/schedules",
        &token,
        Some(json!({ "name": "nine", "task": "echo", "cron": "0 9 * * *", "timezone": "Europe/Paris" })),
    )
    .await;
    assert_eq!(status, 201, "{cron}");
    let next = chrono::DateTime::parse_from_rfc3339(cron["nextRunAt"].as_str().unwrap()).unwrap();
    let paris = next.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(paris.format("%H:%M:%S").to_string(), "09:00:00", "{cron}");
}

/// A host serving `plugins`.
async fn spawn(plugins: PluginsDir) -> TestApp {
    match try_spawn(plugins, |_| {}).await {
        Ok(app) => app,
        Err((error, _)) => panic!("the host failed to start: {error}"),
    }
}

/// A copy of `test-tasks` whose manifest also declares `schedules` (TOML).
fn scheduling_plugins(schedules: &str) -> PluginsDir {
    let plugins = PluginsDir::with(&["test-tasks"]);
    plugins.edit_manifest("test-tasks", |manifest| format!("{manifest}\n{schedules}"));
    plugins
}

#[tokio::test]
async fn a_manifests_schedule_is_stored_ticks_and_is_the_manifests_to_remove() {
    let schedules = "[[schedules]]\nname = \"manifest-beat\"\ntask = \"echo\"\nevery-ms = 1000\npayload = { from = \"manifest\" }\n";
    let app = spawn(scheduling_plugins(schedules)).await;
    let (_, admin) = app.user_with_token("ops@example.com", &["admin"]).await;
    let listed = eventually(Duration::from_secs(10), "the manifest's schedule", || async {
        let (_, listed) = send(&app, Method::GET, "/api/schedules", &admin, None).await;
        (!listed["items"].as_array().unwrap().is_empty()).then_some(listed)
    })
    .await;
    assert_eq!(
        (listed["items"][0]["name"].as_str(), listed["items"][0]["plugin"].as_str()),
        (Some("manifest-beat"), Some("test-tasks"))
    );
    let run = eventually(Duration::from_secs(20), "a tick", || async {
        runs_of(&app, &admin, "manifest-beat").await.into_iter().next()
    })
    .await;
    let done = status_becomes(&app, &admin, run["id"].as_str().unwrap(), "completed", Duration::from_secs(20)).await;
    assert_eq!(done["result"]["echo"], json!({ "from": "manifest" }));
    let (status, error) = send(&app, Method::DELETE, "/api/schedules/manifest-beat", &admin, None).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("test-tasks"), "{error}");
    let (status, paused) = send(&app, Method::POST, "/api/schedules/manifest-beat/pause", &admin, None).await;
    assert_eq!((status, paused["paused"].as_bool()), (200, Some(true)), "operators may pause it");
}

#[tokio::test]
async fn a_manifest_with_a_bad_schedule_is_refused_naming_the_plugin() {
    for (entry, expected) in [
        ("cron = \"not cron\"", "cron `not cron` is not a cron expression"),
        ("cron = \"* * * * *\"\ntimezone = \"Mars/Base\"", "timezone `Mars/Base`"),
        ("every-ms = 0", "every-ms must be"),
    ] {
        let schedules = format!("[[schedules]]\nname = \"bad\"\ntask = \"echo\"\n{entry}\n");
        let error = startup_error(scheduling_plugins(&schedules)).await;
        assert!(error.contains("test-tasks") && error.contains(expected), "{expected}: {error}");
    }
}

#[tokio::test]
async fn error_shapes_name_the_schedule() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, token) = app.user_with_token("alice@example.com", &["write:schedules"]).await;
    let response = app.request_as(Method::POST, "/api/schedules/none/pause", &token).send().await.unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("none"), "{body}");
}

#[tokio::test]
async fn throughput_counts_the_tasks_that_completed_and_died_in_each_of_the_last_sixty_minutes() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, admin) = app.user_with_token("throughput-admin@example.com", &["admin"]).await;
    let (_, user) = app.user_with_token("throughput-user@example.com", &["write:tasks"]).await;
    let mut ids = Vec::new();
    for body in [
        json!({ "name": "echo", "payload": { "n": 1 } }),
        json!({ "name": "echo", "payload": { "n": 2 } }),
        json!({ "name": "echo", "payload": { "n": 3 } }),
        json!({ "name": "fail", "payload": {}, "maxAttempts": 1 }),
    ] {
        let (status, task) = send(&app, Method::POST, "/api/tasks", &admin, Some(body)).await;
        assert_eq!(status, 201, "{task}");
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    for (id, wanted) in ids.iter().zip(["completed", "completed", "completed", "dead"]) {
        status_becomes(&app, &admin, id, wanted, Duration::from_secs(20)).await;
    }

    let (status, body) = send(&app, Method::GET, "/api/tasks/throughput", &admin, None).await;

    assert_eq!(status, 200, "{body}");
    let minutes = body["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "{body}");
    let starts: Vec<DateTime<Utc>> = minutes.iter().map(|m| m["minute"].as_str().unwrap().parse().unwrap()).collect();
    assert!(starts.windows(2).all(|pair| (pair[1] - pair[0]).num_seconds() == 60), "one row per minute: {starts:?}");
    assert!(Utc::now() - *starts.last().unwrap() < chrono::Duration::seconds(61), "the last row is this minute");
    let total = |field: &str| minutes.iter().map(|m| m[field].as_i64().unwrap()).sum::<i64>();
    assert_eq!((total("completed"), total("dead")), (3, 1), "{body}");
    let (status, refused) = send(&app, Method::GET, "/api/tasks/throughput", &user, None).await;
    assert_eq!(status, 403, "{refused}");
}

#[tokio::test]
async fn an_admin_lists_tasks_newest_first_and_by_the_user_who_scheduled_them() {
    let app = spawn_app_with(&["test-tasks"]).await;
    let (_, admin) = app.user_with_token("lister-admin@example.com", &["admin"]).await;
    let (ann, ann_token) = app.user_with_token("lister-ann@example.com", &["write:tasks"]).await;
    let (bob, bob_token) = app.user_with_token("lister-bob@example.com", &["write:tasks"]).await;
    let mut ids = Vec::new();
    for (n, token) in [(1, &ann_token), (2, &bob_token), (3, &ann_token)] {
        let body = json!({ "name": "echo", "payload": { "n": n }, "delayMs": 60000 });
        let (status, task) = send(&app, Method::POST, "/api/tasks", token, Some(body)).await;
        assert_eq!(status, 201, "{task}");
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let ids_of = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    };

    let (_, first) = send(&app, Method::GET, "/api/tasks?order=newest&limit=2", &admin, None).await;
    assert_eq!(ids_of(&first), [ids[2].clone(), ids[1].clone()], "{first}");
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, rest) =
        send(&app, Method::GET, &format!("/api/tasks?order=newest&limit=2&cursor={cursor}"), &admin, None).await;
    assert_eq!(ids_of(&rest), [ids[0].clone()], "{rest}");
    assert_eq!(rest["nextCursor"], Value::Null);

    let (_, anns) = send(&app, Method::GET, &format!("/api/tasks?user={}", ann.id), &admin, None).await;
    assert_eq!(ids_of(&anns), [ids[0].clone(), ids[2].clone()], "{anns}");
    let (status, refused) = send(&app, Method::GET, &format!("/api/tasks?user={}", bob.id), &ann_token, None).await;
    assert_eq!(status, 403, "{refused}");
    let (status, own) = send(&app, Method::GET, &format!("/api/tasks?user={}", ann.id), &ann_token, None).await;
    assert_eq!((status, ids_of(&own)), (200, vec![ids[0].clone(), ids[2].clone()]), "{own}");
    let (status, bad) = send(&app, Method::GET, "/api/tasks?order=sideways", &admin, None).await;
    assert_eq!(status, 400, "{bad}");
}
