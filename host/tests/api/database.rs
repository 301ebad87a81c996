//! The database is migrated at start-up and records which build of each plugin is serving.

use sha2::{Digest, Sha256};

use crate::helpers::{PluginsDir, TestDatabase, spawn_app_with, test_config};
use autoflow_host::startup::Application;

#[tokio::test]
async fn loaded_plugins_are_recorded_with_their_content_hash() {
    let app = spawn_app_with(&["hello", "test-trap"]).await;

    let records = app.db.loaded_plugins().await.unwrap();

    let names: Vec<_> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["hello", "test-trap"]);
    let component = std::fs::read(app.plugins.path().join("hello/plugin.wasm")).unwrap();
    assert_eq!(records[0].content_hash, hex::encode(Sha256::digest(&component)));
    assert_eq!(records[0].version, "0.1.0");
}

#[tokio::test]
async fn a_restart_on_the_same_database_migrates_idempotently_and_updates_records() {
    let database = TestDatabase::create().await;
    let data = tempfile::TempDir::new().unwrap();
    let plugins = PluginsDir::with(&["hello"]);

    let first = Application::build(test_config(plugins.path(), data.path(), &database)).await.unwrap();
    let first_loaded_at = first.database().loaded_plugins().await.unwrap()[0].loaded_at;
    first.database().close().await;
    drop(first);

    // The restart serves another build: its record must say so, and when it was loaded.
    plugins.publish_built("test-hello-v2", "hello");
    let second = Application::build(test_config(plugins.path(), data.path(), &database)).await.unwrap();
    let records = second.database().loaded_plugins().await.unwrap();

    assert_eq!(records.len(), 1);
    let component = std::fs::read(plugins.path().join("hello/plugin.wasm")).unwrap();
    assert_eq!(records[0].content_hash, hex::encode(Sha256::digest(&component)), "the new build is recorded");
    assert_eq!(records[0].version, "2.0.0");
    assert!(records[0].loaded_at > first_loaded_at, "the record was written again at the restart");
}
