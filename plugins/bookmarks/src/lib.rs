//! Each user's bookmarks, the README's worked example: list a page, create (validated), read with
//! an `ETag`, update with `If-Match`, delete; a task of its own marks each new bookmark checked.

use autoflow_sdk::queue::{self, Options};
use autoflow_sdk::records::Collection;
use autoflow_sdk::{Request, Response, Result, Router, Task, TaskError, Tasks, Validation};
use serde::{Deserialize, Serialize};

const BOOKMARKS: Collection<Bookmark> = Collection::new("bookmarks");

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bookmark {
    url: String,
    title: String,
    #[serde(default)]
    checked: bool,
}

fn check(bookmark: &mut Bookmark) -> Result<()> {
    let mut problems = Validation::new();
    let web = bookmark.url.starts_with("https://") || bookmark.url.starts_with("http://");
    problems.check(web, "url", "must be an http(s) URL");
    problems.check(!bookmark.title.trim().is_empty(), "title", "must not be empty");
    problems.finish("the bookmark is not valid")
}

fn create(req: &Request) -> Result<Response> {
    let mut bookmark: Bookmark = req.json()?;
    check(&mut bookmark)?;
    let created = BOOKMARKS.create(&Bookmark { checked: false, ..bookmark })?;
    queue::enqueue("check-bookmark", &created.id, Options::default())?;
    Response::created(format!("/api/bookmarks/{}", created.id), &created)
}

/// Runs for the user who created bookmark `id` (a real check would fetch the URL).
fn check_bookmark(_: &Task, id: String) -> core::result::Result<(), TaskError> {
    Ok(BOOKMARKS.update(&id, &serde_json::json!({ "checked": true }), None).map(drop)?)
}

autoflow_sdk::feature!(
    Router::new()
        .collection(&BOOKMARKS)
        .get("/api/bookmarks", |req| Response::json(&BOOKMARKS.page(req)?))
        .post("/api/bookmarks", create)
        .get("/api/bookmarks/{id}", |req| Response::record(&BOOKMARKS.require(req.param("id")?)?))
        .patch("/api/bookmarks/{id}", |req| Response::record(&BOOKMARKS.patch(req.param("id")?, req, check)?))
        .delete("/api/bookmarks/{id}", |req| BOOKMARKS.delete(req.param("id")?).map(|()| Response::empty(204))),
    Tasks::new().task("check-bookmark", |_: &String| Ok(()), check_bookmark)
);
