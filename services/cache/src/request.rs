//! The cache's rules for a request: its exact key, partition and question (what changes the
//! answer, and what can be matched by meaning), the per-request controls within a key's
//! policy and the deployment's mode, and which answers may be kept. The gateway's cache stage
//! and a split deployment apply the same rules.

use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, HeaderMap};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_common::{CachePolicy, CachePolicyMode, CacheShare, KeyContext};

use crate::answers::{CacheMode, CacheRequest};

/// The request header that narrows the cache (`off`, `exact`, `semantic`), and the answer
/// header that says what it did.
pub const X_TOLLGATE_CACHE: &str = "x-tollgate-cache";
/// The request header that sets the TTL of the answer it stores, in seconds.
pub const X_TOLLGATE_CACHE_TTL: &str = "x-tollgate-cache-ttl";

/// The longest TTL a request may ask for: thirty days.
const MAX_TTL_SECS: u64 = CachePolicy::MAX_TTL_SECS;

/// Fields that do not change the answer, left out of both hashes.
const NOT_ANSWER_CHANGING: [&str; 6] = [
    "user",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "service_tier",
];

/// What one request asks of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    pub mode: CacheMode,
    /// Whether a stored answer may be served (`Cache-Control: no-cache` says no).
    pub read: bool,
    /// Whether the answer may be stored (`Cache-Control: no-store` says no).
    pub write: bool,
    pub ttl: Duration,
}

/// A cache header the request got wrong: a client error naming the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidControl {
    pub header: &'static str,
    pub message: String,
}

/// The per-request controls (`x-tollgate-cache`, `Cache-Control`, `x-tollgate-cache-ttl`)
/// within the key's defaults: mode, read, write, TTL.
pub fn controls(
    headers: &HeaderMap,
    default_mode: CacheMode,
    default_ttl: Duration,
) -> Result<Controls, InvalidControl> {
    let mut mode = default_mode;
    if let Some(value) = headers.get(X_TOLLGATE_CACHE) {
        let asked = value
            .to_str()
            .ok()
            .and_then(CacheMode::parse)
            .ok_or_else(|| InvalidControl {
                header: "x-tollgate-cache",
                message: "`x-tollgate-cache` must be off, exact or semantic.".into(),
            })?;
        // A request may narrow its key's cache, never widen it.
        mode = narrower(default_mode, asked);
    }
    let directives = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let directive = |name: &str| directives.split(',').any(|d| d.trim() == name);
    let no_store = directive("no-store");
    let read = !no_store && !directive("no-cache");
    let mut ttl = default_ttl;
    if let Some(value) = headers.get(X_TOLLGATE_CACHE_TTL) {
        let secs = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| (1..=MAX_TTL_SECS).contains(s))
            .ok_or_else(|| InvalidControl {
                header: X_TOLLGATE_CACHE_TTL,
                message: format!(
                    "`{X_TOLLGATE_CACHE_TTL}` must be a number of seconds from 1 to {MAX_TTL_SECS}."
                ),
            })?;
        ttl = Duration::from_secs(secs);
    }
    Ok(Controls {
        mode,
        read,
        write: !no_store,
        ttl,
    })
}

/// A key's defaults: its (merged) policy within the deployment's mode, which no policy lifts.
pub fn key_defaults(
    policy: &CachePolicy,
    deployment_mode: CacheMode,
    deployment_ttl: Duration,
) -> (CacheMode, Duration) {
    let mode = match policy.mode {
        None => deployment_mode,
        Some(CachePolicyMode::Off) => CacheMode::Off,
        Some(CachePolicyMode::Exact) => narrower(CacheMode::Exact, deployment_mode),
        Some(CachePolicyMode::Semantic) => deployment_mode,
    };
    let ttl = policy.ttl_secs.map_or(deployment_ttl, Duration::from_secs);
    (mode, ttl)
}

/// The narrower of two modes.
fn narrower(a: CacheMode, b: CacheMode) -> CacheMode {
    match (a, b) {
        (CacheMode::Off, _) | (_, CacheMode::Off) => CacheMode::Off,
        (CacheMode::Exact, _) | (_, CacheMode::Exact) => CacheMode::Exact,
        _ => CacheMode::Semantic,
    }
}

/// A chat request in the cache's terms, for `key` asking `model` with the request body `raw`;
/// `None` when it cannot be cached at all (no organization, or not a chat request the cache
/// can read). Answers a team shares only among itself are kept apart from the rest of the
/// organization's. The controls are the caller's to set.
pub fn chat_request(key: &KeyContext, model: &str, raw: &[u8]) -> Option<CacheRequest> {
    let org = key.org_id?;
    let scope = match (key.cache.share, key.team_id) {
        (Some(CacheShare::Team), Some(team)) => format!("team:{team}"),
        _ => String::new(),
    };
    let (exact_key, partition, question) = request_hashes(&scope, model, raw)?;
    Some(CacheRequest {
        org_id: org.to_string(),
        exact_key,
        partition,
        question,
        mode: CacheMode::Off,
        read: false,
        write: false,
        ttl: Duration::ZERO,
    })
}

/// Whether an answer may be kept, and whether by meaning too: complete answers only
/// (`finish_reason: length` is cut short), and tool calls by exact match only.
pub fn storable(answer: &[u8]) -> Option<bool> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    let choices = answer["choices"].as_array()?;
    if choices.is_empty() {
        return None;
    }
    let mut semantic = true;
    for choice in choices {
        match choice["finish_reason"].as_str() {
            Some("stop") => {}
            Some("tool_calls" | "function_call") => semantic = false,
            _ => return None,
        }
        if choice["message"]
            .get("tool_calls")
            .is_some_and(|t| !t.is_null())
        {
            semantic = false;
        }
    }
    Some(semantic)
}

/// A chat request's exact key (everything that changes the answer), partition (all of that
/// but the last turn) and question (the last user turn in plain text, when the request can be
/// matched by meaning at all). `scope` and `model` are hashed in with both.
fn request_hashes(
    scope: &str,
    model: &str,
    raw: &[u8],
) -> Option<(String, String, Option<String>)> {
    let mut request: Value = serde_json::from_slice(raw).ok()?;
    let object = request.as_object_mut()?;
    for field in NOT_ANSWER_CHANGING {
        object.remove(field);
    }
    let request = sorted(request);
    let canonical = serde_json::to_vec(&request).ok()?;
    let exact_key = hex_sha256(&[scope.as_bytes(), model.as_bytes(), &canonical]);
    let mut rest = request;
    let declares_tools = rest.get("tools").is_some() || rest.get("functions").is_some();
    let messages = rest.get_mut("messages")?.as_array_mut()?;
    let last = messages.pop()?;
    let tools = declares_tools
        || messages
            .iter()
            .any(|m| m.get("tool_calls").is_some() || m["role"] == "tool");
    // A question matched by meaning is the user's last turn, in plain text; anything with tools
    // is matched exactly or not at all.
    let question = match (last["role"].as_str(), tools) {
        (Some("user"), false) => text_of(&last["content"]),
        _ => None,
    };
    // Everything but the last turn: model, parameters, system prompt and earlier turns.
    let context = serde_json::to_vec(&rest).ok()?;
    let partition = hex_sha256(&[scope.as_bytes(), model.as_bytes(), &context]);
    Some((exact_key, partition, question))
}

/// The value with every object's keys in sorted order. serde_json keeps insertion order when
/// any dependency enables its `preserve_order` feature (qdrant-edge does), so without this the
/// same request with its fields in another order would hash differently.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(String, Value)> = map.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(fields.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The text of a message's content: a string, or the text parts of a list.
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                    (Some("text"), Some(text)) => Some(text),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            Some(texts.join("\n"))
        }
        _ => None,
    }
}

/// SHA-256 of the parts, each prefixed with its length so that no two lists of parts hash alike.
fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use tollgate_common::{OrgId, TeamId};

    use super::*;

    #[test]
    fn only_complete_answers_are_kept_and_tool_calls_only_exactly() {
        let answer = |finish: &str| {
            format!(r#"{{"choices":[{{"message":{{"content":"x"}},"finish_reason":"{finish}"}}]}}"#)
        };
        assert_eq!(storable(answer("stop").as_bytes()), Some(true));
        assert_eq!(storable(answer("length").as_bytes()), None);
        assert_eq!(storable(answer("content_filter").as_bytes()), None);
        assert_eq!(storable(answer("tool_calls").as_bytes()), Some(false));
        assert_eq!(storable(b"{\"error\":{}}"), None);
    }

    #[test]
    fn field_order_and_non_answer_fields_do_not_change_the_hashes() {
        let one = br#"{"model":"m","stream":false,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi?"}],"temperature":0,"response_format":{"type":"text","x":1}}"#;
        let other = br#"{"temperature":0,"response_format":{"x":1,"type":"text"},"messages":[{"content":"Be brief.","role":"system"},{"content":"Hi?","role":"user"}],"user":"u-1","model":"m"}"#;
        let (a, b) = (
            request_hashes("", "m", one).unwrap_or_else(|| panic!("hashes")),
            request_hashes("", "m", other).unwrap_or_else(|| panic!("hashes")),
        );
        assert_eq!(a, b);
        assert_eq!(a.2.as_deref(), Some("Hi?"));
        // what changes the answer changes the hashes; the scope keeps teams apart
        let warmer = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi?"}],"temperature":1,"response_format":{"type":"text","x":1}}"#;
        let warm = request_hashes("", "m", warmer).unwrap_or_else(|| panic!("hashes"));
        assert_ne!((&warm.0, &warm.1), (&a.0, &a.1));
        let team = request_hashes("team:t1", "m", one).unwrap_or_else(|| panic!("hashes"));
        assert_ne!((&team.0, &team.1), (&a.0, &a.1));
        // a different question in the same context shares the partition only
        let reworded = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],"temperature":0,"response_format":{"type":"text","x":1}}"#;
        let reworded = request_hashes("", "m", reworded).unwrap_or_else(|| panic!("hashes"));
        assert_ne!(reworded.0, a.0);
        assert_eq!(reworded.1, a.1);
    }

    #[test]
    fn key_policies_choose_within_the_deployment_mode() {
        let hour = Duration::from_secs(3600);
        let policy = |mode, ttl_secs| CachePolicy {
            mode,
            ttl_secs,
            share: None,
        };
        assert_eq!(
            key_defaults(&CachePolicy::default(), CacheMode::Semantic, hour),
            (CacheMode::Semantic, hour)
        );
        assert_eq!(
            key_defaults(
                &policy(Some(CachePolicyMode::Exact), Some(60)),
                CacheMode::Semantic,
                hour
            ),
            (CacheMode::Exact, Duration::from_secs(60))
        );
        assert_eq!(
            key_defaults(
                &policy(Some(CachePolicyMode::Off), None),
                CacheMode::Semantic,
                hour
            )
            .0,
            CacheMode::Off
        );
        assert_eq!(
            key_defaults(
                &policy(Some(CachePolicyMode::Semantic), None),
                CacheMode::Exact,
                hour
            )
            .0,
            CacheMode::Exact,
            "a policy never lifts the deployment's mode"
        );
    }

    #[test]
    fn requests_narrow_the_deployment_cache_and_bad_headers_are_client_errors() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(X_TOLLGATE_CACHE),
            HeaderValue::from_static("exact"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let asked = controls(&headers, CacheMode::Semantic, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (asked.mode, asked.read, asked.write),
            (CacheMode::Exact, false, true)
        );
        let asked = controls(&headers, CacheMode::Off, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(asked.mode, CacheMode::Off, "never widened");
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let asked = controls(&headers, CacheMode::Semantic, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((asked.read, asked.write), (false, false));
        for (name, value) in [
            ("x-tollgate-cache", "sometimes"),
            ("x-tollgate-cache-ttl", "0"),
            ("x-tollgate-cache-ttl", "soon"),
        ] {
            let mut bad = HeaderMap::new();
            bad.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            assert!(
                matches!(
                    controls(&bad, CacheMode::Semantic, Duration::from_secs(1)),
                    Err(InvalidControl { header, .. }) if header == name
                ),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn a_team_that_keeps_its_answers_to_itself_gets_its_own_keys() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"Hi?"}]}"#;
        let mut key = KeyContext {
            org_id: Some(OrgId::generate()),
            team_id: Some(TeamId::generate()),
            ..KeyContext::default()
        };
        let shared = chat_request(&key, "m", body).unwrap_or_else(|| panic!("cacheable"));
        key.cache.share = Some(CacheShare::Team);
        let own = chat_request(&key, "m", body).unwrap_or_else(|| panic!("cacheable"));
        assert_ne!(shared.exact_key, own.exact_key);
        assert_ne!(shared.partition, own.partition);
        assert_eq!(shared.org_id, own.org_id);
        assert!(
            chat_request(&KeyContext::default(), "m", body).is_none(),
            "no organization"
        );
        assert!(
            chat_request(&key, "m", b"[1, 2]").is_none(),
            "not a chat request"
        );
    }
}
