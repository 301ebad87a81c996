//! The notes plugin against a real host (`cargo xtask test` runs it): each user's own notes,
//! validation, pagination and optimistic updates, as a client sees them.

use autoflow_testkit::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_user_creates_reads_updates_and_deletes_a_note() {
    let host = TestHost::start(&["notes"]).await;
    let ada = host.user("ada@example.com", &[]).await;

    let created = ada.post("/api/notes", json!({ "title": " Groceries ", "body": "eggs" })).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["title"], "Groceries", "titles are trimmed");
    let location = created.header("location").unwrap().to_owned();
    assert_eq!(location, format!("/api/notes/{}", created.body["id"].as_str().unwrap()));

    let read = ada.get(&location).await;
    assert_eq!((read.status, read.header("etag")), (200, Some("\"1\"")));
    let updated = ada.patch(&location, json!({ "pinned": true })).await;
    assert_eq!((updated.status, &updated.body["pinned"], &updated.body["body"]), (200, &json!(true), &json!("eggs")));

    assert_eq!(ada.delete(&location).await.status, 204);
    assert_eq!(ada.get(&location).await.status, 404);
}

#[tokio::test]
async fn a_user_never_sees_another_users_notes() {
    let host = TestHost::start(&["notes"]).await;
    let (ada, bob) = (host.user("ada@example.com", &[]).await, host.user("bob@example.com", &[]).await);
    let created = ada.post("/api/notes", json!({ "title": "Private" })).await;
    let location = created.header("location").unwrap();

    assert_eq!(bob.get(location).await.status, 404);
    assert_eq!(bob.delete(location).await.status, 404);
    assert_eq!(bob.get("/api/notes").await.body["items"], json!([]));
    assert_eq!(host.anonymous().get("/api/notes").await.status, 401);
}

#[tokio::test]
async fn an_update_based_on_a_stale_version_is_refused() {
    let host = TestHost::start(&["notes"]).await;
    let ada = host.user("ada@example.com", &[]).await;
    let location = ada.post("/api/notes", json!({ "title": "Draft" })).await.header("location").unwrap().to_owned();
    let patch = |title: &str| Some(json!({ "title": title }));

    let first = ada.send(reqwest::Method::PATCH, &location, patch("One"), &[("if-match", "\"1\"")]).await;
    assert_eq!((first.status, first.header("etag")), (200, Some("\"2\"")));
    let stale = ada.send(reqwest::Method::PATCH, &location, patch("Two"), &[("if-match", "\"1\"")]).await;
    assert_eq!((stale.status, stale.error_code()), (412, Some("precondition_failed")));
    assert_eq!(ada.get(&location).await.body["title"], "One");
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let host = TestHost::start(&["notes"]).await;
    let ada = host.user("ada@example.com", &[]).await;

    let blank = ada.post("/api/notes", json!({ "title": "  " })).await;
    assert_eq!((blank.status, blank.error_code()), (400, Some("invalid")));
    assert!(blank.body["error"]["fields"]["title"].is_string(), "{}", blank.body);
    let unknown = ada.post("/api/notes", json!({ "title": "a", "colour": "red" })).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let limit = ada.get("/api/notes?limit=many").await;
    assert_eq!(limit.status, 400);
    assert!(limit.body["error"]["fields"]["limit"].is_string(), "{}", limit.body);
}

#[tokio::test]
async fn notes_are_listed_a_page_at_a_time() {
    let host = TestHost::start(&["notes"]).await;
    let ada = host.user("ada@example.com", &[]).await;
    for n in 0..5 {
        assert_eq!(ada.post("/api/notes", json!({ "title": format!("note {n}") })).await.status, 201);
    }

    let mut titles = Vec::new();
    let mut path = "/api/notes?limit=2".to_owned();
    loop {
        let page = ada.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        titles.extend(items.iter().map(|note| note["title"].as_str().unwrap().to_owned()));
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/notes?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    titles.sort();
    assert_eq!(titles, ["note 0", "note 1", "note 2", "note 3", "note 4"]);
}
