//! Background-task throughput end to end: tasks scheduled through the scheduler (payload
//! validated by the plugin), claimed by the host's workers, run in a fresh sandboxed instance of a
//! no-op wasm handler and recorded completed. The floor beside it is the queue alone: the same
//! insert, dispatch, claim and finish with no plugin call. On the embedded backends and, when
//! `DATABASE_URL` and `REDIS_URL` are set, on PostgreSQL + Redis. Needs the built test plugins
//! (`cargo xtask build-plugins`); run with `cargo bench -p autoflow-host --bench tasks`.

mod common;

use std::time::{Duration, Instant};

use autoflow_host::config::WorkerSettings;
use autoflow_host::contract::CallContext;
use autoflow_host::db::{Database, Finish, TaskRow, TaskStatus};
use autoflow_host::services::cache::Cache;
use autoflow_host::services::redis_connection::RedisConnection;
use autoflow_host::startup::Application;
use autoflow_host::tasks::{Dispatch, NewTask};
use chrono::Utc;

use common::{Backend, BenchHost, on_each_backend};

/// Tasks per run.
const TASKS: usize = 400;
/// Workers running tasks at once (the machine's cores).
const WORKERS: usize = 2;
const PLUGIN: &str = "test-tasks";

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The queue alone: `WORKERS` loops inserting, dispatching, claiming and finishing tasks with no
/// plugin call.
async fn queue_floor(db: &Database, dispatch: &Dispatch) -> f64 {
    let started = Instant::now();
    let loops = (0..WORKERS).map(|n| {
        let (db, dispatch) = (db.clone(), dispatch.clone());
        async move {
            for i in 0..TASKS / WORKERS {
                let now = Utc::now();
                let row = TaskRow {
                    id: format!("floor-{n}-{i:06}"),
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
                };
                db.insert_task(&row).await.unwrap();
                dispatch.announce(&row.id, row.priority, row.run_at).await;
                // The other loop may have taken this one; then it leaves one of its own.
                claim_and_finish(&db, &dispatch, &format!("floor-{n}")).await;
            }
        }
    });
    futures_util::future::join_all(loops).await;
    while claim_and_finish(db, dispatch, "floor").await {}
    rate(TASKS, started.elapsed())
}

/// Claims a due task and completes it; `false` if none was due.
async fn claim_and_finish(db: &Database, dispatch: &Dispatch, worker: &str) -> bool {
    let lease = Utc::now() + chrono::Duration::seconds(60);
    let Some(claimed) = dispatch.claim(db, worker, Utc::now(), lease).await.unwrap() else { return false };
    let finish = Finish::Completed { result: "{}".into() };
    assert!(db.finish_task(&claimed.id, worker, claimed.attempts, &finish).await.unwrap());
    true
}

async fn completed(db: &Database) -> usize {
    let filter = autoflow_host::db::TaskFilter {
        status: Some(TaskStatus::Completed),
        name: Some("echo".into()),
        ..Default::default()
    };
    db.tasks_page(&filter, "", TASKS as u32 + 1).await.unwrap().len()
}

async fn bench_backend(backend: Backend) {
    let mut host = BenchHost::new(&backend, &[PLUGIN]);
    let config = &mut host.config;
    config.workers =
        WorkerSettings { concurrency: WORKERS, poll_interval: Duration::from_millis(50), ..Default::default() };

    let floor_db = Database::connect(config.database_url.as_ref(), &config.data_dir).await.unwrap();
    floor_db.migrate().await.unwrap();
    let dispatch = match &backend.redis_url {
        Some(url) => {
            let redis = RedisConnection::new(redis::Client::open(url.as_str()).unwrap());
            let cache = Cache::redis(redis.clone()).with_namespace(&config.cache_namespace);
            Dispatch::redis(redis, &cache)
        }
        None => Dispatch::Database,
    };
    let floor = queue_floor(&floor_db, &dispatch).await;
    floor_db.close().await;

    let app = Application::build(host.config.clone()).await.unwrap();
    let (db, scheduler) = (app.database().clone(), app.scheduler().clone());
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));

    let started = Instant::now();
    for _ in 0..TASKS {
        let task = NewTask { name: "echo".into(), payload: "{}".into(), ..Default::default() };
        scheduler.schedule(task, CallContext::default()).await.unwrap();
    }
    let scheduled = started.elapsed();
    while completed(&db).await < TASKS {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end_to_end = started.elapsed();
    server.abort();

    println!("-- {} ({TASKS} tasks, {WORKERS} workers)", backend.label);
    println!("{:<58} {:>8.0} tasks/s", "queue floor: insert + dispatch + claim + finish, no plugin", floor);
    println!("{:<58} {:>8.0} tasks/s", "scheduling (validate in wasm + insert)", rate(TASKS, scheduled));
    println!(
        "{:<58} {:>8.0} tasks/s   wasm/floor {:.2}",
        "end to end: schedule → no-op wasm run → completed",
        rate(TASKS, end_to_end),
        rate(TASKS, end_to_end) / floor
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(on_each_backend(bench_backend));
}
