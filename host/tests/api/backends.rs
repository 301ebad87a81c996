//! Backend faults: the host stays up, says clearly what is missing, and recovers by itself.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{PluginsDir, eventually, try_spawn};
use crate::proxy::{FaultProxy, spawn_behind_database_proxy};

#[tokio::test]
async fn with_the_database_cut_health_and_uploads_are_503_plugins_serve_and_it_recovers() {
    // A database outage needs PostgreSQL: the embedded database is a local file.
    let Some((app, proxy, _database)) = spawn_behind_database_proxy(&["hello"]).await else { return };
    assert_eq!(app.get("/health").await.status(), 200);

    proxy.cut().await;

    let response = app.get("/health").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    let upload = app.upload_built("test-trap", "test-trap").await;
    assert_eq!(upload.status(), 503, "an upload cannot be stored for the other hosts");
    assert_eq!(app.get("/api/trap/ok").await.status(), 404, "and so it is not served either");
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!", "plugins that need no database keep serving");

    proxy.restore();
    eventually(Duration::from_secs(15), "the host to reach its database again", || async {
        (app.get("/health").await.status() == 200).then_some(())
    })
    .await;
    assert_eq!(app.upload_built("test-trap", "test-trap").await.status(), 201);
}

#[tokio::test]
async fn with_redis_unreachable_uploads_still_succeed_on_this_host() {
    // A proxy that is cut before anyone connects: Redis is simply not there.
    let proxy = FaultProxy::start("127.0.0.1:9".parse().unwrap()).await;
    proxy.cut().await;
    let redis_url = format!("redis://{}", proxy.address);
    let app = try_spawn(PluginsDir::with(&["hello"]), |config| config.redis_url = Some(redis_url.into()))
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));

    let response = app.upload_built("test-hello-v2", "hello").await;

    assert_eq!(response.status(), 200);
    assert_eq!(app.greeting("x").await.unwrap(), "Howdy, x!");
    assert_eq!(app.get("/health").await.status(), 200);
}
