//! Bodies sent to take memory and connections, through the real binary: 64 MiB uploads without
//! credentials to every public POST endpoint, with a `Content-Length` and chunked, must be
//! answered (401 or 413) before they are sent in full and must not grow the process by
//! anything near their size; a body that trickles must be cut off at the read timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tollgate_mock_provider::{MockConfig, MockServer};
use tollgate_mock_stripe::{MockStripe, MockStripeConfig};

use crate::{Gateway, billed_config, scratch_dir, signup};

const MIB: usize = 1024 * 1024;
/// What each hostile upload announces (or, chunked, would send).
const HOSTILE_BYTES: usize = 64 * MIB;
/// What is sent before waiting for the answer: more than every body limit of an endpoint
/// open to anyone (64 KiB for `/auth`, 1 MiB for `/graphql` and the webhook).
const SENT_BEFORE_THE_ANSWER: usize = 2 * MIB;
/// How much the process may grow while refusing all of them at once.
const GROWTH_ALLOWED: u64 = 16 * MIB as u64;
const READ_TIMEOUT_MS: u64 = 1_500;

/// A deployment with every public POST endpoint on: the gateway, the auth service, the admin
/// API and the Stripe webhook.
async fn start() -> (Gateway, MockServer, MockStripe) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    let dir = scratch_dir("hostile");
    let config = dir.join("tollgate.yaml");
    std::fs::write(
        &config,
        format!(
            "\nserver: {{ body_read_timeout_ms: {READ_TIMEOUT_MS} }}{}",
            billed_config(&mock, &stripe, "")
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&config, &[]);
    (gateway, mock, stripe)
}

fn addr(gateway: &Gateway) -> SocketAddr {
    gateway.url.trim_start_matches("http://").parse().unwrap()
}

/// A field of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// The status code of an HTTP answer read from `stream`, once its head has arrived.
fn answer_status(stream: &mut TcpStream) -> Result<u16, String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {head:?}")),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{e} after {} bytes", head.len())),
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text}"))
}

/// Writes `len` bytes of body, chunked or not; stops at the first error (the server closed).
fn write_body(stream: &mut TcpStream, len: usize, chunked: bool) -> std::io::Result<()> {
    let piece = vec![b' '; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len());
        if chunked {
            stream.write_all(format!("{n:x}\r\n").as_bytes())?;
            stream.write_all(&piece[..n])?;
            stream.write_all(b"\r\n")?;
        } else {
            stream.write_all(&piece[..n])?;
        }
        left -= n;
    }
    Ok(())
}

/// One hostile upload: the head, [`SENT_BEFORE_THE_ANSWER`] bytes of body, then the answer,
/// which must come without the rest; then the rest, which the server need not take.
fn upload(addr: SocketAddr, path: &str, extra_headers: &str, chunked: bool) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {HOSTILE_BYTES}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: tollgate\r\ncontent-type: application/json\r\n{extra_headers}{framing}\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    // The server may answer and close before even this much is sent.
    let _ = write_body(&mut stream, SENT_BEFORE_THE_ANSWER, chunked);
    let status = answer_status(&mut stream).map_err(|e| {
        format!("{path} (chunked: {chunked}) gave no answer before the whole body: {e}")
    })?;
    let _ = write_body(&mut stream, HOSTILE_BYTES - SENT_BEFORE_THE_ANSWER, chunked);
    Ok(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_64_mib_bodies_are_refused_without_being_held() {
    let (gateway, mock, stripe) = start().await;
    let pid = gateway.child.id();
    let addr = addr(&gateway);
    // Every endpoint warmed up once, so that what it allocates on first use is not counted.
    let client = reqwest::Client::new();
    for path in ["/v1/chat/completions", "/auth/login", "/graphql"] {
        let _ = client
            .post(format!("{}{path}", gateway.url))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
    }
    let before = proc_status_bytes(pid, "VmRSS:");
    // Resets the peak (VmHWM) to the current size, so that the peak below is this test's.
    let peak_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();

    // A signature that looks like Stripe's, so that the webhook reads the body to check it.
    let forged = format!(
        "stripe-signature: t={},v1={}\r\n",
        tollgate_common::now_ms() / 1000,
        "0".repeat(64)
    );
    let endpoints: Vec<(&str, String, &[u16])> = vec![
        ("/v1/chat/completions", String::new(), &[401]),
        ("/v1/embeddings", String::new(), &[401]),
        (
            "/v1/chat/completions",
            "authorization: Bearer tg-not-a-key\r\n".to_owned(),
            &[401],
        ),
        ("/auth/signup", String::new(), &[413]),
        ("/auth/login", String::new(), &[413]),
        ("/graphql", String::new(), &[413]),
        ("/billing/stripe/webhook", forged, &[413]),
    ];
    let mut uploads = Vec::new();
    for (path, headers, expected) in &endpoints {
        for chunked in [false, true] {
            let (path, headers, expected) = (path.to_string(), headers.clone(), *expected);
            uploads.push((
                path.clone(),
                chunked,
                expected,
                std::thread::spawn(move || upload(addr, &path, &headers, chunked)),
            ));
        }
    }
    for (path, chunked, expected, upload) in uploads {
        let status = upload.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            expected.contains(&status),
            "{path} (chunked: {chunked}) answered {status}, not {expected:?}"
        );
    }

    let after = proc_status_bytes(pid, "VmRSS:");
    let grown = after.saturating_sub(before);
    assert!(
        grown < GROWTH_ALLOWED,
        "the process grew by {} MiB refusing {} uploads of 64 MiB",
        grown / MIB as u64,
        endpoints.len() * 2
    );
    if peak_reset {
        let peak = proc_status_bytes(pid, "VmHWM:");
        let peak_growth = peak.saturating_sub(before);
        assert!(
            peak_growth < GROWTH_ALLOWED,
            "the process peaked {} MiB above where it started",
            peak_growth / MIB as u64
        );
    }
    // Still serving.
    let res = client
        .get(format!("{}/health/ready", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(gateway);
    mock.stop().await;
    stripe.stop().await;
}

/// Sends the head of a `path` request and ten bytes of its body, then nothing more: the
/// status the server answers with, how long it took, and whether it then closed the
/// connection (rather than wait for the rest).
fn trickle(
    addr: SocketAddr,
    path: &str,
    extra_headers: &str,
    chunked: bool,
) -> (Result<u16, String>, Duration, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(READ_TIMEOUT_MS * 4)))
        .unwrap();
    let (framing, first) = if chunked {
        ("transfer-encoding: chunked", "a\r\n{\"query\": \r\n")
    } else {
        ("content-length: 1000", "{\"query\": ")
    };
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nhost: tollgate\r\ncontent-type: application/json\r\n{extra_headers}{framing}\r\n\r\n{first}"
            )
            .as_bytes(),
        )
        .unwrap();
    let status = answer_status(&mut stream);
    let took = started.elapsed();
    // After the answer the connection ends: EOF or a reset, not a read that times out.
    let mut rest = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut rest) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => {
                break !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    };
    (status, took, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_cut_off_at_the_read_timeout() {
    let (gateway, mock, stripe) = start().await;
    let addr = addr(&gateway);
    let tenant = signup(&gateway.url, "stall@example.com").await;
    let bearer = format!("authorization: Bearer {}\r\n", tenant.key);
    let signed = format!(
        "stripe-signature: t={},v1={}\r\n",
        tollgate_common::now_ms() / 1000,
        "0".repeat(64)
    );
    let cases: Vec<(&str, String)> = vec![
        ("/v1/chat/completions", bearer),
        ("/auth/login", String::new()),
        ("/graphql", String::new()),
        ("/billing/stripe/webhook", signed),
    ];
    let mut stalls = Vec::new();
    for (path, headers) in &cases {
        for chunked in [false, true] {
            let (path, headers) = (path.to_string(), headers.clone());
            stalls.push((
                path.clone(),
                chunked,
                std::thread::spawn(move || trickle(addr, &path, &headers, chunked)),
            ));
        }
    }
    let timeout = Duration::from_millis(READ_TIMEOUT_MS);
    for (path, chunked, stall) in stalls {
        let (status, took, closed) = stall.join().unwrap();
        assert_eq!(status, Ok(408), "{path} (chunked: {chunked})");
        assert!(
            took >= timeout && took < timeout * 3,
            "{path} (chunked: {chunked}) answered after {took:?}"
        );
        assert!(
            closed,
            "{path} (chunked: {chunked}) kept the connection open for the rest of the body"
        );
    }
    drop(gateway);
    mock.stop().await;
    stripe.stop().await;
}
