//! Search latency of the embedded vector store at 100,000 points.
//!
//! `cargo run -p tollgate-cache --release --example store_latency [-- <points> <queries>
//! <upserts per second while optimizing>]` (defaults: 100000 10000 100)
//!
//! Loads 100,000 random unit vectors of 384 dimensions spread over 100 organizations into an
//! `EmbeddedStore` in a temporary directory, then times lookups through the `VectorStore`
//! trait, as the cache makes them (including the hop to tokio's blocking pool):
//! - "10 partitions": organizations 0-49 spread their 1,000 points over 10 partitions, so a
//!   lookup filters down to about 100 candidates;
//! - "1 partition": organizations 50-99 keep all 1,000 points in one partition.
//!
//! It first times a bare round trip to tokio's blocking pool (the floor under every lookup).
//! Lookups are then timed before `EmbeddedStore::optimize` (after which `evict_oldest` drops
//! the oldest 30% of every organization, for `optimize` to vacuum), while it runs (with a
//! writer upserting in parallel), after it, while a writer upserts, after closing and reopening the store, and
//! last in one partition of 20,000 points. Queries are stored vectors plus noise, so most are
//! hits.

#![expect(
    clippy::print_stdout,
    reason = "a benchmark's whole output is its report"
)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tollgate_cache::store::{CachedPoint, EmbeddedStore, SearchQuery, VectorStore};

const DIMENSIONS: usize = 384;
const ORGANIZATIONS: usize = 100;
const NOW_MS: i64 = 1_750_000_000_000;
const MIN_SCORE: f32 = 0.9;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let total_points: usize = args.next().map_or(Ok(100_000), |arg| arg.parse())?;
    let queries: usize = args.next().map_or(Ok(10_000), |arg| arg.parse())?;
    let optimize_writes_per_second: u32 = args.next().map_or(Ok(100), |arg| arg.parse())?;
    let points_per_org = total_points / ORGANIZATIONS;

    let dir = ScratchDir::new()?;
    println!(
        "embedded store: {total_points} points x {DIMENSIONS} dims, {ORGANIZATIONS} orgs, \
         {queries} queries per phase, {} CPUs",
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    let store = EmbeddedStore::open(dir.path(), DIMENSIONS)?;
    let mut random = SplitMix64(0x7011_6a7e);
    let started = Instant::now();
    let mut stored = Vec::with_capacity(total_points);
    for org in 0..ORGANIZATIONS {
        for i in 0..points_per_org {
            let point = cached_point(&mut random, org, partition_of(org, i), i);
            stored.push((org, point.partition.clone(), point.vector.clone(), i));
            store.upsert(point).await?;
        }
    }
    let load = started.elapsed();
    println!(
        "load: {:.1} s ({:.0} upserts/s, one at a time through the trait)",
        load.as_secs_f64(),
        total_points as f64 / load.as_secs_f64()
    );
    store.flush().await?;
    println!("disk after load: {}", disk_report(dir.path()));

    // The floor under every lookup: a round trip to tokio's blocking pool doing nothing.
    let mut hops = Vec::with_capacity(queries);
    for _ in 0..queries {
        let started = Instant::now();
        tokio::task::spawn_blocking(|| ()).await?;
        hops.push(started.elapsed());
    }
    print_percentiles("blocking-pool round trip, no work", &mut hops);

    measure("before optimize", &store, &stored, queries, &mut random).await?;

    // Give `optimize` something to vacuum: evict the oldest 30% of every organization.
    let started = Instant::now();
    let mut evicted = 0;
    for org in ORG_NAMES.iter() {
        evicted += store
            .evict_oldest(org, (points_per_org * 7 / 10) as u64)
            .await?;
    }
    println!(
        "evict_oldest: {evicted} points in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let evicted_floor = points_per_org * 3 / 10;
    // Evicted points can no longer be queried for.
    stored.retain(|(_, _, _, index)| *index >= evicted_floor);

    // Maintenance as it would run in production: the cache keeps serving and writing, at a
    // modest rate.
    let store = Arc::new(store);
    let writer = Writer::start(&store, optimize_writes_per_second);
    let started = Instant::now();
    let optimizing = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.optimize().await }
    });
    let mut during = Vec::new();
    while !optimizing.is_finished() {
        let (org, partition, vector, _) = &stored[random.below(stored.len())];
        let noisy = with_noise(vector, 0.02, &mut random);
        let began = Instant::now();
        store
            .search(search_query(*org, partition, &noisy, NOW_MS))
            .await?;
        during.push(began.elapsed());
    }
    let changed = optimizing.await??;
    let optimize_time = started.elapsed();
    let written = writer.stop().await?;
    println!(
        "optimize: {:.1} s (changed anything: {changed}), with {written} upserts meanwhile \
         (at most {optimize_writes_per_second}/s)",
        optimize_time.as_secs_f64()
    );
    print_percentiles("  searches while optimizing", &mut during);
    println!("disk after optimize: {}", disk_report(dir.path()));
    measure("after optimize", &*store, &stored, queries, &mut random).await?;

    let writer = Writer::start(&store, 0);
    let started = Instant::now();
    measure("during upserts", &*store, &stored, queries, &mut random).await?;
    let written = writer.stop().await?;
    println!(
        "  (the writer upserted {written} points meanwhile, {:.0}/s)",
        written as f64 / started.elapsed().as_secs_f64()
    );

    drop(store);
    let started = Instant::now();
    let reopened = EmbeddedStore::open(dir.path(), DIMENSIONS)?;
    println!(
        "reopen: {:.2} s, disk: {}",
        started.elapsed().as_secs_f64(),
        disk_report(dir.path())
    );
    measure("after reopen", &reopened, &stored, queries, &mut random).await?;

    // The cost of a lookup grows with its partition: one organization asking everything of
    // one model with no other context puts all its answers in one partition.
    let big_org = ORGANIZATIONS - 1;
    let mut big = Vec::with_capacity(BIG_PARTITION);
    for i in 0..BIG_PARTITION {
        let point = cached_point(&mut random, big_org, "partition-big".to_owned(), i);
        big.push((big_org, point.partition.clone(), point.vector.clone(), i));
        reopened.upsert(point).await?;
    }
    let mut samples = Vec::with_capacity(queries / 5);
    for _ in 0..queries / 5 {
        let (org, partition, vector, _) = &big[random.below(big.len())];
        let noisy = with_noise(vector, 0.02, &mut random);
        let started = Instant::now();
        reopened
            .search(search_query(*org, partition, &noisy, NOW_MS))
            .await?;
        samples.push(started.elapsed());
    }
    print_percentiles(
        &format!("one partition of {BIG_PARTITION} points"),
        &mut samples,
    );
    Ok(())
}

/// A loaded point as the benchmark remembers it: organization, partition, vector, and its
/// index within the organization (its age: lower is older).
type Stored = (usize, String, Vec<f32>, usize);

/// The size of the one large partition measured last.
const BIG_PARTITION: usize = 20_000;

/// Times `queries` lookups and prints percentiles per partition layout.
async fn measure(
    phase: &str,
    store: &dyn VectorStore,
    stored: &[Stored],
    queries: usize,
    random: &mut SplitMix64,
) -> Result<(), Box<dyn Error>> {
    // Warm caches and the blocking pool first.
    for _ in 0..200 {
        let (org, partition, vector, _) = &stored[random.below(stored.len())];
        store
            .search(search_query(*org, partition, vector, NOW_MS))
            .await?;
    }
    let mut spread = Vec::with_capacity(queries);
    let mut concentrated = Vec::with_capacity(queries);
    let mut hits = 0_usize;
    for _ in 0..queries {
        let (org, partition, vector, _) = &stored[random.below(stored.len())];
        let noisy = with_noise(vector, 0.02, random);
        let started = Instant::now();
        let found = store
            .search(search_query(*org, partition, &noisy, NOW_MS))
            .await?;
        let elapsed = started.elapsed();
        hits += usize::from(!found.is_empty());
        if *org < ORGANIZATIONS / 2 {
            spread.push(elapsed);
        } else {
            concentrated.push(elapsed);
        }
    }
    println!(
        "{phase}: hit rate {:.1}%",
        100.0 * hits as f64 / queries as f64
    );
    print_percentiles("  10 partitions (~100 candidates)", &mut spread);
    print_percentiles("  1 partition (~1,000 candidates)", &mut concentrated);
    Ok(())
}

/// Upserts random points one after another until stopped, like a busy cache filling up.
struct Writer {
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Writer {
    /// Starts writing, at most `per_second` points a second (0: as fast as it can).
    fn start(store: &Arc<EmbeddedStore>, per_second: u32) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn({
            let store = Arc::clone(store);
            let running = Arc::clone(&running);
            async move {
                let mut random = SplitMix64(42);
                let mut written = 0_usize;
                let mut pace = (per_second > 0)
                    .then(|| tokio::time::interval(Duration::from_secs(1) / per_second));
                while running.load(Ordering::Relaxed) {
                    if let Some(pace) = pace.as_mut() {
                        pace.tick().await;
                    }
                    let org = random.below(ORGANIZATIONS);
                    let point = cached_point(&mut random, org, partition_of(org, written), written);
                    if store.upsert(point).await.is_err() {
                        break;
                    }
                    written += 1;
                }
                written
            }
        });
        Self { running, task }
    }

    /// Stops the writer; returns how many points it wrote.
    async fn stop(self) -> Result<usize, tokio::task::JoinError> {
        self.running.store(false, Ordering::Relaxed);
        self.task.await
    }
}

fn print_percentiles(label: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let at = |fraction: f64| {
        let index = ((samples.len() as f64 * fraction) as usize).min(samples.len() - 1);
        samples[index].as_secs_f64() * 1e3
    };
    println!(
        "{label}: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        samples.len()
    );
}

fn search_query<'a>(
    org: usize,
    partition: &'a str,
    vector: &'a [f32],
    now_ms: i64,
) -> SearchQuery<'a> {
    SearchQuery {
        org_id: &ORG_NAMES[org],
        partition,
        embedder: "minilm-l6-v2",
        vector,
        min_score: MIN_SCORE,
        now_ms,
        limit: 1,
    }
}

/// Organizations 0-49 use 10 partitions, 50-99 one.
fn partition_of(org: usize, index: usize) -> String {
    if org < ORGANIZATIONS / 2 {
        format!("partition-{}", index % 10)
    } else {
        "partition-0".to_owned()
    }
}

fn cached_point(
    random: &mut SplitMix64,
    org: usize,
    partition: String,
    index: usize,
) -> CachedPoint {
    CachedPoint {
        id: uuid::Uuid::now_v7(),
        vector: random_unit_vector(random),
        org_id: ORG_NAMES[org].to_owned(),
        partition,
        embedder: "minilm-l6-v2".to_owned(),
        question: format!("question {index} of {org}"),
        // About the size of a short chat completion body.
        answer: format!(
            "{{\"id\":\"chatcmpl-{index}\",\"object\":\"chat.completion\",\"choices\":[{{\"message\":\
             {{\"role\":\"assistant\",\"content\":\"{}\"}}}}]}}",
            "lorem ipsum ".repeat(40)
        ),
        created_at_ms: NOW_MS - 1_000_000 + index as i64,
        expires_at_ms: NOW_MS + 3_600_000,
    }
}

fn random_unit_vector(random: &mut SplitMix64) -> Vec<f32> {
    let vector: Vec<f32> = (0..DIMENSIONS).map(|_| random.signed_unit()).collect();
    normalised(vector)
}

fn with_noise(vector: &[f32], amount: f32, random: &mut SplitMix64) -> Vec<f32> {
    normalised(
        vector
            .iter()
            .map(|value| value + amount * random.signed_unit())
            .collect(),
    )
}

fn normalised(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|value| *value /= norm);
    }
    vector
}

/// Organization names, built once so lookups borrow them.
static ORG_NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (0..ORGANIZATIONS)
        .map(|org| format!("org-{org:03}"))
        .collect()
});

/// A small deterministic generator (SplitMix64): reproducible runs, no extra dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn signed_unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in [0, bound).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A directory under the system temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("tollgate-store-latency-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes allocated on disk under `path` (like `du`): the engine preallocates sparse files,
/// whose apparent length overstates what they use.
fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Total, and the write-ahead log's share: `qdrant-edge` 0.7.0 never truncates it.
fn disk_report(dir: &Path) -> String {
    format!(
        "{} (write-ahead log {})",
        megabytes(dir_size(dir)),
        megabytes(dir_size(&dir.join("wal")))
    )
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}
