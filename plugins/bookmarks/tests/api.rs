//! The bookmarks plugin against a real host (`cargo xtask test` runs it): each user's own
//! bookmarks, validated, paged and updated only from the version read, and a task of its own that
//! updates them directly.

use autoflow_testkit::{TestHost, TestUser};
use reqwest::Method;
use serde_json::{Value, json};

async fn create(user: &TestUser, title: &str) -> Value {
    let created = user.post("/api/bookmarks", json!({ "url": "https://example.com/", "title": title })).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("location"),
        Some(format!("/api/bookmarks/{}", created.body["id"].as_str().unwrap())).as_deref()
    );
    created.body
}

#[tokio::test]
async fn a_new_bookmark_is_checked_by_the_plugins_own_task() {
    let host = TestHost::start(&["bookmarks"]).await;
    let ada = host.user("ada@example.com", &[]).await;
    let bookmark = create(&ada, "Example").await;
    assert_eq!(bookmark["checked"], false);
    let path = format!("/api/bookmarks/{}", bookmark["id"].as_str().unwrap());

    let read = ada.get_until(&path, |b| b.body["checked"] == true).await;
    assert_eq!((read.status, &read.body["checked"], read.header("etag")), (200, &json!(true), Some("\"2\"")));
}

#[tokio::test]
async fn bookmarks_are_validated_paged_and_private() {
    let host = TestHost::start(&["bookmarks"]).await;
    let (ada, bob) = (host.user("ada@example.com", &[]).await, host.user("bob@example.com", &[]).await);

    let bad = ada.post("/api/bookmarks", json!({ "url": "ftp://x", "title": " " })).await;
    assert_eq!((bad.status, bad.error_code()), (400, Some("invalid")));
    assert!(bad.body["error"]["fields"]["url"].is_string() && bad.body["error"]["fields"]["title"].is_string());
    let unknown = ada.post("/api/bookmarks", json!({ "url": "https://a.test", "title": "a", "rank": 1 })).await;
    assert_eq!(unknown.status, 400);

    for n in 0..3 {
        create(&ada, &format!("b{n}")).await;
    }
    let first = ada.get("/api/bookmarks?limit=2").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let rest = ada.get(&format!("/api/bookmarks?limit=2&cursor={cursor}")).await;
    assert_eq!((rest.body["items"].as_array().unwrap().len(), &rest.body["nextCursor"]), (1, &Value::Null));
    assert_eq!(ada.get("/api/bookmarks?limit=500").await.status, 400);
    assert_eq!(ada.get("/api/bookmarks?cursor=garbage").await.status, 400);

    let path = format!("/api/bookmarks/{}", first.body["items"][0]["id"].as_str().unwrap());
    assert_eq!(bob.get(&path).await.status, 404);
    assert_eq!(bob.patch(&path, json!({ "title": "mine" })).await.status, 404);
    assert_eq!(bob.delete(&path).await.status, 404);
    assert_eq!(bob.get("/api/bookmarks").await.body["items"], json!([]));
    assert_eq!(ada.delete(&path).await.status, 204);
    let gone = ada.delete(&path).await;
    assert_eq!(
        (gone.status, gone.body["error"]["message"].as_str()),
        (404, ada.get(&path).await.body["error"]["message"].as_str())
    );
}

#[tokio::test]
async fn an_update_applies_only_to_the_version_the_client_read() {
    let host = TestHost::start(&["bookmarks"]).await;
    let ada = host.user("ada@example.com", &[]).await;
    let path = format!("/api/bookmarks/{}", create(&ada, "Draft").await["id"].as_str().unwrap());
    // The check task writes the bookmark once; read it after that, so only this test's writes race.
    let checked = ada.get_until(&path, |read| read.body["checked"] == true).await;
    assert_eq!(checked.body["checked"], true, "{}", checked.body);
    let version = checked.header("etag").unwrap().to_owned();
    let patch = |title: &str| Some(json!({ "title": title }));

    let first = ada.send(Method::PATCH, &path, patch("Final"), &[("if-match", &version)]).await;
    assert_eq!(
        (first.status, &first.body["title"], &first.body["url"]),
        (200, &json!("Final"), &json!("https://example.com/"))
    );
    let stale = ada.send(Method::PATCH, &path, patch("Lost"), &[("if-match", &version)]).await;
    assert_eq!((stale.status, stale.error_code()), (412, Some("precondition_failed")));
    let invalid = ada.patch(&path, json!({ "title": "" })).await;
    assert_eq!((invalid.status, invalid.body["error"]["fields"]["title"].is_string()), (400, true));
    let wrong_type = ada.patch(&path, json!({ "checked": "yes" })).await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(ada.get(&path).await.body["title"], "Final");
}
