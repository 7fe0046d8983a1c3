//! What the guardrails stage costs a request, per KB of prompt: the input check (parse,
//! personal data, denied expressions; redaction when there is something to redact) and the
//! answer check, with the policy of the configuration example (`default-pii`).
//!
//! `cargo bench -p tollgate-guardrails --bench stage`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tollgate_common::{GuardrailPolicy, NamedPolicy};
use tollgate_guardrails::Policy;
use tollgate_guardrails::answer::AnswerRules;
use tollgate_guardrails::request::{self, Request};

const POLICY: &str = r#"{
    "input": {"pii": {"email": "redact", "phone": "redact", "credit_card": "block", "secret": "block",
                      "iban": "redact", "ssn": "redact", "ip_address": "log"},
              "deny_regex": ["(?i)internal use only"]},
    "output": {"pii": {"email": "redact", "phone": "redact"}},
    "restore_in_answer": true
}"#;

/// Ordinary prose with the numbers real prompts have (dates, amounts, versions, order ids).
const PROSE: &str = "Our quarterly review on 2026-03-14 covered revenue of $1,284,500 across 37 \
    regions, with order 88412 shipping late and release 4.2.1 fixing the checkout bug. Please \
    summarise the customer feedback below and suggest three improvements for the next sprint, \
    keeping the tone friendly and the answer under two hundred words. ";

fn chat_body(kb: usize, with_entities: bool) -> Vec<u8> {
    let mut text = String::new();
    while text.len() < kb * 1024 {
        text.push_str(PROSE);
    }
    if with_entities {
        text.push_str(
            "Contact ada@example.com or +44 20 7946 0958, IBAN GB82 WEST 1234 5698 7654 32.",
        );
    }
    serde_json::to_vec(&json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a helpful analyst."},
        {"role": "user", "content": text}
    ]}))
    .unwrap()
}

fn policy() -> Arc<Policy> {
    let policy: GuardrailPolicy = serde_json::from_str(POLICY).unwrap();
    Arc::new(Policy::compile([&NamedPolicy {
        name: "default-pii".into(),
        policy,
    }]))
}

fn input(c: &mut Criterion) {
    let policy = policy();
    let mut group = c.benchmark_group("input");
    for (kb, entities) in [(1, false), (1, true), (8, false), (8, true)] {
        let body = chat_body(kb, entities);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let name = format!("{kb}KB{}", if entities { "+pii" } else { "" });
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = Request {
                    model: "gpt-4o",
                    body: black_box(&body),
                    generates: true,
                    max_output_tokens: Some(256),
                };
                request::check(&policy, &request, || 0, false).unwrap()
            })
        });
    }
    group.finish();
}

fn answer(c: &mut Criterion) {
    let policy = policy();
    let mut group = c.benchmark_group("answer");
    let mut text = String::new();
    while text.len() < 1024 {
        text.push_str(PROSE);
    }
    let body = serde_json::to_vec(&json!({"id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}))
    .unwrap();
    let rules = AnswerRules::new(policy, Default::default());
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("1KB whole", |b| {
        b.iter(|| rules.check_completion(black_box(&body)).unwrap())
    });
    group.bench_function("1KB streamed in 8-byte deltas", |b| {
        b.iter(|| {
            let mut stream = rules.stream();
            for piece in text.as_bytes().chunks(8) {
                black_box(stream.push(0, std::str::from_utf8(piece).unwrap()).unwrap());
            }
            black_box(stream.finish(0).unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, input, answer);
criterion_main!(benches);
