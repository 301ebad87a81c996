//! Uploading builds through the admin API: stored in the database, served by every host.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{
    PluginsDir, TestDatabase, built_files, error_of, eventually, spawn_app, spawn_configured, try_spawn,
};

#[tokio::test]
async fn an_uploaded_build_replaces_the_serving_one_and_is_stored() {
    let app = spawn_app().await;

    let response = app.upload_built("test-hello-v2", "hello").await;

    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["version"], "2.0.0");
    assert_eq!(app.greeting("x").await.unwrap(), "Howdy, x!");
    let stored = app.db.plugin_build("hello").await.unwrap().expect("the build is stored");
    assert_eq!(stored.version, "2.0.0");
    assert_eq!(stored.component, built_files("test-hello-v2", "hello").1);
}

#[tokio::test]
async fn uploading_a_new_plugin_is_a_201_with_its_location() {
    let app = spawn_app().await;

    let response = app.upload_built("test-trap", "test-trap").await;

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/admin/plugins/test-trap");
    assert_eq!(app.get("/api/trap/ok").await.status(), 200);
}

/// `manifest` plus a route its code has no handler for.
fn with_unhandled_route(manifest: &[u8]) -> Vec<u8> {
    let mut manifest = manifest.to_vec();
    manifest.extend_from_slice(b"\n[[routes]]\nmethod = \"GET\"\npath = \"/api/trap/unhandled\"\n");
    manifest
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_clear_error_and_nothing_is_stored() {
    let app = spawn_configured(&["hello"], |config| config.limits.max_upload_bytes = 768 * 1024).await;
    let (manifest, component) = built_files("test-trap", "test-trap");
    let (hello_manifest, hello_component) = built_files("hello", "hello-again");

    let cases = [
        ("not a component", "test-trap", manifest.clone(), b"definitely not wasm".to_vec(), 400, "invalid_plugin"),
        (
            "unparsable manifest",
            "test-trap",
            b"name = \"test-trap\"\nversion =".to_vec(),
            component.clone(),
            400,
            "invalid_plugin",
        ),
        ("manifest of another plugin", "other-name", manifest.clone(), component.clone(), 400, "invalid_plugin"),
        (
            "code and manifest disagree",
            "test-trap",
            with_unhandled_route(&manifest),
            component.clone(),
            400,
            "invalid_plugin",
        ),
        ("route conflict", "hello-again", hello_manifest, hello_component, 409, "conflict"),
        ("over the size limit", "test-trap", manifest.clone(), vec![0u8; 1024 * 1024], 413, "payload_too_large"),
    ];
    for (what, name, manifest, component, status, code) in cases {
        let (got_status, error) = error_of(app.upload(name, manifest, component).await).await;
        assert_eq!((got_status, error["code"].as_str().unwrap()), (status, code), "{what}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty(), "{what}");
        if what == "code and manifest disagree" {
            let message = error["message"].as_str().unwrap();
            assert!(message.contains("route GET /api/trap/unhandled is declared in plugin.toml"), "{message}");
        }
    }

    assert!(app.db.plugin_build_names().await.unwrap().is_empty(), "nothing was stored");
    assert_eq!(app.get("/api/trap/ok").await.status(), 404);
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!");
}

#[tokio::test]
async fn an_upload_missing_a_part_is_a_400() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new().part("manifest", reqwest::multipart::Part::bytes(b"x".to_vec()));

    let response = app.admin(Method::PUT, "/admin/plugins/hello").multipart(form).send().await.unwrap();

    let (status, error) = error_of(response).await;
    assert_eq!(status, 400);
    assert!(error["message"].as_str().unwrap().contains("two parts"), "{error}");
}

#[tokio::test]
async fn an_upload_with_a_part_sent_twice_is_a_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (manifest, component) = built_files("test-hello-v2", "hello");
    let (good_manifest, good_component) = built_files("hello", "hello");
    let part = |bytes: &[u8], file: &'static str| reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file);
    for twice in ["manifest", "component"] {
        let mut form = reqwest::multipart::Form::new()
            .part("manifest", part(&good_manifest, "plugin.toml"))
            .part("component", part(&good_component, "plugin.wasm"));
        form = match twice {
            "manifest" => form.part("manifest", part(&manifest, "plugin.toml")),
            _ => form.part("component", part(&component, "plugin.wasm")),
        };

        let response = app.admin(Method::PUT, "/admin/plugins/hello").multipart(form).send().await.unwrap();

        let (status, error) = error_of(response).await;
        assert_eq!(status, 400, "{twice}: {error}");
        assert!(error["message"].as_str().unwrap().contains(&format!("`{twice}` is sent twice")), "{error}");
    }
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!", "the serving build is unchanged");
    assert!(app.column("SELECT name FROM plugin_builds").await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn deleting_an_uploaded_plugin_unloads_it_and_leaves_a_tombstone() {
    let app = spawn_app().await;
    assert_eq!(app.upload_built("test-trap", "test-trap").await.status(), 201);

    let response = app.admin(Method::DELETE, "/admin/plugins/test-trap").send().await.unwrap();

    assert_eq!(response.status(), 204);
    assert_eq!(app.get("/api/trap/ok").await.status(), 404);
    assert!(app.db.plugin_build("test-trap").await.unwrap().unwrap().deleted_at.is_some());
    let again = app.admin(Method::DELETE, "/admin/plugins/test-trap").send().await.unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn a_host_started_on_the_same_database_serves_uploaded_builds() {
    let database = TestDatabase::create().await;
    let data = tempfile::TempDir::new().unwrap();
    let plugins = PluginsDir::with(&["hello"]);
    let first = crate::helpers::test_config(plugins.path(), data.path(), &database);
    let app = autoflow_host::startup::Application::build(first).await.unwrap();
    let live = app.plugins().clone();
    let (manifest, component) = built_files("test-hello-v2", "hello");
    live.install(
        &autoflow_host::spec::PluginName::parse("hello").unwrap(),
        String::from_utf8(manifest).unwrap(),
        component,
    )
    .await
    .unwrap();
    app.database().close().await;
    drop(app);

    // A second host with its own, older copy of the plugins directory (on SQLite the shared
    // database is the file in the shared data directory).
    let other_plugins = PluginsDir::with(&["hello"]);
    let config = crate::helpers::test_config(other_plugins.path(), data.path(), &database);
    let other = autoflow_host::startup::Application::build(config).await.unwrap();

    assert_eq!(other.plugins().registry().find("hello").unwrap().manifest.version, "2.0.0");
}

#[tokio::test]
async fn an_upload_on_one_host_reaches_another_through_redis() {
    if crate::helpers::needs_redis().is_none() {
        return;
    }
    let database = TestDatabase::create().await;
    // One deployment: the same database and the same Redis namespace.
    let (shared, namespace) = (database.url.clone(), format!("test-{}", uuid::Uuid::new_v4().simple()));
    let spawn_host = || {
        let (shared, namespace) = (shared.clone(), namespace.clone());
        async move {
            try_spawn(PluginsDir::with(&["hello"]), move |config| {
                config.database_url = shared;
                config.cache_namespace = namespace;
            })
            .await
            .unwrap_or_else(|(e, _)| panic!("{e}"))
        }
    };
    let (one, two) = (spawn_host().await, spawn_host().await);
    tokio::time::sleep(Duration::from_millis(300)).await; // both subscribed

    assert_eq!(one.upload_built("test-hello-v2", "hello").await.status(), 200);
    eventually(Duration::from_secs(10), "the second host to serve the upload", || async {
        (two.greeting("x").await.as_deref() == Ok("Howdy, x!")).then_some(())
    })
    .await;

    assert_eq!(one.upload_built("test-trap", "test-trap").await.status(), 201);
    eventually(Duration::from_secs(10), "the second host to serve test-trap", || async {
        (two.get("/api/trap/ok").await.status() == 200).then_some(())
    })
    .await;
    assert_eq!(one.admin(Method::DELETE, "/admin/plugins/test-trap").send().await.unwrap().status(), 204);
    eventually(Duration::from_secs(10), "the second host to unload test-trap", || async {
        (two.get("/api/trap/ok").await.status() == 404).then_some(())
    })
    .await;
    drop(database);
}
