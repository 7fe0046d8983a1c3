// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! Webhook guardrails against a real HTTP endpoint on this machine: allow, block, modify,
//! a late answer under each failure policy, and an address the outbound policy refuses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate_common::config::{GuardrailsConfig, OutboundConfig};
use tollgate_common::outbound::OutboundPolicy;
use tollgate_common::{GuardrailPolicy, KeyContext, NamedPolicy, Taken};
use tollgate_guardrails::Guardrails;
use tollgate_guardrails::request::Request;
use tollgate_guardrails::webhook::Call;

/// An endpoint that decides by the prompt: `block`, `modify`, `late` (answers after 2 s),
/// `broken` (not JSON); anything else is allowed.
async fn endpoint() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 8192];
                // Reads until the whole JSON body (by Content-Length) has arrived.
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let body = text.split_once("\r\n\r\n").unwrap().1;
                let answer = if body.contains("late") {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    json!({"action": "allow"}).to_string()
                } else if body.contains("block") {
                    json!({"action": "block", "reason": "not on a Friday"}).to_string()
                } else if body.contains("modify") {
                    json!({"action": "modify", "body": {
                        "model": "sneaky-other-model",
                        "messages": [{"role": "user", "content": "modified by the hook"}]
                    }})
                    .to_string()
                } else if body.contains("broken") {
                    "this is not json".to_owned()
                } else {
                    json!({"action": "allow"}).to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

fn engine(allow_port: Option<u16>) -> Arc<Guardrails> {
    let outbound = OutboundConfig {
        allow_hosts: allow_port
            .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
            .into_iter()
            .collect(),
    };
    Arc::new(
        Guardrails::new(
            &GuardrailsConfig::default(),
            &OutboundPolicy::new(&outbound),
            None,
        )
        .unwrap(),
    )
}

fn key_with(policy: Value) -> KeyContext {
    let policy: GuardrailPolicy = serde_json::from_value(policy).unwrap();
    KeyContext {
        guardrails: Arc::new(tollgate_common::GuardrailLevels::new(vec![NamedPolicy {
            name: "organization".into(),
            policy,
        }])),
        ..KeyContext::default()
    }
}

async fn ask(
    engine: &Guardrails,
    key: &KeyContext,
    prompt: &str,
) -> Result<(Option<Value>, Vec<Taken>), String> {
    let policy = engine.policy(key).unwrap();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]});
    let body = serde_json::to_vec(&body).unwrap();
    let request = Request {
        model: "gpt-4o",
        body: &body,
        generates: true,
        max_output_tokens: None,
    };
    let call = Call {
        request_id: "req-1".into(),
        organization_id: None,
        model: "gpt-4o".into(),
    };
    match engine.check_request(&policy, &request, &call, || 1).await {
        Ok(checked) => Ok((
            checked.body.map(|b| serde_json::from_slice(&b).unwrap()),
            checked.actions.as_slice().iter().map(|a| a.taken).collect(),
        )),
        Err(refused) => Err(format!(
            "{}: {}",
            refused.blocked.rule.label(),
            refused.blocked.reason
        )),
    }
}

#[tokio::test]
async fn the_endpoint_allows_blocks_and_modifies() {
    let port = endpoint().await;
    let engine = engine(Some(port));
    let key = key_with(
        json!({"webhook": {"url": format!("http://127.0.0.1:{port}/check"), "timeout_ms": 500}}),
    );

    let (body, actions) = ask(&engine, &key, "hello").await.unwrap();
    assert!(body.is_none() && actions.is_empty());

    let refused = ask(&engine, &key, "please block this").await.unwrap_err();
    assert_eq!(
        refused,
        "organization/webhook: the organization's check refused it: not on a Friday"
    );

    let (body, actions) = ask(&engine, &key, "please modify this").await.unwrap();
    let body = body.unwrap();
    assert_eq!(body["messages"][0]["content"], "modified by the hook");
    assert_eq!(body["model"], "gpt-4o", "the hook cannot change the model");
    assert_eq!(actions, [Taken::Modified]);
}

#[tokio::test]
async fn a_late_or_broken_endpoint_follows_the_failure_policy() {
    let port = endpoint().await;
    let engine = engine(Some(port));
    let url = format!("http://127.0.0.1:{port}/check");
    let closed =
        key_with(json!({"webhook": {"url": url, "timeout_ms": 200, "on_failure": "closed"}}));
    let open = key_with(json!({"webhook": {"url": url, "timeout_ms": 200, "on_failure": "open"}}));

    let started = std::time::Instant::now();
    let refused = ask(&engine, &closed, "late").await.unwrap_err();
    assert!(refused.contains("could not be reached"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the deadline holds"
    );
    let refused = ask(&engine, &closed, "broken").await.unwrap_err();
    assert!(refused.contains("could not be reached"), "{refused}");

    let (body, actions) = ask(&engine, &open, "late").await.unwrap();
    assert!(body.is_none());
    assert_eq!(actions, [Taken::Flagged]);
}

#[tokio::test]
async fn an_internal_address_is_refused_unless_the_deployment_opens_it() {
    let port = endpoint().await;
    let engine = engine(None);
    let key = key_with(
        json!({"webhook": {"url": format!("http://127.0.0.1:{port}/check"), "on_failure": "closed"}}),
    );
    let refused = ask(&engine, &key, "hello").await.unwrap_err();
    assert!(refused.contains("could not be reached"), "{refused}");
}
