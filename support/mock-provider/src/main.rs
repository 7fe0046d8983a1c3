//! `tollgate-mock-provider`: serves the mock LLM providers until SIGINT or SIGTERM.

use std::net::SocketAddr;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tollgate_mock_provider::{MockConfig, MockServer};

/// Mock LLM provider speaking the OpenAI, Azure OpenAI, Anthropic, Gemini, AWS Bedrock and
/// Vertex AI wire formats.
#[derive(Parser, Debug)]
#[command(name = "tollgate-mock-provider", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Delay before answering, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Content deltas per streamed answer.
    #[arg(long, default_value_t = 5)]
    chunks: usize,
    /// Delay between streamed content chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Probability (0..=1) that a request fails with --failure-status.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// HTTP status of injected failures.
    #[arg(long, default_value_t = 503)]
    failure_status: u16,
    /// The first N requests fail with --failure-status.
    #[arg(long, default_value_t = 0)]
    fail_first: u32,
    /// Retry-After seconds sent with injected failures.
    #[arg(long)]
    retry_after_secs: Option<u64>,
    /// Leave usage out of OpenAI-format answers.
    #[arg(long)]
    omit_usage: bool,
    /// Break streams off after this many content chunks.
    #[arg(long)]
    fail_mid_stream_after: Option<usize>,
    /// Key clients must present, each provider's way.
    #[arg(long)]
    require_key: Option<String>,
    /// Report non-streaming answers as using every output token allowed: the request's limit
    /// times `n`, or this many per choice without a limit.
    #[arg(long)]
    exhaust_output: Option<u64>,
    /// Lifetime in seconds of the Vertex AI access tokens issued at /token.
    #[arg(long, default_value_t = 3600)]
    token_expires_in_secs: u64,
}

impl Args {
    fn config(&self) -> anyhow::Result<MockConfig> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.failure_rate),
            "--failure-rate must be between 0 and 1"
        );
        Ok(MockConfig {
            latency_ms: self.latency_ms,
            chunks: self.chunks,
            chunk_delay_ms: self.chunk_delay_ms,
            failure_rate: self.failure_rate,
            failure_status: self.failure_status,
            fail_first: self.fail_first,
            retry_after_secs: self.retry_after_secs,
            omit_usage: self.omit_usage,
            fail_mid_stream_after: self.fail_mid_stream_after,
            require_key: self.require_key.clone(),
            exhaust_output: self.exhaust_output,
            token_expires_in_secs: self.token_expires_in_secs,
            ..MockConfig::default()
        })
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.config()?;
    // The server brings its own threads; this runtime only waits for a signal.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = MockServer::start_on(args.listen, config, args.workers).await?;
        eprintln!("listening on {}", server.url());
        shutdown_signal().await?;
        server.stop().await;
        Ok(())
    })
}

/// Waits for SIGTERM (how a supervisor stops a process) or Ctrl-C.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => Ok(()),
        interrupted = tokio::signal::ctrl_c() => Ok(interrupted?),
    }
}
