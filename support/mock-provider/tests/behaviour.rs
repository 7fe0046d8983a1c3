//! Failure injection, pacing, stats and the control endpoints, over real TCP.

mod common;

use std::time::{Duration, Instant};

use common::{chat_completion, post_json, request_bytes, send, sse_data};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_mock_provider::{MockConfig, MockServer, StatsSnapshot};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

async fn wait_for(
    mock: &MockServer,
    what: &str,
    ok: impl Fn(&StatsSnapshot) -> bool,
) -> StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = mock.stats();
        if ok(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn server_handle_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mock = MockServer::start(MockConfig::default()).await.unwrap();
        send_sync(&mock);
        let stopping = mock.stop();
        send(&stopping);
        stopping.await;
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_first_then_success_with_retry_after() {
    let mock = MockServer::start(MockConfig {
        fail_first: 2,
        failure_status: 429,
        retry_after_secs: Some(7),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    for _ in 0..2 {
        let res = chat_completion(mock.addr(), &chat("gpt-4o", false)).await;
        assert_eq!(res.status, 429);
        assert_eq!(res.header("retry-after"), Some("7"));
        assert_eq!(res.json()["error"]["code"], "rate_limit_exceeded");
    }
    let res = chat_completion(mock.addr(), &chat("gpt-4o", false)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("retry-after"), None);
    assert_eq!(mock.stats().failures_injected, 2);

    // A config change restarts the count.
    mock.set_config(MockConfig {
        fail_first: 1,
        ..MockConfig::default()
    });
    let res = chat_completion(mock.addr(), &chat("gpt-4o", false)).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.json()["error"]["type"], "server_error");
    let res = chat_completion(mock.addr(), &chat("gpt-4o", false)).await;
    assert_eq!(res.status, 200);

    mock.set_config(MockConfig {
        failure_rate: 1.0,
        failure_status: 500,
        ..MockConfig::default()
    });
    let res = chat_completion(mock.addr(), &chat("gpt-4o", false)).await;
    assert_eq!(res.status, 500);
    mock.stop().await;
}

#[actix_web::test]
async fn stats_count_routes_streams_and_last_request() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = mock.addr();
    chat_completion(addr, &chat("gpt-4o", false)).await;
    chat_completion(addr, &chat("gpt-4o", true)).await;
    post_json(
        addr,
        "/v1/embeddings",
        &[],
        &json!({"model": "e", "input": "x"}),
    )
    .await;
    post_json(
        addr,
        "/v1/messages?beta=true",
        &[("anthropic-version", "2023-06-01"), ("X-Api-Key", "secret")],
        &json!({"model": "claude", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    // Control routes and unknown paths are not provider requests.
    let res = send(addr, "GET", "/_mock/stats", &[], b"").await;
    assert_eq!(res.status, 200);
    let res = send(addr, "GET", "/nope", &[], b"").await;
    assert_eq!(res.status, 404);
    assert!(res.json()["error"]["message"].is_string());
    let res = send(addr, "GET", "/v1/chat/completions", &[], b"").await;
    assert_eq!(res.status, 404);

    let stats = wait_for(&mock, "streams to complete", |s| s.streams_completed == 2).await;
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.by_route["openai.chat"], 2);
    assert_eq!(stats.by_route["openai.embeddings"], 1);
    assert_eq!(stats.by_route["anthropic.messages"], 1);
    assert_eq!(stats.by_route["gemini.generate"], 0);
    assert_eq!(stats.streams_started, 2);
    assert_eq!(stats.streams_cancelled, 0);
    assert_eq!(stats.last_request.as_ref().unwrap()["model"], "claude");
    assert_eq!(stats.last_headers["x-api-key"], "secret");
    assert_eq!(stats.last_headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        stats.last_path_and_query.as_deref(),
        Some("/v1/messages?beta=true")
    );

    // The same snapshot is served over HTTP, and reset clears it.
    let over_http: StatsSnapshot =
        serde_json::from_slice(&send(addr, "GET", "/_mock/stats", &[], b"").await.body).unwrap();
    assert_eq!(over_http.requests, 4);
    let res = send(addr, "POST", "/_mock/reset", &[], b"").await;
    assert_eq!(res.status, 200);
    let stats = mock.stats();
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.streams_completed, 0);
    assert!(stats.last_request.is_none());
    assert!(stats.last_path_and_query.is_none());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_mid_stream_counts_as_cancelled() {
    let mock = MockServer::start(MockConfig {
        chunks: 50,
        chunk_delay_ms: 100,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let body = serde_json::to_vec(&chat("gpt-4o", true)).unwrap();
    let mut socket = TcpStream::connect(mock.addr()).await.unwrap();
    socket
        .write_all(&request_bytes("POST", "/v1/chat/completions", &[], &body))
        .await
        .unwrap();
    // Wait until the first content delta arrived, then hang up.
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("\"content\":\"Mock\"") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "stream ended early");
        received.extend_from_slice(&buf[..n]);
    }
    assert_eq!(mock.stats().streams_started, 1);
    drop(socket);
    let stats = wait_for(&mock, "the stream to be cancelled", |s| {
        s.streams_cancelled == 1
    })
    .await;
    assert_eq!(stats.streams_completed, 0);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_mid_stream_drops_the_connection_without_terminator() {
    let mock = MockServer::start(MockConfig {
        chunks: 5,
        fail_mid_stream_after: Some(2),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let res = chat_completion(mock.addr(), &chat("gpt-4o", true)).await;
    assert_eq!(res.status, 200);
    assert!(!res.complete, "chunked body must not be terminated");
    let text = res.text();
    assert!(!text.contains("[DONE]"));
    let events = sse_data(&text, "\n\n");
    // role chunk + 2 content chunks
    assert_eq!(events.len(), 3, "{text}");

    let res = post_json(
        mock.addr(),
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        &json!({"model": "claude", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(!res.complete);
    assert!(!res.text().contains("message_stop"));
    assert_eq!(res.text().matches("event: content_block_delta").count(), 2);
    let stats = mock.stats();
    assert_eq!(stats.streams_started, 2);
    assert_eq!(stats.streams_completed, 0);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_and_slow_models_delay_the_answer() {
    let mock = MockServer::start(MockConfig {
        latency_ms: 150,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let res = chat_completion(mock.addr(), &chat("gpt-4o", false)).await;
    assert_eq!(res.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    mock.set_config(MockConfig::default());
    let started = Instant::now();
    let res = chat_completion(mock.addr(), &chat("mock-slow-200", false)).await;
    assert_eq!(res.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(res.json()["model"], "mock-slow-200");

    // Chunk pacing spreads a stream out: 4 gaps of 50ms between 5 deltas.
    mock.set_config(MockConfig {
        chunk_delay_ms: 50,
        ..MockConfig::default()
    });
    let started = Instant::now();
    let res = chat_completion(mock.addr(), &chat("gpt-4o", true)).await;
    assert!(res.complete);
    assert!(started.elapsed() >= Duration::from_millis(200));
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_over_http_and_stop_releases_the_port() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = mock.addr();
    assert_eq!(mock.url(), format!("http://127.0.0.1:{}", addr.port()));
    let res = post_json(
        addr,
        "/_mock/config",
        &[],
        &json!({"chunks": 2, "fail_first": 1}),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json()["failure_status"],
        503,
        "missing fields take defaults"
    );
    let res = chat_completion(addr, &chat("gpt-4o", false)).await;
    assert_eq!(res.status, 503);
    let res = chat_completion(addr, &chat("gpt-4o", false)).await;
    assert_eq!(res.json()["usage"]["completion_tokens"], 2);
    let res = post_json(addr, "/_mock/config", &[], &json!({"chunks": "many"})).await;
    assert_eq!(res.status, 400);

    mock.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "port closed after stop"
    );
}
