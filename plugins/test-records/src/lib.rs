//! The records capability over HTTP, passing JSON text through unchecked so the tests reach the
//! host's validation: `GET|POST /api/test-records/{collection}` (list with `?limit=&cursor=`;
//! create with the body as the document and `?id=`) and `GET|PATCH|DELETE …/{collection}/{id}`
//! (PATCH sends the body as the merge patch, with `?version=` as the expected version).
//! `POST /api/test-records/bench/{op}?times=&prefix=` repeats one call for the benchmark: `noop`,
//! `records-get` (shared document `bench`), `records-miss` (ids `{prefix}-{i}`, never read before)
//! or `cache-get` (shared cache key `bench`).

use autoflow_sdk::bindings::autoflow::platform::records::{self as wit, Document};
use autoflow_sdk::cache::{self, Scope};
use autoflow_sdk::records::Collection;
use autoflow_sdk::{Error, Request, Response, Result, Router};
use serde_json::{Value, json};

fn view(document: Document) -> Value {
    json!({
        "id": document.id,
        "data": serde_json::from_str::<Value>(&document.data).unwrap_or(Value::Null),
        "version": document.version,
        "createdAt": document.created_at,
        "updatedAt": document.updated_at,
    })
}

fn body(req: &Request) -> Result<&str> {
    std::str::from_utf8(req.body()).map_err(|_| Error::invalid("the body must be UTF-8"))
}

fn number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>> {
    req.query(name).map(|v| v.parse().map_err(|_| Error::invalid_field(name, "must be a number"))).transpose()
}

fn list(req: &Request) -> Result<Response> {
    let limit = number(req, "limit")?.unwrap_or(20);
    let page = wit::list_documents(req.param("collection")?, limit, req.query("cursor"))?;
    let items: Vec<Value> = page.items.into_iter().map(view).collect();
    Response::json(&json!({ "items": items, "nextCursor": page.next_cursor }))
}

fn create(req: &Request) -> Result<Response> {
    let document = wit::create(req.param("collection")?, req.query("id"), body(req)?)?;
    Response::json_with_status(201, &view(document))
}

fn get(req: &Request) -> Result<Response> {
    match wit::get(req.param("collection")?, req.param("id")?)? {
        Some(document) => Response::json(&view(document)),
        None => Err(Error::not_found("no such document")),
    }
}

fn update(req: &Request) -> Result<Response> {
    let version = number(req, "version")?;
    let document = wit::update(req.param("collection")?, req.param("id")?, body(req)?, version)?;
    Response::json(&view(document))
}

fn delete(req: &Request) -> Result<Response> {
    wit::delete(req.param("collection")?, req.param("id")?)?;
    Ok(Response::empty(204))
}

fn bench(req: &Request) -> Result<Response> {
    let times: u32 = number(req, "times")?.unwrap_or(1);
    let prefix = req.query("prefix").unwrap_or("miss");
    let op = req.param("op")?;
    for i in 0..times {
        match op {
            "noop" => {}
            "records-get" => drop(wit::get("settings", "bench")?),
            "records-miss" => drop(wit::get("settings", &format!("{prefix}-{i}"))?),
            "cache-get" => drop(cache::get(Scope::Shared, "bench")?),
            other => return Err(Error::not_found(format!("no benchmark `{other}`"))),
        }
    }
    Ok(Response::empty(204))
}

autoflow_sdk::feature!(
    Router::new()
        .collection(&Collection::<serde_json::Value>::new("items"))
        .collection(&Collection::<serde_json::Value>::new("settings"))
        .get("/api/test-records/{collection}", list)
        .post("/api/test-records/{collection}", create)
        .get("/api/test-records/{collection}/{id}", get)
        .patch("/api/test-records/{collection}/{id}", update)
        .delete("/api/test-records/{collection}/{id}", delete)
        .post("/api/test-records/bench/{op}", bench)
);
