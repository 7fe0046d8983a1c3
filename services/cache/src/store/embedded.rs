//! [`EmbeddedStore`]: the vector store inside this process, on `qdrant-edge` 0.7.0.
//!
//! Three facts about `qdrant-edge` 0.7.0 shape this file:
//! - Its API is synchronous and some calls take milliseconds, so every call runs on tokio's
//!   blocking pool (`spawn_blocking`), never on an executor thread.
//! - `EdgeShard` synchronises its own reads and writes, but `EdgeShard::flush` *panics* when
//!   it meets a write in progress (it uses `try_lock(..).expect(..)`). `Inner::write_gate`
//!   therefore lets writes share the shard with each other while a flush runs alone. Searches
//!   never touch the gate, so a flush does not pause lookups.
//! - `EdgeShard::load` does not replay the write-ahead log: only flushed data survives a
//!   restart. A background thread flushes once a second when something was written, and
//!   dropping the store flushes what is left. A crash loses the writes since the last flush
//!   (about a second; longer while `optimize` runs), which for a cache only means misses.
//!
//! Payload indexes (keyword on org/partition/embedder, integer on the two timestamps) keep
//! filtered searches proportional to the matching points rather than to the whole store:
//! a lookup scores exactly the points of one organization, partition and embedder, usually a
//! few hundred. There is deliberately no HNSW index: building one for 100,000 vectors of 384
//! dimensions had not finished after 13 minutes on a busy two-core machine, and Qdrant scores
//! such small filtered sets exactly anyway (which also means no approximate-search misses).
//! The cost is that a lookup is linear in the size of its partition (figures in
//! `examples/store_latency.rs`).

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, Direction, Distance, EdgeConfig, EdgeConfigBuilder,
    EdgeOptimizersConfig, EdgeShard, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations,
    Filter, IntegerIndexParams, JsonPath, KeywordIndexParams, Match, NamedQuery, OperationResult,
    OrderBy, OrderByInterface, Payload, PayloadFieldSchema, PayloadSchemaParams, PointId,
    PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum, QueryRequest, Range,
    ScoringQuery, ScrollRequest, UpdateOperation, ValueVariants, VectorInternal, VectorPersisted,
    VectorStructInternal, VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde_json::{Map, Value};

use super::{
    CachedPoint, EVICTION_BATCH, PayloadReader, ScoredPoint, SearchQuery, StoreError, VectorStore,
    check_dimensions, payload_key, point_from_payload,
};

/// The name of the one dense vector each point carries.
const VECTOR_NAME: &str = "question";
/// The file `qdrant-edge` writes its configuration to; its presence means "load, not create".
const EDGE_CONFIG_FILE: &str = "edge_config.json";
/// Held locked while a store has the directory open; two shards on one directory corrupt it.
const LOCK_FILE: &str = "tollgate-store.lock";
/// How often the background thread flushes, when something was written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A vector store in a local directory, on `qdrant-edge`; one per directory and process.
///
/// Dropping it flushes and closes the shard and unlocks the directory, unless a cancelled
/// call is still finishing on the blocking pool; then that call closes it when it ends.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// Dropping the sender wakes the flusher thread and tells it to stop.
    stop_flusher: Option<mpsc::Sender<()>>,
    flusher: Option<JoinHandle<()>>,
}

/// Everything the blocking tasks share.
struct Inner {
    /// Declared before `_dir_lock`: fields drop in order, so the shard is flushed and closed
    /// before the directory is unlocked.
    shard: EdgeShard,
    /// Writes hold it shared, a flush holds it exclusively (see the module docs).
    write_gate: RwLock<()>,
    /// Set by every write, cleared by the flush that persists it.
    dirty: AtomicBool,
    dimensions: usize,
    path: PathBuf,
    _dir_lock: File,
}

impl EmbeddedStore {
    /// Opens the store in `dir` for vectors of `dimensions`, creating the directory and the
    /// shard if missing. Fails if another store has `dir` open, or with
    /// [`StoreError::DimensionMismatch`] if the stored vectors have another size. Blocking:
    /// call it at start-up or inside `spawn_blocking`.
    pub fn open(dir: &Path, dimensions: usize) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|error| open_error(error.to_string()))?;
        let dir_lock = lock_directory(dir)?;

        let config = edge_config(dimensions);
        let optimizers = config.optimizers.clone();
        let shard = if dir.join(EDGE_CONFIG_FILE).exists() {
            // The stored configuration wins for the vectors: it describes the data on disk.
            EdgeShard::load(dir, None)
        } else {
            EdgeShard::new(dir, config)
        }
        .map_err(|error| open_error(error.to_string()))?;
        shard
            .set_optimizers_config(optimizers)
            .map_err(|error| open_error(error.to_string()))?;
        let stored_dimensions = shard
            .config()
            .vectors
            .get(VECTOR_NAME)
            .map(|params| params.size);
        if stored_dimensions != Some(dimensions) {
            return Err(match stored_dimensions {
                Some(stored) => StoreError::DimensionMismatch {
                    expected: stored,
                    actual: dimensions,
                },
                None => open_error(format!("the store has no {VECTOR_NAME:?} vector")),
            });
        }
        ensure_payload_indexes(&shard)?;
        shard.flush();

        let inner = Arc::new(Inner {
            shard,
            write_gate: RwLock::new(()),
            dirty: AtomicBool::new(false),
            dimensions,
            path: dir.to_path_buf(),
            _dir_lock: dir_lock,
        });
        let (stop_flusher, stopped) = mpsc::channel();
        let weak_inner = Arc::downgrade(&inner);
        let flusher = std::thread::Builder::new()
            .name("tollgate-store-flush".to_owned())
            .spawn(move || flush_periodically(&weak_inner, &stopped))
            .map_err(|error| open_error(format!("cannot start the flusher thread: {error}")))?;

        Ok(Self {
            inner,
            stop_flusher: Some(stop_flusher),
            flusher: Some(flusher),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Persists every write so far; the background thread does this within a second anyway.
    /// Waits for a running [`optimize`](Self::optimize), and holds writes back meanwhile.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.run("flush", |inner| {
            inner.flush();
            Ok(())
        })
        .await
    }

    /// Vacuums deleted points and merges segments; returns whether it changed anything.
    ///
    /// `qdrant-edge` never does this on its own, so a store that only grows and prunes keeps
    /// its deleted points until this runs. It rewrites segments, so call it from maintenance
    /// (after `prune_expired`, say), not per request. Searches and writes continue meanwhile;
    /// the periodic flush waits until it is done.
    pub async fn optimize(&self) -> Result<bool, StoreError> {
        self.run("optimize", |inner| {
            let changed = inner.write("optimize", |shard| shard.optimize())?;
            // Segments the optimizer creates must carry the same payload indexes.
            let _writes = inner.shared_gate();
            ensure_payload_indexes(&inner.shard)?;
            inner.dirty.store(true, Ordering::Release);
            Ok(changed)
        })
        .await
    }

    /// Runs `work` on the blocking pool with the shared state.
    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|join_error| StoreError::Interrupted {
                operation,
                message: join_error.to_string(),
            })?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Stop the flusher and wait for it, so that it holds no reference to the shard: the
        // shard must close (and unlock the directory) before this store is gone, or a store
        // reopened right after would find the directory still in use.
        drop(self.stop_flusher.take());
        if let Some(flusher) = self.flusher.take()
            && flusher.join().is_err()
        {
            tracing::error!("the vector store's flusher thread panicked");
        }
    }
}

impl Inner {
    /// Applies a write with the gate held shared, and marks the store for the next flush.
    fn write<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&EdgeShard) -> OperationResult<T>,
    ) -> Result<T, StoreError> {
        let _writes = self.shared_gate();
        let result = work(&self.shard).map_err(|error| engine_error(operation, error));
        self.dirty.store(true, Ordering::Release);
        result
    }

    /// Runs a read-then-delete with no other write in between, so the count it returns is
    /// exactly what it deleted.
    fn exclusive<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&EdgeShard) -> OperationResult<T>,
    ) -> Result<T, StoreError> {
        let _alone = self.exclusive_gate();
        let result = work(&self.shard).map_err(|error| engine_error(operation, error));
        self.dirty.store(true, Ordering::Release);
        result
    }

    /// Persists everything written so far; waits for writes in progress.
    fn flush(&self) {
        let _alone = self.exclusive_gate();
        self.dirty.store(false, Ordering::Release);
        self.shard.flush();
    }

    /// Flushes if something was written and no write is in progress; otherwise leaves it to
    /// the next round. Never waits: a waiting writer lock would block new writes behind it.
    fn flush_if_idle_and_dirty(&self) {
        if !self.dirty.load(Ordering::Acquire) {
            return;
        }
        let _alone = match self.write_gate.try_write() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        self.dirty.store(false, Ordering::Release);
        self.shard.flush();
    }

    fn shared_gate(&self) -> RwLockReadGuard<'_, ()> {
        // A poisoned gate only means a write panicked; the shard guards its own state.
        self.write_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn exclusive_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.write_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The flusher thread: every `FLUSH_INTERVAL`, flush if needed; stop when the store is dropped.
fn flush_periodically(inner: &Weak<Inner>, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(FLUSH_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.flush_if_idle_and_dirty();
    }
}

#[async_trait::async_trait]
impl VectorStore for EmbeddedStore {
    async fn upsert(&self, point: CachedPoint) -> Result<(), StoreError> {
        check_dimensions(self.inner.dimensions, &point.vector)?;
        let point = to_edge_point(point);
        self.run("upsert", move |inner| {
            inner.write("upsert", |shard| {
                shard.update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(vec![point])),
                ))
            })
        })
        .await
    }

    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<ScoredPoint>, StoreError> {
        check_dimensions(self.inner.dimensions, query.vector)?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                VectorInternal::Dense(query.vector.to_vec()),
                VECTOR_NAME,
            )))),
            filter: Some(all_of(vec![
                keyword_is(payload_key::ORG_ID, query.org_id)?,
                keyword_is(payload_key::PARTITION, query.partition)?,
                keyword_is(payload_key::EMBEDDER, query.embedder)?,
                integer_above(payload_key::EXPIRES_AT_MS, query.now_ms)?,
            ])),
            score_threshold: Some(OrderedFloat(query.min_score)),
            limit: query.limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(true),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let found = self
            .run("search", move |inner| {
                inner
                    .shard
                    .query(request)
                    .map_err(|error| engine_error("search", error))
            })
            .await?;
        found
            .into_iter()
            .map(|scored| {
                let score = scored.score;
                let point = from_edge_record(scored.id, scored.payload, scored.vector)?;
                Ok(ScoredPoint { point, score })
            })
            .collect()
    }

    async fn prune_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let expired = all_of(vec![integer_at_most(payload_key::EXPIRES_AT_MS, now_ms)?]);
        self.run("prune_expired", move |inner| {
            inner.exclusive("prune_expired", |shard| count_then_delete(shard, expired))
        })
        .await
    }

    async fn evict_oldest(&self, org_id: &str, keep: u64) -> Result<u64, StoreError> {
        let of_org = all_of(vec![keyword_is(payload_key::ORG_ID, org_id)?]);
        let oldest_first = OrderByInterface::Struct(OrderBy {
            key: json_path(payload_key::CREATED_AT_MS)?,
            direction: Some(Direction::Asc),
            start_from: None,
        });
        self.run("evict_oldest", move |inner| {
            inner.exclusive("evict_oldest", |shard| {
                let total = count_matching(shard, &of_org)?;
                let mut excess = total.saturating_sub(keep);
                let mut deleted = 0;
                while excess > 0 {
                    let (records, _) = shard.scroll(ScrollRequest {
                        offset: None,
                        limit: Some(usize_from(excess.min(EVICTION_BATCH))),
                        filter: Some(of_org.clone()),
                        with_payload: Some(WithPayloadInterface::Bool(false)),
                        with_vector: WithVector::Bool(false),
                        order_by: Some(oldest_first.clone()),
                    })?;
                    if records.is_empty() {
                        break;
                    }
                    let ids: Vec<PointId> = records.into_iter().map(|record| record.id).collect();
                    let batch = ids.len() as u64;
                    shard.update(UpdateOperation::PointOperation(
                        PointOperations::DeletePoints { ids },
                    ))?;
                    deleted += batch;
                    excess = excess.saturating_sub(batch);
                }
                Ok(deleted)
            })
        })
        .await
    }

    async fn count(&self, org_id: &str) -> Result<u64, StoreError> {
        let of_org = all_of(vec![keyword_is(payload_key::ORG_ID, org_id)?]);
        self.run("count", move |inner| {
            count_matching(&inner.shard, &of_org).map_err(|error| engine_error("count", error))
        })
        .await
    }

    async fn delete_org(&self, org_id: &str) -> Result<u64, StoreError> {
        let of_org = all_of(vec![keyword_is(payload_key::ORG_ID, org_id)?]);
        self.run("delete_org", move |inner| {
            inner.exclusive("delete_org", |shard| count_then_delete(shard, of_org))
        })
        .await
    }

    async fn optimize(&self) -> Result<bool, StoreError> {
        EmbeddedStore::optimize(self).await
    }
}

/// Locks `dir` against a second store; the lock lasts as long as the returned file is open.
fn lock_directory(dir: &Path) -> Result<File, StoreError> {
    let path = dir.display().to_string();
    let lock_file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|error| StoreError::Open {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(TryLockError::WouldBlock) => Err(StoreError::AlreadyOpen { path }),
        Err(TryLockError::Error(error)) => Err(StoreError::Open {
            path,
            reason: error.to_string(),
        }),
    }
}

/// One cosine vector; payload on disk, because answers can be large and only the few
/// points a search returns are read; no HNSW index (see the module docs).
fn edge_config(dimensions: usize) -> EdgeConfig {
    EdgeConfigBuilder::new()
        .on_disk_payload(true)
        .vector(
            VECTOR_NAME,
            EdgeVectorParamsBuilder::new(dimensions, Distance::Cosine).build(),
        )
        .optimizers(EdgeOptimizersConfig {
            // 0 disables indexing: `optimize` then only vacuums and merges segments.
            indexing_threshold: Some(0),
            ..EdgeOptimizersConfig::default()
        })
        .build()
}

/// Creates the payload indexes every search and maintenance filter relies on; indexes that
/// already exist are left alone.
fn ensure_payload_indexes(shard: &EdgeShard) -> Result<(), StoreError> {
    let keyword_schemas = payload_key::KEYWORD_INDEXED.iter().map(|&key| {
        let params = KeywordIndexParams {
            // Points of one organization are stored together once optimized.
            is_tenant: Some(key == payload_key::ORG_ID),
            ..KeywordIndexParams::default()
        };
        (key, PayloadSchemaParams::Keyword(params))
    });
    let integer_schemas = payload_key::INTEGER_INDEXED.iter().map(|&key| {
        let params = IntegerIndexParams {
            lookup: Some(false),
            range: Some(true),
            ..IntegerIndexParams::default()
        };
        (key, PayloadSchemaParams::Integer(params))
    });
    for (key, params) in keyword_schemas.chain(integer_schemas) {
        let create = CreateIndex {
            field_name: json_path(key)?,
            field_schema: Some(PayloadFieldSchema::FieldParams(params)),
        };
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(create),
            ))
            .map_err(|error| engine_error("create payload index", error))?;
    }
    Ok(())
}

/// Counts the points matching `filter`, deletes them, and returns the count.
fn count_then_delete(shard: &EdgeShard, filter: Filter) -> OperationResult<u64> {
    let matching = count_matching(shard, &filter)?;
    if matching > 0 {
        shard.update(UpdateOperation::PointOperation(
            PointOperations::DeletePointsByFilter(filter),
        ))?;
    }
    Ok(matching)
}

fn count_matching(shard: &EdgeShard, filter: &Filter) -> OperationResult<u64> {
    let counted = shard.count(CountRequest {
        filter: Some(filter.clone()),
        exact: true,
    })?;
    Ok(counted as u64)
}

fn to_edge_point(point: CachedPoint) -> PointStructPersisted {
    let mut payload = Map::new();
    let text_fields = [
        (payload_key::ORG_ID, point.org_id),
        (payload_key::PARTITION, point.partition),
        (payload_key::EMBEDDER, point.embedder),
        (payload_key::QUESTION, point.question),
        (payload_key::ANSWER, point.answer),
    ];
    for (key, text) in text_fields {
        payload.insert(key.to_owned(), Value::String(text));
    }
    payload.insert(
        payload_key::CREATED_AT_MS.to_owned(),
        Value::from(point.created_at_ms),
    );
    payload.insert(
        payload_key::EXPIRES_AT_MS.to_owned(),
        Value::from(point.expires_at_ms),
    );
    PointStructPersisted {
        id: PointId::Uuid(point.id),
        vector: VectorStructPersisted::Named(HashMap::from([(
            VECTOR_NAME.to_owned(),
            VectorPersisted::Dense(point.vector),
        )])),
        payload: Some(Payload(payload)),
    }
}

fn from_edge_record(
    id: PointId,
    payload: Option<Payload>,
    vector: Option<VectorStructInternal>,
) -> Result<CachedPoint, StoreError> {
    let malformed = |reason: &str| StoreError::MalformedPoint {
        id: id.to_string(),
        reason: reason.to_owned(),
    };
    let PointId::Uuid(uuid) = id else {
        return Err(malformed("the id is a number, not a UUID"));
    };
    let vector = match vector {
        Some(VectorStructInternal::Named(mut named)) => match named.remove(VECTOR_NAME) {
            Some(VectorInternal::Dense(dense)) => dense,
            _ => return Err(malformed("no dense question vector")),
        },
        Some(VectorStructInternal::Single(dense)) => dense,
        _ => return Err(malformed("no dense question vector")),
    };
    let payload = payload.ok_or_else(|| malformed("no payload"))?;
    point_from_payload(uuid, vector, &payload.0)
}

impl PayloadReader for Map<String, Value> {
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    fn integer(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
}

/// A filter that every condition must match.
fn all_of(conditions: Vec<Condition>) -> Filter {
    Filter {
        must: Some(conditions),
        ..Filter::new()
    }
}

fn keyword_is(key: &'static str, value: &str) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_match(
        json_path(key)?,
        Match::new_value(ValueVariants::String(value.to_owned())),
    )))
}

/// `key > value`; integer payloads compare as `f64`, exact for millisecond timestamps
/// (below 2^53).
fn integer_above(key: &'static str, value: i64) -> Result<Condition, StoreError> {
    integer_range(
        key,
        Range {
            gt: Some(OrderedFloat(value as f64)),
            ..empty_range()
        },
    )
}

/// `key <= value`.
fn integer_at_most(key: &'static str, value: i64) -> Result<Condition, StoreError> {
    integer_range(
        key,
        Range {
            lte: Some(OrderedFloat(value as f64)),
            ..empty_range()
        },
    )
}

fn integer_range(
    key: &'static str,
    range: Range<OrderedFloat<f64>>,
) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_range(
        json_path(key)?,
        range,
    )))
}

fn empty_range() -> Range<OrderedFloat<f64>> {
    Range {
        lt: None,
        gt: None,
        gte: None,
        lte: None,
    }
}

fn json_path(key: &'static str) -> Result<JsonPath, StoreError> {
    key.parse().map_err(|()| StoreError::Embedded {
        operation: "build a filter",
        message: format!("{key:?} is not a valid payload path"),
    })
}

fn engine_error(operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Embedded {
        operation,
        message: error.to_string(),
    }
}

/// `u64` to `usize`, saturating (only 32-bit targets can saturate).
fn usize_from(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
