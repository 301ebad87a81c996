//! The records capability as plugins use it (through `test-records`): shared and per-user
//! collections, merge patches and versions, pagination, the cache in front of the database, and
//! every kind of bad input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, spawn_app_with};

/// A call to `test-records` at `path` (under `/api/test-records/`), as `token`'s user if given.
async fn call(app: &TestApp, token: Option<&str>, method: Method, path: &str, body: &str) -> reqwest::Response {
    let request = app.client.request(method, app.url(&format!("/api/test-records/{path}"))).body(body.to_owned());
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

/// The JSON of a successful call, failing the test on any other status.
async fn ok(app: &TestApp, token: Option<&str>, method: Method, path: &str, body: &str) -> Value {
    let response = call(app, token, method.clone(), path, body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Status and error code of a failed call.
async fn fails(app: &TestApp, token: Option<&str>, method: Method, path: &str, body: &str) -> (u16, String) {
    let (status, error) = error_of(call(app, token, method, path, body).await).await;
    (status, error["code"].as_str().unwrap_or_default().to_owned())
}

async fn stats(app: &TestApp) -> Value {
    app.admin(Method::GET, "/admin/stats").send().await.unwrap().json::<Value>().await.unwrap()["records"].clone()
}

#[tokio::test]
async fn shared_documents_round_trip_with_versions_and_merge_patches() {
    let app = spawn_app_with(&["test-records"]).await;

    let created = ok(&app, None, Method::POST, "settings?id=theme", r#"{"colour": "blue", "size": {"w": 1}}"#).await;
    assert_eq!((created["id"].as_str(), created["version"].as_u64()), (Some("theme"), Some(1)));
    assert_eq!(created["createdAt"], created["updatedAt"]);

    let patch = r#"{"colour": null, "size": {"h": 2}, "font": "serif"}"#;
    let updated = ok(&app, None, Method::PATCH, "settings/theme", patch).await;
    assert_eq!(updated["data"], json!({ "size": { "w": 1, "h": 2 }, "font": "serif" }), "RFC 7396 merge");
    assert_eq!(updated["version"], 2);
    assert_eq!(ok(&app, None, Method::GET, "settings/theme", "").await, updated);

    let generated = ok(&app, None, Method::POST, "settings", "{}").await;
    let id = generated["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7, "generated ids are UUIDv7");
    assert_eq!(fails(&app, None, Method::POST, "settings?id=theme", "{}").await, (409, "conflict".into()));

    assert_eq!(call(&app, None, Method::DELETE, "settings/theme", "").await.status(), 204);
    assert_eq!(fails(&app, None, Method::GET, "settings/theme", "").await.0, 404);
    assert_eq!(fails(&app, None, Method::DELETE, "settings/theme", "").await.0, 404);
    assert_eq!(fails(&app, None, Method::PATCH, "settings/theme", "{}").await.0, 404);
    let again = ok(&app, None, Method::POST, "settings?id=theme", r#"{"colour": "red"}"#).await;
    assert_eq!((again["version"].as_u64(), &again["data"]), (Some(1), &json!({ "colour": "red" })));
}

#[tokio::test]
async fn an_expected_version_guards_an_update_and_concurrent_patches_are_never_lost() {
    let app = spawn_app_with(&["test-records"]).await;
    ok(&app, None, Method::POST, "settings?id=counter", "{}").await;

    assert_eq!(fails(&app, None, Method::PATCH, "settings/counter?version=7", r#"{"a": 1}"#).await.0, 409);
    let guarded = ok(&app, None, Method::PATCH, "settings/counter?version=1", r#"{"a": 1}"#).await;
    assert_eq!(guarded["version"], 2);

    // Each writer sets its own field; whichever succeed, none of their fields may be lost.
    let patches: Vec<String> = (0..8).map(|i| format!(r#"{{"w{i}": true}}"#)).collect();
    let writers = patches.iter().map(|patch| call(&app, None, Method::PATCH, "settings/counter", patch));
    let mut succeeded = Vec::new();
    for (i, response) in futures_util::future::join_all(writers).await.into_iter().enumerate() {
        match response.status().as_u16() {
            200 => succeeded.push(i),
            409 => {}
            other => panic!("writer {i}: unexpected {other}"),
        }
    }
    assert!(!succeeded.is_empty());
    let last = ok(&app, None, Method::GET, "settings/counter", "").await;
    assert_eq!(last["version"].as_u64().unwrap(), 2 + succeeded.len() as u64);
    for i in succeeded {
        assert_eq!(last["data"][format!("w{i}")], true, "writer {i}'s change was lost: {last}");
    }
}

#[tokio::test]
async fn listing_pages_in_id_order_with_a_bounded_limit() {
    let app = spawn_app_with(&["test-records"]).await;
    for id in ["e", "B", "a", "d", "c"] {
        ok(&app, None, Method::POST, &format!("settings?id={id}"), r#"{"n": 1}"#).await;
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(cursor) => format!("settings?limit=2&cursor={cursor}"),
            None => "settings?limit=2".into(),
        };
        let page = ok(&app, None, Method::GET, &path, "").await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["B", "a", "c", "d", "e"], "bytewise id order on both databases");

    for limit in [0, 101] {
        assert_eq!(
            fails(&app, None, Method::GET, &format!("settings?limit={limit}"), "").await,
            (400, "invalid".into())
        );
    }
    assert_eq!(fails(&app, None, Method::GET, "settings?cursor=not%2Fone", "").await.0, 400);
    let (status, code) = fails(&app, None, Method::GET, "settings?cursor=garbage", "").await;
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid"),
        "a cursor this API did not make is refused, not an empty page"
    );
}

#[tokio::test]
async fn bad_documents_patches_ids_and_collections_are_refused_with_the_reason() {
    let app = spawn_app_with(&["test-records"]).await;
    ok(&app, None, Method::POST, "settings?id=doc", r#"{"a": 1}"#).await;
    let too_big = json!({ "text": "x".repeat(300 * 1024) }).to_string();

    for (what, method, path, body) in [
        ("an array", Method::POST, "settings", "[1, 2]"),
        ("a string", Method::POST, "settings", r#""text""#),
        ("not JSON", Method::POST, "settings", "{oops"),
        ("a NUL", Method::POST, "settings", r#"{"a": "\u0000"}"#),
        ("over 256 KiB", Method::POST, "settings", &too_big),
        ("an id with a slash", Method::POST, "settings?id=a%2Fb", "{}"),
        ("a patch that is not an object", Method::PATCH, "settings/doc", "[]"),
        ("a patch that is not JSON", Method::PATCH, "settings/doc", "{"),
        ("a patch growing past 256 KiB", Method::PATCH, "settings/doc", &too_big),
    ] {
        let (status, error) = error_of(call(&app, None, method, path, body).await).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "{what}: {error}");
        assert!(!error["fields"].as_object().unwrap().is_empty(), "{what}: names the field: {error}");
    }
    assert_eq!(ok(&app, None, Method::GET, "settings/doc", "").await["version"], 1, "nothing changed");

    let (status, error) = error_of(call(&app, None, Method::GET, "undeclared/doc", "").await).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    assert!(error["message"].as_str().unwrap().contains("`undeclared`"), "{error}");
}

#[tokio::test]
async fn a_user_collection_shows_each_user_only_their_own_documents() {
    let app = spawn_app_with(&["test-records"]).await;
    let (_, alice) = app.user_with_token("alice@example.com", &[]).await;
    let (_, bob) = app.user_with_token("bob@example.com", &[]).await;
    let (alice, bob) = (Some(alice.as_str()), Some(bob.as_str()));

    ok(&app, alice, Method::POST, "items?id=diary", r#"{"text": "alice's"}"#).await;
    ok(&app, bob, Method::POST, "items?id=diary", r#"{"text": "bob's"}"#).await;
    ok(&app, alice, Method::POST, "items?id=only-alice", "{}").await;

    assert_eq!(ok(&app, alice, Method::GET, "items/diary", "").await["data"]["text"], "alice's");
    assert_eq!(ok(&app, bob, Method::GET, "items/diary", "").await["data"]["text"], "bob's");
    let bobs: Vec<Value> = ok(&app, bob, Method::GET, "items", "").await["items"].as_array().unwrap().clone();
    assert_eq!(bobs.iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(), ["diary"]);

    assert_eq!(fails(&app, bob, Method::GET, "items/only-alice", "").await.0, 404);
    assert_eq!(fails(&app, bob, Method::PATCH, "items/only-alice", r#"{"x": 1}"#).await.0, 404);
    assert_eq!(fails(&app, bob, Method::DELETE, "items/only-alice", "").await.0, 404);
    let untouched = ok(&app, alice, Method::GET, "items/only-alice", "").await;
    assert_eq!((untouched["version"].as_u64(), &untouched["data"]), (Some(1), &json!({})));

    for (method, path) in [(Method::GET, "items"), (Method::GET, "items/diary"), (Method::POST, "items")] {
        let body = if method == Method::POST { "{}" } else { "" };
        assert_eq!(fails(&app, None, method, path, body).await, (401, "unauthorized".into()), "{path} anonymous");
    }
}

#[tokio::test]
async fn cached_reads_skip_the_database_and_a_read_after_a_write_is_never_stale() {
    let app = spawn_app_with(&["test-records"]).await;
    ok(&app, None, Method::POST, "settings?id=hot", r#"{"n": 1}"#).await;

    let before = stats(&app).await;
    for _ in 0..5 {
        assert_eq!(ok(&app, None, Method::GET, "settings/hot", "").await["data"]["n"], 1);
    }
    let after = stats(&app).await;
    assert_eq!(after["databaseReads"], before["databaseReads"], "the create filled the cache: {after}");
    assert_eq!(after["cacheHits"].as_u64().unwrap() - before["cacheHits"].as_u64().unwrap(), 5);

    for n in 2..6 {
        ok(&app, None, Method::PATCH, "settings/hot", &format!(r#"{{"n": {n}}}"#)).await;
        assert_eq!(ok(&app, None, Method::GET, "settings/hot", "").await["data"]["n"], n, "stale after update");
    }
    call(&app, None, Method::DELETE, "settings/hot", "").await;
    assert_eq!(fails(&app, None, Method::GET, "settings/hot", "").await.0, 404, "stale after delete");
    ok(&app, None, Method::POST, "settings?id=hot", r#"{"n": 9}"#).await;
    assert_eq!(ok(&app, None, Method::GET, "settings/hot", "").await["data"]["n"], 9, "stale after re-create");

    let missing_before = stats(&app).await["databaseReads"].as_u64().unwrap();
    for _ in 0..3 {
        assert_eq!(fails(&app, None, Method::GET, "settings/never", "").await.0, 404);
    }
    assert_eq!(stats(&app).await["databaseReads"].as_u64().unwrap() - missing_before, 1, "misses are cached too");
}

#[tokio::test]
async fn deleting_a_user_deletes_their_documents() {
    let app = spawn_app_with(&["test-records"]).await;
    let (user, token) = app.user_with_token("leaving@example.com", &[]).await;
    ok(&app, Some(&token), Method::POST, "items?id=mine", "{}").await;
    ok(&app, None, Method::POST, "settings?id=shared", "{}").await;

    app.auth.identity.delete(&user.id).await.unwrap();

    let ids = app.column("SELECT id FROM records ORDER BY id").await;
    assert_eq!(ids, ["shared"], "the user's document went with them, the shared one stayed");
}

#[tokio::test]
async fn cached_documents_count_against_the_plugins_cache_quota_and_reads_stay_fresh_past_it() {
    let app =
        crate::helpers::spawn_configured(&["test-records"], |config| config.limits.plugin_cache_bytes = 8 * 1024).await;
    let filler = "x".repeat(1500);
    for n in 0..12 {
        ok(&app, None, Method::POST, &format!("settings?id=doc-{n}"), &format!(r#"{{"n": {n}, "pad": "{filler}"}}"#))
            .await;
    }
    let before = stats(&app).await;
    for n in 0..12 {
        let read = ok(&app, None, Method::GET, &format!("settings/doc-{n}"), "").await;
        assert_eq!(read["data"]["n"], n);
    }
    let after = stats(&app).await;
    let hits = after["cacheHits"].as_u64().unwrap() - before["cacheHits"].as_u64().unwrap();
    assert!(hits < 12, "12 documents of 1.5 KiB do not all fit an 8 KiB quota ({hits} were cached)");
    assert!(hits >= 1, "what fits is cached");

    // Past the quota a write still leaves no stale copy behind.
    for n in 0..12 {
        ok(&app, None, Method::PATCH, &format!("settings/doc-{n}"), r#"{"n": 100}"#).await;
        assert_eq!(ok(&app, None, Method::GET, &format!("settings/doc-{n}"), "").await["data"]["n"], 100, "doc-{n}");
    }
}
