//! OpenAI's image generation (`POST /v1/images/generations`) and audio transcription
//! (`POST /v1/audio/transcriptions`, a `multipart/form-data` body), and Azure's deployment
//! routes for both, answered in the shapes OpenAI's API reference gives.
//! <https://platform.openai.com/docs/api-reference/images/create>,
//! <https://platform.openai.com/docs/api-reference/audio/createTranscription>
//!
//! gpt-image-* answers carry token `usage`; dall-e-* answers none. Transcription answers carry
//! token usage, except whisper-1's, which reports the audio's duration in seconds; `text`,
//! `srt` and `vtt` answers are the transcript alone. A transcription request is recorded in
//! the stats as JSON naming its parts (the file by its name and size), so that tests can read
//! the model it was sent.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::{self, prompt_tokens};
use crate::behaviour::State;
use crate::http;
use crate::openai::{Dialect, NamesModel, admit, error, injected};
use crate::stats::Route;

#[derive(Deserialize)]
struct ImageRequest<'a> {
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    quality: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
}

impl NamesModel for ImageRequest<'_> {
    fn model(&self) -> &str {
        &self.model
    }
}

/// A 1×1 transparent PNG: what every generated image is.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// `POST /v1/images/generations`.
pub(crate) async fn images(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    serve_images(&state, &req, &body, Dialect::OpenAi, Route::OpenAiImages).await
}

/// `POST /openai/deployments/{deployment}/images/generations`.
pub(crate) async fn azure_images(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let deployment = req.match_info().get("deployment").unwrap_or_default();
    let dialect = Dialect::Azure { deployment };
    serve_images(&state, &req, &body, dialect, Route::AzureImages).await
}

async fn serve_images(
    state: &State,
    req: &HttpRequest,
    body: &Bytes,
    dialect: Dialect<'_>,
    route: Route,
) -> HttpResponse {
    let (request, active, model) =
        match admit::<ImageRequest>(state, req, body, dialect, route).await {
            Ok(admitted) => admitted,
            Err(rejection) => return rejection,
        };
    let Some(prompt) = request.prompt.as_deref() else {
        return missing("prompt");
    };
    let n = request.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return error(
            400,
            &format!("{n} is not in [1, 10] - 'n'"),
            "invalid_request_error",
            Some("n"),
            Some("integer_out_of_range"),
        );
    }
    if let Some(code) = active.injected_failure(&model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }
    let dall_e = model.starts_with("dall-e");
    let b64 = answer::base64(PNG);
    let image = if dall_e && request.response_format.as_deref() != Some("b64_json") {
        json!({"url": format!("https://images.mock.invalid/{}.png", answer::random_id("img-", 24))})
    } else {
        json!({"b64_json": b64})
    };
    let data: Vec<Value> = (0..n).map(|_| image.clone()).collect();
    let mut answer = json!({"created": answer::unix_now(), "data": data});
    if !dall_e {
        let size = request.size.as_deref().unwrap_or("1024x1024");
        let quality = request.quality.as_deref().unwrap_or("medium");
        let text_tokens = prompt_tokens(prompt.chars().count());
        let output_tokens = n * image_tokens(quality, size);
        answer["background"] = json!("opaque");
        answer["output_format"] = json!("png");
        answer["quality"] = json!(quality);
        answer["size"] = json!(size);
        answer["usage"] = json!({
            "input_tokens": text_tokens,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": text_tokens},
            "output_tokens": output_tokens,
            "total_tokens": text_tokens + output_tokens,
        });
    }
    http::json(StatusCode::OK, http::to_json(&answer))
}

/// The output tokens of one gpt-image-1 image by quality and size, from OpenAI's table.
fn image_tokens(quality: &str, size: &str) -> u64 {
    let square = size == "1024x1024";
    match (quality, square) {
        ("low", true) => 272,
        ("low", false) => 408,
        ("high", true) => 4_160,
        ("high", false) => 6_240,
        (_, true) => 1_056,
        (_, false) => 1_584,
    }
}

/// One part of a form.
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    serve_transcription(
        &state,
        &req,
        body,
        Dialect::OpenAi,
        Route::OpenAiTranscriptions,
    )
    .await
}

/// `POST /openai/deployments/{deployment}/audio/transcriptions`.
pub(crate) async fn azure_transcriptions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let deployment = req.match_info().get("deployment").unwrap_or_default();
    let dialect = Dialect::Azure { deployment };
    serve_transcription(&state, &req, body, dialect, Route::AzureTranscriptions).await
}

async fn serve_transcription(
    state: &State,
    req: &HttpRequest,
    body: Bytes,
    dialect: Dialect<'_>,
    route: Route,
) -> HttpResponse {
    let parts = read_form(req, body).await;
    let value = |name: &str| {
        parts.as_ref().ok().and_then(|parts| {
            parts
                .iter()
                .rev()
                .find(|p| p.name == name)
                .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        })
    };
    let file = parts
        .as_ref()
        .ok()
        .and_then(|parts| parts.iter().find(|p| p.name == "file"));
    let record = json!({
        "model": value("model"),
        "parts": parts.as_ref().map_or(Vec::new(), |parts| parts.iter().map(|p| p.name.clone()).collect()),
        "models": parts.as_ref().map_or(Vec::new(), |parts| parts.iter().filter(|p| p.name == "model").map(|p| String::from_utf8_lossy(&p.data).into_owned()).collect()),
        "response_format": value("response_format"),
        "language": value("language"),
        "prompt": value("prompt"),
        "file": file.map(|f| json!({"filename": f.file_name, "content_type": f.content_type, "bytes": f.data.len()})),
    });
    state
        .stats
        .record(route, req, &Bytes::from(http::to_json(&record)));
    let active = state.active();
    let model = match dialect {
        Dialect::Azure { deployment } => deployment.to_owned(),
        Dialect::OpenAi => value("model").unwrap_or_default(),
    };
    active.pause(&model).await;
    if let Some(rejection) = dialect.gatekeep(req, active.key_ok(dialect.key(req))) {
        return rejection;
    }
    if let Err(message) = &parts {
        return error(400, message, "invalid_request_error", None, None);
    }
    if model.is_empty() {
        return missing("model");
    }
    let Some(file) = file else {
        return missing("file");
    };
    if let Some(code) = active.injected_failure(&model, &state.stats) {
        return injected(code, active.config.retry_after_secs);
    }
    let name = file.file_name.as_deref().unwrap_or("audio");
    let text = format!(
        "A transcript of {name}, {} bytes of audio.",
        file.data.len()
    );
    let seconds = (file.data.len() as f64 / 16_000.0).max(0.1);
    match value("response_format").as_deref().unwrap_or("json") {
        "text" => plain(format!("{text}\n")),
        "srt" => plain(format!("1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n")),
        "vtt" => plain(format!(
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n"
        )),
        format => {
            let usage = if model.starts_with("whisper") {
                json!({"type": "duration", "seconds": seconds.ceil() as u64})
            } else {
                let audio_tokens = (file.data.len() as u64).div_ceil(64).max(1);
                let text_tokens = value("prompt").map_or(0, |p| prompt_tokens(p.chars().count()));
                let output_tokens = prompt_tokens(text.chars().count());
                json!({
                    "type": "tokens",
                    "input_tokens": audio_tokens + text_tokens,
                    "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": text_tokens},
                    "output_tokens": output_tokens,
                    "total_tokens": audio_tokens + text_tokens + output_tokens,
                })
            };
            let answer = if format == "verbose_json" {
                json!({"task": "transcribe", "language": value("language").unwrap_or_else(|| "english".into()),
                       "duration": seconds, "text": text, "segments": [], "usage": usage})
            } else {
                json!({"text": text, "usage": usage})
            };
            http::json(StatusCode::OK, http::to_json(&answer))
        }
    }
}

/// The parts of a `multipart/form-data` body, or why it is not one.
async fn read_form(req: &HttpRequest, body: Bytes) -> Result<Vec<Part>, String> {
    let content_type = http::header(req, "content-type").unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| "Invalid Content-Type: expected multipart/form-data".to_owned())?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(|e| e.to_string())?;
        parts.push(Part {
            name,
            file_name,
            content_type,
            data,
        });
    }
    Ok(parts)
}

fn plain(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

fn missing(param: &str) -> HttpResponse {
    error(
        400,
        &format!("Missing required parameter: '{param}'."),
        "invalid_request_error",
        Some(param),
        Some("missing_required_parameter"),
    )
}
