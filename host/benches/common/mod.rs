//! What the benchmarks share: timing with percentiles, and the backends to run on (the embedded
//! ones always; PostgreSQL in a schema of its own plus Redis when `DATABASE_URL` and `REDIS_URL`
//! are set), and a host serving built plugins.

#![allow(dead_code)] // each benchmark uses a part

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use autoflow_host::config::Config;
use secrecy::SecretString;
use tempfile::TempDir;

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

/// What one scenario measured, for `cargo xtask bench`'s report.
pub enum Measured {
    /// Latency: median and 99th percentile.
    Latency((Duration, Duration)),
    /// A rate per second in `unit` (`req/s`, `tasks/s`), with the latency under that load if known.
    Rate { per_second: f64, unit: &'static str, latency: Option<(Duration, Duration)> },
    /// A plain amount in `unit` (`ms`, `MiB`), lower is better.
    Amount { value: f64, unit: &'static str },
}

impl Measured {
    fn json(&self) -> serde_json::Value {
        let latency =
            |(p50, p99): (Duration, Duration)| serde_json::json!({ "p50_us": micros(p50), "p99_us": micros(p99) });
        match self {
            Measured::Latency(l) => serde_json::json!({ "kind": "latency", "latency": latency(*l) }),
            Measured::Rate { per_second, unit, latency: l } => serde_json::json!({
                "kind": "rate", "value": per_second, "unit": unit, "latency": l.map(latency),
            }),
            Measured::Amount { value, unit } => serde_json::json!({ "kind": "amount", "value": value, "unit": unit }),
        }
    }

    /// How close `self` comes to `baseline`: 1 is as fast (or as small), lower is slower.
    fn ratio(&self, baseline: &Measured) -> Option<f64> {
        match (self, baseline) {
            (Measured::Latency((p50, _)), Measured::Latency((native, _))) => Some(micros(*native) / micros(*p50)),
            (Measured::Rate { per_second, .. }, Measured::Rate { per_second: native, .. }) => Some(per_second / native),
            (Measured::Amount { value, .. }, Measured::Amount { value: native, .. }) => Some(native / value),
            _ => None,
        }
    }
}

/// Appends one scenario to the JSON lines file `AUTOFLOW_BENCH_OUT` names (if set): what was
/// measured, on which backend, beside its native baseline measured in the same run, and the target.
pub fn record(
    bench: &str,
    backend: &str,
    scenario: &str,
    measured: Measured,
    baseline: Option<Measured>,
    target: Option<&str>,
) {
    let Ok(path) = std::env::var("AUTOFLOW_BENCH_OUT") else { return };
    let ratio = baseline.as_ref().and_then(|native| measured.ratio(native));
    let line = serde_json::json!({
        "bench": bench,
        "backend": backend,
        "scenario": scenario,
        "measured": measured.json(),
        "baseline": baseline.as_ref().map(Measured::json),
        "ratio": ratio,
        "target": target,
    });
    use std::io::Write;
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("opening AUTOFLOW_BENCH_OUT");
    writeln!(file, "{line}").expect("writing AUTOFLOW_BENCH_OUT");
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `bench` on the embedded backends, then on PostgreSQL + Redis if configured;
/// `AUTOFLOW_BENCH_BACKEND=embedded` or `=production` runs only that one.
pub async fn on_each_backend<F: Future<Output = ()>>(mut bench: impl FnMut(Backend) -> F) {
    let only = std::env::var("AUTOFLOW_BENCH_BACKEND").unwrap_or_default();
    if only != "production" {
        bench(Backend { label: "SQLite + in-process cache", database_url: None, redis_url: None }).await;
    }
    if only == "embedded" {
        return;
    }
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

/// The directory of a plugin built by `cargo xtask build-plugins` (`test-*` fixtures included).
pub fn built_plugin(name: &str) -> PathBuf {
    let kind = if name.starts_with("test-") { "test-plugins" } else { "plugins" };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist").join(kind).join(name);
    assert!(dir.join("plugin.wasm").is_file(), "build the plugins first: cargo xtask build-plugins");
    dir
}

/// A host's config for one benchmark run, with the directories it lives in.
pub struct BenchHost {
    pub config: Config,
    _data: TempDir,
    _plugins: TempDir,
}

impl BenchHost {
    /// A host on `backend` listening on a free loopback port, serving copies of the built
    /// `plugins`, with a fresh data directory and cache namespace and no file watching.
    pub fn new(backend: &Backend, plugins: &[&str]) -> Self {
        let (data, plugins_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        for name in plugins {
            let dir = plugins_dir.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for file in ["plugin.toml", "plugin.wasm"] {
                std::fs::copy(built_plugin(name).join(file), dir.join(file)).unwrap();
            }
        }
        let mut config = Config::embedded();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.plugins_dir = plugins_dir.path().to_owned();
        config.data_dir = data.path().to_owned();
        config.database_url = backend.database_url.clone();
        config.redis_url = backend.redis_url.clone().map(Into::into);
        config.cache_namespace = format!("bench-{}", uuid::Uuid::new_v4().simple());
        config.watch = false;
        Self { config, _data: data, _plugins: plugins_dir }
    }
}
