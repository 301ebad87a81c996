//! Version 2 of `hello`: the same route, a different answer, so tests can tell builds apart.

use autoflow_sdk::{Request, Response, Result, Router};
use serde_json::json;

fn hello(req: &Request) -> Result<Response> {
    Response::json(&json!({ "message": format!("Howdy, {}!", req.param("name")?), "version": 2 }))
}

autoflow_sdk::feature!(Router::new().get("/api/hello/{name}", hello));
