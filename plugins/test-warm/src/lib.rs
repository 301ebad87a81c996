//! A plugin that opts in to warm instances and breaks the promise that comes with it on purpose:
//! it keeps a counter and the caller it first served in globals, so tests can see which requests
//! ran in the same instance and prove that no instance serves two callers.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use autoflow_sdk::{Error, Request, Response, Result, Router};
use serde_json::json;

/// Requests this instance has served.
static SERVED: AtomicU64 = AtomicU64::new(0);
/// The user id of the first request this instance served (`None`: anonymous).
static FIRST_CALLER: OnceLock<Option<String>> = OnceLock::new();

fn caller(req: &Request) -> Option<String> {
    req.principal().map(|principal| principal.user_id)
}

/// Counts this request in the instance; answers the count, the instance's first caller and this one.
fn count(req: &Request) -> Result<Response> {
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    let first = FIRST_CALLER.get_or_init(|| caller(req));
    println!("test-warm served {served}");
    Response::json(&json!({ "served": served, "firstCaller": first, "caller": caller(req) }))
}

/// Counts the request, then panics: the instance must not serve again.
fn panic(_: &Request) -> Result<Response> {
    SERVED.fetch_add(1, Ordering::Relaxed);
    panic!("test-warm panics on purpose");
}

/// Counts the request, then busy-waits past the plugin's deadline.
fn slow(_: &Request) -> Result<Response> {
    SERVED.fetch_add(1, Ordering::Relaxed);
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Counts the request and answers an error of the plugin's own: the instance stays warm.
fn refuse(_: &Request) -> Result<Response> {
    SERVED.fetch_add(1, Ordering::Relaxed);
    Err(Error::Conflict("test-warm refuses on purpose".into()))
}

autoflow_sdk::feature!(
    Router::new()
        .get("/api/warm/count", count)
        .get("/api/warm/panic", panic)
        .get("/api/warm/slow", slow)
        .get("/api/warm/refuse", refuse)
);
