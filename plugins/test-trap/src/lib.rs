//! A plugin that misbehaves on purpose, so tests can prove the host contains it.

use autoflow_sdk::{Error, Request, Response, Result, Router};

fn ok(_: &Request) -> Result<Response> {
    println!("test-trap was asked how it is");
    Ok(Response::text("still standing"))
}

fn panic(_: &Request) -> Result<Response> {
    panic!("test-trap panics on purpose");
}

fn spin(_: &Request) -> Result<Response> {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates and keeps 1 MiB chunks until the allocator fails.
fn alloc(_: &Request) -> Result<Response> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![1u8; 1024 * 1024]));
    }
}

fn depth(n: u64) -> u64 {
    if n == u64::MAX { 0 } else { 1 + depth(std::hint::black_box(n + 1)) }
}

/// Recurses until the stack overflows.
fn recurse(_: &Request) -> Result<Response> {
    Ok(Response::text(depth(0).to_string()))
}

/// Schedules task `?name=` with the body as its payload; answers the task id.
fn enqueue(req: &Request) -> Result<Response> {
    let payload: serde_json::Value = req.json()?;
    let name = req.query("name").unwrap_or_default();
    let id = autoflow_sdk::queue::enqueue(name, &payload, autoflow_sdk::queue::Options::default())?;
    Response::json(&serde_json::json!({ "id": id }))
}

/// Schedules task `?name=` once per element of the body (a JSON array of payloads), in one batch;
/// answers the task ids.
fn enqueue_many(req: &Request) -> Result<Response> {
    let payloads: Vec<serde_json::Value> = req.json()?;
    let name = req.query("name").unwrap_or_default();
    let mut batch = autoflow_sdk::queue::Batch::default();
    for payload in &payloads {
        batch.add(name, payload, autoflow_sdk::queue::Options::default())?;
    }
    Response::json(&serde_json::json!({ "ids": batch.enqueue()? }))
}

/// Busy-waits `?ms=` milliseconds (default 300), holding its instance.
fn slow(req: &Request) -> Result<Response> {
    let ms: u64 = req.query("ms").and_then(|v| v.parse().ok()).unwrap_or(300);
    let started = std::time::Instant::now();
    while started.elapsed().as_millis() < u128::from(ms) {
        std::hint::spin_loop();
    }
    Ok(Response::text("slow done"))
}

/// A JSON error whose `content-type` is set again: the SDK replaces the first.
fn problem(_: &Request) -> Result<Response> {
    let body = serde_json::json!({ "title": "refused" });
    Ok(Response::json_with_status(400, &body)?.with_header("content-type", "application/problem+json"))
}

/// Answers with two `content-type` headers.
fn duplicate_header(_: &Request) -> Result<Response> {
    Ok(Response::text("x").add_header("content-type", "text/html"))
}

/// Answers `?bytes=` bytes (default 2 MiB).
fn big_response(req: &Request) -> Result<Response> {
    let bytes: usize = req.query("bytes").and_then(|v| v.parse().ok()).unwrap_or(2 * 1024 * 1024);
    Ok(Response::new(200, vec![b'x'; bytes]))
}

/// Probes what the sandbox lets through and reports it.
fn probe(_: &Request) -> Result<Response> {
    let outcome = |result: std::io::Result<String>| match result {
        Ok(value) => format!("allowed: {value}"),
        Err(error) => format!("denied: {error}"),
    };
    Response::json(&serde_json::json!({
        "readRoot": outcome(std::fs::read_dir("/").map(|d| d.count().to_string())),
        "readEtcPasswd": outcome(std::fs::read_to_string("/etc/passwd")),
        "writeFile": outcome(std::fs::write("escape.txt", "x").map(|_| "written".into())),
        "env": std::env::vars().count(),
        "args": std::env::args().count(),
        "tcp": outcome(std::net::TcpStream::connect("127.0.0.1:5432").map(|_| "connected".into())),
        "clockWorks": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).is_ok(),
    }))
}

/// `GET ?url=` through the host and report what happened.
fn fetch(req: &Request) -> Result<Response> {
    let url = req.query("url").unwrap_or_default();
    Response::json(&match autoflow_sdk::http::get(url) {
        Ok(response) => serde_json::json!({
            "status": response.status,
            "body": String::from_utf8_lossy(&response.body),
        }),
        Err(error) => serde_json::json!({ "error": error.to_string() }),
    })
}

/// Relays `{"method", "plugin", "path", "body"?}` through the SDK's internal request helper for
/// that method, answering `{"found", "answer"}` or the helper's error.
fn relay(req: &Request) -> Result<Response> {
    use autoflow_sdk::http;
    use serde_json::Value;
    let call: Value = req.json()?;
    let text = |key: &str| call[key].as_str().unwrap_or_default().to_owned();
    let (plugin, path, body) = (text("plugin"), text("path"), &call["body"]);
    let answer: Option<Value> = match text("method").as_str() {
        "GET" => http::internal_get(&plugin, &path)?,
        "POST" => http::internal_post(&plugin, &path, body)?,
        "PUT" => http::internal_put(&plugin, &path, body)?,
        "PATCH" => http::internal_patch(&plugin, &path, body)?,
        "DELETE" => http::internal_delete(&plugin, &path)?.then_some(Value::Null),
        other => http::internal::<Value, Value>(other, &plugin, &path, Some(body))?,
    };
    Response::json(&serde_json::json!({ "found": answer.is_some(), "answer": answer }))
}

/// Answers with `?count=` headers (default 500).
fn many_headers(req: &Request) -> Result<Response> {
    let count: usize = req.query("count").and_then(|v| v.parse().ok()).unwrap_or(500);
    Ok((0..count).fold(Response::text("headers"), |r, i| r.with_header(format!("x-h{i}"), "v")))
}

fn bad_status(_: &Request) -> Result<Response> {
    Ok(Response::empty(42))
}

fn bad_header(_: &Request) -> Result<Response> {
    Ok(Response::text("x").with_header("bad header\n", "v"))
}

fn internal(_: &Request) -> Result<Response> {
    Err(Error::internal("connection string postgres://secret@db leaked"))
}

autoflow_sdk::feature!(
    Router::new()
        .get("/api/trap/ok", ok)
        .get("/api/trap/panic", panic)
        .get("/api/trap/loop", spin)
        .get("/api/trap/alloc", alloc)
        .get("/api/trap/probe", probe)
        .get("/api/trap/fetch", fetch)
        .post("/api/trap/enqueue", enqueue)
        .post("/api/trap/enqueue-many", enqueue_many)
        .post("/api/trap/relay", relay)
        .get("/api/trap/many-headers", many_headers)
        .get("/api/trap/recurse", recurse)
        .get("/api/trap/slow", slow)
        .get("/api/trap/big-response", big_response)
        .get("/api/trap/bad-status", bad_status)
        .get("/api/trap/bad-header", bad_header)
        .get("/api/trap/duplicate-header", duplicate_header)
        .get("/api/trap/problem", problem)
        .get("/api/trap/internal", internal)
);
