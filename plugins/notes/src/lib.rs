//! Each user's own notes:
//!
//! - `GET /api/notes?limit=&cursor=` → `{"items": [...], "nextCursor": …}` (limit 1-100, default 20)
//! - `POST /api/notes` `{"title", "body"?, "pinned"?}` → `201` + `Location`
//! - `GET /api/notes/{id}` → the note, with `ETag: "<version>"`
//! - `PATCH /api/notes/{id}` `{"title"?, "body"?, "pinned"?}`; with `If-Match: "<version>"` only
//!   if nobody changed the note since (else `412`)
//! - `DELETE /api/notes/{id}` → `204`
//!
//! Notes live in the `notes` records collection, declared `user` in `plugin.toml`: the host keeps
//! each user's notes apart, so another user's id is simply not found. Creates are rate-limited per
//! user with a cache counter; the limits come from `[config]`.

use std::time::Duration;

use autoflow_sdk::cache::{self, Scope};
use autoflow_sdk::records::Collection;
use autoflow_sdk::{Request, Response, Result, Router, Validation, config};
use serde::{Deserialize, Serialize};

/// The collection, as declared in `plugin.toml`.
const NOTES: Collection<Note> = Collection::new("notes");
/// The rate-limit window for creates.
const CREATE_WINDOW: Duration = Duration::from_secs(60);

/// A note, as stored and as a create or update sends it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Note {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    pinned: bool,
}

/// Trims the title and checks title and body against the configured limits, reporting every bad
/// field at once.
fn check(note: &mut Note) -> Result<()> {
    note.title = note.title.trim().to_owned();
    let max_title: usize = config::parse("max-title-chars")?;
    let max_body: usize = config::parse("max-body-chars")?;
    let mut problems = Validation::new();
    let title = note.title.chars().count();
    problems.check((1..=max_title).contains(&title), "title", format!("must be 1-{max_title} characters"));
    let body = note.body.chars().count();
    problems.check(body <= max_body, "body", format!("must be at most {max_body} characters"));
    problems.finish("the note is not valid")
}

fn list(req: &Request) -> Result<Response> {
    Response::json(&NOTES.page(req)?)
}

fn get(req: &Request) -> Result<Response> {
    Response::record(&NOTES.require(req.param("id")?)?)
}

fn create(req: &Request) -> Result<Response> {
    let mut note: Note = req.json()?;
    check(&mut note)?;
    let limit: i64 = config::parse("creates-per-minute")?;
    if cache::increment(Scope::User, "creates", 1, Some(CREATE_WINDOW))? > limit {
        let message = format!("at most {limit} notes may be created per minute");
        return Ok(Response::error(429, "rate_limited", message).with_header("retry-after", "60"));
    }
    let note = NOTES.create(&note)?;
    Ok(Response::created(format!("/api/notes/{}", note.id), &note)?.with_header("etag", note.etag()))
}

fn update(req: &Request) -> Result<Response> {
    Response::record(&NOTES.patch(req.param("id")?, req, check)?)
}

fn delete(req: &Request) -> Result<Response> {
    NOTES.delete(req.param("id")?)?;
    Ok(Response::empty(204))
}

autoflow_sdk::feature!(
    Router::new()
        .collection(&NOTES)
        .get("/api/notes", list)
        .post("/api/notes", create)
        .get("/api/notes/{id}", get)
        .patch("/api/notes/{id}", update)
        .delete("/api/notes/{id}", delete)
);
