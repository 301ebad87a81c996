//! Task handlers for the host's task tests: `echo` (returns its payload; `{"reject": true}` is
//! refused when scheduled), `flaky` (retry until attempt `succeedOn`), `fail`, `trap` (panics),
//! `spin` (never returns), `sleep` (`{"ms"}`), `dedupe` (an `echo` declared unique by payload)
//! `loop` (`spin` with retries, to be cancelled), `progress` (reports half done, then sleeps
//! `{"ms"}`), `limited` (`sleep`, two at a time), `rated` (`echo`, five starts a second),
//! `echo-limited` (`echo` under a rate limit it never reaches) and `fetch` (GETs `{"url"}`).

use std::time::Duration;

use autoflow_sdk::{Error, Result, Task, TaskError, Tasks};
use serde::Deserialize;
use serde_json::{Value, json};

fn echo_valid(payload: &Value) -> Result<()> {
    if payload["reject"] == true {
        return Err(Error::invalid_field("reject", "this payload is refused on purpose"));
    }
    Ok(())
}

fn echo(task: &Task, payload: Value) -> core::result::Result<Value, TaskError> {
    Ok(json!({ "echo": payload, "attempt": task.attempt, "scheduledBy": task.scheduled_by }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flaky {
    succeed_on: u32,
}

fn flaky(task: &Task, payload: Flaky) -> core::result::Result<Value, TaskError> {
    if task.attempt < payload.succeed_on {
        return Err(TaskError::retry(format!("not yet: attempt {}", task.attempt)));
    }
    Ok(json!({ "succeededOn": task.attempt }))
}

fn fail(_: &Task, _: Value) -> core::result::Result<Value, TaskError> {
    Err(TaskError::fail("this task fails for good"))
}

fn trap(_: &Task, _: Value) -> core::result::Result<Value, TaskError> {
    panic!("test-tasks traps on purpose")
}

fn spin(_: &Task, _: Value) -> core::result::Result<Value, TaskError> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

fn sleep(task: &Task, payload: Sleep) -> core::result::Result<Value, TaskError> {
    std::thread::sleep(Duration::from_millis(payload.ms));
    Ok(json!({ "slept": payload.ms, "task": task.id }))
}

fn progress(task: &Task, payload: Sleep) -> core::result::Result<Value, TaskError> {
    let reported = autoflow_sdk::tasks::progress(Some(50), Some(&json!({ "step": "half" })));
    reported.map_err(|error| TaskError::fail(format!("cannot report progress: {error:?}")))?;
    sleep(task, payload)
}

#[derive(Deserialize)]
struct Fetch {
    url: String,
}

fn fetch(_: &Task, payload: Fetch) -> core::result::Result<Value, TaskError> {
    let response = autoflow_sdk::http::get(&payload.url).map_err(|error| TaskError::fail(error.to_string()))?;
    let status = response.status.to_string();
    autoflow_sdk::log::event(autoflow_sdk::log::LogLevel::Info, "fetched", &[("status", &status)]);
    Ok(json!({ "status": response.status }))
}

/// Accepts any payload that decodes.
fn accept<P>(_: &P) -> Result<()> {
    Ok(())
}

autoflow_sdk::task!(
    Tasks::new()
        .task("echo", echo_valid, echo)
        .task("flaky", accept, flaky)
        .task("fail", accept, fail)
        .task("trap", accept, trap)
        .task("spin", accept, spin)
        .task("sleep", accept, sleep)
        .task("dedupe", accept, echo)
        .task("loop", accept, spin)
        .task("progress", accept, progress)
        .task("limited", accept, sleep)
        .task("rated", accept, echo)
        .task("echo-limited", accept, echo)
        .task("fetch", accept, fetch)
);
