//! The cost of authenticating one request: verifying the RS256 token (signature, claims,
//! revocation lookup) and loading the caller's current user (cache-aside), against the embedded
//! backends (SQLite + in-process cache) and, when `DATABASE_URL` and `REDIS_URL` are set, against
//! PostgreSQL + Redis. Run with `cargo bench -p autoflow-host --bench auth`.

mod common;

use autoflow_host::config::Config;
use autoflow_host::db::Database;
use autoflow_host::services::cache::Cache;
use autoflow_host::services::identity::NewUser;
use autoflow_host::services::redis_connection::RedisConnection;
use autoflow_host::startup::build_services;
use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use secrecy::SecretString;

use common::{Backend, Measured, measure, on_each_backend, record, report};

const ITERATIONS: usize = 5_000;

async fn bench_backend(Backend { label, database_url, redis_url }: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let mut config = Config::embedded();
    config.data_dir = data.path().to_owned();
    let db = Database::connect(database_url.as_ref(), data.path()).await.unwrap();
    db.migrate().await.unwrap();
    let namespace = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let cache = match &redis_url {
        Some(url) => Cache::redis(RedisConnection::new(redis::Client::open(url.as_str()).unwrap())),
        None => Cache::memory(),
    }
    .with_namespace(&namespace);
    let (auth, _) = build_services(&config, db.clone(), cache).await.unwrap();
    let email = format!("{namespace}@example.com");
    let user = auth
        .identity
        .create(NewUser {
            email,
            display_name: None,
            password: SecretString::from("benchmark password"),
            permissions: vec!["admin".into()],
        })
        .await
        .unwrap();
    let issued = auth.tokens.issue(&user.id, &user.permissions, user.credential_generation).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", issued.token)).unwrap());

    println!("-- {label}");
    let floor = measure(ITERATIONS, || async {
        assert!(auth.authenticate(&HeaderMap::new()).await.unwrap().is_none());
    })
    .await;
    report("no credentials (the floor)", floor);
    let verify = measure(ITERATIONS, || async {
        auth.tokens.verify(&issued.token).await.unwrap();
    })
    .await;
    report("token verify only (RS256 + claims + revocation lookup)", verify);
    let authenticate = measure(ITERATIONS, || async {
        assert!(auth.authenticate(&headers).await.unwrap().is_some());
    })
    .await;
    report("authenticate: verify + principal (user from cache)", authenticate);
    record(
        "auth",
        label,
        "authenticate a bearer token (RS256 verify, revocation, user)",
        Measured::Latency(authenticate),
        None,
        None,
    );
    db.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(on_each_backend(bench_backend));
}
