//! The cache capability over HTTP, for the host's tests:
//! `GET|PUT|DELETE /api/test-cache/{shared|user}/{key}` (PUT takes `?ttl-ms=`),
//! `POST …/{key}/increment?by=` and `GET …/{key}/cache-aside` (counts how often it missed).

use std::time::Duration;

use autoflow_sdk::cache::{self, Scope};
use autoflow_sdk::{Error, Request, Response, Result, Router};

fn scope(req: &Request) -> Result<Scope> {
    match req.param("scope")? {
        "shared" => Ok(Scope::Shared),
        "user" => Ok(Scope::User),
        other => Err(Error::invalid_field("scope", format!("`{other}` is not shared or user"))),
    }
}

fn number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>> {
    req.query(name).map(|v| v.parse().map_err(|_| Error::invalid_field(name, "must be a number"))).transpose()
}

fn get(req: &Request) -> Result<Response> {
    match cache::get(scope(req)?, req.param("key")?)? {
        Some(value) => Ok(Response::new(200, value)),
        None => Err(Error::not_found("cache miss")),
    }
}

fn put(req: &Request) -> Result<Response> {
    let ttl = number::<u64>(req, "ttl-ms")?.map(Duration::from_millis);
    cache::set(scope(req)?, req.param("key")?, req.body(), ttl)?;
    Ok(Response::empty(204))
}

fn delete(req: &Request) -> Result<Response> {
    cache::delete(scope(req)?, req.param("key")?)?;
    Ok(Response::empty(204))
}

fn increment(req: &Request) -> Result<Response> {
    let by = number(req, "by")?.unwrap_or(1);
    let value = cache::increment(scope(req)?, req.param("key")?, by, None)?;
    Response::json(&serde_json::json!({ "value": value }))
}

/// `get_or`: the value is the number of misses so far for this key, counted in a second key.
fn cache_aside(req: &Request) -> Result<Response> {
    let (scope, key) = (scope(req)?, req.param("key")?);
    let value: i64 = cache::get_or(scope, key, None, || cache::increment(scope, &format!("{key}.misses"), 1, None))?;
    Response::json(&serde_json::json!({ "value": value }))
}

autoflow_sdk::feature!(
    Router::new()
        .get("/api/test-cache/{scope}/{key}", get)
        .put("/api/test-cache/{scope}/{key}", put)
        .delete("/api/test-cache/{scope}/{key}", delete)
        .post("/api/test-cache/{scope}/{key}/increment", increment)
        .get("/api/test-cache/{scope}/{key}/cache-aside", cache_aside)
);
