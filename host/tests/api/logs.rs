//! Plugin logs and stdio land in tracing under a span naming the plugin and the request; a panic
//! report is one ERROR event with the message.

use crate::helpers::{captured_logs, spawn_app_with};

#[tokio::test]
async fn plugin_log_calls_are_logged_under_the_plugin_and_request_span() {
    let app = spawn_app_with(&["hello"]).await;
    let request_id = format!("log-test-{}", uuid::Uuid::new_v4());

    let response =
        app.client.get(app.url("/api/hello/logger")).header("x-request-id", &request_id).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|line| line.contains(&request_id) && line.contains("greeting"))
        .unwrap_or_else(|| panic!("no log line for request {request_id}"));
    assert!(line.contains(&format!("plugin{{plugin=hello request_id={request_id}}}")), "{line}");
    assert!(line.contains(r#"fields={"name":"logger"}"#), "{line}");
}

#[tokio::test]
async fn plugin_stdout_and_panic_messages_become_log_lines() {
    let app = spawn_app_with(&["test-trap"]).await;
    let (ok_id, panic_id) = (format!("stdout-{}", uuid::Uuid::new_v4()), format!("panic-{}", uuid::Uuid::new_v4()));

    app.client.get(app.url("/api/trap/ok")).header("x-request-id", &ok_id).send().await.unwrap();
    app.client.get(app.url("/api/trap/panic")).header("x-request-id", &panic_id).send().await.unwrap();

    let logs = captured_logs();
    let has = |id: &str, text: &str| logs.lines().any(|l| l.contains(id) && l.contains(text));
    assert!(has(&ok_id, "stream=\"stdout\"") && has(&ok_id, "test-trap was asked how it is"), "{logs}");
    let panic_line = logs.lines().find(|l| l.contains(&panic_id) && l.contains("test-trap panics on purpose"));
    let panic_line = panic_line.unwrap_or_else(|| panic!("no panic line: {logs}"));
    assert!(panic_line.contains("ERROR") && panic_line.contains("plugin panicked"), "one ERROR event: {panic_line}");
    assert!(panic_line.contains("location="), "{panic_line}");
    assert!(!has(&panic_id, "RUST_BACKTRACE"), "the report's note is not logged as a line of its own");
}
