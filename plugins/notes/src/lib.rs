//! Each user's own notes, the worked example of the README's "Writing a plugin":
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
use autoflow_sdk::records::{Collection, Record};
use autoflow_sdk::{Error, Request, Response, Result, Router, Validation, config};
use serde::{Deserialize, Serialize};

/// The collection, as declared in `plugin.toml`.
const NOTES: Collection<Note> = Collection::new("notes");
/// Page size when the client names none.
const DEFAULT_LIMIT: u32 = 20;
/// The rate-limit window for creates.
const CREATE_WINDOW: Duration = Duration::from_secs(60);

/// A note as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Note {
    title: String,
    body: String,
    pinned: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewNote {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    pinned: bool,
}

/// A PATCH body, which is also the merge patch sent to the store: absent fields stay as they are.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NotePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned: Option<bool>,
}

/// Checks title and body against the configured limits, reporting every bad field at once.
fn validate(title: Option<&str>, body: Option<&str>) -> Result<()> {
    let max_title: usize = config::parse("max-title-chars")?;
    let max_body: usize = config::parse("max-body-chars")?;
    let mut problems = Validation::new();
    if let Some(title) = title {
        let chars = title.trim().chars().count();
        problems.check((1..=max_title).contains(&chars), "title", format!("must be 1-{max_title} characters"));
    }
    if let Some(body) = body {
        problems.check(body.chars().count() <= max_body, "body", format!("must be at most {max_body} characters"));
    }
    problems.finish("the note is not valid")
}

/// A note in a response, with its `ETag`.
fn note_response(status: u16, note: &Record<Note>) -> Result<Response> {
    Ok(Response::json_with_status(status, note)?.with_header("etag", format!("\"{}\"", note.version)))
}

fn list(req: &Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(raw) => raw.parse().map_err(|_| Error::invalid_field("limit", "must be a whole number from 1 to 100"))?,
        None => DEFAULT_LIMIT,
    };
    Response::json(&NOTES.list(limit, req.query("cursor"))?)
}

fn get(req: &Request) -> Result<Response> {
    note_response(200, &NOTES.require(req.param("id")?)?)
}

fn create(req: &Request) -> Result<Response> {
    let new: NewNote = req.json()?;
    validate(Some(&new.title), Some(&new.body))?;
    let limit: i64 = config::parse("creates-per-minute")?;
    if cache::increment(Scope::User, "creates", 1, Some(CREATE_WINDOW))? > limit {
        let message = format!("at most {limit} notes may be created per minute");
        return Ok(Response::error(429, "rate_limited", message).with_header("retry-after", "60"));
    }
    let note = NOTES.create(&Note { title: new.title.trim().to_owned(), body: new.body, pinned: new.pinned })?;
    Ok(note_response(201, &note)?.with_header("location", format!("/api/notes/{}", note.id)))
}

fn update(req: &Request) -> Result<Response> {
    let id = req.param("id")?;
    let mut patch: NotePatch = req.json()?;
    validate(patch.title.as_deref(), patch.body.as_deref())?;
    patch.title = patch.title.map(|title| title.trim().to_owned());
    let expected = req.header("if-match").map(parse_etag).transpose()?;
    match NOTES.update(id, &patch, expected) {
        Err(Error::Conflict(message)) if expected.is_some() => Ok(Response::error(412, "precondition_failed", message)),
        result => note_response(200, &result?),
    }
}

fn delete(req: &Request) -> Result<Response> {
    NOTES.delete(req.param("id")?)?;
    Ok(Response::empty(204))
}

/// The version in an `If-Match` header (`"3"`, as this plugin's ETags are).
fn parse_etag(value: &str) -> Result<u64> {
    value
        .trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::invalid_field("If-Match", "must be an ETag this API returned, e.g. \"3\""))
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
