//! Where the text is in OpenAI-shaped bodies: a request's messages, prompt or input, and a
//! chat completion's message contents and tool-call arguments. Every string there is text,
//! except the members that name or point at things (roles, ids, tool names, URLs, media).
//! What is skipped is decided by the member's name only, never by what a string says, so that
//! no text can make itself unchecked (a prompt starting `data:` is still a prompt).

use serde_json::{Map, Value};

/// Top-level members of a request whose strings are prompt text.
pub const REQUEST_TEXT: &[&str] = &["messages", "prompt", "input", "instructions"];

/// Members whose strings are not text a person wrote: names, ids, kinds, links and media.
const NOT_TEXT: &[&str] = &[
    "role",
    "type",
    "name",
    "id",
    "tool_call_id",
    "call_id",
    "url",
    "detail",
    "format",
    "file_id",
    "file_data",
    "data",
    "media_type",
    "cache_control",
    "audio",
];

/// Calls `check` on every text string of a request body (an object), replacing those it
/// returns a new value for. Returns whether anything changed.
pub fn rewrite_request<E>(
    body: &mut Map<String, Value>,
    check: &mut impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<bool, E> {
    let mut changed = false;
    for (key, value) in body.iter_mut() {
        if REQUEST_TEXT.contains(&key.as_str()) {
            changed |= rewrite(value, check)?;
        }
    }
    Ok(changed)
}

/// The text strings of a request body, for checks that read it whole (topics, webhooks).
pub fn request_text(body: &Map<String, Value>) -> String {
    let mut text = String::new();
    for (key, value) in body {
        if REQUEST_TEXT.contains(&key.as_str()) {
            collect(value, &mut text);
        }
    }
    text
}

/// Calls `check` on a whole value's text strings (below `NOT_TEXT` members, nothing is text).
pub fn rewrite<E>(
    value: &mut Value,
    check: &mut impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<bool, E> {
    match value {
        Value::String(text) => match check(text)? {
            Some(new) => {
                *text = new;
                Ok(true)
            }
            None => Ok(false),
        },
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= rewrite(item, check)?;
            }
            Ok(changed)
        }
        Value::Object(members) => {
            let mut changed = false;
            for (key, member) in members.iter_mut() {
                // A function's `arguments` are text the model or the user wrote, inside a
                // call whose `name` is not.
                if !NOT_TEXT.contains(&key.as_str()) {
                    changed |= rewrite(member, check)?;
                }
            }
            Ok(changed)
        }
        _ => Ok(false),
    }
}

fn collect(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
        Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
        Value::Object(members) => {
            for (key, member) in members {
                if !NOT_TEXT.contains(&key.as_str()) {
                    collect(member, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_is_visited() {
        let mut body: Map<String, Value> = serde_json::from_str(
            r#"{"model": "m", "user": "u", "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "name": "alice", "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "result"}
            ]}"#,
        )
        .unwrap();
        let mut seen = Vec::new();
        let changed = rewrite_request::<()>(&mut body, &mut |text| {
            seen.push(text.to_owned());
            Ok((text == "hello").then(|| "HELLO".to_owned()))
        })
        .unwrap();
        assert!(changed);
        assert!(
            !seen.iter().any(|t| t.contains("base64")),
            "media is not text"
        );
        assert_eq!(seen, ["sys", "hello", "{\"q\": \"x\"}", "result"]);
        assert_eq!(body["messages"][1]["content"][0]["text"], "HELLO");
        assert_eq!(request_text(&body), "sys\nHELLO\n{\"q\": \"x\"}\nresult");
    }
}
