//! __NAME__: each user's own items.
//!
//! - `GET /api/__NAME__?limit=&cursor=` → `{"items": [...], "nextCursor": …}`
//! - `POST /api/__NAME__` `{"text"}` → `201` + `Location`
//! - `GET /api/__NAME__/{id}` → the item

use autoflow_sdk::records::Collection;
use autoflow_sdk::{Error, Request, Response, Result, Router, Validation};
use serde::{Deserialize, Serialize};

/// The collection, as granted under `[capabilities.records]` in `plugin.toml`.
const ITEMS: Collection<Item> = Collection::new("__NAME__");

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    text: String,
}

fn list(req: &Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(raw) => raw.parse().map_err(|_| Error::invalid_field("limit", "must be a whole number from 1 to 100"))?,
        None => 20,
    };
    Response::json(&ITEMS.list(limit, req.query("cursor"))?)
}

fn create(req: &Request) -> Result<Response> {
    let item: Item = req.json()?;
    let mut problems = Validation::new();
    problems.check(!item.text.trim().is_empty(), "text", "must not be empty");
    problems.finish("the item is not valid")?;
    let created = ITEMS.create(&item)?;
    Response::created(format!("/api/__NAME__/{}", created.id), &created)
}

fn get(req: &Request) -> Result<Response> {
    Response::json(&ITEMS.require(req.param("id")?)?)
}

// Every route here is declared in plugin.toml, and the other way round: the host refuses a build
// whose code and manifest disagree, naming the route.
autoflow_sdk::feature!(
    Router::new()
        .collection(&ITEMS)
        .get("/api/__NAME__", list)
        .post("/api/__NAME__", create)
        .get("/api/__NAME__/{id}", get)
);
