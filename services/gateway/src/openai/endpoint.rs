//! The OpenAI endpoints a body can be sent to, and what each one reads.

/// Which OpenAI endpoint a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    /// The legacy `/v1/completions`, forwarded to OpenAI-format providers only.
    Completions,
    /// `/v1/moderations`, forwarded to OpenAI-format providers only.
    Moderations,
    /// `/v1/images/generations`, forwarded to OpenAI-format providers only.
    ImageGenerations,
    /// `/v1/audio/transcriptions`, a `multipart/form-data` body ([`super::form`]), forwarded to
    /// OpenAI-format providers only.
    AudioTranscriptions,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Completions => "completions",
            Endpoint::Moderations => "moderations",
            Endpoint::ImageGenerations => "image_generations",
            Endpoint::AudioTranscriptions => "audio_transcriptions",
        }
    }

    /// OpenTelemetry's `gen_ai.operation.name`. Its conventions name no operation for
    /// moderations, image generation or transcription; those use the endpoint's own name.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Completions => "text_completion",
            Endpoint::Moderations => "moderations",
            Endpoint::ImageGenerations => "image_generations",
            Endpoint::AudioTranscriptions => "audio_transcriptions",
        }
    }

    /// Its path under `/v1/`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Completions => "completions",
            Endpoint::Moderations => "moderations",
            Endpoint::ImageGenerations => "images/generations",
            Endpoint::AudioTranscriptions => "audio/transcriptions",
        }
    }

    /// Whether the endpoint generates text, and so reads `stream`, `max_tokens` and `n`.
    pub fn generates(self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Completions)
    }

    /// Whether only OpenAI-format targets serve the endpoint, which get the client's body
    /// with `model` swapped and whose answers go back as they came.
    pub fn passes_through(self) -> bool {
        !matches!(self, Endpoint::ChatCompletions | Endpoint::Embeddings)
    }

    /// The member a body must have besides `model`.
    pub(super) fn required(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "messages",
            Endpoint::Completions | Endpoint::ImageGenerations => "prompt",
            Endpoint::Embeddings | Endpoint::Moderations => "input",
            Endpoint::AudioTranscriptions => "file",
        }
    }
}
