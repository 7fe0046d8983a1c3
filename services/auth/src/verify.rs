//! Virtual-key verification on the gateway's hot path.
//!
//! A presented key is hashed (SHA-256) and looked up in an in-memory map of recently verified
//! keys; only a miss, or an entry older than the cache TTL, asks the [`KeySource`] (the
//! database in one process, the auth service over HTTP when split). Changes to a key evict it
//! at once in this process and, through [`crate::KeyChangeFeed`], in every other one.
//! Expiry is checked on every hit, so a key stops at its expiry time whatever the cache holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tollgate_common::{GuardrailLevels, KeyContext, KeyId, ModelAllowList, RateLimits};

use crate::provider_keys::ProviderKeySeal;
use crate::secrets::{hash_token_bytes, looks_like_key};
use crate::store::{AuthStore, VerifiedKey, now_ms};

/// Why a presented key does not open the gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error(
        "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or in an `x-api-key` header."
    )]
    Missing,
    #[error("Incorrect API key provided.")]
    Unknown,
    #[error("This API key has expired.")]
    Expired,
    #[error("This API key has been revoked.")]
    Revoked,
    #[error("This API key is disabled.")]
    Disabled,
    /// Keys cannot be checked right now (storage unreachable on a cache miss).
    #[error("API keys cannot be verified right now; try again shortly.")]
    Unavailable(String),
}

impl KeyRejection {
    /// OpenAI's `error.code` for each case.
    pub fn code(&self) -> &'static str {
        match self {
            KeyRejection::Missing => "missing_api_key",
            KeyRejection::Unknown => "invalid_api_key",
            KeyRejection::Expired => "expired_api_key",
            KeyRejection::Revoked => "revoked_api_key",
            KeyRejection::Disabled => "disabled_api_key",
            KeyRejection::Unavailable(_) => "auth_unavailable",
        }
    }
}

/// Turns a presented key into the caller's context. The gateway holds one.
#[async_trait]
pub trait KeyVerifier: Send + Sync {
    async fn verify(&self, presented: &str) -> Result<Arc<KeyContext>, KeyRejection>;
}

/// Where key records come from when the cache does not have them.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The key whose SHA-256 (lower-case hex) is `key_hash`, with its inherited limits.
    async fn lookup(&self, key_hash: &str) -> Result<Option<VerifiedKey>, String>;
    /// Records when keys were last used.
    async fn touch(&self, used: Vec<(KeyId, i64)>) -> Result<(), String>;
}

#[async_trait]
impl KeySource for AuthStore {
    async fn lookup(&self, key_hash: &str) -> Result<Option<VerifiedKey>, String> {
        self.verified_key(key_hash).await.map_err(|e| e.to_string())
    }
    async fn touch(&self, used: Vec<(KeyId, i64)>) -> Result<(), String> {
        self.touch_keys(&used).await.map_err(|e| e.to_string())
    }
}

/// What the cache knows about one key hash.
struct Entry {
    /// `None` for a hash that matches no key.
    key: Option<Arc<KeyContext>>,
    revoked_at: Option<i64>,
    disabled: bool,
    loaded: Instant,
    /// Unix ms of the last request with this key; flushed to storage in batches.
    last_used: AtomicI64,
    flushed: AtomicI64,
}

impl Entry {
    fn from_record(record: Option<&VerifiedKey>, seal: Option<&ProviderKeySeal>) -> Self {
        Entry {
            key: record.map(|r| Arc::new(key_context(r, seal))),
            revoked_at: record.and_then(|r| r.key.revoked_at),
            disabled: record.is_some_and(|r| r.key.disabled),
            loaded: Instant::now(),
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
        }
    }

    fn judge(&self, now_ms: i64) -> Result<Arc<KeyContext>, KeyRejection> {
        let Some(key) = &self.key else {
            return Err(KeyRejection::Unknown);
        };
        if self.revoked_at.is_some_and(|at| at <= now_ms) {
            return Err(KeyRejection::Revoked);
        }
        if self.disabled {
            return Err(KeyRejection::Disabled);
        }
        if key.expires_at.is_some_and(|at| at <= now_ms) {
            return Err(KeyRejection::Expired);
        }
        self.last_used.store(now_ms, Ordering::Relaxed);
        Ok(key.clone())
    }
}

fn limit(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

/// The context a verified key gives its requests; `seal` opens its organization's own
/// provider keys (a key that does not open is left out, and logged without its value).
pub fn key_context(verified: &VerifiedKey, seal: Option<&ProviderKeySeal>) -> KeyContext {
    let record = &verified.key;
    let mut provider_keys = BTreeMap::new();
    for sealed in &verified.provider_keys {
        match seal.map(|seal| seal.open(record.org_id, sealed)) {
            Some(Ok(key)) => {
                provider_keys.insert(sealed.provider.clone(), key);
            }
            Some(Err(err)) => tracing::error!(
                org = %record.org_id,
                provider = %sealed.provider,
                %err,
                "cannot open an organization's provider key"
            ),
            None => tracing::error!(
                org = %record.org_id,
                provider = %sealed.provider,
                "an organization has its own provider key but this process has no \
                 billing.bring_your_own_key.encryption_key to open it"
            ),
        }
    }
    KeyContext {
        org_id: Some(record.org_id),
        team_id: Some(record.team_id),
        user_id: record.created_by,
        key_id: Some(record.id),
        key_name: record.name.clone(),
        models: ModelAllowList::new(record.allowed_models.clone()),
        rpm_limit: limit(record.rpm_limit).or(limit(verified.org.rpm)),
        tpm_limit: limit(record.tpm_limit).or(limit(verified.org.tpm)),
        team_limits: RateLimits {
            rpm: limit(verified.team.rpm),
            tpm: limit(verified.team.tpm),
        },
        team_model_limits: verified
            .team
            .models
            .iter()
            .map(|(model, pair)| {
                let limits = RateLimits {
                    rpm: limit(pair.rpm),
                    tpm: limit(pair.tpm),
                };
                (model.clone(), limits)
            })
            .collect(),
        budgets: verified.budgets.clone(),
        cache: verified.cache,
        tags: record.tags.clone(),
        expires_at: record.expires_at,
        billing: verified.billing,
        provider_keys,
        guardrails: Arc::new(GuardrailLevels::new(verified.guardrails.clone())),
    }
}

/// Most entries kept. When full, unknown and stale entries are dropped; if live keys alone fill
/// it, a new key is verified without being kept (correct, one lookup per request) rather than
/// pushing out keys in use. A flood of random keys cannot grow memory without bound.
const MAX_ENTRIES: usize = 100_000;

/// Unknown hashes are remembered briefly, so that a client hammering with a bad key does not
/// reach the database on every request. A new key's hash cannot be among them: nobody knows
/// it before it is created.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Verified keys in memory in front of a [`KeySource`].
pub struct KeyCache {
    source: Arc<dyn KeySource>,
    entries: RwLock<HashMap<[u8; 32], Arc<Entry>>>,
    ttl: Duration,
    capacity: usize,
    seal: Option<Arc<ProviderKeySeal>>,
}

impl KeyCache {
    pub fn new(source: Arc<dyn KeySource>, ttl: Duration) -> Self {
        KeyCache::with_capacity(source, ttl, MAX_ENTRIES)
    }

    /// A cache keeping at most `capacity` entries.
    pub fn with_capacity(source: Arc<dyn KeySource>, ttl: Duration, capacity: usize) -> Self {
        KeyCache {
            source,
            entries: RwLock::new(HashMap::new()),
            ttl,
            capacity,
            seal: None,
        }
    }

    /// Opens organizations' own provider keys with `seal` when keys are loaded.
    pub fn with_provider_key_seal(mut self, seal: Option<Arc<ProviderKeySeal>>) -> Self {
        self.seal = seal;
        self
    }

    /// Forgets a key (by its hex hash) so that its next use reloads it.
    pub fn evict(&self, key_hash: &str) {
        let mut bytes = [0u8; 32];
        if hex::decode_to_slice(key_hash, &mut bytes).is_ok()
            && let Ok(mut entries) = self.entries.write()
        {
            entries.remove(&bytes);
        }
    }

    /// Forgets every key: after a gap in the change feed, any entry may be stale.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Arc<Entry>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(hash)?;
        let ttl = if entry.key.is_some() {
            self.ttl
        } else {
            NEGATIVE_TTL.min(self.ttl)
        };
        (entry.loaded.elapsed() < ttl).then(|| entry.clone())
    }

    fn insert(&self, hash: [u8; 32], entry: Arc<Entry>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, e| e.key.is_some() && e.loaded.elapsed() < ttl);
            if entries.len() >= self.capacity {
                tracing::warn!(
                    limit = self.capacity,
                    "key cache full of live keys; verifying new keys without caching them"
                );
                return;
            }
        }
        entries.insert(hash, entry);
    }

    /// Writes the last-used times gathered since the previous flush.
    pub async fn flush_last_used(&self) {
        let used: Vec<(KeyId, i64)> = match self.entries.read() {
            Ok(entries) => entries
                .values()
                .filter_map(|e| {
                    let last = e.last_used.load(Ordering::Relaxed);
                    let key = e.key.as_ref()?;
                    (last > e.flushed.swap(last, Ordering::Relaxed)).then_some((key.key_id?, last))
                })
                .collect(),
            Err(_) => return,
        };
        if used.is_empty() {
            return;
        }
        if let Err(err) = self.source.touch(used).await {
            tracing::warn!(%err, "cannot record when keys were last used");
        }
    }

    /// Flushes last-used times every `every` until the process ends.
    pub fn spawn_last_used_flusher(self: &Arc<Self>, every: Duration) {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(cache) = cache.upgrade() else { break };
                cache.flush_last_used().await;
            }
        });
    }
}

#[async_trait]
impl KeyVerifier for KeyCache {
    async fn verify(&self, presented: &str) -> Result<Arc<KeyContext>, KeyRejection> {
        if !looks_like_key(presented) {
            return Err(KeyRejection::Unknown);
        }
        let hash = hash_token_bytes(presented);
        if let Some(entry) = self.cached(&hash) {
            return entry.judge(now_ms());
        }
        let record = self
            .source
            .lookup(&hex::encode(hash))
            .await
            .map_err(KeyRejection::Unavailable)?;
        let entry = Arc::new(Entry::from_record(record.as_ref(), self.seal.as_deref()));
        let verdict = entry.judge(now_ms());
        self.insert(hash, entry);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use tollgate_common::{OrgId, TeamId};

    use super::*;
    use crate::secrets::generate_key;
    use crate::store::KeyRecord;

    /// A source holding records in a map, counting lookups.
    #[derive(Default)]
    struct MapSource {
        records: Mutex<HashMap<String, KeyRecord>>,
        lookups: AtomicUsize,
        touched: Mutex<Vec<(KeyId, i64)>>,
    }

    #[async_trait]
    impl KeySource for MapSource {
        async fn lookup(&self, key_hash: &str) -> Result<Option<VerifiedKey>, String> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok(self
                .records
                .lock()
                .unwrap()
                .get(key_hash)
                .map(|key| VerifiedKey {
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
        async fn touch(&self, used: Vec<(KeyId, i64)>) -> Result<(), String> {
            self.touched.lock().unwrap().extend(used);
            Ok(())
        }
    }

    impl MapSource {
        /// Changes a stored record behind the cache's back, as another process would.
        fn edit(&self, key_hash: &str, change: impl FnOnce(&mut KeyRecord)) {
            change(self.records.lock().unwrap().get_mut(key_hash).unwrap());
        }
    }

    fn record(hash: &str) -> KeyRecord {
        KeyRecord {
            id: KeyId::generate(),
            org_id: OrgId::generate(),
            team_id: TeamId::generate(),
            created_by: None,
            name: "k".into(),
            display_prefix: "tg-xxxxxxxx".into(),
            allowed_models: vec![],
            expires_at: None,
            rpm_limit: Some(60),
            tpm_limit: None,
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

    fn setup() -> (Arc<MapSource>, KeyCache, String, KeyRecord) {
        let source = Arc::new(MapSource::default());
        let key = generate_key();
        let rec = record(&key.hash);
        source
            .records
            .lock()
            .unwrap()
            .insert(key.hash.clone(), rec.clone());
        let cache = KeyCache::new(source.clone(), Duration::from_secs(60));
        (source, cache, key.secret, rec)
    }

    #[tokio::test]
    async fn a_verified_key_is_served_from_memory() {
        let (source, cache, secret, rec) = setup();
        let ctx = cache.verify(&secret).await.unwrap();
        assert_eq!(ctx.key_id, Some(rec.id));
        assert_eq!(ctx.rpm_limit, Some(60));
        for _ in 0..10 {
            cache.verify(&secret).await.unwrap();
        }
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn eviction_makes_changes_visible_at_once() {
        let (source, cache, secret, rec) = setup();
        cache.verify(&secret).await.unwrap();
        source.edit(&rec.key_hash, |key| key.revoked_at = Some(1));
        // still cached
        assert!(cache.verify(&secret).await.is_ok());
        cache.evict(&rec.key_hash);
        assert_eq!(cache.verify(&secret).await, Err(KeyRejection::Revoked));
    }

    #[tokio::test]
    async fn expiry_is_checked_on_every_hit() {
        let (source, cache, secret, rec) = setup();
        source.edit(&rec.key_hash, |key| key.expires_at = Some(now_ms() + 150));
        assert!(cache.verify(&secret).await.is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cache.verify(&secret).await, Err(KeyRejection::Expired));
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_and_malformed_keys_are_refused_without_repeated_lookups() {
        let (source, cache, _, _) = setup();
        let stranger = generate_key().secret;
        assert_eq!(cache.verify(&stranger).await, Err(KeyRejection::Unknown));
        assert_eq!(cache.verify(&stranger).await, Err(KeyRejection::Unknown));
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
        assert_eq!(
            cache.verify("' OR 1=1 --").await,
            Err(KeyRejection::Unknown)
        );
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_full_cache_keeps_its_live_keys_and_still_verifies_new_ones() {
        let source = Arc::new(MapSource::default());
        let keys: Vec<_> = (0..3).map(|_| generate_key()).collect();
        for key in &keys {
            source
                .records
                .lock()
                .unwrap()
                .insert(key.hash.clone(), record(&key.hash));
        }
        let cache = KeyCache::with_capacity(source.clone(), Duration::from_secs(60), 2);
        // unknown keys make room for live ones
        cache.verify(&generate_key().secret).await.unwrap_err();
        for key in &keys {
            cache.verify(&key.secret).await.unwrap();
        }
        assert_eq!(cache.len(), 2);
        let before = source.lookups.load(Ordering::SeqCst);
        cache.verify(&keys[0].secret).await.unwrap();
        cache.verify(&keys[1].secret).await.unwrap();
        assert_eq!(
            source.lookups.load(Ordering::SeqCst),
            before,
            "live keys stay cached"
        );
        cache.verify(&keys[2].secret).await.unwrap();
        assert_eq!(
            source.lookups.load(Ordering::SeqCst),
            before + 1,
            "the extra key is looked up"
        );
    }

    #[tokio::test]
    async fn last_use_is_flushed_in_batches() {
        let (source, cache, secret, rec) = setup();
        cache.verify(&secret).await.unwrap();
        cache.verify(&secret).await.unwrap();
        cache.flush_last_used().await;
        cache.flush_last_used().await;
        let touched = source.touched.lock().unwrap().clone();
        assert_eq!(touched.len(), 1);
        assert_eq!(touched[0].0, rec.id);
    }
}
