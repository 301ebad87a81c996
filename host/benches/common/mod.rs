//! What the benchmarks share: timing with percentiles, and the backends to run on (the embedded
//! ones always; PostgreSQL in a schema of its own plus Redis when `DATABASE_URL` and `REDIS_URL`
//! are set).

#![allow(dead_code)] // each benchmark uses a part

use std::future::Future;
use std::time::{Duration, Instant};

use secrecy::SecretString;

/// Where one benchmark run's data lives.
pub struct Backend {
    pub label: &'static str,
    pub database_url: Option<SecretString>,
    pub redis_url: Option<String>,
}

/// The median and 99th percentile of `iterations` runs of `run`, after a warm-up.
pub async fn measure<F: Future<Output = ()>>(iterations: usize, mut run: impl FnMut() -> F) -> (Duration, Duration) {
    for _ in 0..(iterations / 10).max(10) {
        run().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        run().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    (at(0.5), at(0.99))
}

/// Prints one measured line.
pub fn report(what: &str, (median, p99): (Duration, Duration)) {
    println!("{what:<58} median {:>8.1} µs   p99 {:>8.1} µs", micros(median), micros(p99));
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `bench` on the embedded backends, then on PostgreSQL + Redis if configured.
pub async fn on_each_backend<F: Future<Output = ()>>(mut bench: impl FnMut(Backend) -> F) {
    bench(Backend { label: "SQLite + in-process cache", database_url: None, redis_url: None }).await;
    let database_url = std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres"));
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let (Some(base), Some(redis_url)) = (database_url, redis_url) else {
        println!("-- PostgreSQL + Redis: skipped (set DATABASE_URL and REDIS_URL)");
        return;
    };
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = SecretString::from(format!("{base}{separator}options[search_path]={schema}"));
    bench(Backend { label: "PostgreSQL + Redis", database_url: Some(url), redis_url: Some(redis_url) }).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
}
