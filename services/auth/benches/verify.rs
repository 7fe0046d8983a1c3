//! What verifying a virtual key costs the gateway on each request.
//!
//! `KeyCache::verify` over an in-memory key source, polled directly: a cache hit (and a refused
//! key) completes without waiting, so no runtime is involved and the figures are the cache's
//! own cost (key shape check, SHA-256, map lookup, expiry check, the boxed future).
//! Target: under 5 µs per request on a hit.
//!
//! `cargo bench -p tollgate-auth --bench verify`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use tollgate_auth::secrets::generate_key;
use tollgate_auth::store::{KeyRecord, VerifiedKey};
use tollgate_auth::{KeyCache, KeyRejection, KeySource, KeyVerifier};
use tollgate_common::{KeyId, OrgId, TeamId};

/// Long enough that no entry goes stale during a run.
const TTL: Duration = Duration::from_secs(3600);

/// Keys by the hex SHA-256 of their secret, counting lookups.
#[derive(Default)]
struct MapSource {
    records: HashMap<String, KeyRecord>,
    lookups: AtomicUsize,
}

#[async_trait]
impl KeySource for MapSource {
    async fn lookup(&self, key_hash: &str) -> Result<Option<VerifiedKey>, String> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(self.records.get(key_hash).map(|key| VerifiedKey {
            key: key.clone(),
            team: Default::default(),
            org: Default::default(),
            budgets: Vec::new(),
            cache: Default::default(),
            guardrails: Vec::new(),
            billing: Default::default(),
            provider_keys: Vec::new(),
        }))
    }
    async fn touch(&self, _used: Vec<(KeyId, i64)>) -> Result<(), String> {
        Ok(())
    }
}

fn record(hash: &str) -> KeyRecord {
    KeyRecord {
        id: KeyId::generate(),
        org_id: OrgId::generate(),
        team_id: TeamId::generate(),
        created_by: None,
        name: "bench".into(),
        display_prefix: "tg-xxxxxxxx".into(),
        allowed_models: vec!["gpt-4o*".into()],
        expires_at: None,
        rpm_limit: Some(600),
        tpm_limit: Some(100_000),
        budget_usd: None,
        budget_period: None,
        tags: Default::default(),
        metadata: Default::default(),
        disabled: false,
        revoked_at: None,
        rotated_to: None,
        last_used_at: None,
        created_at: 0,
        updated_at: 0,
        key_hash: hash.into(),
    }
}

/// A source with `keys` valid keys, and their secrets.
fn source_with(keys: usize) -> (Arc<MapSource>, Vec<String>) {
    let mut source = MapSource::default();
    let secrets = (0..keys)
        .map(|_| {
            let key = generate_key();
            source.records.insert(key.hash.clone(), record(&key.hash));
            key.secret
        })
        .collect();
    (Arc::new(source), secrets)
}

/// Verifies without a runtime; `None` if the future had to wait (it never does here).
fn verify_now(
    cache: &KeyCache,
    presented: &str,
) -> Option<Result<Arc<tollgate_common::KeyContext>, KeyRejection>> {
    cache.verify(presented).now_or_never()
}

/// Verified once, so that the cache holds the key.
fn warm(cache: &KeyCache, secret: &str) {
    verify_now(cache, secret)
        .expect("the in-memory source answers at once")
        .expect("the key is valid");
}

fn cache_hit(c: &mut Criterion) {
    let (source, secrets) = source_with(1);
    let cache = KeyCache::new(source.clone(), TTL);
    let secret = &secrets[0];
    warm(&cache, secret);
    let mut group = c.benchmark_group("verify");
    group.bench_function("hit", |b| {
        b.iter(|| verify_now(&cache, black_box(secret)).expect("a hit completes at once"));
    });
    group.finish();
    assert_eq!(
        source.lookups.load(Ordering::Relaxed),
        1,
        "every hit came from memory"
    );
}

fn cache_hit_among_many(c: &mut Criterion) {
    // The cache holds at most 100 000 entries: the key measured plus 99 999 others fill it.
    const CACHED: usize = 100_000;
    let (source, secrets) = source_with(CACHED);
    let cache = KeyCache::new(source.clone(), TTL);
    for secret in &secrets {
        warm(&cache, secret);
    }
    assert_eq!(cache.len(), CACHED, "all keys are cached");
    let secret = &secrets[CACHED / 2];
    let mut group = c.benchmark_group("verify");
    group.bench_function("hit_among_100k_cached", |b| {
        b.iter(|| verify_now(&cache, black_box(secret)).expect("a hit completes at once"));
    });
    group.finish();
    assert_eq!(
        source.lookups.load(Ordering::Relaxed),
        CACHED,
        "every hit came from memory"
    );
    assert_eq!(cache.len(), CACHED);
}

fn malformed_key(c: &mut Criterion) {
    let (source, secrets) = source_with(1);
    let cache = KeyCache::new(source.clone(), TTL);
    warm(&cache, &secrets[0]);
    let malformed = "sk-proj-this-is-not-a-tollgate-key-0123456789abcdef";
    assert_eq!(
        verify_now(&cache, malformed),
        Some(Err(KeyRejection::Unknown))
    );
    let mut group = c.benchmark_group("verify");
    group.bench_function("malformed_rejected", |b| {
        b.iter(|| verify_now(&cache, black_box(malformed)).expect("refused at once"));
    });
    group.finish();
    assert_eq!(source.lookups.load(Ordering::Relaxed), 1, "never looked up");
}

fn unknown_cached_key(c: &mut Criterion) {
    let (source, secrets) = source_with(1);
    let cache = KeyCache::new(source.clone(), TTL);
    warm(&cache, &secrets[0]);
    let stranger = generate_key().secret;
    // Unknown keys are remembered for 5 seconds: warm-up and measurement must fit in them for
    // every iteration to be answered from memory (checked below by counting lookups).
    let mut group = c.benchmark_group("verify");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    assert_eq!(
        verify_now(&cache, &stranger),
        Some(Err(KeyRejection::Unknown))
    );
    group.bench_function("unknown_negatively_cached", |b| {
        b.iter(|| verify_now(&cache, black_box(&stranger)).expect("refused at once"));
    });
    group.finish();
    assert_eq!(
        source.lookups.load(Ordering::Relaxed),
        2,
        "the unknown key was looked up once, then answered from memory"
    );
}

criterion_group!(
    benches,
    cache_hit,
    cache_hit_among_many,
    malformed_key,
    unknown_cached_key
);
criterion_main!(benches);
