//! What reaches a plugin (path parameters, query, headers, body, request id) and what comes back.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn get_hello_is_served_by_the_wasm_component() {
    let app = spawn_app().await;

    let response = app.get("/api/hello/world").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Hello, world!");
    assert_eq!(body["requestId"], request_id, "the plugin sees the id the client gets back");
    assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "request ids are UUIDs: {request_id}");
}

#[tokio::test]
async fn path_parameters_arrive_percent_decoded() {
    let app = spawn_app().await;

    let body: Value = app.get("/api/hello/J%C3%BCrgen%20M").await.json().await.unwrap();

    assert_eq!(body["message"], "Hello, Jürgen M!");
}

#[tokio::test]
async fn path_parameters_that_are_not_utf8_are_a_400() {
    let app = spawn_app().await;

    let response = app.get("/api/hello/%FF").await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("name"));
}

#[tokio::test]
async fn query_parameters_reach_the_plugin() {
    let app = spawn_app().await;

    let body: Value = app.get("/api/hello/world?greeting=Good%20morning").await.json().await.unwrap();

    assert_eq!(body["message"], "Good morning, world!");
}

#[tokio::test]
async fn a_client_request_id_is_kept_and_handed_to_the_plugin() {
    let app = spawn_app().await;

    let response =
        app.client.get(app.url("/api/hello/x")).header("x-request-id", "client-chosen-42").send().await.unwrap();

    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["requestId"], "client-chosen-42");
}

#[tokio::test]
async fn a_client_request_id_that_could_forge_log_fields_is_replaced_by_a_generated_one() {
    let app = spawn_app().await;
    let long = "a".repeat(129);
    for forged in ["x\" level=ERROR msg=\"forged", "two words", "tab\there", long.as_str()] {
        let response = app.client.get(app.url("/api/hello/x")).header("x-request-id", forged).send().await.unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        assert_ne!(echoed, forged);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "a generated id replaces {forged:?}, got {echoed:?}");
        assert_eq!(body["requestId"], echoed.as_str(), "the plugin sees the same generated id");
    }
    assert!(!crate::helpers::captured_logs().contains("level=ERROR msg="), "the forged field never reached the log");
}

#[tokio::test]
async fn echo_returns_json_body_query_and_headers() {
    let app = spawn_app().await;
    let payload = json!({ "name": "Ada", "tags": ["a", "b"], "nested": { "n": 1.5 } });

    let response = app
        .client
        .post(app.url("/api/echo?source=test&source=ignored"))
        .header("x-echo", "hi there")
        .json(&payload)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["echo"], payload);
    assert_eq!(
        body["query"],
        json!({ "source": "ignored" }),
        "later query pairs overwrite earlier ones in the echo map"
    );
    assert_eq!(body["headers"]["x-echo"], "hi there");
    assert_eq!(body["headers"]["content-type"], "application/json");
}

#[tokio::test]
async fn echo_with_malformed_json_is_a_400_with_the_error_shape() {
    let app = spawn_app().await;

    let response = app.client.post(app.url("/api/echo")).body("{\"name\": ").send().await.unwrap();

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid");
    assert!(body["error"]["message"].as_str().unwrap().contains("not valid JSON"), "{body}");
}

#[tokio::test]
async fn echo_with_an_empty_body_is_a_400() {
    let app = spawn_app().await;

    let response = app.client.post(app.url("/api/echo")).send().await.unwrap();

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("empty"), "{body}");
}
