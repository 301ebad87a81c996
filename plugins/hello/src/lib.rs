//! Example feature plugin: `GET /api/hello/{name}` greets, `POST /api/echo` echoes JSON.

use autoflow_sdk::{Request, Response, Result, Router, config, log};
use serde_json::{Map, Value, json};

/// `GET /api/hello/{name}?greeting=Hi` → `{"message": "Hi, {name}!", "requestId": …}`; without
/// `greeting` the `greeting` setting is used.
fn hello(req: &Request) -> Result<Response> {
    let name = req.param("name")?;
    let greeting = match req.query("greeting") {
        Some(greeting) => greeting.to_owned(),
        None => config::get("greeting").unwrap_or_else(|| "Hello".into()),
    };
    log::event(log::LogLevel::Info, "greeting", &[("name", name)]);
    Response::json(&json!({
        "message": format!("{greeting}, {name}!"),
        "requestId": req.request_id(),
    }))
}

/// `POST /api/echo` → the JSON body back, with the query, the headers as the plugin received them,
/// and the caller's user id if a valid token came along (the route is public).
fn echo(req: &Request) -> Result<Response> {
    let body: Value = req.json()?;
    let query: Map<String, Value> = req.query_pairs().map(|(k, v)| (k.to_owned(), Value::from(v))).collect();
    let headers: Map<String, Value> = req.headers().map(|(k, v)| (k.to_owned(), Value::from(v))).collect();
    let user_id = req.principal().map(|p| p.user_id);
    Response::json(&json!({ "echo": body, "query": query, "headers": headers, "userId": user_id }))
}

autoflow_sdk::feature!(Router::new().get("/api/hello/{name}", hello).post("/api/echo", echo));
