//! The pipeline's OpenAI chat answers as Responses API objects: the whole `response`, and the
//! pieces its stream events carry.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::GatewayError;
use crate::openai::response::{ChatCompletion, Usage};

/// An OpenAI `chat.completion` as a `response` object.
pub fn to_response(openai: &[u8]) -> Result<Bytes, GatewayError> {
    let completion: ChatCompletion = serde_json::from_slice(openai)
        .map_err(|e| GatewayError::Internal(format!("an answer is not a chat completion: {e}")))?;
    let id = response_id(&completion.id);
    let mut output = Vec::new();
    let mut finish_reason = None;
    if let Some(choice) = completion.choices.into_iter().next() {
        finish_reason = choice.finish_reason;
        let message = choice.message;
        let mut content = Vec::new();
        if let Some(text) = message.content.filter(|t| !t.is_empty()) {
            content.push(output_text(&text));
        }
        if let Some(refusal) = message.refusal.filter(|t| !t.is_empty()) {
            content.push(json!({"type": "refusal", "refusal": refusal}));
        }
        if !content.is_empty() {
            output.push(message_item(&id, "completed", content));
        }
        for call in message.tool_calls.unwrap_or_default() {
            output.push(function_call_item(
                &call.id,
                &call.function.name,
                &call.function.arguments,
                "completed",
            ));
        }
    }
    let response = response_object(
        &id,
        completion.created,
        &completion.model,
        Status::of(finish_reason.as_deref()),
        output,
        completion.usage,
    );
    Ok(Bytes::from(response.to_string()))
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    InProgress,
    Completed,
    /// Cut by the output limit.
    Incomplete,
}

impl Status {
    pub(super) fn of(finish_reason: Option<&str>) -> Status {
        match finish_reason {
            Some("length") => Status::Incomplete,
            _ => Status::Completed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete => "incomplete",
        }
    }
}

/// Responses ids start with `resp_`.
pub(super) fn response_id(openai_id: &str) -> String {
    let bare = openai_id.strip_prefix("chatcmpl-").unwrap_or(openai_id);
    format!("resp_{bare}")
}

/// The id of the message item of response `id`.
pub(super) fn message_item_id(response_id: &str) -> String {
    format!(
        "msg_{}",
        response_id.strip_prefix("resp_").unwrap_or(response_id)
    )
}

pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

pub(super) fn message_item(response_id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "id": message_item_id(response_id),
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

pub(super) fn function_call_item(
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "type": "function_call",
        "id": format!("fc_{}", call_id.strip_prefix("call_").unwrap_or(call_id)),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// The whole `response` object. Fields the gateway does not track (`tools`, `temperature`...)
/// are given their defaults, as OpenAI's SDKs read every one.
pub(super) fn response_object(
    id: &str,
    created_at: u64,
    model: &str,
    status: Status,
    output: Vec<Value>,
    usage: Option<Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status.as_str(),
        "error": null,
        "incomplete_details": (status == Status::Incomplete)
            .then(|| json!({"reason": "max_output_tokens"})),
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_object),
        "user": null,
        "metadata": {},
    })
}

fn usage_object(usage: Usage) -> Value {
    let tokens = usage.tokens();
    json!({
        "input_tokens": tokens.input_tokens,
        "input_tokens_details": {"cached_tokens": tokens.cached_input_tokens},
        "output_tokens": tokens.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens.input_tokens.saturating_add(tokens.output_tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_becomes_a_response_with_message_and_function_call_items() {
        let openai = json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
        });
        let response: Value =
            serde_json::from_slice(&to_response(openai.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(response["id"], "resp_abc");
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["created_at"], 7);
        assert_eq!(
            response["output"],
            json!([
                {"type": "message", "id": "msg_abc", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather",
                 "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            ])
        );
        assert_eq!(response["usage"]["input_tokens"], 30);
        assert_eq!(response["usage"]["output_tokens"], 7);
        assert_eq!(response["usage"]["total_tokens"], 37);
    }

    #[test]
    fn an_answer_cut_by_the_limit_is_incomplete() {
        let openai = json!({
            "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": "Once upon"}}],
        });
        let response: Value =
            serde_json::from_slice(&to_response(openai.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(response["status"], "incomplete");
        assert_eq!(
            response["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }
}
