//! The cache service on both backends, and Redis outages degrading to misses (logged, counted).

use std::time::{Duration, Instant};

use autoflow_host::services::cache::{Cache, IncrementError};
use autoflow_host::services::redis_connection::RedisConnection;

use crate::helpers::{eventually, needs_redis};
use crate::proxy::FaultProxy;

fn redis_cache(url: &str) -> Cache {
    Cache::redis(RedisConnection::new(redis::Client::open(url).unwrap()))
}

/// The behaviour every backend must have; keys are unique so runs can share one Redis.
async fn exercise(cache: &Cache) {
    let key = |name: &str| format!("test/{}/{name}", uuid::Uuid::now_v7());
    let (plain, expiring, counter, fill) = (key("plain"), key("expiring"), key("counter"), key("fill"));

    assert_eq!(cache.get(&plain).await, None);
    cache.set(&plain, b"value", None).await;
    assert_eq!(cache.get(&plain).await.as_deref(), Some(&b"value"[..]));
    cache.delete(&plain).await;
    assert_eq!(cache.get(&plain).await, None);

    cache.set(&expiring, b"soon gone", Some(Duration::from_millis(200))).await;
    assert!(cache.get(&expiring).await.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cache.get(&expiring).await, None, "expired after its TTL");

    assert_eq!(cache.increment(&counter, 1, Some(Duration::from_millis(300))).await, Ok(1));
    assert_eq!(cache.increment(&counter, 2, Some(Duration::from_millis(300))).await, Ok(3));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cache.increment(&counter, 1, None).await, Ok(1), "the counter expired with its first TTL");

    cache.set_if_absent(&fill, b"first", Duration::from_millis(300)).await;
    cache.set_if_absent(&fill, b"second", Duration::from_secs(60)).await;
    assert_eq!(cache.get(&fill).await.as_deref(), Some(&b"first"[..]), "a fill never overwrites");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cache.get(&fill).await, None, "a fill expires with its TTL");
    assert_eq!(cache.degraded_operations(), 0);
}

#[tokio::test]
async fn the_in_process_cache_behaves() {
    exercise(&Cache::memory()).await;
}

#[tokio::test]
async fn the_redis_cache_behaves() {
    let Some(url) = needs_redis() else { return };
    exercise(&redis_cache(&url)).await;
}

#[tokio::test]
async fn concurrent_increments_are_atomic_in_process() {
    let cache = Cache::memory();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.increment("hits", 1, None).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(cache.increment("hits", 0, None).await, Ok(50));
}

#[tokio::test]
async fn with_redis_unreachable_reads_miss_writes_are_skipped_and_both_are_counted_quickly() {
    let proxy = FaultProxy::start("127.0.0.1:9".parse().unwrap()).await;
    proxy.cut().await;
    let cache = redis_cache(&format!("redis://{}", proxy.address));

    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(cache.get("k").await, None);
        cache.set("k", b"v", None).await;
        assert_eq!(cache.increment("n", 1, None).await, Err(IncrementError::Unavailable));
    }

    assert_eq!(cache.degraded_operations(), 60);
    assert!(started.elapsed() < Duration::from_secs(3), "degraded calls stay fast: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_redis_cache_recovers_when_redis_comes_back() {
    let Some(url) = needs_redis() else { return };
    let (proxy, through) = FaultProxy::for_redis(&url).await;
    let cache = redis_cache(&through);
    let key = format!("test/{}/recover", uuid::Uuid::now_v7());
    cache.set(&key, b"before", None).await;
    assert_eq!(cache.get(&key).await.as_deref(), Some(&b"before"[..]));

    proxy.cut().await;
    assert_eq!(cache.get(&key).await, None, "an outage reads as a miss");
    assert!(cache.degraded_operations() > 0);

    proxy.restore();
    eventually(Duration::from_secs(10), "the cache to reach Redis again", || async {
        (cache.get(&key).await.as_deref() == Some(&b"before"[..])).then_some(())
    })
    .await;
}
