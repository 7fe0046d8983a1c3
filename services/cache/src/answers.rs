//! The answer cache: exact tier first, then the semantic tier, never failing the request.
//!
//! A request reaches it already reduced to plain data ([`CacheRequest`]): the organization, a
//! hash of the canonical request (the exact key), a hash of everything that changes the answer
//! besides the question (the partition: model group, answer-changing parameters, system prompt
//! and earlier turns), and the question itself. The exact tier is an in-memory map; the
//! semantic tier embeds the question and searches the vector store within the organization and
//! partition, then asks the near-miss guard before serving what it found.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_common::now_ms;

use crate::embedder::Embedder;
use crate::guard;
use crate::shared::SharedExactTier;
use crate::store::{CachedPoint, SearchQuery, VectorStore};

/// How a request may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    Off,
    /// Identical requests only.
    Exact,
    /// Identical requests, then the same question in other words.
    Semantic,
}

impl CacheMode {
    pub fn parse(text: &str) -> Option<CacheMode> {
        Some(match text.trim() {
            "off" => CacheMode::Off,
            "exact" => CacheMode::Exact,
            "semantic" => CacheMode::Semantic,
            _ => return None,
        })
    }
}

/// A request, reduced to what the cache needs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRequest {
    pub org_id: String,
    /// Hash of the canonical request: equal exactly when the requests are.
    pub exact_key: String,
    /// Hash of what changes the answer besides the question.
    pub partition: String,
    /// The last user turn; `None` when the request cannot be matched by meaning (tool calls,
    /// a last turn that is not the user's text).
    pub question: Option<String>,
    pub mode: CacheMode,
    /// Read the cache (false for `Cache-Control: no-cache` and `no-store`).
    pub read: bool,
    /// Write the answer (false for `no-store`).
    pub write: bool,
    #[serde(rename = "ttl_ms", with = "millis")]
    pub ttl: Duration,
}

/// A duration as whole milliseconds on the wire.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// An answer the cache had.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CacheHit {
    Exact { answer: String },
    Semantic { answer: String, similarity: f32 },
}

/// Tuning of the cache.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Cosine similarity a semantic candidate needs.
    pub threshold: f32,
    /// The most a semantic lookup may take; past it the request goes upstream.
    pub lookup_budget: Duration,
    /// Entries of the exact tier kept in memory (oldest evicted first).
    pub exact_capacity: usize,
    /// Semantic entries an organization may have; the oldest go beyond it.
    pub max_entries_per_org: u64,
}

struct ExactEntry {
    answer: Arc<str>,
    expires_at_ms: i64,
}

/// The exact tier: a bounded map, oldest entries evicted first.
#[derive(Default)]
struct ExactTier {
    entries: HashMap<(String, String), ExactEntry>,
    order: VecDeque<(String, String)>,
}

/// The cache as the gateway uses it: in this process ([`AnswerCache`]) or in a separate cache
/// service ([`crate::remote::RemoteCache`]). Neither call ever fails the request.
#[async_trait::async_trait]
pub trait SemanticCache: Send + Sync {
    /// The cached answer for `request`, if any; any failure is a miss.
    async fn lookup(&self, request: &CacheRequest) -> Option<CacheHit>;
    /// Keeps `answer` (a chat completion's JSON text) for `request`; `semantic` is false for
    /// answers that may only be served to identical requests. Failures are logged.
    async fn store(&self, request: &CacheRequest, answer: &str, semantic: bool);
}

/// Both tiers.
pub struct AnswerCache {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    settings: CacheSettings,
    exact: Mutex<ExactTier>,
    /// The exact tier shared by every replica, when Redis is configured.
    shared: Option<SharedExactTier>,
    /// Organizations with semantic entries written by this process, for [`AnswerCache::maintain`].
    orgs: Mutex<HashSet<String>>,
}

impl AnswerCache {
    pub fn new(
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn VectorStore>,
        settings: CacheSettings,
    ) -> Self {
        AnswerCache {
            embedder,
            store,
            settings,
            exact: Mutex::new(ExactTier::default()),
            shared: None,
            orgs: Mutex::new(HashSet::new()),
        }
    }

    /// Also keeps exact answers in Redis, where every replica finds them.
    pub fn with_shared_exact(mut self, shared: SharedExactTier) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The cached answer for `request`, if any. Errors and slowness of the embedder or the
    /// store are a miss: the cache never fails a request.
    pub async fn lookup(&self, request: &CacheRequest) -> Option<CacheHit> {
        if request.mode == CacheMode::Off || !request.read {
            return None;
        }
        let now = now_ms();
        if let Some(answer) = self.exact_get(&request.org_id, &request.exact_key, now) {
            return Some(CacheHit::Exact {
                answer: answer.to_string(),
            });
        }
        if let Some(shared) = &self.shared {
            let found = tokio::time::timeout(
                self.settings.lookup_budget,
                shared.get(&request.org_id, &request.exact_key),
            )
            .await;
            match found {
                Ok(Ok(Some((answer, ttl_ms)))) => {
                    self.exact_put(
                        &request.org_id,
                        &request.exact_key,
                        &answer,
                        now.saturating_add(ttl_ms),
                    );
                    return Some(CacheHit::Exact { answer });
                }
                Ok(Ok(None)) => {}
                Ok(Err(err)) => tracing::warn!(%err, "shared exact cache lookup failed"),
                Err(_) => tracing::warn!("shared exact cache lookup took too long"),
            }
        }
        if request.mode != CacheMode::Semantic {
            return None;
        }
        let question = request.question.as_ref()?;
        match tokio::time::timeout(
            self.settings.lookup_budget,
            self.nearest(request, question, now),
        )
        .await
        {
            Ok(Ok(hit)) => hit,
            Ok(Err(reason)) => {
                tracing::warn!(%reason, "semantic cache lookup failed; going upstream");
                None
            }
            Err(_) => {
                tracing::warn!(
                    budget_ms = self.settings.lookup_budget.as_millis() as u64,
                    "semantic cache lookup took too long; going upstream"
                );
                None
            }
        }
    }

    async fn nearest(
        &self,
        request: &CacheRequest,
        question: &str,
        now: i64,
    ) -> Result<Option<CacheHit>, String> {
        let vector = self.embed(question).await?;
        let found = self
            .store
            .search(SearchQuery {
                org_id: &request.org_id,
                partition: &request.partition,
                embedder: self.embedder.name(),
                vector: &vector,
                min_score: self.settings.threshold,
                now_ms: now,
                limit: 3,
            })
            .await
            .map_err(|e| e.to_string())?;
        for candidate in found {
            // Above the threshold is not enough: the questions must agree on what decides
            // the answer (numbers, names, negation, direction).
            if let Some(reason) = guard::near_miss(question, &candidate.point.question) {
                tracing::debug!(%reason, score = candidate.score, "semantic candidate refused");
                continue;
            }
            return Ok(Some(CacheHit::Semantic {
                answer: candidate.point.answer,
                similarity: candidate.score,
            }));
        }
        Ok(None)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
        let mut vectors = self
            .embedder
            .embed(&[text.to_owned()])
            .await
            .map_err(|e| e.to_string())?;
        vectors
            .pop()
            .ok_or_else(|| "the embedder returned no vector".to_owned())
    }

    /// Keeps `answer` for `request` in both tiers its mode allows. Failures are logged.
    pub async fn store(&self, request: &CacheRequest, answer: &str, semantic: bool) {
        if request.mode == CacheMode::Off || !request.write {
            return;
        }
        let now = now_ms();
        let expires =
            now.saturating_add(i64::try_from(request.ttl.as_millis()).unwrap_or(i64::MAX));
        self.exact_put(&request.org_id, &request.exact_key, answer, expires);
        if let Some(shared) = &self.shared
            && let Err(err) = shared
                .put(&request.org_id, &request.exact_key, answer, request.ttl)
                .await
        {
            tracing::warn!(%err, "cannot keep an answer in the shared exact cache");
        }
        let Some(question) = request.question.as_ref() else {
            return;
        };
        if request.mode != CacheMode::Semantic || !semantic {
            return;
        }
        let vector = match self.embed(question).await {
            Ok(vector) => vector,
            Err(reason) => {
                tracing::warn!(%reason, "cannot embed an answer for the semantic cache");
                return;
            }
        };
        let point = CachedPoint {
            id: uuid::Uuid::now_v7(),
            vector,
            org_id: request.org_id.clone(),
            partition: request.partition.clone(),
            embedder: self.embedder.name().to_owned(),
            question: question.clone(),
            answer: answer.to_owned(),
            created_at_ms: now,
            expires_at_ms: expires,
        };
        match self.store.upsert(point).await {
            Ok(()) => {
                let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
                orgs.insert(request.org_id.clone());
            }
            Err(err) => tracing::warn!(%err, "cannot store an answer in the semantic cache"),
        }
    }

    /// Deletes expired semantic entries, trims the organizations this process wrote for to
    /// their cap, then lets the store reclaim the space. Run periodically.
    pub async fn maintain(&self) {
        if let Err(err) = self.store.prune_expired(now_ms()).await {
            tracing::warn!(%err, "cannot prune the semantic cache");
        }
        let orgs: Vec<String> = {
            let orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
            orgs.iter().cloned().collect()
        };
        for org in &orgs {
            if let Err(err) = self
                .store
                .evict_oldest(org, self.settings.max_entries_per_org)
                .await
            {
                tracing::warn!(%err, "cannot trim an organization's semantic cache");
            }
        }
        if let Err(err) = self.store.optimize().await {
            tracing::warn!(%err, "cannot optimize the semantic cache's store");
        }
    }

    fn exact_get(&self, org: &str, key: &str, now: i64) -> Option<Arc<str>> {
        let exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        let entry = exact.entries.get(&(org.to_owned(), key.to_owned()))?;
        (entry.expires_at_ms > now).then(|| entry.answer.clone())
    }

    fn exact_put(&self, org: &str, key: &str, answer: &str, expires_at_ms: i64) {
        let mut exact = self.exact.lock().unwrap_or_else(|e| e.into_inner());
        let id = (org.to_owned(), key.to_owned());
        let fresh = ExactEntry {
            answer: Arc::from(answer),
            expires_at_ms,
        };
        if exact.entries.insert(id.clone(), fresh).is_none() {
            exact.order.push_back(id);
        }
        while exact.entries.len() > self.settings.exact_capacity {
            let Some(oldest) = exact.order.pop_front() else {
                break;
            };
            exact.entries.remove(&oldest);
        }
    }
}

#[async_trait::async_trait]
impl SemanticCache for AnswerCache {
    async fn lookup(&self, request: &CacheRequest) -> Option<CacheHit> {
        AnswerCache::lookup(self, request).await
    }

    async fn store(&self, request: &CacheRequest, answer: &str, semantic: bool) {
        AnswerCache::store(self, request, answer, semantic).await
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::embedder::HashedEmbedder;
    use crate::store::{EmbeddedStore, ScoredPoint, StoreError};

    fn settings() -> CacheSettings {
        CacheSettings {
            threshold: 0.9,
            lookup_budget: Duration::from_millis(500),
            exact_capacity: 100,
            max_entries_per_org: 1000,
        }
    }

    fn request(org: &str, key: &str, question: &str) -> CacheRequest {
        CacheRequest {
            org_id: org.into(),
            exact_key: key.into(),
            partition: "gpt-4o|t=0".into(),
            question: Some(question.into()),
            mode: CacheMode::Semantic,
            read: true,
            write: true,
            ttl: Duration::from_secs(60),
        }
    }

    fn embedded() -> (AnswerCache, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tollgate-answers-{}", uuid::Uuid::now_v7()));
        let embedder = Arc::new(HashedEmbedder::new());
        let store =
            EmbeddedStore::open(&dir, embedder.dimensions()).unwrap_or_else(|e| panic!("{e}"));
        (AnswerCache::new(embedder, Arc::new(store), settings()), dir)
    }

    #[tokio::test]
    async fn exact_then_semantic_hits_and_near_misses_refused() {
        let (cache, dir) = embedded();
        let france = request("org-a", "k1", "What is the capital of France?");
        assert_eq!(cache.lookup(&france).await, None);
        cache.store(&france, "Paris", true).await;
        assert_eq!(
            cache.lookup(&france).await,
            Some(CacheHit::Exact {
                answer: "Paris".into()
            })
        );
        let reworded = request("org-a", "k2", "what's the capital of france");
        match cache.lookup(&reworded).await {
            Some(CacheHit::Semantic { answer, similarity }) => {
                assert_eq!(answer, "Paris");
                assert!(similarity >= 0.9, "{similarity}");
            }
            other => panic!("expected a semantic hit, got {other:?}"),
        }
        let germany = request("org-a", "k3", "What is the capital of Germany?");
        assert_eq!(
            cache.lookup(&germany).await,
            None,
            "a near miss is never served"
        );
        // The embedded store flushes when dropped: drop it before its directory goes.
        drop(cache);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn organizations_never_share_answers() {
        let (cache, dir) = embedded();
        let mine = request("org-a", "same-key", "What is the capital of France?");
        cache.store(&mine, "Paris", true).await;
        let theirs = request("org-b", "same-key", "What is the capital of France?");
        assert_eq!(cache.lookup(&theirs).await, None);
        // The embedded store flushes when dropped: drop it before its directory goes.
        drop(cache);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn ttl_and_per_request_controls_are_honoured() {
        let (cache, dir) = embedded();
        let mut short = request("org-a", "k1", "How many legs does a spider have?");
        short.ttl = Duration::ZERO;
        cache.store(&short, "Eight", true).await;
        assert_eq!(cache.lookup(&short).await, None, "expired at once");

        let mut no_store = request("org-a", "k2", "How tall is Mount Everest?");
        no_store.write = false;
        cache.store(&no_store, "8849 m", true).await;
        no_store.write = true;
        assert_eq!(cache.lookup(&no_store).await, None);

        let stored = request("org-a", "k3", "Who wrote Hamlet?");
        cache.store(&stored, "Shakespeare", true).await;
        let mut no_cache = stored.clone();
        no_cache.read = false;
        assert_eq!(
            cache.lookup(&no_cache).await,
            None,
            "no-cache skips the lookup"
        );
        let mut exact_only = request("org-a", "k4", "who wrote hamlet");
        exact_only.mode = CacheMode::Exact;
        assert_eq!(cache.lookup(&exact_only).await, None);
        // The embedded store flushes when dropped: drop it before its directory goes.
        drop(cache);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn maintenance_prunes_expired_entries_and_keeps_each_organization_under_its_cap() {
        let dir = std::env::temp_dir().join(format!("tollgate-answers-{}", uuid::Uuid::now_v7()));
        let embedder = Arc::new(HashedEmbedder::new());
        let store = Arc::new(
            EmbeddedStore::open(&dir, embedder.dimensions()).unwrap_or_else(|e| panic!("{e}")),
        );
        let mut tuned = settings();
        tuned.max_entries_per_org = 3;
        let cache = AnswerCache::new(embedder, store.clone(), tuned);
        let mut expired = request("org-a", "k0", "Who painted the Mona Lisa?");
        expired.ttl = Duration::ZERO;
        cache.store(&expired, "Leonardo", true).await;
        let questions = [
            "How many moons does Mars have?",
            "Who discovered penicillin?",
            "What is the boiling point of water at sea level?",
            "Which planet has the most rings?",
            "Who wrote War and Peace?",
        ];
        for (i, question) in questions.iter().enumerate() {
            cache
                .store(
                    &request("org-a", &format!("k{}", i + 1), question),
                    "answer",
                    true,
                )
                .await;
            // Distinct creation times, so that "oldest" is well defined.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        cache
            .store(&request("org-b", "k1", questions[0]), "answer", true)
            .await;
        assert_eq!(store.count("org-a").await.unwrap_or_default(), 6);

        cache.maintain().await;
        assert_eq!(store.count("org-a").await.unwrap_or_default(), 3);
        assert_eq!(
            store.count("org-b").await.unwrap_or_default(),
            1,
            "untouched"
        );
        // The newest three remain, found by meaning (new exact keys); the oldest are gone.
        let reworded =
            |i: usize| request("org-a", &format!("again-{i}"), &questions[i].to_lowercase());
        assert!(cache.lookup(&reworded(4)).await.is_some());
        assert!(cache.lookup(&reworded(2)).await.is_some());
        assert_eq!(cache.lookup(&reworded(0)).await, None);
        drop(cache);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A store that fails or hangs.
    struct BrokenStore {
        hang: bool,
    }

    #[async_trait]
    impl VectorStore for BrokenStore {
        async fn upsert(&self, _point: CachedPoint) -> Result<(), StoreError> {
            Err(StoreError::Open {
                path: "x".into(),
                reason: "down".into(),
            })
        }
        async fn search(&self, _query: SearchQuery<'_>) -> Result<Vec<ScoredPoint>, StoreError> {
            if self.hang {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Err(StoreError::Open {
                path: "x".into(),
                reason: "down".into(),
            })
        }
        async fn prune_expired(&self, _now_ms: i64) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn evict_oldest(&self, _org_id: &str, _keep: u64) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn count(&self, _org_id: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn delete_org(&self, _org_id: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn a_failing_or_slow_store_is_a_miss_not_an_error() {
        for hang in [false, true] {
            let mut tuned = settings();
            tuned.lookup_budget = Duration::from_millis(50);
            let cache = AnswerCache::new(
                Arc::new(HashedEmbedder::new()),
                Arc::new(BrokenStore { hang }),
                tuned,
            );
            let question = request("org-a", "k1", "Is it raining in Paris?");
            cache.store(&question, "Maybe", true).await;
            let started = std::time::Instant::now();
            let reworded = request("org-a", "k2", "is it raining in paris");
            assert_eq!(cache.lookup(&reworded).await, None);
            assert!(started.elapsed() < Duration::from_secs(5));
            // The exact tier still works without the store.
            assert!(matches!(
                cache.lookup(&question).await,
                Some(CacheHit::Exact { .. })
            ));
        }
    }
}
