//! One conformance suite for every vector store.
//!
//! Each scenario is written once, as an async function over `&dyn VectorStore`, and stamped
//! out by `conformance!` for both stores:
//! - `embedded::*` always runs, each scenario on a fresh `EmbeddedStore` in a temporary
//!   directory;
//! - `server::*` runs when `QDRANT_URL` is set (and `QDRANT_API_KEY` if the server needs
//!   one), each scenario in its own collection, dropped afterwards; without `QDRANT_URL`
//!   each prints that it was skipped and passes.
//!
//! Persistence across a restart is embedded-only: the server keeps data by itself.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tollgate_cache::store::{
    CachedPoint, EmbeddedStore, ScoredPoint, SearchQuery, ServerStore, ServerStoreConfig,
    StoreError, VectorStore,
};
use uuid::Uuid;

/// Small vectors keep the tests fast; the latency example uses 384.
const DIMENSIONS: usize = 8;
/// A fixed clock: stores never read the real one.
const NOW_MS: i64 = 1_750_000_000_000;
const HOUR_MS: i64 = 3_600_000;
const PARTITION: &str = "partition-a";
const EMBEDDER: &str = "hashed-v1";

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// The nearest point above the threshold is found, best first, with its payload intact.
async fn nearest_hit_above_threshold(store: &dyn VectorStore) {
    let org = "org-nearest";
    let closest = point(org, PARTITION, EMBEDDER, at_angle(0.1), "closest");
    let close = point(org, PARTITION, EMBEDDER, at_angle(0.5), "close");
    let far = point(org, PARTITION, EMBEDDER, at_angle(1.2), "far");
    for p in [&far, &close, &closest] {
        store.upsert(p.clone()).await.unwrap();
    }

    let found = store
        .search(query(org, PARTITION, EMBEDDER, &at_angle(0.0), 0.8))
        .await
        .unwrap();

    assert_eq!(answers(&found), ["closest", "close"]);
    assert_close(found[0].score, 0.1_f32.cos());
    assert_close(found[1].score, 0.5_f32.cos());
    assert_same_point(&found[0].point, &closest);
}

/// A point below the threshold is a miss, and `limit` caps the hits.
async fn miss_below_threshold(store: &dyn VectorStore) {
    let org = "org-miss";
    store
        .upsert(point(org, PARTITION, EMBEDDER, at_angle(0.3), "a"))
        .await
        .unwrap();
    store
        .upsert(point(org, PARTITION, EMBEDDER, at_angle(0.35), "b"))
        .await
        .unwrap();

    let axis = at_angle(0.0);
    let strict = query(org, PARTITION, EMBEDDER, &axis, 0.99);
    assert!(store.search(strict).await.unwrap().is_empty());

    let one = SearchQuery {
        limit: 1,
        ..query(org, PARTITION, EMBEDDER, &axis, 0.5)
    };
    assert_eq!(answers(&store.search(one).await.unwrap()), ["a"]);

    let none = SearchQuery {
        limit: 0,
        ..query(org, PARTITION, EMBEDDER, &axis, 0.5)
    };
    assert!(store.search(none).await.unwrap().is_empty());
}

/// Two organizations with identical vectors and partitions never see each other's points.
async fn organizations_are_isolated(store: &dyn VectorStore) {
    let vector = at_angle(0.0);
    for org in ["org-red", "org-blue"] {
        store
            .upsert(point(org, PARTITION, EMBEDDER, vector.clone(), org))
            .await
            .unwrap();
    }

    for org in ["org-red", "org-blue"] {
        let found = store
            .search(query(org, PARTITION, EMBEDDER, &vector, 0.0))
            .await
            .unwrap();
        assert_eq!(answers(&found), [org], "{org} must see only its own point");
        assert_eq!(store.count(org).await.unwrap(), 1);
    }
    let stranger = store
        .search(query("org-green", PARTITION, EMBEDDER, &vector, 0.0))
        .await
        .unwrap();
    assert!(stranger.is_empty());

    assert_eq!(store.delete_org("org-red").await.unwrap(), 1);
    let red = store
        .search(query("org-red", PARTITION, EMBEDDER, &vector, 0.0))
        .await
        .unwrap();
    assert!(red.is_empty());
    let blue = store
        .search(query("org-blue", PARTITION, EMBEDDER, &vector, 0.0))
        .await
        .unwrap();
    assert_eq!(answers(&blue), ["org-blue"]);
}

/// A search sees only its own partition and its own embedder's vectors.
async fn partitions_and_embedders_are_isolated(store: &dyn VectorStore) {
    let org = "org-partitions";
    let vector = at_angle(0.0);
    for (partition, embedder) in [("p1", "e1"), ("p1", "e2"), ("p2", "e1"), ("p2", "e2")] {
        let answer = format!("{partition}/{embedder}");
        store
            .upsert(point(org, partition, embedder, vector.clone(), &answer))
            .await
            .unwrap();
    }

    for (partition, embedder) in [("p1", "e1"), ("p1", "e2"), ("p2", "e1"), ("p2", "e2")] {
        let found = store
            .search(query(org, partition, embedder, &vector, 0.0))
            .await
            .unwrap();
        assert_eq!(answers(&found), [format!("{partition}/{embedder}")]);
    }
    let other = store
        .search(query(org, "p3", "e1", &vector, 0.0))
        .await
        .unwrap();
    assert!(other.is_empty());
}

/// Expired points are never returned, and `prune_expired` deletes exactly them.
async fn expired_points_are_hidden_and_pruned(store: &dyn VectorStore) {
    let org = "org-expiry";
    let vector = at_angle(0.0);
    let mut live = point(org, PARTITION, EMBEDDER, vector.clone(), "live");
    live.expires_at_ms = NOW_MS + 1_000;
    let mut expired = point(org, PARTITION, EMBEDDER, vector.clone(), "expired");
    expired.expires_at_ms = NOW_MS - 1;
    let mut expires_now = point(org, PARTITION, EMBEDDER, vector.clone(), "expires-now");
    expires_now.expires_at_ms = NOW_MS;
    for p in [&live, &expired, &expires_now] {
        store.upsert(p.clone()).await.unwrap();
    }

    let found = store
        .search(query(org, PARTITION, EMBEDDER, &vector, 0.0))
        .await
        .unwrap();
    assert_eq!(answers(&found), ["live"]);

    let later = SearchQuery {
        now_ms: NOW_MS + 1_000,
        ..query(org, PARTITION, EMBEDDER, &vector, 0.0)
    };
    assert!(store.search(later).await.unwrap().is_empty());

    assert_eq!(store.count(org).await.unwrap(), 3);
    assert_eq!(store.prune_expired(NOW_MS).await.unwrap(), 2);
    assert_eq!(store.count(org).await.unwrap(), 1);
    assert_eq!(store.prune_expired(NOW_MS).await.unwrap(), 0);
    assert_eq!(store.prune_expired(NOW_MS + 1_000).await.unwrap(), 1);
    assert_eq!(store.count(org).await.unwrap(), 0);
}

/// `evict_oldest` keeps the newest points of one organization and touches no other.
async fn evict_oldest_keeps_the_newest(store: &dyn VectorStore) {
    let org = "org-evict";
    let neighbour = "org-evict-neighbour";
    let vector = at_angle(0.0);
    for created in 1..=5 {
        let mut p = point(
            org,
            PARTITION,
            EMBEDDER,
            vector.clone(),
            &format!("v{created}"),
        );
        p.created_at_ms = NOW_MS - HOUR_MS + created;
        store.upsert(p).await.unwrap();
    }
    for created in 1..=3 {
        let mut p = point(neighbour, PARTITION, EMBEDDER, vector.clone(), "n");
        p.created_at_ms = NOW_MS - 2 * HOUR_MS + created;
        store.upsert(p).await.unwrap();
    }

    assert_eq!(store.evict_oldest(org, 2).await.unwrap(), 3);
    assert_eq!(store.count(org).await.unwrap(), 2);
    let mut kept = answers(
        &store
            .search(query(org, PARTITION, EMBEDDER, &vector, 0.0))
            .await
            .unwrap(),
    );
    kept.sort();
    assert_eq!(kept, ["v4", "v5"]);
    assert_eq!(store.count(neighbour).await.unwrap(), 3);

    assert_eq!(store.evict_oldest(org, 2).await.unwrap(), 0);
    assert_eq!(store.evict_oldest(org, 10).await.unwrap(), 0);
    assert_eq!(store.evict_oldest(org, 0).await.unwrap(), 2);
    assert_eq!(store.count(org).await.unwrap(), 0);
}

/// `count` counts an organization's points; an upsert of the same id replaces; `delete_org`
/// deletes exactly one organization.
async fn count_replace_and_delete_org(store: &dyn VectorStore) {
    let org = "org-count";
    let other = "org-count-other";
    assert_eq!(store.count(org).await.unwrap(), 0);
    assert_eq!(store.delete_org(org).await.unwrap(), 0);

    let original = point(org, PARTITION, EMBEDDER, at_angle(0.0), "first");
    store.upsert(original.clone()).await.unwrap();
    let replacement = CachedPoint {
        answer: "second".to_owned(),
        ..original.clone()
    };
    store.upsert(replacement).await.unwrap();
    store
        .upsert(point(org, PARTITION, EMBEDDER, at_angle(1.0), "another"))
        .await
        .unwrap();
    store
        .upsert(point(other, PARTITION, EMBEDDER, at_angle(0.0), "other"))
        .await
        .unwrap();

    assert_eq!(store.count(org).await.unwrap(), 2);
    let found = store
        .search(query(org, PARTITION, EMBEDDER, &at_angle(0.0), 0.9))
        .await
        .unwrap();
    assert_eq!(answers(&found), ["second"]);
    assert_eq!(found[0].point.id, original.id);

    assert_eq!(store.delete_org(org).await.unwrap(), 2);
    assert_eq!(store.count(org).await.unwrap(), 0);
    assert_eq!(store.count(other).await.unwrap(), 1);
}

/// Vectors of the wrong length are refused, on write and on search.
async fn wrong_dimensions_are_refused(store: &dyn VectorStore) {
    let mut short = point("org-dims", PARTITION, EMBEDDER, at_angle(0.0), "short");
    short.vector.truncate(DIMENSIONS - 1);
    let refused = store.upsert(short).await.unwrap_err();
    assert!(matches!(
        refused,
        StoreError::DimensionMismatch {
            expected: DIMENSIONS,
            actual
        } if actual == DIMENSIONS - 1
    ));

    let long = vec![0.0; DIMENSIONS + 1];
    let refused = store
        .search(query("org-dims", PARTITION, EMBEDDER, &long, 0.0))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "dimension_mismatch");
}

// ---------------------------------------------------------------------------------------
// The suite, stamped out per store
// ---------------------------------------------------------------------------------------

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = TempDir::new();
                    let store = super::EmbeddedStore::open(dir.path(), super::DIMENSIONS).unwrap();
                    super::$scenario(&store).await;
                }
            )*
            use super::TempDir;
        }

        mod server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(scratch) = super::ScratchCollection::from_env(stringify!($scenario))
                    else {
                        return;
                    };
                    super::$scenario(&scratch.store).await;
                    scratch.drop_collection().await;
                }
            )*
        }
    };
}

conformance!(
    nearest_hit_above_threshold,
    miss_below_threshold,
    organizations_are_isolated,
    partitions_and_embedders_are_isolated,
    expired_points_are_hidden_and_pruned,
    evict_oldest_keeps_the_newest,
    count_replace_and_delete_org,
    wrong_dimensions_are_refused,
);

// ---------------------------------------------------------------------------------------
// Embedded only
// ---------------------------------------------------------------------------------------

/// Points written before the store is dropped are found after it is reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_points_survive_reopening() {
    let dir = TempDir::new();
    let kept = point("org-persist", PARTITION, EMBEDDER, at_angle(0.2), "kept");
    {
        let store = EmbeddedStore::open(dir.path(), DIMENSIONS).unwrap();
        store.upsert(kept.clone()).await.unwrap();
        store
            .upsert(point(
                "org-persist",
                PARTITION,
                EMBEDDER,
                at_angle(1.4),
                "gone",
            ))
            .await
            .unwrap();
        assert_eq!(store.delete_org("org-persist").await.unwrap(), 2);
        store.upsert(kept.clone()).await.unwrap();
    }

    let reopened = EmbeddedStore::open(dir.path(), DIMENSIONS).unwrap();
    let found = reopened
        .search(query(
            "org-persist",
            PARTITION,
            EMBEDDER,
            &at_angle(0.0),
            0.5,
        ))
        .await
        .unwrap();
    assert_eq!(answers(&found), ["kept"]);
    assert_same_point(&found[0].point, &kept);
    assert_eq!(reopened.count("org-persist").await.unwrap(), 1);

    // Writes after a reopen are kept too (the engine's operation numbers carry on).
    reopened
        .upsert(point(
            "org-persist",
            PARTITION,
            EMBEDDER,
            at_angle(0.0),
            "new",
        ))
        .await
        .unwrap();
    assert_eq!(reopened.count("org-persist").await.unwrap(), 2);
}

/// The background flush persists writes without a drop: a copy of the directory taken
/// while the store is still open holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_background_flush_persists_writes() {
    let dir = TempDir::new();
    let snapshot = TempDir::new();
    let store = EmbeddedStore::open(dir.path(), DIMENSIONS).unwrap();
    store
        .upsert(point(
            "org-flush",
            PARTITION,
            EMBEDDER,
            at_angle(0.0),
            "flushed",
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    copy_dir(dir.path(), snapshot.path());

    // Only the copy's lock file is stale, and a copied lock is not held.
    let restored = EmbeddedStore::open(snapshot.path(), DIMENSIONS).unwrap();
    assert_eq!(restored.count("org-flush").await.unwrap(), 1);
    drop(store);
}

/// A directory is opened by one store at a time, and keeps the dimension it was made with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_directory_is_exclusive_and_keeps_its_dimension() {
    let dir = TempDir::new();
    let store = EmbeddedStore::open(dir.path(), DIMENSIONS).unwrap();
    let second = EmbeddedStore::open(dir.path(), DIMENSIONS);
    assert!(matches!(second, Err(StoreError::AlreadyOpen { .. })));
    drop(store);

    let other_size = EmbeddedStore::open(dir.path(), DIMENSIONS * 2);
    assert!(matches!(
        other_size,
        Err(StoreError::DimensionMismatch { expected: DIMENSIONS, actual }) if actual == DIMENSIONS * 2
    ));
    EmbeddedStore::open(dir.path(), DIMENSIONS).unwrap();
}

/// `optimize` (vacuum, merge, index) keeps every live point findable and the filters exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_optimize_keeps_points_and_filters() {
    let dir = TempDir::new();
    let store = EmbeddedStore::open(dir.path(), DIMENSIONS).unwrap();
    for i in 0..200 {
        let org = if i % 2 == 0 { "org-even" } else { "org-odd" };
        let mut p = point(org, PARTITION, EMBEDDER, at_angle(i as f32 / 200.0), "x");
        p.created_at_ms = NOW_MS - HOUR_MS + i;
        store.upsert(p).await.unwrap();
    }
    assert_eq!(store.evict_oldest("org-even", 10).await.unwrap(), 90);
    store.optimize().await.unwrap();

    assert_eq!(store.count("org-even").await.unwrap(), 10);
    assert_eq!(store.count("org-odd").await.unwrap(), 100);
    let found = store
        .search(query("org-even", PARTITION, EMBEDDER, &at_angle(0.0), 0.0))
        .await
        .unwrap();
    assert_eq!(found.len(), 10);
    assert!(found.iter().all(|hit| hit.point.org_id == "org-even"));
    store
        .upsert(point(
            "org-even",
            PARTITION,
            EMBEDDER,
            at_angle(0.0),
            "after",
        ))
        .await
        .unwrap();
    assert_eq!(store.count("org-even").await.unwrap(), 11);
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A unit vector at `radians` from the first axis, in the plane of the first two: its cosine
/// similarity to `at_angle(0.0)` is `radians.cos()`.
fn at_angle(radians: f32) -> Vec<f32> {
    let mut vector = vec![0.0; DIMENSIONS];
    vector[0] = radians.cos();
    vector[1] = radians.sin();
    vector
}

fn point(
    org: &str,
    partition: &str,
    embedder: &str,
    vector: Vec<f32>,
    answer: &str,
) -> CachedPoint {
    CachedPoint {
        id: Uuid::now_v7(),
        vector,
        org_id: org.to_owned(),
        partition: partition.to_owned(),
        embedder: embedder.to_owned(),
        question: format!("question for {answer}"),
        answer: answer.to_owned(),
        created_at_ms: NOW_MS - HOUR_MS,
        expires_at_ms: NOW_MS + HOUR_MS,
    }
}

fn query<'a>(
    org: &'a str,
    partition: &'a str,
    embedder: &'a str,
    vector: &'a [f32],
    min_score: f32,
) -> SearchQuery<'a> {
    SearchQuery {
        org_id: org,
        partition,
        embedder,
        vector,
        min_score,
        now_ms: NOW_MS,
        limit: 10,
    }
}

fn answers(found: &[ScoredPoint]) -> Vec<String> {
    found.iter().map(|hit| hit.point.answer.clone()).collect()
}

fn assert_close(actual: f32, expected: f32) {
    assert!(
        (actual - expected).abs() < 1e-4,
        "score {actual} is not {expected}"
    );
}

/// Equal in every field; vectors within rounding (stores may renormalise them).
fn assert_same_point(actual: &CachedPoint, expected: &CachedPoint) {
    assert_eq!(actual.vector.len(), expected.vector.len());
    for (a, e) in actual.vector.iter().zip(&expected.vector) {
        assert!((a - e).abs() < 1e-5, "vectors differ: {a} vs {e}");
    }
    let without_vector = |p: &CachedPoint| CachedPoint {
        vector: Vec::new(),
        ..p.clone()
    };
    assert_eq!(without_vector(actual), without_vector(expected));
}

/// A directory under the system temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("tollgate-store-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A `ServerStore` on a collection of its own, for one scenario.
struct ScratchCollection {
    store: ServerStore,
    url: String,
    api_key: Option<String>,
}

impl ScratchCollection {
    /// `None` (after saying so) when `QDRANT_URL` is not set.
    fn from_env(scenario: &str) -> Option<Self> {
        let Ok(url) = std::env::var("QDRANT_URL") else {
            eprintln!("skipped: server::{scenario} needs QDRANT_URL (e.g. http://127.0.0.1:6334)");
            return None;
        };
        let api_key = std::env::var("QDRANT_API_KEY").ok();
        let collection = format!("tollgate_store_test_{}", Uuid::now_v7().simple());
        let store = ServerStore::connect(ServerStoreConfig {
            url: url.clone(),
            api_key: api_key.clone(),
            collection,
            dimensions: DIMENSIONS,
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        Some(Self {
            store,
            url,
            api_key,
        })
    }

    async fn drop_collection(self) {
        let client = qdrant_client::Qdrant::from_url(&self.url)
            .api_key(self.api_key)
            .skip_compatibility_check()
            .build()
            .unwrap();
        client
            .delete_collection(self.store.collection())
            .await
            .unwrap();
    }
}
