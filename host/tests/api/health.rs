use crate::helpers::{expected_backend, spawn_app};

#[tokio::test]
async fn health_reports_ok_with_the_backend_and_plugin_count() {
    let app = spawn_app().await;

    let response = app.get("/health").await;

    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], expected_backend());
    assert_eq!(body["plugins"], 1);
}

#[tokio::test]
async fn health_with_the_wrong_method_is_a_json_405() {
    let app = spawn_app().await;

    let response = app.client.post(app.url("/health")).send().await.unwrap();

    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
