//! `tollgate-loadgen`: an open-loop load generator for what `oha` cannot measure, chiefly the
//! time to the first byte of streamed (SSE) answers.
//!
//! Requests are sent at a fixed rate: send times come from the clock (`start + i / rate`), never
//! from completions, and every latency is measured from the request's *scheduled* send time, so
//! a stalled server is charged for the requests that queued behind it (no coordinated omission).
//! At most `--connections` requests are in flight at once, over a pool of keep-alive
//! connections; a request waiting for a free connection keeps its scheduled time.
//!
//! Prints one JSON object:
//! `{"requests":N,"errors":N,"incomplete":N,"ttfb_us":{"p50","p90","p99","max"},"total_us":{..},"achieved_rps":X,..}`.

mod stats;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Semaphore, mpsc};

/// Open-loop HTTP POST load generator: fixed rate, latency from the scheduled send time.
#[derive(Parser, Debug)]
#[command(name = "tollgate-loadgen", version, about)]
struct Args {
    /// URL to POST to.
    #[arg(long)]
    url: String,
    /// Request body (JSON).
    #[arg(long)]
    body: String,
    /// Requests per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// How long to measure, after the warm-up (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = stats::parse_duration)]
    duration: Duration,
    /// Load sent before measuring starts; its requests are not recorded.
    #[arg(long, default_value = "0s", value_parser = stats::parse_duration)]
    warmup: Duration,
    /// Keep-alive connections, and so the most requests in flight at once.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Extra request header, `Name: value` (repeatable). `Content-Type: application/json` is sent
    /// unless overridden.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = stats::parse_duration)]
    timeout: Duration,
    /// How a finished stream ends: OpenAI's `data: [DONE]`, or e.g. `{"type":"message_stop"}`
    /// for Anthropic's Messages API. Streams that end otherwise are counted as incomplete.
    #[arg(long, default_value = "data: [DONE]")]
    end: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What every request task shares.
struct Shared {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Bytes,
    /// The bytes a finished stream ends with.
    end: Vec<u8>,
    /// One permit per connection: bounds the requests in flight.
    slots: Semaphore,
}

/// One finished request.
struct Sample {
    /// Scheduled inside the measured window (not warm-up).
    recorded: bool,
    outcome: Result<Timing, String>,
    finished: Instant,
}

struct Timing {
    ttfb: Duration,
    total: Duration,
    /// The body ended with the `--end` marker (a stream that finished).
    done: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be a positive number"
    );
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(
        !args.duration.is_zero(),
        "--duration must be more than zero"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let summary = runtime.block_on(run(&args))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}")?;
    Ok(())
}

fn headers(args: &Args) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("header `{header}`: expected `Name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("header `{header}`: bad name"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("header `{header}`: bad value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.connections)
        .pool_idle_timeout(None)
        .http1_only()
        .no_proxy()
        .timeout(args.timeout)
        .build()
        .context("building the HTTP client")?;
    let shared = Arc::new(Shared {
        client,
        url: reqwest::Url::parse(&args.url).with_context(|| format!("--url {}", args.url))?,
        headers: headers(args)?,
        body: Bytes::from(args.body.clone()),
        end: args.end.clone().into_bytes(),
        slots: Semaphore::new(args.connections),
    });

    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let interval = 1.0 / args.rate;
    let handle = tokio::runtime::Handle::current();

    // The schedule runs on its own OS thread: `thread::sleep` wakes within tens of microseconds,
    // where the runtime's timer wheel only has millisecond resolution, which would show up as
    // latency measured from the scheduled time.
    let scheduler = std::thread::Builder::new()
        .name("schedule".into())
        .spawn(move || {
            let mut sent: u64 = 0;
            loop {
                let scheduled = start + Duration::from_secs_f64(sent as f64 * interval);
                if scheduled >= end {
                    break;
                }
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                let recorded = scheduled >= measure_from;
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                handle.spawn(async move {
                    let outcome = one_request(&shared, scheduled).await;
                    // The receiver outlives every sender; a send error only means shutdown.
                    let _ = tx.send(Sample {
                        recorded,
                        outcome,
                        finished: Instant::now(),
                    });
                });
                sent += 1;
            }
            sent
        })
        .context("starting the scheduler thread")?;

    // The channel closes once the scheduler and every request task have dropped their senders.
    let mut ttfb = Vec::new();
    let mut total = Vec::new();
    let (mut requests, mut errors, mut incomplete) = (0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;
    let mut last_answer = end;
    while let Some(sample) = rx.recv().await {
        if !sample.recorded {
            continue;
        }
        requests += 1;
        match sample.outcome {
            Ok(timing) => {
                last_answer = last_answer.max(sample.finished);
                ttfb.push(micros(timing.ttfb));
                total.push(micros(timing.total));
                if !timing.done {
                    incomplete += 1;
                }
            }
            Err(err) => {
                errors += 1;
                first_error.get_or_insert(err);
            }
        }
    }
    let sent = scheduler
        .join()
        .map_err(|_| anyhow::anyhow!("the scheduler thread panicked"))?;
    let finished = Instant::now();
    if let Some(err) = &first_error {
        let _ = writeln!(std::io::stderr(), "tollgate-loadgen: first error: {err}");
    }

    let seconds = args.duration.as_secs_f64();
    // Answers per second from the start of the window to the last answer: the rate the target
    // kept up with (below the send rate when answers arrive late).
    let answering = last_answer
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    let ok = total.len() as f64;
    Ok(serde_json::json!({
        "requests": requests,
        "errors": errors,
        "incomplete": incomplete,
        "ttfb_us": stats::summary(&mut ttfb),
        "total_us": stats::summary(&mut total),
        "achieved_rps": (ok / answering.max(seconds) * 10.0).round() / 10.0,
        "target_rps": args.rate,
        "duration_s": seconds,
        "sent_including_warmup": sent,
        "drain_ms": finished.saturating_duration_since(end).as_millis() as u64,
        "first_error": first_error,
    }))
}

async fn one_request(shared: &Shared, scheduled: Instant) -> Result<Timing, String> {
    let _slot = shared
        .slots
        .acquire()
        .await
        .map_err(|err| err.to_string())?;
    let response = shared
        .client
        .post(shared.url.clone())
        .headers(shared.headers.clone())
        .body(shared.body.clone())
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let status = response.status();
    let mut body = response.bytes_stream();
    let mut ttfb = None;
    // The last bytes seen, enough to check for the closing marker.
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| format!("reading the body: {}", error_chain(&err)))?;
        if chunk.is_empty() {
            continue;
        }
        if ttfb.is_none() {
            ttfb = Some(scheduled.elapsed());
        }
        tail.extend_from_slice(&chunk[chunk.len().saturating_sub(64)..]);
        let excess = tail.len().saturating_sub(64);
        tail.drain(..excess);
    }
    let total = scheduled.elapsed();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(Timing {
        ttfb: ttfb.unwrap_or(total),
        total,
        done: tail.trim_ascii_end().ends_with(&shared.end),
    })
}

/// An error and its sources, `outer: inner: root`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
