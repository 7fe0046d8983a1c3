//! OpenAI-compatible services that depart from OpenAI's own answers in ways a gateway must
//! handle, each served under `/{service}/v1/chat/completions` (e.g. `/groq/v1`) as an
//! `api_base` of its own. Everything else is OpenAI's format, served by [`crate::openai`].

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, BytesMut};
use serde::Serialize;

use crate::answer;
use crate::behaviour::State;
use crate::openai::{self, Dialect, Usage};

/// How a service's chat completions differ from OpenAI's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quirk {
    /// Groq: a stream's usage rides in its last content chunk as `x_groq.usage` (with Groq's
    /// timings), and `stream_options` is ignored.
    Groq,
    /// DeepSeek: usage reports its context cache as `prompt_cache_hit_tokens` and
    /// `prompt_cache_miss_tokens`, with no `prompt_tokens_details`; the cache works in 64-token
    /// units, so a prompt's whole units count as hits.
    DeepSeek,
    /// Together AI and Fireworks: a stream's usage comes in the chunk that carries the
    /// `finish_reason`, whether asked for or not, and no usage-only chunk follows.
    UsageWithFinish,
    /// Servers that refuse `stream_options` as an unknown argument with a 400, as Azure OpenAI
    /// API versions before 2024-09-01-preview and older self-hosted servers do.
    NoStreamOptions,
}

impl Quirk {
    fn of(service: &str) -> Option<Quirk> {
        Some(match service {
            "groq" => Quirk::Groq,
            "deepseek" => Quirk::DeepSeek,
            "together" => Quirk::UsageWithFinish,
            "no-stream-options" => Quirk::NoStreamOptions,
            _ => return None,
        })
    }

    /// Where a stream's usage goes: `true` when it goes in the finish chunk (as `usage`, or
    /// Groq's `x_groq`) rather than a chunk of its own after it, which only an
    /// `include_usage` request gets.
    pub(crate) fn usage_with_finish(self) -> bool {
        matches!(self, Quirk::Groq | Quirk::UsageWithFinish)
    }

    /// The members added to the finish chunk (each starting with a comma).
    pub(crate) fn finish_members(self, usage: Option<&Usage>, out: &mut BytesMut) {
        let Some(usage) = usage.filter(|_| self.usage_with_finish()) else {
            return;
        };
        match self {
            Quirk::Groq => {
                out.put_slice(b",\"x_groq\":{\"id\":");
                answer::push_json_str(out, &answer::random_id("req_", 26));
                out.put_slice(b",\"usage\":");
                out.put_slice(&serde_json::to_vec(&GroqUsage::of(usage)).unwrap_or_default());
                out.put_u8(b'}');
            }
            _ => {
                out.put_slice(b",\"usage\":");
                out.put_slice(&self.usage_json(usage));
            }
        }
    }

    /// A usage object as this service writes it.
    pub(crate) fn usage_json(self, usage: &Usage) -> Vec<u8> {
        match self {
            Quirk::DeepSeek => {
                let hits = usage.prompt_tokens / 64 * 64;
                serde_json::to_vec(&DeepSeekUsage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                    total_tokens: usage.total_tokens,
                    prompt_cache_hit_tokens: hits,
                    prompt_cache_miss_tokens: usage.prompt_tokens - hits,
                })
            }
            _ => serde_json::to_vec(usage),
        }
        .unwrap_or_default()
    }
}

#[derive(Serialize)]
struct DeepSeekUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_cache_hit_tokens: u64,
    prompt_cache_miss_tokens: u64,
}

/// Groq's usage: OpenAI's counts with the time each phase took, in seconds.
#[derive(Serialize)]
struct GroqUsage {
    queue_time: f64,
    prompt_tokens: u64,
    prompt_time: f64,
    completion_tokens: u64,
    completion_time: f64,
    total_tokens: u64,
    total_time: f64,
}

impl GroqUsage {
    fn of(usage: &Usage) -> GroqUsage {
        GroqUsage {
            queue_time: 0.012,
            prompt_tokens: usage.prompt_tokens,
            prompt_time: 0.004,
            completion_tokens: usage.completion_tokens,
            completion_time: 0.021,
            total_tokens: usage.total_tokens,
            total_time: 0.025,
        }
    }
}

/// `POST /{service}/v1/chat/completions`: OpenAI's chat with the service's quirk; an unknown
/// service is a 404, as a wrong base URL would be.
pub(crate) async fn chat(
    req: HttpRequest,
    service: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    match Quirk::of(&service) {
        Some(quirk) => openai::serve_chat(&state, &req, body, Dialect::OpenAi, Some(quirk)).await,
        None => openai::error(
            404,
            &format!("no OpenAI-compatible service `{service}` here"),
            "invalid_request_error",
            None,
            Some("unknown_url"),
        ),
    }
}
