//! Lookup latency of the whole semantic cache at 100,000 entries, as the gateway sees it:
//! `AnswerCache::lookup` with the built-in embedder and the embedded store (embedding, the hop
//! to the blocking pool, the filtered search and the near-miss guard).
//!
//! `cargo run -p tollgate-cache --release --example lookup_latency [-- <entries> <lookups>]`
//! (defaults: 100000 5000)
//!
//! Stores `<entries>` questions through `AnswerCache::store` for 100 organizations, each with
//! 10 conversation contexts (partitions) of 100 questions, then times lookups whose exact key
//! is new (so every one reaches the semantic tier): rewordings of stored questions (hits) and
//! questions about something else in the same context (misses).

#![expect(
    clippy::print_stdout,
    reason = "a benchmark's whole output is its report"
)]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_cache::embedder::{Embedder, HashedEmbedder};
use tollgate_cache::store::EmbeddedStore;
use tollgate_cache::{AnswerCache, CacheHit, CacheMode, CacheRequest, CacheSettings};

const ORGANIZATIONS: usize = 100;
const PARTITIONS: usize = 10;
const ATTRIBUTES: [&str; 10] = [
    "population",
    "capital",
    "area",
    "currency",
    "anthem",
    "founder",
    "altitude",
    "climate",
    "language",
    "flag",
];

/// A made-up place name for entry `i`: words the embedder has never seen together.
fn place(i: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lor", "min", "dra", "vel", "os", "tun", "bri", "sha", "gor", "el", "quo", "ri",
        "zan", "pe", "thu",
    ];
    let mut name = String::new();
    let mut n = i + 1;
    while n > 0 {
        name.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn question(i: usize) -> String {
    format!("What is the {} of {}?", ATTRIBUTES[i % 10], place(i / 10))
}

/// How a user might retype the same question.
fn reworded(i: usize) -> String {
    format!(
        "what's the {} of {}",
        ATTRIBUTES[i % 10],
        place(i / 10).to_lowercase()
    )
}

fn request(org: usize, partition: usize, key: String, question: String) -> CacheRequest {
    CacheRequest {
        org_id: format!("org-{org}"),
        exact_key: key,
        partition: format!("context-{partition}"),
        question: Some(question),
        mode: CacheMode::Semantic,
        read: true,
        write: true,
        ttl: Duration::from_secs(3600),
    }
}

fn print_percentiles(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: n={} p50={:.0} µs p90={:.0} µs p99={:.0} µs max={:.0} µs",
        samples.len(),
        at(0.50).as_secs_f64() * 1e6,
        at(0.90).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples[samples.len() - 1].as_secs_f64() * 1e6,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let lookups: usize = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let per_partition = entries / (ORGANIZATIONS * PARTITIONS);

    let dir = std::env::temp_dir().join(format!("tollgate-lookup-latency-{}", std::process::id()));
    let embedder = Arc::new(HashedEmbedder::new());
    let store = EmbeddedStore::open(&dir, embedder.dimensions())?;
    let cache = AnswerCache::new(
        embedder.clone(),
        Arc::new(store),
        CacheSettings {
            threshold: 0.95,
            lookup_budget: Duration::from_secs(5),
            exact_capacity: 10_000,
            max_entries_per_org: 1_000_000,
        },
    );
    println!(
        "semantic cache: {entries} entries ({ORGANIZATIONS} orgs x {PARTITIONS} contexts x {per_partition} questions), \
         embedder {} ({} dims), {} CPUs",
        embedder.name(),
        embedder.dimensions(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    let started = Instant::now();
    for org in 0..ORGANIZATIONS {
        for partition in 0..PARTITIONS {
            for i in 0..per_partition {
                let n = partition * per_partition + i;
                let asked = request(org, partition, format!("stored-{n}"), question(n));
                cache.store(&asked, "{\"answer\":\"cached\"}", true).await;
            }
        }
    }
    let load = started.elapsed();
    println!(
        "load: {:.1} s ({:.0} stores/s through AnswerCache::store)",
        load.as_secs_f64(),
        entries as f64 / load.as_secs_f64()
    );

    // Embedding alone, for the share of a lookup it takes.
    let mut embeds = Vec::with_capacity(lookups);
    for n in 0..lookups {
        let text = vec![reworded(n)];
        let began = Instant::now();
        embedder.embed(&text).await?;
        embeds.push(began.elapsed());
    }
    print_percentiles("embed only (built-in embedder)", &mut embeds);

    let mut random = 0x5eed_u64;
    let mut next = |below: usize| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        (random % below as u64) as usize
    };
    let (mut hits, mut misses) = (Vec::with_capacity(lookups), Vec::with_capacity(lookups));
    let (mut served, mut wrongly_served) = (0, 0);
    for round in 0..lookups {
        let (org, partition, i) = (next(ORGANIZATIONS), next(PARTITIONS), next(per_partition));
        let n = partition * per_partition + i;
        let rewording = request(org, partition, format!("lookup-{round}"), reworded(n));
        let began = Instant::now();
        let found = cache.lookup(&rewording).await;
        hits.push(began.elapsed());
        if matches!(found, Some(CacheHit::Semantic { .. })) {
            served += 1;
        }
        // Same context, a place nobody asked about: must miss.
        let other = request(
            org,
            partition,
            format!("other-{round}"),
            question(entries + round * 10),
        );
        let began = Instant::now();
        let found = cache.lookup(&other).await;
        misses.push(began.elapsed());
        if found.is_some() {
            wrongly_served += 1;
        }
    }
    print_percentiles("lookup, reworded question (semantic tier)", &mut hits);
    print_percentiles("lookup, new question (semantic tier, miss)", &mut misses);
    println!(
        "rewordings served: {served} of {lookups}; new questions served: {wrongly_served} of {lookups}"
    );
    drop(cache);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
