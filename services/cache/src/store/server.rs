//! [`ServerStore`]: the vector store on a Qdrant server, over gRPC with `qdrant-client`.
//!
//! The collection is prepared on first use rather than at start-up, so a gateway can start
//! while Qdrant is still coming up: it is created (cosine distance, the store's dimension,
//! payload on disk) if missing, checked if present, and given the same payload indexes as
//! the embedded store. Several replicas may race to create it; losing that race is fine.
//!
//! Writes wait for the server to apply them (`wait = true`), so a search right after an
//! upsert sees it, as with the embedded store.

use std::collections::HashMap;
use std::time::Duration;

use qdrant_client::qdrant::vector_output::Vector as StoredVector;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfig;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Direction, Distance, FieldType, Filter, IntegerIndexParamsBuilder,
    KeywordIndexParamsBuilder, OrderByBuilder, PointId, PointStruct, PointsIdsList, Query,
    QueryPointsBuilder, Range, ScrollPointsBuilder, UpsertPointsBuilder, Value,
    VectorParamsBuilder, VectorsOutput, point_id::PointIdOptions,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use tokio::sync::OnceCell;

use super::{
    CachedPoint, EVICTION_BATCH, PayloadReader, ScoredPoint, SearchQuery, StoreError, VectorStore,
    check_dimensions, payload_key, point_from_payload,
};

/// Where the Qdrant server is and which collection holds the cache.
#[derive(Debug, Clone)]
pub struct ServerStoreConfig {
    /// The server's gRPC address, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    /// Sent as the `api-key` header when set.
    pub api_key: Option<String>,
    /// The collection, e.g. `tollgate_cache`; created on first use if missing.
    pub collection: String,
    /// The length of every vector.
    pub dimensions: usize,
    /// The deadline of each request.
    pub timeout: Duration,
}

/// A vector store in a collection of a Qdrant server; shared by every replica using it.
pub struct ServerStore {
    client: Qdrant,
    collection: String,
    dimensions: usize,
    /// Filled once the collection exists with the right dimension and indexes.
    prepared: OnceCell<()>,
}

impl ServerStore {
    /// Builds the client; connects lazily, so this succeeds while the server is down.
    pub fn connect(config: ServerStoreConfig) -> Result<Self, StoreError> {
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // The check makes a blocking round-trip at build time and prints to stdout.
            .skip_compatibility_check()
            .build()
            .map_err(|error| server_error("connect", error))?;
        Ok(Self {
            client,
            collection: config.collection,
            dimensions: config.dimensions,
            prepared: OnceCell::new(),
        })
    }

    /// The collection's name.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Prepares the collection unless an earlier call already did.
    async fn prepared(&self) -> Result<(), StoreError> {
        self.prepared
            .get_or_try_init(|| self.prepare_collection())
            .await
            .map(|_| ())
    }

    async fn prepare_collection(&self) -> Result<(), StoreError> {
        let client = &self.client;
        let collection = self.collection.as_str();
        let exists = client
            .collection_exists(collection)
            .await
            .map_err(|error| server_error("check the collection", error))?;
        if !exists {
            let create = CreateCollectionBuilder::new(collection)
                .vectors_config(VectorParamsBuilder::new(
                    self.dimensions as u64,
                    Distance::Cosine,
                ))
                .on_disk_payload(true);
            if let Err(error) = client.create_collection(create).await {
                // Another replica may have created it in between; only a missing collection
                // is a failure.
                let created_elsewhere = client.collection_exists(collection).await.unwrap_or(false);
                if !created_elsewhere {
                    return Err(server_error("create the collection", error));
                }
            }
        }
        self.check_collection_dimensions().await?;
        self.ensure_payload_indexes().await
    }

    /// Fails with a clear error if the collection holds vectors of another size.
    async fn check_collection_dimensions(&self) -> Result<(), StoreError> {
        let info = self
            .client
            .collection_info(self.collection.as_str())
            .await
            .map_err(|error| server_error("read the collection", error))?;
        let vectors = info
            .result
            .and_then(|info| info.config)
            .and_then(|config| config.params)
            .and_then(|params| params.vectors_config)
            .and_then(|vectors| vectors.config);
        let incompatible = |reason: String| StoreError::IncompatibleCollection {
            collection: self.collection.clone(),
            reason,
        };
        match vectors {
            Some(VectorsConfig::Params(params)) if params.size == self.dimensions as u64 => Ok(()),
            Some(VectorsConfig::Params(params)) => Err(incompatible(format!(
                "its vectors have {} dimensions, the store needs {}",
                params.size, self.dimensions
            ))),
            Some(VectorsConfig::ParamsMap(_)) => Err(incompatible(
                "it has named vectors; the store needs one unnamed vector".to_owned(),
            )),
            None => Err(incompatible(
                "its vector configuration is unknown".to_owned(),
            )),
        }
    }

    /// Creates the payload indexes; the server accepts a repeated request for an index that
    /// already exists.
    async fn ensure_payload_indexes(&self) -> Result<(), StoreError> {
        let collection = self.collection.as_str();
        for key in payload_key::KEYWORD_INDEXED {
            let params = KeywordIndexParamsBuilder::default()
                // Points of one organization are stored together.
                .is_tenant(key == payload_key::ORG_ID);
            let create =
                CreateFieldIndexCollectionBuilder::new(collection, key, FieldType::Keyword)
                    .field_index_params(params)
                    .wait(true);
            self.client
                .create_field_index(create)
                .await
                .map_err(|error| server_error("create a payload index", error))?;
        }
        for key in payload_key::INTEGER_INDEXED {
            let params = IntegerIndexParamsBuilder::new(false, true);
            let create =
                CreateFieldIndexCollectionBuilder::new(collection, key, FieldType::Integer)
                    .field_index_params(params)
                    .wait(true);
            self.client
                .create_field_index(create)
                .await
                .map_err(|error| server_error("create a payload index", error))?;
        }
        Ok(())
    }

    async fn count_matching(&self, filter: Filter) -> Result<u64, StoreError> {
        let response = self
            .client
            .count(
                CountPointsBuilder::new(self.collection.as_str())
                    .filter(filter)
                    .exact(true),
            )
            .await
            .map_err(|error| server_error("count", error))?;
        Ok(response.result.map_or(0, |result| result.count))
    }

    async fn delete_matching(&self, filter: Filter) -> Result<(), StoreError> {
        self.client
            .delete_points(
                DeletePointsBuilder::new(self.collection.as_str())
                    .points(filter)
                    .wait(true),
            )
            .await
            .map_err(|error| server_error("delete", error))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl VectorStore for ServerStore {
    async fn upsert(&self, point: CachedPoint) -> Result<(), StoreError> {
        check_dimensions(self.dimensions, &point.vector)?;
        self.prepared().await?;
        let upsert =
            UpsertPointsBuilder::new(self.collection.as_str(), vec![to_server_point(point)])
                .wait(true);
        self.client
            .upsert_points(upsert)
            .await
            .map_err(|error| server_error("upsert", error))?;
        Ok(())
    }

    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<ScoredPoint>, StoreError> {
        check_dimensions(self.dimensions, query.vector)?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.prepared().await?;
        let filter = Filter::must([
            Condition::matches(payload_key::ORG_ID, query.org_id.to_owned()),
            Condition::matches(payload_key::PARTITION, query.partition.to_owned()),
            Condition::matches(payload_key::EMBEDDER, query.embedder.to_owned()),
            Condition::range(
                payload_key::EXPIRES_AT_MS,
                Range {
                    // Integer payloads compare as f64: exact for millisecond timestamps.
                    gt: Some(query.now_ms as f64),
                    ..Range::default()
                },
            ),
        ]);
        let request = QueryPointsBuilder::new(self.collection.as_str())
            .query(Query::new_nearest(query.vector.to_vec()))
            .filter(filter)
            .score_threshold(query.min_score)
            .limit(query.limit as u64)
            .with_payload(true)
            .with_vectors(true);
        let response = self
            .client
            .query(request)
            .await
            .map_err(|error| server_error("search", error))?;
        response
            .result
            .into_iter()
            .map(|scored| {
                let point = from_server_record(scored.id, &scored.payload, scored.vectors)?;
                Ok(ScoredPoint {
                    point,
                    score: scored.score,
                })
            })
            .collect()
    }

    async fn prune_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.prepared().await?;
        let expired = Filter::must([Condition::range(
            payload_key::EXPIRES_AT_MS,
            Range {
                lte: Some(now_ms as f64),
                ..Range::default()
            },
        )]);
        // Points matching a fixed `now_ms` only grow if someone writes already-expired
        // points, so the count is what the delete removes.
        let matching = self.count_matching(expired.clone()).await?;
        if matching > 0 {
            self.delete_matching(expired).await?;
        }
        Ok(matching)
    }

    async fn evict_oldest(&self, org_id: &str, keep: u64) -> Result<u64, StoreError> {
        self.prepared().await?;
        let of_org = Filter::must([Condition::matches(payload_key::ORG_ID, org_id.to_owned())]);
        let total = self.count_matching(of_org.clone()).await?;
        let mut excess = total.saturating_sub(keep);
        let mut deleted = 0;
        while excess > 0 {
            let batch = u32::try_from(excess.min(EVICTION_BATCH)).unwrap_or(u32::MAX);
            let scroll = ScrollPointsBuilder::new(self.collection.as_str())
                .filter(of_org.clone())
                .limit(batch)
                .order_by(
                    OrderByBuilder::new(payload_key::CREATED_AT_MS)
                        .direction(Direction::Asc as i32),
                )
                .with_payload(false)
                .with_vectors(false);
            let page = self
                .client
                .scroll(scroll)
                .await
                .map_err(|error| server_error("list the oldest points", error))?;
            let ids: Vec<PointId> = page
                .result
                .into_iter()
                .filter_map(|point| point.id)
                .collect();
            if ids.is_empty() {
                break;
            }
            let found = ids.len() as u64;
            self.client
                .delete_points(
                    DeletePointsBuilder::new(self.collection.as_str())
                        .points(PointsIdsList { ids })
                        .wait(true),
                )
                .await
                .map_err(|error| server_error("delete the oldest points", error))?;
            deleted += found;
            excess = excess.saturating_sub(found);
        }
        Ok(deleted)
    }

    async fn count(&self, org_id: &str) -> Result<u64, StoreError> {
        self.prepared().await?;
        self.count_matching(Filter::must([Condition::matches(
            payload_key::ORG_ID,
            org_id.to_owned(),
        )]))
        .await
    }

    async fn delete_org(&self, org_id: &str) -> Result<u64, StoreError> {
        self.prepared().await?;
        let of_org = Filter::must([Condition::matches(payload_key::ORG_ID, org_id.to_owned())]);
        // A write racing with this call may make the count differ by that write.
        let matching = self.count_matching(of_org.clone()).await?;
        if matching > 0 {
            self.delete_matching(of_org).await?;
        }
        Ok(matching)
    }
}

fn to_server_point(point: CachedPoint) -> PointStruct {
    let payload: HashMap<String, Value> = HashMap::from([
        (payload_key::ORG_ID.to_owned(), Value::from(point.org_id)),
        (
            payload_key::PARTITION.to_owned(),
            Value::from(point.partition),
        ),
        (
            payload_key::EMBEDDER.to_owned(),
            Value::from(point.embedder),
        ),
        (
            payload_key::QUESTION.to_owned(),
            Value::from(point.question),
        ),
        (payload_key::ANSWER.to_owned(), Value::from(point.answer)),
        (
            payload_key::CREATED_AT_MS.to_owned(),
            Value::from(point.created_at_ms),
        ),
        (
            payload_key::EXPIRES_AT_MS.to_owned(),
            Value::from(point.expires_at_ms),
        ),
    ]);
    PointStruct::new(point.id.to_string(), point.vector, Payload::from(payload))
}

fn from_server_record(
    id: Option<PointId>,
    payload: &HashMap<String, Value>,
    vectors: Option<VectorsOutput>,
) -> Result<CachedPoint, StoreError> {
    let malformed = |id: String, reason: &str| StoreError::MalformedPoint {
        id,
        reason: reason.to_owned(),
    };
    let uuid = match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(text)) => uuid::Uuid::parse_str(&text)
            .map_err(|_| malformed(text.clone(), "the id is not a UUID"))?,
        Some(PointIdOptions::Num(number)) => {
            return Err(malformed(
                number.to_string(),
                "the id is a number, not a UUID",
            ));
        }
        None => return Err(malformed(String::new(), "the point has no id")),
    };
    let vector = match vectors.and_then(|vectors| vectors.get_vector()) {
        Some(StoredVector::Dense(dense)) => dense.data,
        _ => return Err(malformed(uuid.to_string(), "no dense vector")),
    };
    point_from_payload(uuid, vector, payload)
}

impl PayloadReader for HashMap<String, Value> {
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str).map(String::as_str)
    }

    fn integer(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_integer)
    }
}

fn server_error(operation: &'static str, error: QdrantError) -> StoreError {
    StoreError::Server {
        operation,
        source: Box::new(error),
    }
}
