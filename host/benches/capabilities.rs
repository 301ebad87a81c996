//! The cost of one capability call made by a plugin, against the same call made natively by the
//! host: records get (cache hit and cache miss) and cache get, on the embedded backends and, when
//! `DATABASE_URL` and `REDIS_URL` are set, on PostgreSQL + Redis. A plugin call is measured as
//! (request making `CALLS` calls − request making none) / `CALLS`, so HTTP and instantiation drop
//! out. Needs the built test plugins (`cargo xtask build-plugins`); run with
//! `cargo bench -p autoflow-host --bench capabilities`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autoflow_host::db::CollectionRef;
use autoflow_host::startup::Application;

use common::{Backend, BenchHost, Measured, measure, micros, on_each_backend, record, report};

/// Native calls timed per operation.
const NATIVE_ITERATIONS: usize = 2_000;
/// Requests timed per operation through the plugin.
const REQUESTS: usize = 60;
/// Capability calls the plugin makes per request.
const CALLS: u32 = 100;

const PLUGIN: &str = "test-records";
const SHARED: CollectionRef<'static> = CollectionRef { plugin: PLUGIN, collection: "settings", owner: "" };
const CACHE_KEY: &str = "plugins/test-records/s/bench";

async fn bench_backend(backend: Backend) {
    let host = BenchHost::new(&backend, &[PLUGIN]);
    let app = Application::build(host.config.clone()).await.unwrap();
    let address = format!("http://{}", app.local_addr());
    let services = app.services().clone();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));

    services.records.create(SHARED, Some("bench"), r#"{"n": 1, "text": "a small document"}"#).await.unwrap();
    services.cache.set(CACHE_KEY, b"a small value", None).await;
    let fresh = AtomicU64::new(0);
    let next_id = || format!("miss-{}", fresh.fetch_add(1, Ordering::Relaxed));

    println!("-- {}", backend.label);
    let native_hit = measure(NATIVE_ITERATIONS, || async {
        assert!(services.records.get(SHARED, "bench").await.unwrap().is_some());
    })
    .await;
    let native_miss = measure(NATIVE_ITERATIONS, || async {
        assert!(services.records.get(SHARED, &next_id()).await.unwrap().is_none());
    })
    .await;
    let native_cache = measure(NATIVE_ITERATIONS, || async {
        assert!(services.cache.get(CACHE_KEY).await.is_some());
    })
    .await;

    let client = reqwest::Client::new();
    let through_plugin = |op: &'static str| {
        let (client, address, fresh) = (&client, &address, &fresh);
        async move {
            let request = || async move {
                let prefix = format!("r{}", fresh.fetch_add(1, Ordering::Relaxed));
                let url = format!("{address}/api/test-records/bench/{op}?times={CALLS}&prefix={prefix}");
                let response = client.post(url).send().await.unwrap();
                assert_eq!(response.status(), 204, "{op}");
            };
            measure(REQUESTS, request).await
        }
    };
    let noop = through_plugin("noop").await;
    report("request floor (HTTP + instantiate + call)", noop);
    for (what, op, native) in [
        ("records get, cache hit", "records-get", native_hit),
        ("records get, cache miss (DB read + fill)", "records-miss", native_miss),
        ("cache get", "cache-get", native_cache),
    ] {
        let (median, _) = through_plugin(op).await;
        let per_call = median.saturating_sub(noop.0) / CALLS;
        report(&format!("{what}: native"), native);
        let median = |d: Duration| Measured::Amount { value: micros(d), unit: "µs (median)" };
        let scenario = format!("{what}, one call from a plugin (baseline: the host's own service call)");
        record("capabilities", backend.label, &scenario, median(per_call), Some(median(native.0)), None);
        println!(
            "{:<58} median {:>8.1} µs   native/plugin {:.2}",
            format!("{what}: from the plugin"),
            micros(per_call),
            micros(native.0) / micros(per_call).max(f64::EPSILON)
        );
    }
    server.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(on_each_backend(bench_backend));
}
