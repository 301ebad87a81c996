//! Routes the host answers itself: unknown paths, wrong methods, oversized bodies.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_configured};

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;

    let response = app.get("/api/nothing/here").await;

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], "no route matches GET /api/nothing/here");
}

#[tokio::test]
async fn a_known_path_with_the_wrong_method_is_a_405_listing_allowed_methods() {
    let app = spawn_app().await;

    let response = app.client.delete(app.url("/api/hello/world")).send().await.unwrap();

    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_and_the_next_request_succeeds() {
    let app = spawn_configured(&["hello"], |config| config.limits.max_body_bytes = 1024).await;

    let too_big = format!("{{\"data\": \"{}\"}}", "x".repeat(2048));
    let response = app.client.post(app.url("/api/echo")).body(too_big).send().await.unwrap();

    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("1024"));

    let fits = app.client.post(app.url("/api/echo")).body("{\"data\": 1}").send().await.unwrap();
    assert_eq!(fits.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413_without_content_length() {
    let app = spawn_configured(&["hello"], |config| config.limits.max_body_bytes = 1024).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        let chunk = "y".repeat(600);
        let mut request = String::from(
            "POST /api/echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        for _ in 0..3 {
            request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        request.push_str("0\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();

    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("payload_too_large"), "{raw}");
}
