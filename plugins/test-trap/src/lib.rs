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

fn bad_status(_: &Request) -> Result<Response> {
    Ok(Response::empty(42))
}

fn bad_header(_: &Request) -> Result<Response> {
    Ok(Response::text("x").with_header("bad header\n", "v"))
}

fn internal(_: &Request) -> Result<Response> {
    Err(Error::internal("connection string postgres://secret@db leaked"))
}

// `/api/trap/unrouted` is in the manifest but deliberately has no handler here.
autoflow_sdk::feature!(
    Router::new()
        .get("/api/trap/ok", ok)
        .get("/api/trap/panic", panic)
        .get("/api/trap/loop", spin)
        .get("/api/trap/bad-status", bad_status)
        .get("/api/trap/bad-header", bad_header)
        .get("/api/trap/internal", internal)
);
