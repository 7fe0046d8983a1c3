//! A form-encoding client that talks to the mock as a Stripe client library would, and a tiny
//! webhook receiver on a real socket that records what it gets and answers as scripted.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]
#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate_mock_stripe::{MockStripe, MockStripeConfig};

pub async fn start() -> MockStripe {
    start_with(MockStripeConfig {
        webhook_retry_base_ms: 20,
        ..MockStripeConfig::default()
    })
    .await
}

pub async fn start_with(config: MockStripeConfig) -> MockStripe {
    MockStripe::start(config).await.expect("mock Stripe starts")
}

/// A fresh mock, a client of it, and the id of a customer with `email`.
pub async fn start_with_customer(email: &str) -> (MockStripe, Stripe, String) {
    let mock = start().await;
    let stripe = Stripe::new(&mock);
    let customer = stripe.customer(email).await;
    (mock, stripe, customer)
}

/// An answer from the API.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.type` of an error answer.
    pub fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or_default()
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.body
        );
        self.body
    }
}

/// A client that sends form-encoded parameters with a secret key, as Stripe's libraries do.
#[derive(Clone)]
pub struct Stripe {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Stripe {
    pub fn new(mock: &MockStripe) -> Stripe {
        Stripe::with_key(mock, mock.api_key())
    }

    pub fn with_key(mock: &MockStripe, key: &str) -> Stripe {
        Stripe {
            base: mock.url(),
            key: key.to_owned(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub async fn post(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        self.send("POST", path, params, None).await
    }

    pub async fn post_idempotent(&self, path: &str, params: &[(&str, &str)], key: &str) -> Reply {
        self.send("POST", path, params, Some(key)).await
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        self.send("GET", path, params, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, &[], None).await
    }

    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<Reply, reqwest::Error> {
        let encoded = serde_urlencoded::to_string(params).unwrap();
        let mut request = match method {
            "POST" => self
                .http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded),
            "GET" => self.http.get(format!("{}{path}?{encoded}", self.base)),
            "DELETE" => self.http.delete(format!("{}{path}?{encoded}", self.base)),
            other => panic!("unsupported method {other}"),
        };
        request = request.bearer_auth(&self.key);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Reply {
        self.try_send(method, path, params, idempotency_key)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"))
    }

    /// A customer with an email; returns its id.
    pub async fn customer(&self, email: &str) -> String {
        self.post("/v1/customers", &[("email", email), ("name", "Test Org")])
            .await
            .ok()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An open Checkout Session for `customer` in `mode` (`setup` or `payment`), with `params`
    /// besides.
    pub async fn checkout_session(
        &self,
        mode: &str,
        customer: &str,
        params: &[(&str, &str)],
    ) -> Value {
        let mut all = vec![("mode", mode), ("customer", customer)];
        all.extend_from_slice(params);
        self.post("/v1/checkout/sessions", &all).await.ok()
    }

    /// A Checkout Session as [`Stripe::checkout_session`] opens it, then completed with the
    /// default test card as if in a browser.
    pub async fn completed_checkout(
        &self,
        mock: &MockStripe,
        mode: &str,
        customer: &str,
        params: &[(&str, &str)],
    ) -> Value {
        let session = self.checkout_session(mode, customer, params).await;
        mock.complete_checkout(session["id"].as_str().unwrap())
            .unwrap();
        session
    }
}

/// A POST to a control endpoint.
pub async fn control(mock: &MockStripe, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}{path}", mock.url()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook endpoint on a real socket: records each request and answers with the next
/// scripted status (200 once the script runs out).
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (r, s) = (received.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    r.lock().unwrap().push(request);
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Receiver {
            addr,
            received,
            script,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/stripe/webhook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The received event ids, in order of arrival.
    pub fn event_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.event()["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn event_types(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.event()["type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until `count` requests arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} webhook requests, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Received {
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

/// Checks a `Stripe-Signature` header the way Stripe's documentation describes, with an HMAC
/// computed here rather than by the mock: `t` and every `v1` are taken from the header, the
/// signed payload is `"<t>.<body>"`, the key is the whole secret.
pub fn verify_signature(header: &str, body: &str, secret: &str) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = Some(t.to_owned()),
            Some(("v1", v)) => signatures.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    signatures.contains(&expected)
}

/// The start of the current hour, `hours_ago` hours back, on the mock's clock.
pub fn hour_start(mock: &MockStripe, hours_ago: i64) -> i64 {
    let now = mock.now();
    now - now.rem_euclid(3_600) - hours_ago * 3_600
}
