use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;

use super::*;
use crate::fallback::OnRedisFailure;
use crate::script::{Bucket, Charge};
use crate::test_redis::redis_at;

fn redis() -> ConnectionManager {
    redis_at("redis://127.0.0.1:6379", Duration::from_millis(300))
}

/// A gate on the local Redis (`shared`) or in process only.
fn gate(shared: bool) -> AdmissionGate {
    let conn = shared.then(redis);
    AdmissionGate::new(
        Arc::new(RateLimiter::new(conn.clone(), OnRedisFailure::Local)),
        Arc::new(BudgetCounters::new(conn, OnRedisFailure::Local)),
    )
}

fn unique(name: &str) -> String {
    format!("tollgate:test:admission:{name}:{}", uuid::Uuid::now_v7())
}

fn bucket(key: &str, limit: u64, cost: u64) -> Bucket {
    Bucket {
        key: key.to_owned(),
        limit,
        cost,
    }
}

fn charge(counter: &str, limit: i64) -> Charge {
    Charge {
        counter: counter.to_owned(),
        limit,
        baseline: 0,
        ttl_secs: Some(600),
    }
}

async fn admit(
    gate: &AdmissionGate,
    buckets: &[Bucket],
    charges: &[Charge],
    amount: i64,
) -> Verdict {
    let id = uuid::Uuid::now_v7().to_string();
    gate.admit(AdmissionRequest {
        id: &id,
        buckets,
        charges,
        amount,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Requests left in a bucket, by asking for nothing more.
async fn remaining(gate: &AdmissionGate, key: &str, limit: u64) -> u64 {
    match admit(gate, &[bucket(key, limit, 0)], &[], 0).await {
        Verdict::Admitted { decision, .. } => decision.states[0].remaining,
        other => panic!("{other:?}"),
    }
}

async fn reserved(gate: &AdmissionGate, counter: &str) -> i64 {
    gate.budgets().read(counter).await.map_or(0, |(_, r)| r)
}

/// Whatever refuses a request, nothing is charged; when all have room, all are.
async fn everything_or_nothing_is_charged(gate: AdmissionGate) {
    let rpm = unique("rpm");
    let counter = unique("budget");

    // admitted: one request in the window, 300 nanodollars reserved
    let verdict = admit(
        &gate,
        &[bucket(&rpm, 2, 1)],
        &[charge(&counter, 1_000)],
        300,
    )
    .await;
    assert!(
        matches!(
            verdict,
            Verdict::Admitted {
                budgets: Some(_),
                ..
            }
        ),
        "{verdict:?}"
    );
    assert_eq!(remaining(&gate, &rpm, 2).await, 1);
    assert_eq!(reserved(&gate, &counter).await, 300);

    // over budget: the rate limit keeps its last request
    let verdict = admit(
        &gate,
        &[bucket(&rpm, 2, 1)],
        &[charge(&counter, 1_000)],
        800,
    )
    .await;
    match verdict {
        Verdict::OverBudget {
            index,
            spent,
            reserved,
            ..
        } => assert_eq!((index, spent, reserved), (0, 0, 300)),
        other => panic!("{other:?}"),
    }
    // (the process's own windows give back in the background)
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(remaining(&gate, &rpm, 2).await, 1);

    // fill the window, then a rate-limit refusal reserves nothing
    admit(&gate, &[bucket(&rpm, 2, 1)], &[], 0).await;
    let verdict = admit(
        &gate,
        &[bucket(&rpm, 2, 1)],
        &[charge(&counter, 1_000)],
        100,
    )
    .await;
    match verdict {
        Verdict::Limited { decision } => {
            assert_eq!(decision.denied_by, Some(0));
            assert!(decision.retry_after_ms > 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reserved(&gate, &counter).await, 300);
}

#[tokio::test]
async fn with_redis_everything_or_nothing_is_charged() {
    everything_or_nothing_is_charged(gate(true)).await;
}

#[tokio::test]
async fn in_process_everything_or_nothing_is_charged() {
    everything_or_nothing_is_charged(gate(false)).await;
}

/// 200 requests at two replicas sharing Redis: exactly as many as the budget holds are
/// admitted, and exactly those count against the rate limit.
#[tokio::test]
async fn replicas_admit_exactly_what_fits_in_one_step() {
    let (a, b) = (Arc::new(gate(true)), Arc::new(gate(true)));
    let rpm = unique("race-rpm");
    let counter = unique("race-budget");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let gate = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (rpm, counter) = (rpm.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            admit(
                &gate,
                &[bucket(&rpm, 1_000, 1)],
                &[charge(&counter, 1_000)],
                30,
            )
            .await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if let Verdict::Admitted { .. } = task.await.unwrap_or_else(|e| panic!("{e}")) {
            admitted += 1;
        }
    }
    // 1000 / 30 = 33 reservations fit; the refused ones took no request from the window.
    assert_eq!(admitted, 33);
    assert_eq!(remaining(&a, &rpm, 1_000).await, 1_000 - 33);
    assert_eq!(reserved(&a, &counter).await, 33 * 30);
}

/// An unreachable Redis: counted in process, as the policy says.
#[tokio::test]
async fn an_unreachable_redis_falls_back_to_the_process() {
    let dead = redis_at("redis://127.0.0.1:1", Duration::from_millis(100));
    let gate = AdmissionGate::new(
        Arc::new(RateLimiter::new(Some(dead.clone()), OnRedisFailure::Local)),
        Arc::new(BudgetCounters::new(Some(dead), OnRedisFailure::Local)),
    );
    let verdict = admit(
        &gate,
        &[bucket(&unique("x"), 5, 1)],
        &[charge(&unique("y"), 100)],
        10,
    )
    .await;
    assert!(
        matches!(
            verdict,
            Verdict::Admitted {
                limits: Counted::Local,
                budgets: Some(Counted::Local),
                ..
            }
        ),
        "{verdict:?}"
    );
}

/// Settlement corrects the token estimate and replaces the budget reservation by the real
/// cost, in Redis in one call, in process otherwise.
async fn settlement_corrects_tokens_and_budget(gate: AdmissionGate) {
    let tpm = unique("tpm");
    let counter = unique("settle");
    let id = uuid::Uuid::now_v7().to_string();
    let verdict = gate
        .admit(AdmissionRequest {
            id: &id,
            buckets: &[bucket(&tpm, 1_000, 400)],
            charges: &[charge(&counter, 10_000)],
            amount: 700,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Verdict::Admitted {
        limits,
        budgets: Some(budgets),
        ..
    } = verdict
    else {
        panic!("{verdict:?}");
    };
    assert_eq!(remaining(&gate, &tpm, 1_000).await, 600);
    gate.settle_in_background(
        Settlement {
            id: id.clone(),
            token_costs: vec![(tpm.clone(), 150)],
            counters: vec![counter.clone()],
            reserved: 700,
            actual: 260,
        },
        limits,
        Some(budgets),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = gate.budgets().read(&counter).await;
        if state == Some((260, 0)) && remaining(&gate, &tpm, 1_000).await == 850 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_redis_settlement_is_one_step() {
    settlement_corrects_tokens_and_budget(gate(true)).await;
}

#[tokio::test]
async fn in_process_settlement_corrects_the_same() {
    settlement_corrects_tokens_and_budget(gate(false)).await;
}
