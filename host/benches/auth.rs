//! The cost of authenticating one request: verifying the RS256 token (signature, claims,
//! revocation lookup) and loading the caller's current user (cache-aside), against the embedded
//! backends (SQLite + in-process cache) and, when `DATABASE_URL` and `REDIS_URL` are set, against
//! PostgreSQL + Redis. Run with `cargo bench -p autoflow-host --bench auth`.

use std::time::{Duration, Instant};

use autoflow_host::config::Config;
use autoflow_host::db::Database;
use autoflow_host::services::cache::Cache;
use autoflow_host::services::identity::NewUser;
use autoflow_host::startup::build_services;
use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use secrecy::SecretString;

const ITERATIONS: usize = 5_000;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

async fn measure<F: Future<Output = ()>>(what: &str, mut run: impl FnMut() -> F) {
    for _ in 0..200 {
        run().await;
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        run().await;
        samples.push(started.elapsed());
    }
    let median = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!("{what:<58} median {:>7.1} µs   p99 {:>7.1} µs", micros(median), micros(p99));
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn bench_backend(label: &str, database_url: Option<SecretString>, redis_url: Option<String>) {
    let data = tempfile::TempDir::new().unwrap();
    let mut config = Config::embedded();
    config.data_dir = data.path().to_owned();
    let db = Database::connect(database_url.as_ref(), data.path()).await.unwrap();
    db.migrate().await.unwrap();
    let namespace = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let cache = match &redis_url {
        Some(url) => Cache::redis(redis::Client::open(url.as_str()).unwrap()),
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
    let issued = auth.tokens.issue(&user.id, &user.permissions).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", issued.token)).unwrap());

    println!("-- {label}");
    measure("no credentials (the floor)", || async {
        assert!(auth.authenticate(&HeaderMap::new()).await.unwrap().is_none());
    })
    .await;
    measure("token verify only (RS256 + claims + revocation lookup)", || async {
        auth.tokens.verify(&issued.token).await.unwrap();
    })
    .await;
    measure("authenticate: verify + principal (user from cache)", || async {
        assert!(auth.authenticate(&headers).await.unwrap().is_some());
    })
    .await;
    db.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        bench_backend("SQLite + in-process cache", None, None).await;
        let database_url = std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres"));
        let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
        if let (Some(base), Some(redis_url)) = (database_url, redis_url) {
            // A schema of its own, dropped afterwards, as the tests do.
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&base).await.unwrap();
            let create = format!("CREATE SCHEMA {schema}");
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
            let separator = if base.contains('?') { '&' } else { '?' };
            let url = SecretString::from(format!("{base}{separator}options[search_path]={schema}"));
            bench_backend("PostgreSQL + Redis", Some(url), Some(redis_url)).await;
            let drop = format!("DROP SCHEMA {schema} CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
        } else {
            println!("-- PostgreSQL + Redis: skipped (set DATABASE_URL and REDIS_URL)");
        }
    });
}
