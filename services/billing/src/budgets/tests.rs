use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;

use super::*;
use crate::test_redis::redis_at;

fn redis(url: &str) -> ConnectionManager {
    redis_at(url, Duration::from_millis(300))
}

/// Reserves `amount` against every one of `charges`, failing the test on a Redis error.
async fn reserve(counters: &BudgetCounters, charges: &[Charge], amount: i64) -> Reservation {
    counters
        .reserve(charges, amount)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn charge(counter: &str, limit: i64, baseline: i64) -> Charge {
    Charge {
        counter: counter.to_owned(),
        limit,
        baseline,
        ttl_secs: Some(600),
    }
}

fn unique(name: &str) -> String {
    format!("tollgate:test:budget:{name}:{}", uuid::Uuid::now_v7())
}

/// 200 concurrent reservations from two replicas: exactly as many as fit are admitted.
async fn concurrent_reservations_never_exceed_the_limit(
    a: Arc<BudgetCounters>,
    b: Arc<BudgetCounters>,
) {
    let counter = unique("race");
    let charges = Arc::new(vec![charge(&counter, 1_000, 100)]);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let counters = if i % 2 == 0 { a.clone() } else { b.clone() };
        let charges = charges.clone();
        tasks.push(tokio::spawn(async move {
            reserve(&counters, &charges, 30).await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if let Reservation::Admitted(_) = task.await.unwrap_or_else(|e| panic!("{e}")) {
            admitted += 1;
        }
    }
    // (1000 - 100) / 30 = 30 reservations fit.
    assert_eq!(admitted, 30);
}

#[tokio::test]
async fn replicas_sharing_redis_admit_exactly_what_fits() {
    let a = Arc::new(BudgetCounters::new(
        Some(redis("redis://127.0.0.1:6379")),
        OnRedisFailure::Local,
    ));
    let b = Arc::new(BudgetCounters::new(
        Some(redis("redis://127.0.0.1:6379")),
        OnRedisFailure::Local,
    ));
    concurrent_reservations_never_exceed_the_limit(a, b).await;
}

#[tokio::test]
async fn one_process_without_redis_admits_exactly_what_fits() {
    let a = Arc::new(BudgetCounters::new(None, OnRedisFailure::Local));
    concurrent_reservations_never_exceed_the_limit(a.clone(), a).await;
}

async fn settling_replaces_the_reservation(counters: BudgetCounters) {
    let counter = unique("settle");
    let charges = [charge(&counter, 100, 10)];
    let Reservation::Admitted(counted) = reserve(&counters, &charges, 60).await else {
        panic!("the first reservation fits");
    };
    assert_eq!(counters.read(&counter).await, Some((10, 60)));
    // Another 60 does not fit while the first is in flight...
    assert_eq!(
        reserve(&counters, &charges, 60).await,
        Reservation::Exhausted {
            index: 0,
            spent: 10,
            reserved: 60
        }
    );
    // ...and does once it cost 20 instead.
    counters
        .settle(counted, std::slice::from_ref(&counter), 60, 20)
        .await;
    assert_eq!(counters.read(&counter).await, Some((30, 0)));
    assert!(matches!(
        reserve(&counters, &charges, 60).await,
        Reservation::Admitted(_)
    ));
}

#[tokio::test]
async fn settling_replaces_the_reservation_in_redis_and_in_process() {
    settling_replaces_the_reservation(BudgetCounters::new(
        Some(redis("redis://127.0.0.1:6379")),
        OnRedisFailure::Local,
    ))
    .await;
    settling_replaces_the_reservation(BudgetCounters::new(None, OnRedisFailure::Local)).await;
}

#[tokio::test]
async fn a_request_is_charged_to_all_its_budgets_or_none() {
    let counters =
        BudgetCounters::new(Some(redis("redis://127.0.0.1:6379")), OnRedisFailure::Local);
    let (roomy, tight) = (unique("roomy"), unique("tight"));
    let charges = [charge(&roomy, 1_000, 0), charge(&tight, 50, 0)];
    assert_eq!(
        reserve(&counters, &charges, 60).await,
        Reservation::Exhausted {
            index: 1,
            spent: 0,
            reserved: 0
        }
    );
    assert_eq!(counters.read(&roomy).await, Some((0, 0)));
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_or_refuses() {
    let local = BudgetCounters::new(Some(redis("redis://127.0.0.1:1")), OnRedisFailure::Local);
    let charges = [charge(&unique("down"), 100, 0)];
    assert_eq!(
        reserve(&local, &charges, 10).await,
        Reservation::Admitted(Counted::Local)
    );
    let closed = BudgetCounters::new(Some(redis("redis://127.0.0.1:1")), OnRedisFailure::Reject);
    assert!(matches!(
        closed.reserve(&charges, 10).await,
        Err(BudgetError::Unavailable)
    ));
}
