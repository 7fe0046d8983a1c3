//! What the billing tests share: running a check on both databases, a usage record of one
//! successful request, and a webhook receiver on loopback.

#![allow(
    dead_code,
    reason = "each test file uses a different part of what is shared"
)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_auth::store::{AuthStore, scratch};
use tollgate_billing::usage::UsageRecord;
use tollgate_common::Picodollars;

pub const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL store.
pub async fn both(check: impl AsyncFn(AuthStore)) {
    check(scratch::sqlite().await.unwrap()).await;
    check(scratch::postgres().await.unwrap()).await;
}

pub fn usd(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

pub fn pico(text: &str) -> i64 {
    Picodollars::from_usd(usd(text)).unwrap().0
}

/// One successful, uncached request at `time_ms` costing `cost_usd`, with no team, key, end
/// user or tags; tests set what they look at with struct update syntax.
pub fn usage_record(org: &str, event_id: &str, time_ms: i64, cost_usd: &str) -> UsageRecord {
    UsageRecord {
        event_id: event_id.to_owned(),
        request_id: event_id.to_owned(),
        time_ms,
        org_id: org.to_owned(),
        team_id: None,
        key_id: None,
        user_id: None,
        end_user: None,
        tags: Default::default(),
        endpoint: "chat".into(),
        requested_model: "smart".into(),
        provider: Some("openai".into()),
        provider_model: Some("gpt-4o".into()),
        input_tokens: 100,
        output_tokens: 10,
        cached_tokens: 0,
        usage_estimated: false,
        cost_pico: Some(pico(cost_usd)),
        reserved_pico: 0,
        saved_pico: None,
        latency_ms: 20,
        ttft_ms: None,
        status: 200,
        error: None,
        cache: "miss".into(),
        attempts: 1,
        stream: false,
        guardrail: None,
        guardrail_actions: Vec::new(),
    }
}

/// A webhook receiver on loopback: answers every request with one fixed answer, counts the
/// connections made to it and keeps each complete request's head (lowercased) and body.
pub struct Receiver {
    pub address: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    pub async fn start(answer: String) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (counted, kept) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                let kept = kept.clone();
                tokio::spawn(async move {
                    // Read the whole request before answering: closing on unread bytes resets
                    // the connection before the client reads the answer.
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&data).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if body.len() >= length {
                                kept.lock()
                                    .unwrap()
                                    .push((head.to_ascii_lowercase(), body.to_owned()));
                                let _ = socket.write_all(answer.as_bytes()).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            address,
            connections,
            requests,
        }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// `http://127.0.0.1:PORT/hook`
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The complete requests received so far, as (lowercased head, body).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }
}
