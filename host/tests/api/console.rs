//! The web console at `/console`: its pages and their policy, and an admin's session end to end
//! in headless Chromium (`host/tests/console/console.mjs`, driven by playwright-core).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{PASSWORD, built_files, needs_browser, spawn_app_with};

#[tokio::test]
async fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let app = spawn_app_with(&["hello"]).await;

    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{path}");
        let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{path}: {policy}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let page = app.get("/console").await.text().await.unwrap();
    assert!(page.contains(r#"<script src="/console/app.js" type="module"></script>"#), "{page}");
    // No inline script and no address outside the host: everything the page loads is its own.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
}

#[tokio::test]
async fn no_plugin_may_declare_a_route_under_the_console() {
    let app = spawn_app_with(&["hello"]).await;
    let (manifest, component) = built_files("hello", "shadow");
    let manifest = String::from_utf8(manifest).unwrap().replace("/api/hello/{name}", "/console/{name}");

    let response = app.upload("shadow", manifest.into_bytes(), component).await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("/console"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_the_host_from_the_console() {
    let Some(browser) = needs_browser() else { return };
    let app = spawn_app_with(&["hello", "notes", "users", "test-tasks"]).await;
    let (admin, second) = ("console-admin@example.com", "console-second@example.com");
    app.create_user(admin, &["admin"]).await;
    app.create_user(second, &["admin"]).await;
    let plain = "console-user@example.com";
    app.create_user(plain, &[]).await;
    let upload = tempfile::TempDir::new().unwrap();
    let (manifest, component) = built_files("test-hello-v2", "hello");
    std::fs::write(upload.path().join("plugin.toml"), manifest).unwrap();
    std::fs::write(upload.path().join("plugin.wasm"), component).unwrap();
    let screenshots = screenshots_dir();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console/console.mjs");
    let mut node = std::process::Command::new("node");
    node.arg(&script)
        .env("AUTOFLOW_CONSOLE_URL", app.url("").trim_end_matches('/'))
        .env("AUTOFLOW_CONSOLE_ADMIN", admin)
        .env("AUTOFLOW_CONSOLE_SECOND", second)
        .env("AUTOFLOW_CONSOLE_USER", plain)
        .env("AUTOFLOW_CONSOLE_PASSWORD", PASSWORD)
        .env("AUTOFLOW_CONSOLE_MANIFEST", upload.path().join("plugin.toml"))
        .env("AUTOFLOW_CONSOLE_COMPONENT", upload.path().join("plugin.wasm"))
        .env("AUTOFLOW_CONSOLE_SCREENSHOTS", &screenshots)
        .env("AUTOFLOW_TEST_NODE_MODULES", &browser.node_modules)
        .env("AUTOFLOW_TEST_CHROMIUM", &browser.chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The host keeps serving on this runtime while node waits on another thread.
    let run = tokio::task::spawn_blocking(move || node.output());
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run took over 3 minutes")
        .unwrap()
        .expect("starting node");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser run failed:\n{said}");
    assert!(said.contains("console: all steps passed"), "{said}");

    // What the clicks did, as the API sees it.
    assert_eq!(app.admin_plugin("hello").await["version"], "2.0.0");
    let (_, token) = app.user_with_token("console-check@example.com", &["admin"]).await;
    let users: Value =
        app.request_as(Method::GET, "/api/users?limit=100", &token).send().await.unwrap().json().await.unwrap();
    let disabled = users["items"].as_array().unwrap().iter().find(|user| user["email"] == second).unwrap();
    assert_eq!(disabled["disabled"], true, "{disabled}");
    for page in ["plugins", "tasks", "task", "users", "plugins-phone"] {
        assert!(screenshots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}

/// Where the run leaves its screenshots: `console-screenshots/` in the build directory.
fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    let dir = target.join("console-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
