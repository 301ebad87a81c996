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
async fn host_routes_apply_the_same_body_limit_and_want_json() {
    let app = spawn_configured(&["hello", "test-tasks"], |config| config.limits.max_body_bytes = 1024).await;
    let (_, token) = app.user_with_token("bodies@example.com", &["write:tasks"]).await;
    let padding = "x".repeat(2048);
    let login = serde_json::json!({ "email": "bodies@example.com", "password": padding });
    let task = serde_json::json!({ "name": "echo", "payload": { "padding": padding } });

    let responses = [
        app.client.post(app.url("/auth/login")).json(&login).send().await.unwrap(),
        app.request_as(reqwest::Method::POST, "/api/tasks", &token).json(&task).send().await.unwrap(),
    ];
    for response in responses {
        let url = response.url().path().to_owned();
        let (status, error) = crate::helpers::error_of(response).await;
        assert_eq!((status, error["code"].as_str()), (413, Some("payload_too_large")), "{url}: {error}");
        assert!(error["message"].as_str().unwrap().contains("1024"), "{error}");
    }
    let as_text = app.client.post(app.url("/auth/login")).header("content-type", "text/plain").body("{}");
    let (status, error) = crate::helpers::error_of(as_text.send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (415, Some("unsupported_media_type")), "{error}");
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

/// Reads from `stream` until the server closes it, failing after `within`; returns when it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> std::time::Instant {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return std::time::Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server kept the connection open")
}

#[tokio::test]
async fn a_trickled_request_head_and_an_idle_kept_alive_connection_are_closed() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    let timeout = Duration::from_millis(400);
    let app = spawn_configured(&["hello"], |config| config.limits.request_head_timeout = timeout).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    // A head sent a byte at a time, never finished.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = slow.split();
    let started = Instant::now();
    let trickle = async {
        for byte in b"GET /api/hello/x HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle().take(60) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let read_until_closed = async {
        let mut buffer = [0u8; 256];
        loop {
            match tokio::io::AsyncReadExt::read(&mut reader, &mut buffer).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    };
    let closed = tokio::select! {
        closed = read_until_closed => closed,
        () = trickle => panic!("the trickled head was read for three seconds"),
    };
    assert!(closed - started < Duration::from_secs(2), "closed after {:?}", closed - started);

    // A complete request, then silence on the kept-alive connection.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answered = Instant::now();
    let closed = closed_within(&mut idle, Duration::from_secs(3)).await;
    assert!(closed - answered >= timeout / 2, "an idle connection may stay for the timeout");
    assert_eq!(app.get("/health").await.status(), 200, "the host serves on");
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    use std::time::Duration;
    let app = spawn_configured(&["hello"], |config| config.limits.max_connections = 2).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let held = [
        tokio::net::TcpStream::connect(&address).await.unwrap(),
        tokio::net::TcpStream::connect(&address).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;

    let fresh = |timeout| reqwest::Client::builder().pool_max_idle_per_host(0).timeout(timeout).build().unwrap();
    let waiting = fresh(Duration::from_millis(700)).get(app.url("/health")).send().await;
    assert!(waiting.is_err_and(|e| e.is_timeout()), "a third connection is not served while two are held");

    drop(held);
    let served = fresh(Duration::from_secs(10)).get(app.url("/health")).send().await.unwrap();
    assert_eq!(served.status(), 200, "a slot freed by a closed connection is used");
}

#[tokio::test]
async fn a_trickled_request_body_is_cut_off_with_a_408() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_configured(&["hello"], |config| config.limits.request_timeout = Duration::from_millis(500)).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for _ in 0..100 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut answer = Vec::new();
    let read = async {
        let mut buffer = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::select! {
        () = read => {}
        () = trickle => panic!("the trickled body was read for five seconds"),
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
}
