//! The `autoflow` binary itself: serve, migrate, and the messages it fails with.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::helpers::{PluginsDir, TestDatabase, expected_backend};

fn autoflow(database: &TestDatabase, data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoflow"));
    command.env_remove("DATABASE_URL").env("AUTOFLOW_DATA", data).env("RUST_LOG", "info");
    if let Some(url) = &database.url {
        command.env("DATABASE_URL", url.expose_secret());
    }
    command
}

/// Starts `autoflow serve` and waits for the address it reports listening on.
fn start_serving(mut command: Command) -> (Child, String) {
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("address=").nth(1) {
                let _ = tx.send(address.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let address = rx.recv_timeout(Duration::from_secs(60)).expect("autoflow serve did not report listening");
    (child, address)
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn serve_answers_from_the_plugin_and_stops_cleanly_on_sigterm() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    let mut command = autoflow(&database, data.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--plugins"]).arg(plugins.path());

    let (mut child, address) = start_serving(command);
    let response = reqwest::get(format!("http://{address}/api/hello/cli")).await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let exit = child.wait().unwrap();

    assert_eq!(status, 200);
    assert_eq!(body["message"], "Hello, cli!");
    assert!(exit.success(), "autoflow serve should exit 0 after SIGTERM, got {exit}");
}

#[tokio::test]
async fn serve_with_a_broken_plugin_exits_non_zero_naming_the_file() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    std::fs::write(plugins.path().join("hello/plugin.wasm"), "not wasm").unwrap();

    let output = autoflow(&database, data.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(plugins.path())
        .output()
        .unwrap();

    let stderr = stderr_of(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("hello/plugin.wasm") && stderr.contains("not a valid wasm component"), "{stderr}");
}

#[tokio::test]
async fn migrate_creates_the_schema_and_exits_zero() {
    let (database, data) = (TestDatabase::create().await, tempfile::TempDir::new().unwrap());

    let output = autoflow(&database, data.path()).arg("migrate").output().unwrap();

    assert!(output.status.success(), "{}", stderr_of(&output));
    let db = autoflow_host::db::Database::connect(database.url.as_ref(), data.path()).await.unwrap();
    assert_eq!(db.backend().to_string(), expected_backend());
    assert!(db.loaded_plugins().await.unwrap().is_empty(), "the plugins table exists and is empty");
    if expected_backend() == "sqlite" {
        assert!(data.path().join("autoflow.db").is_file());
    }
}

#[tokio::test]
async fn an_unsupported_database_url_is_named_in_the_error() {
    let data = tempfile::TempDir::new().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_autoflow"))
        .arg("migrate")
        .env("DATABASE_URL", "mysql://localhost/db")
        .env("AUTOFLOW_DATA", data.path())
        .output()
        .unwrap();

    let stderr = stderr_of(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("DATABASE_URL must start with") && stderr.contains("`mysql`"), "{stderr}");
}
