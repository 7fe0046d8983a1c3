//! Request counters and the record of the most recent provider request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A point-in-time copy of the mock's counters and last request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Every request to a provider route.
    pub requests: u64,
    /// Requests per route, keyed like "openai.chat" or "gemini.stream".
    pub by_route: BTreeMap<String, u64>,
    /// Requests answered with an injected failure (failure_rate, fail_first, mock-error-* models).
    pub failures_injected: u64,
    /// Streamed responses handed to the server.
    pub streams_started: u64,
    /// Streams whose last byte was produced and handed to the server.
    pub streams_completed: u64,
    /// Streams dropped before their end because the client went away.
    pub streams_cancelled: u64,
    /// JSON body of the most recent provider request; for a `multipart/form-data` one (audio
    /// transcriptions), JSON naming its parts, its `model` and its file's name and size.
    pub last_request: Option<serde_json::Value>,
    /// Headers of the most recent provider request, lower-case names.
    pub last_headers: BTreeMap<String, String>,
    /// Path and query of the most recent provider request.
    pub last_path_and_query: Option<String>,
}

/// The provider routes that are counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    OpenAiChat,
    OpenAiEmbeddings,
    OpenAiModels,
    AzureChat,
    AzureEmbeddings,
    AnthropicMessages,
    GeminiGenerate,
    GeminiStream,
    GeminiEmbed,
    BedrockConverse,
    BedrockConverseStream,
    OpenAiCompletions,
    OpenAiModerations,
    VertexToken,
    VertexEmbed,
    MistralChat,
    MistralEmbeddings,
    CohereChat,
    CohereEmbed,
    OpenAiResponses,

    OpenAiImages,
    OpenAiTranscriptions,
    AzureImages,
    AzureTranscriptions,
}

impl Route {
    const ALL: [Route; 24] = [
        Route::OpenAiChat,
        Route::OpenAiEmbeddings,
        Route::OpenAiModels,
        Route::AzureChat,
        Route::AzureEmbeddings,
        Route::AnthropicMessages,
        Route::GeminiGenerate,
        Route::GeminiStream,
        Route::GeminiEmbed,
        Route::BedrockConverse,
        Route::BedrockConverseStream,
        Route::OpenAiCompletions,
        Route::OpenAiModerations,
        Route::VertexToken,
        Route::VertexEmbed,
        Route::MistralChat,
        Route::MistralEmbeddings,
        Route::CohereChat,
        Route::CohereEmbed,
        Route::OpenAiResponses,
        Route::OpenAiImages,
        Route::OpenAiTranscriptions,
        Route::AzureImages,
        Route::AzureTranscriptions,
    ];

    fn key(self) -> &'static str {
        match self {
            Route::OpenAiChat => "openai.chat",
            Route::OpenAiEmbeddings => "openai.embeddings",
            Route::OpenAiModels => "openai.models",
            Route::AzureChat => "azure.chat",
            Route::AzureEmbeddings => "azure.embeddings",
            Route::AnthropicMessages => "anthropic.messages",
            Route::GeminiGenerate => "gemini.generate",
            Route::GeminiStream => "gemini.stream",
            Route::GeminiEmbed => "gemini.embed",
            Route::BedrockConverse => "bedrock.converse",
            Route::BedrockConverseStream => "bedrock.converse_stream",
            Route::OpenAiCompletions => "openai.completions",
            Route::OpenAiModerations => "openai.moderations",
            Route::VertexToken => "vertex.token",
            Route::VertexEmbed => "vertex.embed",
            Route::MistralChat => "mistral.chat",
            Route::MistralEmbeddings => "mistral.embeddings",
            Route::CohereChat => "cohere.chat",
            Route::CohereEmbed => "cohere.embed",
            Route::OpenAiResponses => "openai.responses",
            Route::OpenAiImages => "openai.images",
            Route::OpenAiTranscriptions => "openai.transcriptions",
            Route::AzureImages => "azure.images",
            Route::AzureTranscriptions => "azure.transcriptions",
        }
    }
}

#[derive(Default)]
struct LastRequest {
    seen: bool,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    path_and_query: String,
}

/// Live counters shared by all workers.
#[derive(Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    by_route: [AtomicU64; Route::ALL.len()],
    failures_injected: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
    last: Mutex<LastRequest>,
}

impl Stats {
    /// Counts a provider request and remembers it; body bytes and header values are
    /// reference-counted, so this copies no payload.
    pub fn record(&self, route: Route, req: &HttpRequest, body: &Bytes) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.by_route[route as usize].fetch_add(1, Ordering::Relaxed);
        let old_body;
        {
            let mut last = self.last();
            last.seen = true;
            old_body = std::mem::replace(&mut last.body, body.clone());
            last.headers.clear();
            last.headers.extend(
                req.headers()
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
            last.path_and_query.clear();
            match req.uri().path_and_query() {
                Some(pq) => last.path_and_query.push_str(pq.as_str()),
                None => last.path_and_query.push_str(req.uri().path()),
            }
        }
        // Freeing the previous body outside the lock keeps the critical section short.
        drop(old_body);
    }

    pub fn failure_injected(&self) {
        self.failures_injected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_started(&self) {
        self.streams_started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_completed(&self) {
        self.streams_completed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_cancelled(&self) {
        self.streams_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    fn last(&self) -> MutexGuard<'_, LastRequest> {
        // A poisoned lock only means a panic elsewhere; the record itself is still usable.
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Copies the counters and parses the last body, which is deferred to here to keep
    /// request handling cheap.
    pub fn snapshot(&self) -> StatsSnapshot {
        let (seen, body, headers, path_and_query) = {
            let last = self.last();
            (
                last.seen,
                last.body.clone(),
                last.headers.clone(),
                last.path_and_query.clone(),
            )
        };
        let mut last_headers = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            last_headers
                .entry(name.as_str().to_owned())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            by_route: Route::ALL
                .iter()
                .map(|r| {
                    (
                        r.key().to_owned(),
                        self.by_route[*r as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            failures_injected: self.failures_injected.load(Ordering::Relaxed),
            streams_started: self.streams_started.load(Ordering::Relaxed),
            streams_completed: self.streams_completed.load(Ordering::Relaxed),
            streams_cancelled: self.streams_cancelled.load(Ordering::Relaxed),
            last_request: if body.is_empty() {
                None
            } else {
                serde_json::from_slice(&body).ok()
            },
            last_headers,
            last_path_and_query: seen.then_some(path_and_query),
        }
    }

    /// Zeroes every counter and forgets the last request.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        for counter in &self.by_route {
            counter.store(0, Ordering::Relaxed);
        }
        self.failures_injected.store(0, Ordering::Relaxed);
        self.streams_started.store(0, Ordering::Relaxed);
        self.streams_completed.store(0, Ordering::Relaxed);
        self.streams_cancelled.store(0, Ordering::Relaxed);
        let old = std::mem::take(&mut *self.last());
        drop(old);
    }
}
