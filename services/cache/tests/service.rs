//! The cache across processes: the exact tier shared through a real Redis
//! (127.0.0.1:6379, or `REDIS_URL`), and the cache service reached over HTTP.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tollgate_cache::embedder::HashedEmbedder;
use tollgate_cache::http::{CacheHttp, configure};
use tollgate_cache::remote::RemoteCache;
use tollgate_cache::shared::SharedExactTier;
use tollgate_cache::store::EmbeddedStore;
use tollgate_cache::{
    AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings, SemanticCache,
};

fn settings() -> CacheSettings {
    CacheSettings {
        threshold: 0.9,
        lookup_budget: Duration::from_millis(500),
        exact_capacity: 100,
        max_entries_per_org: 1000,
    }
}

fn request(org: &str, key: &str, question: &str, ttl: Duration) -> CacheRequest {
    CacheRequest {
        org_id: org.into(),
        exact_key: key.into(),
        partition: "smart|t=0".into(),
        question: Some(question.into()),
        mode: CacheMode::Semantic,
        read: true,
        write: true,
        ttl,
    }
}

/// An answer cache with its own embedded store (as each replica has).
fn replica() -> (AnswerCache, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tollgate-service-{}", uuid::Uuid::now_v7()));
    let embedder = Arc::new(HashedEmbedder::new());
    let store = EmbeddedStore::open(&dir, 512).unwrap();
    (AnswerCache::new(embedder, Arc::new(store), settings()), dir)
}

async fn redis_at(url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).unwrap();
    ConnectionManager::new_lazy_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(300)))
            .set_response_timeout(Some(Duration::from_millis(300)))
            .set_number_of_retries(0),
    )
    .unwrap()
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn replicas_share_exact_answers_through_redis_per_organization_with_ttl() {
    // A prefix of this run's own: runs never see each other's entries.
    let prefix = format!("tollgate-test:{}", uuid::Uuid::now_v7());
    let shared = SharedExactTier::new(redis_at(&redis_url()).await, prefix);
    let (a, dir_a) = replica();
    let (b, dir_b) = replica();
    let (a, b) = (
        a.with_shared_exact(shared.clone()),
        b.with_shared_exact(shared),
    );
    let hour = Duration::from_secs(3600);

    let asked = request("org-a", "k1", "What is the capital of France?", hour);
    assert_eq!(b.lookup(&asked).await, None);
    a.store(&asked, "Paris", true).await;
    assert_eq!(
        b.lookup(&asked).await,
        Some(CacheHit::Exact {
            answer: "Paris".into()
        }),
        "paid for by one replica, free on the other"
    );
    let elsewhere = request("org-b", "k1", "What is the capital of France?", hour);
    assert_eq!(
        b.lookup(&elsewhere).await,
        None,
        "never across organizations"
    );

    let brief = request(
        "org-a",
        "k2",
        "Who wrote Hamlet?",
        Duration::from_millis(300),
    );
    a.store(&brief, "Shakespeare", true).await;
    assert!(b.lookup(&brief).await.is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (c, dir_c) = replica();
    let c = c.with_shared_exact(SharedExactTier::new(redis_at(&redis_url()).await, "unused"));
    assert_eq!(c.lookup(&brief).await, None);
    assert_eq!(b.lookup(&brief).await, None, "expired in memory too");

    drop((a, b, c));
    for dir in [dir_a, dir_b, dir_c] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn an_unreachable_redis_is_a_miss_not_an_error() {
    // Nothing listens on port 1.
    let shared = SharedExactTier::new(redis_at("redis://127.0.0.1:1").await, "down");
    let (cache, dir) = replica();
    let cache = cache.with_shared_exact(shared);
    let asked = request("org-a", "k1", "Is it raining?", Duration::from_secs(60));
    let started = Instant::now();
    assert_eq!(cache.lookup(&asked).await, None);
    cache.store(&asked, "No", true).await;
    // This process's own tier still works.
    assert!(matches!(
        cache.lookup(&asked).await,
        Some(CacheHit::Exact { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(cache);
    let _ = std::fs::remove_dir_all(dir);
}

/// Serves `cache` on a free port; returns its base URL.
fn serve(cache: Arc<dyn SemanticCache>, token: &str) -> String {
    let routes = configure(CacheHttp::new(cache, token));
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{addr}")
}

#[actix_web::test]
async fn a_gateway_reaches_the_cache_service_over_http() {
    let (cache, dir) = replica();
    let url = serve(Arc::new(cache), "service-secret");
    let remote = RemoteCache::new(&url, "service-secret", Duration::from_millis(500)).unwrap();
    let hour = Duration::from_secs(3600);

    let asked = request("org-a", "k1", "What is the capital of France?", hour);
    assert_eq!(remote.lookup(&asked).await, None);
    remote.store(&asked, "Paris", true).await;
    // Stores are accepted at once and kept just after.
    let reworded = request("org-a", "k2", "what's the capital of france", hour);
    let deadline = Instant::now() + Duration::from_secs(5);
    let hit = loop {
        if let Some(hit) = remote.lookup(&reworded).await {
            break hit;
        }
        assert!(
            Instant::now() < deadline,
            "the stored answer never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(hit, CacheHit::Semantic { ref answer, .. } if answer == "Paris"),
        "{hit:?}"
    );
    let elsewhere = request("org-b", "k1", "What is the capital of France?", hour);
    assert_eq!(remote.lookup(&elsewhere).await, None);

    // a wrong token is refused (and is a miss for the gateway)
    let intruder = RemoteCache::new(&url, "guess", Duration::from_millis(500)).unwrap();
    assert_eq!(intruder.lookup(&asked).await, None);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{url}/cache/internal/lookup"))
        .header("x-tollgate-service-token", "guess")
        .json(&asked)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");

    // the token is checked before the body is read, and a body over the limit is refused
    let oversized = vec![b' '; 9 * 1024 * 1024];
    for (token, status) in [("guess", 401), ("service-secret", 413)] {
        let res = client
            .post(format!("{url}/cache/internal/store"))
            .header("x-tollgate-service-token", token)
            .header("content-type", "application/json")
            .body(oversized.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
    }

    // a malformed call is a 400 in the OpenAI error format
    let res = client
        .post(format!("{url}/cache/internal/lookup"))
        .header("x-tollgate-service-token", "service-secret")
        .header("content-type", "application/json")
        .body("{\"org_id\": 7}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    // a service that is down is a miss, quickly
    let gone = RemoteCache::new(
        "http://127.0.0.1:1",
        "service-secret",
        Duration::from_millis(200),
    )
    .unwrap();
    let started = Instant::now();
    assert_eq!(gone.lookup(&asked).await, None);
    assert!(started.elapsed() < Duration::from_secs(3));
    let _ = std::fs::remove_dir_all(dir);
}
