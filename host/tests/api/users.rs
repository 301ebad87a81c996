//! The `users` plugin: the users REST API over the identity capability, as an admin would use it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_of, send, spawn_app_with};

/// A host serving `users`, and an admin's token.
async fn users_app() -> (TestApp, String) {
    let app = spawn_app_with(&["users"]).await;
    let (_, token) = app.user_with_token("admin@example.com", &["admin"]).await;
    (app, token)
}

#[tokio::test]
async fn an_admin_creates_reads_updates_and_deletes_a_user() {
    let (app, admin) = users_app().await;

    let body = json!({ "email": "grace@example.com", "password": "a long enough password", "displayName": "Grace" });
    let created = send(&app, &admin, Method::POST, "/api/users", Some(body)).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let text = created.text().await.unwrap();
    assert!(!text.contains("argon2") && !text.contains("assword"), "no hash or password in {text}");
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(location, format!("/api/users/{}", user["id"].as_str().unwrap()));
    assert_eq!((user["displayName"].as_str(), user["permissions"].clone()), (Some("Grace"), json!([])));

    let fetched: Value = send(&app, &admin, Method::GET, &location, None).await.json().await.unwrap();
    assert_eq!(fetched, user);

    let patch =
        json!({ "displayName": "Grace Hopper", "permissions": ["read:users"], "password": "another long password" });
    let updated = send(&app, &admin, Method::PATCH, &location, Some(patch)).await;
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        (updated["displayName"].as_str(), updated["permissions"].clone()),
        (Some("Grace Hopper"), json!(["read:users"]))
    );
    assert_eq!(app.login("grace@example.com", "a long enough password").await.status(), 401);
    assert_eq!(app.login("grace@example.com", "another long password").await.status(), 200);

    assert_eq!(send(&app, &admin, Method::DELETE, &location, None).await.status(), 204);
    let (status, error) = error_of(send(&app, &admin, Method::GET, &location, None).await).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    assert_eq!(send(&app, &admin, Method::DELETE, &location, None).await.status(), 404);
}

#[tokio::test]
async fn listing_pages_through_every_user_in_creation_order() {
    let (app, admin) = users_app().await;
    for n in 1..=4 {
        app.create_user(&format!("user{n}@example.com"), &[]).await;
    }

    let mut emails = Vec::new();
    let mut path = "/api/users?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = send(&app, &admin, Method::GET, &path, None).await.json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        emails.extend(items.iter().map(|u| u["email"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(pages, 3);
    let expected =
        ["admin@example.com", "user1@example.com", "user2@example.com", "user3@example.com", "user4@example.com"];
    assert_eq!(emails, expected);
    for bad in ["limit=0", "limit=101", "limit=ten", "cursor=not-a-cursor"] {
        let (status, error) = error_of(send(&app, &admin, Method::GET, &format!("/api/users?{bad}"), None).await).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "{bad}");
    }
}

#[tokio::test]
async fn invalid_users_get_field_level_errors_and_nothing_is_stored() {
    let (app, admin) = users_app().await;

    let bad = json!({ "email": "not-an-email", "password": "short", "permissions": ["Not Valid"] });
    let (status, error) = error_of(send(&app, &admin, Method::POST, "/api/users", Some(bad)).await).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")));
    assert!(error["fields"]["email"].as_str().unwrap().contains("email address"), "{error}");
    assert!(error["fields"]["password"].as_str().unwrap().contains("at least 10"), "{error}");
    assert!(error["fields"]["permissions"].as_str().unwrap().contains("Not Valid"), "{error}");

    for body in [
        json!({ "email": "x@example.com" }),
        json!({ "email": "x@example.com", "password": PASSWORD, "role": "admin" }),
    ] {
        let (status, _) = error_of(send(&app, &admin, Method::POST, "/api/users", Some(body.clone())).await).await;
        assert_eq!(status, 400, "{body}");
    }
    let malformed = app.request_as(Method::POST, "/api/users", &admin).header("content-type", "application/json");
    let (status, _) = error_of(malformed.body("{\"email\":").send().await.unwrap()).await;
    assert_eq!(status, 400);

    let user = app.create_user("keep@example.com", &[]).await;
    let patch = json!({ "displayName": "New name", "password": "short" });
    let path = format!("/api/users/{}", user.id);
    let (status, error) = error_of(send(&app, &admin, Method::PATCH, &path, Some(patch)).await).await;
    assert_eq!(status, 400);
    assert!(error["fields"]["password"].is_string(), "{error}");
    let unchanged: Value = send(&app, &admin, Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!(unchanged["displayName"], "keep", "a rejected patch changes nothing");

    let page: Value = send(&app, &admin, Method::GET, "/api/users", None).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "only the admin and keep@ exist");
}

#[tokio::test]
async fn emails_are_unique_whatever_their_case() {
    let (app, admin) = users_app().await;
    app.create_user("taken@example.com", &[]).await;

    let body = json!({ "email": "TAKEN@Example.com", "password": PASSWORD });
    let (status, error) = error_of(send(&app, &admin, Method::POST, "/api/users", Some(body)).await).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("conflict")));

    let other = app.create_user("other@example.com", &[]).await;
    let patch = json!({ "email": "Taken@example.com" });
    let path = format!("/api/users/{}", other.id);
    let (status, _) = error_of(send(&app, &admin, Method::PATCH, &path, Some(patch)).await).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn sql_metacharacters_are_stored_literally() {
    let (app, admin) = users_app().await;
    let name = "Robert'); DROP TABLE users;-- \" \\ %_";

    let body = json!({ "email": "bobby@example.com", "password": PASSWORD, "displayName": name });
    let created: Value = send(&app, &admin, Method::POST, "/api/users", Some(body)).await.json().await.unwrap();
    assert_eq!(created["displayName"], name);
    let path = format!("/api/users/{}", created["id"].as_str().unwrap());
    let fetched: Value = send(&app, &admin, Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!(fetched["displayName"], name);

    let injected_id = "x' OR '1'='1";
    let (status, _) = error_of(send(&app, &admin, Method::GET, &format!("/api/users/{injected_id}"), None).await).await;
    assert_eq!(status, 404);
    let page: Value = send(&app, &admin, Method::GET, "/api/users", None).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "the users table is intact");
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_hashes_only() {
    let (app, admin) = users_app().await;
    let body = json!({ "email": "hashed@example.com", "password": "plain text never stored" });
    send(&app, &admin, Method::POST, "/api/users", Some(body)).await;

    let user = app.db.user_by_email_key("hashed@example.com").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"), "{}", user.password_hash);
    assert!(!user.password_hash.contains("plain text"));
}

#[tokio::test]
async fn disabling_a_user_through_the_api_ends_their_access() {
    let (app, admin) = users_app().await;
    let (user, token) = app.user_with_token("reader@example.com", &["read:users"]).await;
    assert_eq!(send(&app, &token, Method::GET, "/api/users", None).await.status(), 200);

    let path = format!("/api/users/{}", user.id);
    let disabled = send(&app, &admin, Method::PATCH, &path, Some(json!({ "disabled": true }))).await;
    assert_eq!(disabled.status(), 200);

    assert_eq!(send(&app, &token, Method::GET, "/api/users", None).await.status(), 401);
    let enabled = send(&app, &admin, Method::PATCH, &path, Some(json!({ "disabled": false }))).await;
    assert_eq!(enabled.status(), 200);
    assert_eq!(send(&app, &token, Method::GET, "/api/users", None).await.status(), 401, "the disable ended it");

    let fresh = app.login("reader@example.com", PASSWORD).await.json::<Value>().await.unwrap();
    let fresh = fresh["token"].as_str().unwrap().to_owned();
    assert_eq!(send(&app, &fresh, Method::GET, "/api/users", None).await.status(), 200);
    let revoked = send(&app, &admin, Method::PATCH, &path, Some(json!({ "permissions": [] }))).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        send(&app, &fresh, Method::GET, "/api/users", None).await.status(),
        403,
        "permission changes apply at once"
    );
}
