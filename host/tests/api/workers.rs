//! `autoflow worker` processes: several share one database's tasks with none run twice, a worker
//! killed mid-task has its task finished by another once the claim's lease runs out, a schedule
//! ticks once per tick whichever processes are up, and a paused task name stays paused for every
//! process, across restarts.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{Process, autoflow, create_user, kill, start_serving, terminate};
use crate::helpers::{PluginsDir, TestDatabase, eventually};

/// A deployment of processes on one database: `serve` without workers for the API, plus workers.
struct Deployment {
    /// First, so it is killed before the database and directories go.
    _serve: Process,
    database: TestDatabase,
    data: tempfile::TempDir,
    plugins: PluginsDir,
    address: String,
    token: String,
    client: reqwest::Client,
}

impl Deployment {
    async fn start() -> Self {
        let (database, data, plugins) =
            (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["test-tasks"]));
        let args = ["--email", "ops@example.com", "--permissions", "write:tasks,write:schedules,admin"];
        assert!(create_user(&database, data.path(), &args, "operations password\n").status.success());
        let mut command = autoflow(&database, data.path());
        command.args(["serve", "--listen", "127.0.0.1:0", "--workers", "0", "--watch", "false", "--plugins"]);
        command.arg(plugins.path());
        let (serve, address) = start_serving(command);
        let client = reqwest::Client::new();
        let login = client
            .post(format!("http://{address}/auth/login"))
            .json(&json!({ "email": "ops@example.com", "password": "operations password" }))
            .send()
            .await
            .unwrap();
        let token = login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        Self { _serve: serve, database, data, plugins, address, token, client }
    }

    /// Starts an `autoflow worker` process with `args`.
    fn worker(&self, args: &[&str]) -> Process {
        let mut command = autoflow(&self.database, self.data.path());
        command.args(["worker", "--watch", "false", "--plugins"]).arg(self.plugins.path()).args(args);
        Process::new(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
    }

    async fn schedule(&self, body: Value) -> String {
        let response =
            self.client.post(format!("http://{}/api/tasks", self.address)).bearer_auth(&self.token).json(&body).send();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request =
            self.client.request(method, format!("http://{}{path}", self.address)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// The tasks schedule `name` made.
    async fn runs_of(&self, name: &str) -> Vec<Value> {
        let page = self.send(reqwest::Method::GET, &format!("/api/tasks?schedule={name}&limit=100"), None).await;
        page["items"].as_array().unwrap().clone()
    }

    async fn task(&self, id: &str) -> Value {
        let response = self.client.get(format!("http://{}/api/tasks/{id}", self.address)).bearer_auth(&self.token);
        response.send().await.unwrap().json().await.unwrap()
    }

    async fn completed(&self, id: &str) -> Value {
        eventually(Duration::from_secs(30), &format!("task {id} to complete"), || async {
            let task = self.task(id).await;
            assert_ne!(task["status"], "dead", "{task}");
            (task["status"] == "completed").then_some(task)
        })
        .await
    }
}

/// The process a worker id names (`{pid}-{process}`: one per process, whose fetcher claims for
/// all its workers).
fn process_of(worker: &Value) -> String {
    let worker = worker.as_str().unwrap();
    assert!(worker.split_once('-').is_some_and(|(pid, _)| pid.parse::<u32>().is_ok()), "{worker}");
    worker.to_owned()
}

#[tokio::test]
async fn worker_processes_share_the_tasks_and_run_each_one_once() {
    let deployment = Deployment::start().await;
    let workers = [deployment.worker(&["--concurrency", "2"]), deployment.worker(&["--concurrency", "2"])];

    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(deployment.schedule(json!({ "name": "sleep", "payload": { "ms": 150 } })).await);
    }
    let mut processes = std::collections::BTreeSet::new();
    for id in &ids {
        let task = deployment.completed(id).await;
        assert_eq!(task["attempts"], 1, "run once: {task}");
        assert_eq!(task["history"].as_array().unwrap().len(), 1, "{task}");
        processes.insert(process_of(&task["workerId"]));
    }
    for worker in workers {
        kill(worker);
    }
    assert_eq!(processes.len(), 2, "both processes took tasks: {processes:?}");
}

#[tokio::test]
async fn a_task_whose_worker_is_killed_is_finished_by_another_once_its_lease_ends() {
    let deployment = Deployment::start().await;
    let lease = ["--task-timeout-ms", "2000", "--task-lease-margin-ms", "300", "--task-poll-interval-ms", "200"];
    let doomed = deployment.worker(&[&["--concurrency", "1"][..], &lease].concat());
    let id = deployment.schedule(json!({ "name": "sleep", "payload": { "ms": 1500 } })).await;
    let claimed = eventually(Duration::from_secs(20), "the first worker to claim the task", || async {
        let task = deployment.task(&id).await;
        (task["status"] == "active").then_some(task)
    })
    .await;

    let mut doomed = doomed;
    doomed.kill().unwrap(); // SIGKILL: no chance to finish or release the task
    doomed.wait().unwrap();
    let rescuer = deployment.worker(&[&["--concurrency", "1"][..], &lease].concat());
    let done = deployment.completed(&id).await;
    kill(rescuer);

    let history = done["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{done}");
    assert!(history[0]["outcome"].is_null(), "the killed attempt never finished: {done}");
    assert_eq!(history[1]["outcome"], "completed");
    assert_ne!(process_of(&history[0]["workerId"]), process_of(&history[1]["workerId"]));
    assert_eq!(process_of(&claimed["workerId"]), process_of(&history[0]["workerId"]));
    assert_eq!(done["attempts"], 2, "completed exactly once, on the second attempt");
}

/// The task `id` once it is running.
async fn running(deployment: &Deployment, id: &str) -> Value {
    eventually(Duration::from_secs(20), "a worker to claim the task", || async {
        let task = deployment.task(id).await;
        (task["status"] == "active").then_some(task)
    })
    .await
}

/// Waits for `process` to exit on its own (after SIGTERM); its status and how long it took.
async fn exit_of(mut process: Process) -> (std::process::ExitStatus, Duration) {
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || process.wait().unwrap()).await.unwrap();
    (status, started.elapsed())
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_finishes_its_running_task_before_it_exits() {
    let deployment = Deployment::start().await;
    let worker = deployment.worker(&["--concurrency", "1"]);
    let id = deployment.schedule(json!({ "name": "sleep", "payload": { "ms": 1000 } })).await;
    running(&deployment, &id).await;

    terminate(&worker);
    let (status, _) = exit_of(worker).await;

    assert!(status.success(), "the worker exits 0 after draining, got {status}");
    let task = deployment.task(&id).await;
    assert_eq!(task["status"], "completed", "finished before the process exited: {task}");
    assert_eq!(task["attempts"], 1);
}

#[tokio::test]
async fn a_task_running_past_the_shutdown_timeout_is_handed_to_another_worker_at_once() {
    let deployment = Deployment::start().await;
    // Leases last the default task timeout (5 min) plus margin: only a hand-back explains a quick rescue.
    let stopping = deployment.worker(&["--concurrency", "1", "--shutdown-timeout", "300ms"]);
    let id = deployment.schedule(json!({ "name": "sleep", "payload": { "ms": 2500 } })).await;
    let claimed = running(&deployment, &id).await;

    terminate(&stopping);
    let (status, took) = exit_of(stopping).await;
    assert!(status.success(), "the worker exits 0 after handing the task back, got {status}");
    assert!(took < Duration::from_secs(5), "it waited {took:?}, not the task's 2.5 s");
    let handed_back = deployment.task(&id).await;
    assert_eq!(handed_back["status"], "pending", "due again at once: {handed_back}");

    let rescuer = deployment.worker(&["--concurrency", "1"]);
    let started = std::time::Instant::now();
    let done = deployment.completed(&id).await;
    kill(rescuer);

    assert!(started.elapsed() < Duration::from_secs(20), "taken over without waiting for the lease");
    let history = done["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{done}");
    assert_eq!(history[0]["outcome"], "released", "{done}");
    assert_eq!(process_of(&history[0]["workerId"]), process_of(&claimed["workerId"]));
    assert_eq!(history[1]["outcome"], "completed");
    let given_back = claimed["maxAttempts"].as_u64().map(|max| max + 1);
    assert_eq!(done["maxAttempts"].as_u64(), given_back, "the handed-back attempt was not spent: {done}");
}

#[tokio::test]
async fn the_cli_schedules_tasks_through_the_api() {
    let deployment = Deployment::start().await;
    let worker = deployment.worker(&["--concurrency", "1"]);
    let cli = |args: &[&str]| {
        let mut command = autoflow(&deployment.database, deployment.data.path());
        command.args(["tasks", "schedule"]).args(args);
        command.env("AUTOFLOW_URL", format!("http://{}", deployment.address)).env("AUTOFLOW_TOKEN", &deployment.token);
        command.output().unwrap()
    };

    let scheduled = cli(&["echo", "--payload", r#"{"from": "the cli"}"#, "--priority", "high"]);
    let printed = String::from_utf8_lossy(&scheduled.stdout).into_owned();
    assert!(scheduled.status.success(), "{}", String::from_utf8_lossy(&scheduled.stderr));
    assert!(printed.contains("(echo) is pending, priority high"), "{printed}");
    let id = printed.split_whitespace().nth(1).unwrap();
    let done = deployment.completed(id).await;
    assert_eq!(done["result"]["echo"], json!({ "from": "the cli" }));

    let refused = cli(&["echo", "--payload", r#"{"reject": true}"#]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("400"), "{}", String::from_utf8_lossy(&refused.stderr));
    let not_json = cli(&["echo", "--payload", "{oops"]);
    assert!(String::from_utf8_lossy(&not_json.stderr).contains("--payload is not JSON"));
    kill(worker);
}

#[tokio::test]
async fn the_cli_manages_schedules_pauses_task_names_and_reads_the_figures() {
    let deployment = Deployment::start().await;
    let cli = |args: &[&str]| {
        let mut command = autoflow(&deployment.database, deployment.data.path());
        command.args(args);
        command.env("AUTOFLOW_URL", format!("http://{}", deployment.address)).env("AUTOFLOW_TOKEN", &deployment.token);
        let output = command.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), format!("{stdout}{stderr}"))
    };
    let (ok, created) = cli(&[
        "schedules",
        "create",
        "weekdays",
        "--task",
        "echo",
        "--cron",
        "0 9 * * 1-5",
        "--timezone",
        "Europe/Paris",
    ]);
    assert!(ok && created.contains("weekdays") && created.contains("Europe/Paris"), "{created}");
    let (ok, refused) = cli(&["schedules", "create", "broken", "--task", "echo", "--cron", "every day"]);
    assert!(!ok && refused.contains("400") && refused.contains("cron"), "{refused}");
    let (_, paused) = cli(&["schedules", "pause", "weekdays"]);
    assert!(paused.contains("paused"), "{paused}");
    let (_, listed) = cli(&["schedules", "list"]);
    assert!(listed.contains("weekdays") && listed.contains("paused"), "{listed}");
    let (ok, _) = cli(&["schedules", "delete", "weekdays"]);
    assert!(ok);
    let (_, listed) = cli(&["schedules", "list"]);
    assert!(!listed.contains("weekdays"), "{listed}");

    let (ok, paused) = cli(&["tasks", "pause", "echo"]);
    assert!(ok, "{paused}");
    let (_, scheduled) = cli(&["tasks", "schedule", "echo"]);
    assert!(scheduled.contains("is pending"), "{scheduled}");
    let (ok, stats) = cli(&["tasks", "stats"]);
    assert!(ok, "{stats}");
    let echo = stats.lines().find(|line| line.starts_with("echo")).unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(echo.split_whitespace().nth(1), Some("1"), "one echo pending: {stats}");
    let (ok, _) = cli(&["tasks", "resume", "echo"]);
    assert!(ok);
}

#[tokio::test]
async fn a_worker_process_stops_a_disabled_users_tasks_although_it_had_cached_the_user() {
    let deployment = Deployment::start().await;
    let worker = deployment.worker(&["--concurrency", "1"]);
    // The worker runs one task as the user, reading (and, without Redis, caching) them.
    let first = deployment.schedule(json!({ "name": "echo", "payload": {} })).await;
    deployment.completed(&first).await;

    // The user is disabled by another process of the deployment: this test, on the same database
    // (and the same Redis namespace, when there is Redis).
    let db =
        autoflow_host::db::Database::connect(deployment.database.url.as_ref(), deployment.data.path()).await.unwrap();
    let namespace = format!("test-{}", deployment.data.path().file_name().unwrap().to_string_lossy());
    let cache = match crate::helpers::redis_url() {
        Some(url) => {
            let connection =
                autoflow_host::services::redis_connection::RedisConnection::new(redis::Client::open(url).unwrap());
            autoflow_host::services::cache::Cache::redis(connection).with_namespace(&namespace)
        }
        None => autoflow_host::services::cache::Cache::memory(),
    };
    let identity = autoflow_host::services::identity::Identity::new(db.clone(), Default::default(), cache);
    let user = identity.list(10, None).await.unwrap().items.into_iter().find(|u| u.email == "ops@example.com").unwrap();
    let later = deployment.schedule(json!({ "name": "echo", "payload": {}, "delayMs": 2000 })).await;
    let disable = autoflow_host::services::identity::UserPatch { disabled: Some(true), ..Default::default() };
    identity.update(&user.id, disable).await.unwrap();

    let dead = eventually(Duration::from_secs(20), "the task of the disabled user to end", || async {
        let row = db.task(&later).await.unwrap().unwrap();
        (row.status == autoflow_host::db::TaskStatus::Dead).then_some(row)
    })
    .await;
    assert!(dead.last_error.unwrap_or_default().contains("is disabled"));
    kill(worker);
}

#[tokio::test]
async fn a_schedule_ticks_once_per_tick_across_processes_even_when_one_is_killed() {
    use reqwest::Method;
    let deployment = Deployment::start().await;
    let mut first = deployment.worker(&["--concurrency", "2"]);
    let second = deployment.worker(&["--concurrency", "2"]);
    let body = json!({ "name": "every-second", "task": "echo", "everyMs": 1000 });
    deployment.send(Method::POST, "/api/schedules", Some(body)).await;
    eventually(Duration::from_secs(20), "three ticks", || async {
        (deployment.runs_of("every-second").await.len() >= 3).then_some(())
    })
    .await;
    first.kill().unwrap(); // SIGKILL mid-way: its ticker may be anywhere in a firing
    first.wait().unwrap();
    let before = deployment.runs_of("every-second").await.len();
    eventually(Duration::from_secs(20), "three more ticks", || async {
        (deployment.runs_of("every-second").await.len() >= before + 3).then_some(())
    })
    .await;
    deployment.send(Method::POST, "/api/schedules/every-second/pause", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(second);

    let mut ticks: Vec<chrono::DateTime<chrono::Utc>> = deployment
        .runs_of("every-second")
        .await
        .iter()
        .map(|run| run["runAt"].as_str().unwrap().parse().unwrap())
        .collect();
    ticks.sort();
    assert!(ticks.len() >= 6, "{ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!((pair[1] - pair[0]).num_milliseconds(), 1000, "one run per tick, none missing: {ticks:?}");
    }
}

#[tokio::test]
async fn a_paused_task_name_stays_paused_for_every_process_across_restarts() {
    use reqwest::Method;
    let deployment = Deployment::start().await;
    deployment.send(Method::PUT, "/api/tasks/paused/sleep", None).await;
    let id = deployment.schedule(json!({ "name": "sleep", "payload": { "ms": 1 } })).await;
    let worker = deployment.worker(&["--concurrency", "2", "--task-poll-interval-ms", "100"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(deployment.task(&id).await["status"], "pending", "a worker started after the pause does not claim it");
    kill(worker);
    let restarted = deployment.worker(&["--concurrency", "2", "--task-poll-interval-ms", "100"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(deployment.task(&id).await["status"], "pending", "nor does one restarted");
    deployment.send(Method::DELETE, "/api/tasks/paused/sleep", None).await;
    deployment.completed(&id).await;
    kill(restarted);
}

#[tokio::test]
async fn a_concurrency_limit_holds_across_worker_processes() {
    let deployment = Deployment::start().await;
    // Three processes running one task each could run three at once: only the shared limit stops them.
    let one = ["--concurrency", "1", "--task-poll-interval-ms", "50"];
    let workers = [deployment.worker(&one), deployment.worker(&one), deployment.worker(&one)];
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(deployment.schedule(json!({ "name": "limited", "payload": { "ms": 200 } })).await);
    }
    let (mut attempts, mut processes) = (Vec::new(), std::collections::BTreeSet::new());
    for id in &ids {
        let task = deployment.completed(id).await;
        for attempt in task["history"].as_array().unwrap() {
            let time = |key: &str| attempt[key].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap();
            attempts.push((time("startedAt"), time("finishedAt")));
            processes.insert(process_of(&attempt["workerId"]));
        }
    }
    for worker in workers {
        kill(worker);
    }
    let most = attempts.iter().map(|(start, _)| attempts.iter().filter(|(s, f)| s <= start && start < f).count()).max();
    assert!(most <= Some(2), "at most two at once across processes: {most:?}");
    assert!(processes.len() >= 2, "the tasks ran side by side in several processes: {processes:?}");
}
