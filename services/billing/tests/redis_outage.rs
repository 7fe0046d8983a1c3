//! A Redis outage and its recovery, against a real `redis-server` this test starts and stops:
//! requests keep being limited (and budgets enforced) per process while Redis is down, and
//! shared again once it is back.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tollgate_billing::budgets::Reservation;
use tollgate_billing::{Bucket, BudgetCounters, Charge, Counted, OnRedisFailure, RateLimiter};

struct RedisServer {
    child: Child,
}

impl RedisServer {
    fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = RedisServer { child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on {port}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn manager(port: u16) -> ConnectionManager {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    ConnectionManager::new_lazy_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(300)))
            .set_response_timeout(Some(Duration::from_millis(300)))
            .set_number_of_retries(1),
    )
    .unwrap()
}

#[tokio::test]
async fn limits_survive_a_redis_outage_and_share_again_after_it() {
    let port = free_port();
    let redis = RedisServer::start(port);
    let manager = manager(port);
    let limiter = RateLimiter::new(Some(manager), OnRedisFailure::Local);
    let bucket = |n: u64| {
        [Bucket {
            key: "outage".into(),
            limit: n,
            cost: 1,
        }]
    };

    let (decision, counted) = limiter.acquire("a", &bucket(3)).await.unwrap();
    assert!(decision.allowed);
    assert_eq!(counted, Counted::Redis);

    drop(redis);
    let mut local = Vec::new();
    for i in 0..4 {
        let (decision, counted) = limiter
            .acquire(&format!("down{i}"), &bucket(3))
            .await
            .unwrap();
        assert_eq!(counted, Counted::Local, "served while Redis is down");
        local.push(decision.allowed);
    }
    assert_eq!(
        local,
        [true, true, true, false],
        "still limited, per process"
    );

    let _redis = RedisServer::start(port);
    // Redis is tried again a second after the failure; give the connection time to return.
    let mut back = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, counted) = limiter
            .acquire(&format!("up{i}"), &bucket(1000))
            .await
            .unwrap();
        if counted == Counted::Redis {
            back = true;
            break;
        }
    }
    assert!(back, "the limiter went back to Redis by itself");
}

#[tokio::test]
async fn budgets_are_enforced_through_a_redis_outage_and_shared_again_after_it() {
    let port = free_port();
    let redis = RedisServer::start(port);
    let budgets = BudgetCounters::new(Some(manager(port)), OnRedisFailure::Local);
    let charge = |limit: i64| {
        [Charge {
            counter: "budget-outage".into(),
            limit,
            baseline: 0,
            ttl_secs: Some(600),
        }]
    };
    assert_eq!(
        budgets.reserve(&charge(100), 40).await.unwrap(),
        Reservation::Admitted(Counted::Redis)
    );

    drop(redis);
    let mut local = Vec::new();
    for _ in 0..3 {
        match budgets.reserve(&charge(100), 40).await.unwrap() {
            Reservation::Admitted(counted) => {
                assert_eq!(counted, Counted::Local, "served while Redis is down");
                local.push(true);
            }
            Reservation::Exhausted { .. } => local.push(false),
        }
    }
    assert_eq!(local, [true, true, false], "still enforced, per process");

    let _redis = RedisServer::start(port);
    let mut back = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if budgets.reserve(&charge(1_000_000), 1).await.unwrap()
            == Reservation::Admitted(Counted::Redis)
        {
            back = true;
            break;
        }
    }
    assert!(back, "the budget counters went back to Redis by itself");
}
