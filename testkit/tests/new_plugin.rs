//! `cargo xtask new-plugin` makes plugins that build, load and answer at once: each kind is
//! created in a scratch copy of the plugins workspace, built by `build-plugins`' own code and
//! served by a real host.

use autoflow_testkit::TestHost;
use serde_json::json;
use std::path::{Path, PathBuf};
use xtask::scaffold::{Kind, new_plugin};

/// This repository.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            if name != "target" {
                copy_dir(&path, &to.join(name));
            }
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

/// A repository with the contract, the SDK and a plugins workspace holding nothing else.
fn scratch_repo() -> tempfile::TempDir {
    let (repo, scratch) = (repo(), tempfile::TempDir::new().unwrap());
    copy_dir(&repo.join("wit"), &scratch.path().join("wit"));
    copy_dir(&repo.join("plugins/sdk"), &scratch.path().join("plugins/sdk"));
    copy_dir(&repo.join("plugins/.cargo"), &scratch.path().join("plugins/.cargo"));
    std::fs::copy(repo.join("plugins/Cargo.lock"), scratch.path().join("plugins/Cargo.lock")).unwrap();
    let workspace = std::fs::read_to_string(repo.join("plugins/Cargo.toml")).unwrap();
    let members = workspace.lines().find(|line| line.starts_with("members = [")).unwrap();
    let workspace = workspace.replace(members, "members = [\"sdk\"]");
    std::fs::write(scratch.path().join("plugins/Cargo.toml"), workspace).unwrap();
    scratch
}

/// Where this repository's plugins are built, so the SDK's dependencies are not compiled again.
fn plugins_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("plugins/target"), PathBuf::from)
}

#[tokio::test]
async fn new_feature_and_task_plugins_build_load_and_answer() {
    let scratch = scratch_repo();
    let created = new_plugin(scratch.path(), "bookmarks", Kind::Feature).unwrap();
    assert!(created.files.contains(&"plugins/bookmarks/tests/api.rs".to_owned()), "{:?}", created.files);
    new_plugin(scratch.path(), "send-digest", Kind::Task).unwrap();
    let workspace = std::fs::read_to_string(scratch.path().join("plugins/Cargo.toml")).unwrap();
    assert!(workspace.contains("members = [\"sdk\", \"bookmarks\", \"send-digest\"]"), "{workspace}");

    let target = plugins_target_dir();
    let root = scratch.path().to_owned();
    tokio::task::spawn_blocking(move || xtask::plugins::build_all_into(&root, false, &target)).await.unwrap().unwrap();
    let host = TestHost::start_dir(&scratch.path().join("dist/plugins")).await;
    let ada = host.user("ada@example.com", &["write:tasks"]).await;

    let created = ada.post("/api/bookmarks", json!({ "text": "https://example.com" })).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(ada.get("/api/bookmarks").await.body["items"][0]["text"], "https://example.com");
    assert_eq!(host.anonymous().get("/api/bookmarks").await.status, 401);

    let scheduled = ada.post("/api/tasks", json!({ "name": "send-digest", "payload": { "message": "hi" } })).await;
    assert_eq!(scheduled.status, 201, "{}", scheduled.body);
    let location = scheduled.header("location").unwrap().to_owned();
    let task = ada.finished_task(&location).await;
    assert_eq!(task.body["result"], json!({ "echoed": "hi", "attempt": 1 }), "{}", task.body);
}
