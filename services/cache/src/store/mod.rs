//! Vector stores: embedded Qdrant and a Qdrant server, behind one trait.
//!
//! The semantic tier keeps one point per cached answer: the embedding of the question plus a
//! payload (tenant, partition, embedder, question, answer, timestamps). A lookup asks for the
//! nearest unexpired point of one organization, in one partition, made by one embedder, above
//! a cosine-similarity threshold. Every search is filtered by organization: tenants never see
//! each other's answers, even when their questions and partitions are identical.
//!
//! Two implementations share the payload layout in [`payload_key`]:
//! - [`EmbeddedStore`]: `qdrant-edge` in this process, persisted in a directory (the default);
//! - [`ServerStore`]: a Qdrant server over gRPC, for deployments with several gateway replicas.
//!
//! Both run the same conformance suite (`tests/store.rs`).

mod embedded;
mod server;

pub use embedded::EmbeddedStore;
pub use server::{ServerStore, ServerStoreConfig};

/// One cached answer as the vector store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedPoint {
    /// Point id; upserting the same id replaces the point.
    pub id: uuid::Uuid,
    /// The embedding of the question, L2-normalised.
    pub vector: Vec<f32>,
    /// Tenant: every search is filtered by it.
    pub org_id: String,
    /// Model group + answer-changing parameters + conversation context, hashed.
    pub partition: String,
    /// The embedder's name; vectors of different embedders never mix.
    pub embedder: String,
    /// The question text, for the near-miss guard.
    pub question: String,
    /// The cached response body (JSON text).
    pub answer: String,
    /// When the answer was cached, in Unix milliseconds; eviction removes the oldest first.
    pub created_at_ms: i64,
    /// When the answer stops being served, in Unix milliseconds.
    pub expires_at_ms: i64,
}

/// A point found by a search, with its cosine similarity to the query vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    /// The stored point.
    pub point: CachedPoint,
    /// Cosine similarity to the query, in [-1, 1]; higher is closer.
    pub score: f32,
}

/// What a semantic lookup asks the store for.
#[derive(Debug, Clone, Copy)]
pub struct SearchQuery<'a> {
    /// Only points of this organization are considered.
    pub org_id: &'a str,
    /// Only points of this partition are considered.
    pub partition: &'a str,
    /// Only points made by this embedder are considered.
    pub embedder: &'a str,
    /// The embedding of the new question, L2-normalised.
    pub vector: &'a [f32],
    /// Only points whose cosine similarity exceeds this are returned.
    pub min_score: f32,
    /// Points with `expires_at_ms <= now_ms` are expired and never returned.
    pub now_ms: i64,
    /// At most this many points are returned.
    pub limit: usize,
}

/// Why a vector store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A vector's length differs from the store's dimension (a different embedder, or a
    /// store created for another model).
    #[error("vector has {actual} dimensions, the store holds {expected}")]
    DimensionMismatch { expected: usize, actual: usize },
    /// The embedded store's directory could not be prepared or locked.
    #[error("cannot open the embedded vector store at {path}: {reason}")]
    Open { path: String, reason: String },
    /// Another store (in this or another process) already has the directory open.
    #[error("the embedded vector store at {path} is already open elsewhere")]
    AlreadyOpen { path: String },
    /// An operation of the embedded engine (`qdrant-edge`) failed.
    #[error("embedded vector store: {operation} failed: {message}")]
    Embedded {
        operation: &'static str,
        message: String,
    },
    /// The engine call could not finish on its blocking thread (it panicked or was cancelled).
    #[error("embedded vector store: {operation} did not complete: {message}")]
    Interrupted {
        operation: &'static str,
        message: String,
    },
    /// A call to the Qdrant server failed (unreachable, refused, timed out, or an error).
    #[error("Qdrant server: {operation} failed: {source}")]
    Server {
        operation: &'static str,
        #[source]
        source: Box<qdrant_client::QdrantError>,
    },
    /// The server's collection exists but cannot hold this store's vectors.
    #[error("Qdrant collection {collection} is unusable: {reason}")]
    IncompatibleCollection { collection: String, reason: String },
    /// A stored point lacks a payload field or has one of the wrong type.
    #[error("stored point {id} is malformed: {reason}")]
    MalformedPoint { id: String, reason: String },
}

impl StoreError {
    /// A low-cardinality name for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::Open { .. } => "open",
            Self::AlreadyOpen { .. } => "already_open",
            Self::Embedded { .. } => "embedded",
            Self::Interrupted { .. } => "interrupted",
            Self::Server { .. } => "server",
            Self::IncompatibleCollection { .. } => "incompatible_collection",
            Self::MalformedPoint { .. } => "malformed_point",
        }
    }
}

/// Stores cached answers as vectors and finds the nearest one; implemented by every store.
#[async_trait::async_trait]
pub trait VectorStore: Send + Sync {
    /// Adds or replaces a point.
    async fn upsert(&self, point: CachedPoint) -> Result<(), StoreError>;
    /// The nearest unexpired points matching `query`, best first, each scoring above
    /// `min_score`.
    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<ScoredPoint>, StoreError>;
    /// Deletes every point with `expires_at_ms <= now_ms`; returns how many.
    async fn prune_expired(&self, now_ms: i64) -> Result<u64, StoreError>;
    /// Keeps the newest `keep` points of `org_id`, deleting the oldest beyond; returns how many
    /// were deleted.
    async fn evict_oldest(&self, org_id: &str, keep: u64) -> Result<u64, StoreError>;
    /// How many points `org_id` has, expired or not.
    async fn count(&self, org_id: &str) -> Result<u64, StoreError>;
    /// Deletes every point of `org_id`; returns how many.
    async fn delete_org(&self, org_id: &str) -> Result<u64, StoreError>;
    /// Reclaims what deletions left behind; returns whether it changed anything. A Qdrant
    /// server does this by itself, so by default nothing happens.
    async fn optimize(&self) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// Payload field names, shared by both stores so that their data has one shape.
pub mod payload_key {
    /// Keyword, indexed (tenant index): the organization.
    pub const ORG_ID: &str = "org_id";
    /// Keyword, indexed: the partition hash.
    pub const PARTITION: &str = "partition";
    /// Keyword, indexed: the embedder's name.
    pub const EMBEDDER: &str = "embedder";
    /// Text, not indexed: the question.
    pub const QUESTION: &str = "question";
    /// Text, not indexed: the cached response body.
    pub const ANSWER: &str = "answer";
    /// Integer, indexed for ranges and ordering: creation time, Unix ms.
    pub const CREATED_AT_MS: &str = "created_at_ms";
    /// Integer, indexed for ranges: expiry time, Unix ms.
    pub const EXPIRES_AT_MS: &str = "expires_at_ms";

    /// Fields searched by exact match; `ORG_ID` comes first and is the tenant field.
    pub const KEYWORD_INDEXED: [&str; 3] = [ORG_ID, PARTITION, EMBEDDER];
    /// Fields filtered by range or used for ordering.
    pub const INTEGER_INDEXED: [&str; 2] = [CREATED_AT_MS, EXPIRES_AT_MS];
}

/// How many point ids one eviction round collects and deletes; bounds memory per round.
const EVICTION_BATCH: u64 = 10_000;

/// Fails unless `vector` has the store's dimension.
fn check_dimensions(expected: usize, vector: &[f32]) -> Result<(), StoreError> {
    if vector.len() == expected {
        Ok(())
    } else {
        Err(StoreError::DimensionMismatch {
            expected,
            actual: vector.len(),
        })
    }
}

/// Read access to a stored payload, whatever the store's value type.
trait PayloadReader {
    /// The string at `key`, if present and a string.
    fn text(&self, key: &str) -> Option<&str>;
    /// The integer at `key`, if present and an integer.
    fn integer(&self, key: &str) -> Option<i64>;
}

/// Rebuilds a point from its id, vector and payload (the layout in [`payload_key`]).
fn point_from_payload(
    id: uuid::Uuid,
    vector: Vec<f32>,
    payload: &impl PayloadReader,
) -> Result<CachedPoint, StoreError> {
    let text = |key: &str| {
        payload
            .text(key)
            .map(str::to_owned)
            .ok_or_else(|| missing_field(id, key, "string"))
    };
    let integer = |key: &str| {
        payload
            .integer(key)
            .ok_or_else(|| missing_field(id, key, "integer"))
    };
    Ok(CachedPoint {
        id,
        vector,
        org_id: text(payload_key::ORG_ID)?,
        partition: text(payload_key::PARTITION)?,
        embedder: text(payload_key::EMBEDDER)?,
        question: text(payload_key::QUESTION)?,
        answer: text(payload_key::ANSWER)?,
        created_at_ms: integer(payload_key::CREATED_AT_MS)?,
        expires_at_ms: integer(payload_key::EXPIRES_AT_MS)?,
    })
}

fn missing_field(id: uuid::Uuid, key: &str, expected: &str) -> StoreError {
    StoreError::MalformedPoint {
        id: id.to_string(),
        reason: format!("payload field {key:?} is missing or not a {expected}"),
    }
}
