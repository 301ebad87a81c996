//! Background-task throughput and latency, on the embedded backend and, when `DATABASE_URL` and
//! `REDIS_URL` are set, on PostgreSQL + Redis:
//!
//! - **queue floor**: the database work alone — bulk insert, batched claims and batched
//!   completions with their attempt rows — with no plugin call;
//! - **scheduling**: tasks scheduled in batches of 1000 through the scheduler (payloads validated
//!   by the no-op wasm plugin, records stored), no workers running;
//! - **end to end**: the same scheduling while the host's workers (default settings, the
//!   concurrency below) claim, run each task in a fresh sandboxed instance of a no-op wasm handler
//!   and record it completed with its attempt;
//! - **idle latency**: a task scheduled on an idle queue until its attempt starts;
//! - **history**: the queue floor again with finished tasks already in the table.
//!
//! Settable through the environment: `AUTOFLOW_BENCH_TASKS` (default 20000),
//! `AUTOFLOW_BENCH_CONCURRENCY` (50), `AUTOFLOW_BENCH_HISTORY` (finished tasks preloaded for the
//! history line, default 1000000; 0 skips it). Needs the built test plugins
//! (`cargo xtask build-plugins`); run with `cargo bench -p autoflow-host --bench tasks`.

mod common;

use std::time::{Duration, Instant};

use autoflow_host::contract::CallContext;
use autoflow_host::db::{Database, Finish, Outcome, TaskRow, TaskStatus};
use autoflow_host::startup::Application;
use autoflow_host::tasks::{NewTask, Scheduler};
use chrono::Utc;

use common::{Backend, BenchHost, Measured, on_each_backend, record};

const PLUGIN: &str = "test-tasks";
/// Tasks per scheduling call.
const BATCH: usize = 1000;
/// Idle-latency samples.
const LATENCY_SAMPLES: usize = 50;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn new_row(id: String, now: chrono::DateTime<Utc>) -> TaskRow {
    TaskRow {
        id,
        name: "floor".into(),
        payload: "{}".into(),
        priority: 2,
        status: TaskStatus::Pending,
        attempts: 0,
        max_attempts: 1,
        run_at: now,
        lease_until: None,
        worker_id: None,
        correlation_id: None,
        user_id: None,
        result: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        unique_key: None,
        schedule_name: None,
        progress: None,
        trace_parent: None,
    }
}

/// The queue alone: `tasks` inserted in batches, then claimed `concurrency` at a time and each
/// claim's batch completed in one write, as the fetcher and completer do, without a plugin.
async fn queue_floor(db: &Database, tasks: usize, concurrency: usize, run: &str) -> f64 {
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(BATCH) {
        let now = Utc::now();
        let rows: Vec<_> = chunk.iter().map(|i| new_row(format!("{run}-{i:07}"), now)).collect();
        db.insert_tasks(rows).await.unwrap();
    }
    let worker = format!("floor-{run}");
    let mut done = 0;
    while done < tasks {
        let now = Utc::now();
        let claimed = db.claim_tasks(&worker, now, now + chrono::Duration::seconds(60), concurrency).await.unwrap();
        assert!(!claimed.is_empty(), "every inserted task is due");
        let outcomes: Vec<_> = claimed
            .into_iter()
            .map(|task| Outcome {
                id: task.id,
                worker: worker.clone(),
                attempt: task.attempts,
                finish: Finish::Completed { result: "{}".into() },
                at: Utc::now(),
            })
            .collect();
        let recorded = db.finish_tasks(&outcomes).await.unwrap();
        assert!(recorded.iter().all(|&recorded| recorded));
        done += outcomes.len();
    }
    rate(tasks, started.elapsed())
}

/// Fills the table with `count` finished tasks (and an attempt each), as months of history would.
async fn preload_history(db: &Database, count: usize) {
    let count = i64::try_from(count).unwrap();
    match db {
        Database::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO tasks (id, name, payload, priority, status, attempts, max_attempts, run_at, \
                 worker_id, result, created_at, updated_at, finished_at) \
                 SELECT 'old-' || lpad(n::text, 8, '0'), 'echo', '{}', 2, 'completed', 1, 1, now(), 'old', '{}', \
                 now(), now(), now() FROM generate_series(1, $1) AS n",
            )
            .bind(count)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO task_attempts (task_id, attempt, worker_id, started_at, finished_at, outcome) \
                 SELECT id, 1, 'old', now(), now(), 'completed' FROM tasks WHERE worker_id = 'old'",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE tasks").execute(pool).await.unwrap();
        }
        Database::Sqlite(pool) => {
            let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                 INSERT INTO tasks (id, name, payload, priority, status, attempts, max_attempts, run_at, \
                 worker_id, result, created_at, updated_at, finished_at) \
                 SELECT printf('old-%08d', i), 'echo', '{}', 2, 'completed', 1, 1, $2, 'old', '{}', $2, $2, $2 FROM n",
            )
            .bind(count)
            .bind(&now)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO task_attempts (task_id, attempt, worker_id, started_at, finished_at, outcome) \
                 SELECT id, 1, 'old', $1, $1, 'completed' FROM tasks WHERE worker_id = 'old'",
            )
            .bind(&now)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }
}

/// Schedules `tasks` no-op tasks named `name` in batches of [`BATCH`]; with `unique`, each with
/// a unique key of its own (the dedupe check costs, nothing is deduplicated).
async fn schedule_all(scheduler: &Scheduler, name: &str, tasks: usize, unique: Option<&str>) {
    for start in (0..tasks).step_by(BATCH) {
        let batch = (start..tasks.min(start + BATCH))
            .map(|i| NewTask {
                name: name.into(),
                payload: "{}".into(),
                unique_key: unique.map(|run| format!("{run}-{i}")),
                ..Default::default()
            })
            .collect();
        scheduler.schedule_many(batch, CallContext::default()).await.unwrap();
    }
}

/// Waits until no task is waiting or running, checking every few milliseconds with a count the
/// partial indexes answer (a count by status alone would scan the table and load the database
/// being measured).
async fn until_drained(db: &Database) {
    const UNFINISHED: &str = "SELECT (SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'retrying')) \
         + (SELECT COUNT(*) FROM tasks WHERE status = 'active' AND lease_until IS NOT NULL)";
    loop {
        let unfinished: i64 = match db {
            Database::Postgres(pool) => sqlx::query_scalar(UNFINISHED).fetch_one(pool).await.unwrap(),
            Database::Sqlite(pool) => sqlx::query_scalar(UNFINISHED).fetch_one(pool).await.unwrap(),
        };
        if unfinished == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Median and 99th percentile of how long a task scheduled on an idle queue waits until its
/// attempt starts.
async fn idle_latency(db: &Database, scheduler: &Scheduler) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let task = NewTask { name: "echo".into(), payload: "{}".into(), ..Default::default() };
        let row = scheduler.schedule(task, CallContext::default()).await.unwrap().row;
        let started = loop {
            if let Some(attempt) = db.task_attempts(&row.id).await.unwrap().first() {
                break attempt.started_at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        samples.push((started - row.created_at).to_std().unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

async fn bench_backend(backend: Backend) {
    let tasks = setting("AUTOFLOW_BENCH_TASKS", 20_000);
    let concurrency = setting("AUTOFLOW_BENCH_CONCURRENCY", 50);
    let history = setting("AUTOFLOW_BENCH_HISTORY", 1_000_000);
    let mut host = BenchHost::new(&backend, &[PLUGIN]);
    host.config.workers.concurrency = 0;
    // The bench's own connection: a host closes its pool when it stops.
    let db = Database::connect(host.config.database_url.as_ref(), &host.config.data_dir).await.unwrap();
    db.migrate().await.unwrap();

    // The queue floor first, on an empty queue: it claims whatever is due.
    let floor = queue_floor(&db, tasks, concurrency, "floor").await;
    // Scheduling alone: a host without workers.
    let app = Application::build(host.config.clone()).await.unwrap();
    let scheduler = app.scheduler().clone();
    let started = Instant::now();
    schedule_all(&scheduler, "echo", tasks, None).await;
    let scheduling = rate(tasks, started.elapsed());
    drop(scheduler);
    app.run_until_stopped(async {}).await.unwrap();

    // End to end: a host with workers drains the tasks scheduled above, then the measured run.
    host.config.workers.concurrency = concurrency;
    let app = Application::build(host.config.clone()).await.unwrap();
    let scheduler = app.scheduler().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    until_drained(&db).await;
    let started = Instant::now();
    schedule_all(&scheduler, "echo", tasks, None).await;
    until_drained(&db).await;
    let end_to_end = rate(tasks, started.elapsed());
    let started = Instant::now();
    schedule_all(&scheduler, "echo", tasks, Some("unique")).await;
    until_drained(&db).await;
    let unique = rate(tasks, started.elapsed());
    let started = Instant::now();
    schedule_all(&scheduler, "echo-limited", tasks, None).await;
    until_drained(&db).await;
    let limited = rate(tasks, started.elapsed());
    let completed = db.count_tasks(TaskStatus::Completed).await.unwrap();
    assert_eq!(completed, 5 * tasks as i64, "every task ran once and completed");
    let (latency, latency_p99) = idle_latency(&db, &scheduler).await;
    drop(scheduler);
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    println!("-- {} ({tasks} tasks, concurrency {concurrency})", backend.label);
    let per_second = |value| Measured::Rate { per_second: value, unit: "tasks/s", latency: None };
    let scenario =
        format!("{tasks} no-op tasks end to end, concurrency {concurrency} (baseline: the queue alone, no wasm)");
    record("tasks", backend.label, &scenario, per_second(end_to_end), Some(per_second(floor)), None);
    record(
        "tasks",
        backend.label,
        "idle latency, scheduled → attempt started",
        Measured::Latency((latency, latency_p99)),
        None,
        None,
    );
    let line = |what: &str, value: f64| println!("{what:<64} {value:>8.0} tasks/s");
    line("queue floor: bulk insert + batched claim + batched finish, no wasm", floor);
    line("scheduling alone, in bulk (validate in wasm + multi-row insert)", scheduling);
    println!(
        "{:<64} {:>8.0} tasks/s   wasm/floor {:.2}",
        "end to end: schedule → no-op wasm run → completed + attempt",
        end_to_end,
        end_to_end / floor
    );
    println!(
        "{:<64} {:>8.0} tasks/s   vs plain {:.2}",
        "unique key per task: schedule → no-op run → completed",
        unique,
        unique / end_to_end
    );
    println!(
        "{:<64} {:>8.0} tasks/s   vs plain {:.2}",
        "rate-limited name (limit not reached): schedule → completed",
        limited,
        limited / end_to_end
    );
    println!(
        "{:<64} median {:>6.2} ms   p99 {:>6.2} ms",
        "idle latency: scheduled → attempt started",
        latency.as_secs_f64() * 1e3,
        latency_p99.as_secs_f64() * 1e3
    );
    if history > 0 {
        preload_history(&db, history).await;
        let with_history = queue_floor(&db, tasks, concurrency, "history").await;
        println!(
            "{:<64} {with_history:>8.0} tasks/s   vs empty {:.2}",
            format!("queue floor with {history} finished tasks in the table"),
            with_history / floor
        );
    }
    db.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(on_each_backend(bench_backend));
}
