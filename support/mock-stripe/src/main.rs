//! `tollgate-mock-stripe`: serves the mock Stripe API until SIGINT or SIGTERM.

use std::net::SocketAddr;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tollgate_mock_stripe::{MockStripe, MockStripeConfig};

/// A local stand-in for the Stripe API (v1) with signed webhooks and test controls under /_mock.
#[derive(Parser, Debug)]
#[command(name = "tollgate-mock-stripe", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:12111")]
    listen: SocketAddr,
    /// The secret key clients must present.
    #[arg(
        long,
        env = "TOLLGATE_MOCK_STRIPE_API_KEY",
        default_value = "sk_test_mock"
    )]
    api_key: String,
    /// Where to POST events.
    #[arg(long)]
    webhook_url: Option<String>,
    /// The webhook signing secret (whsec_...); a random one when not given.
    #[arg(long, env = "TOLLGATE_MOCK_STRIPE_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
    /// Event types to deliver (repeatable); all when not given.
    #[arg(long = "enabled-event")]
    enabled_events: Vec<String>,
    /// Delivery attempts per event, the first included.
    #[arg(long, default_value_t = 4)]
    webhook_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles for each further retry.
    #[arg(long, default_value_t = 5_000)]
    webhook_retry_ms: u64,
    /// Base URL for the links the mock hands out, when clients reach it under another address.
    #[arg(long)]
    public_url: Option<String>,
    /// Do not make the card collected by a setup-mode Checkout Session the customer's default
    /// payment method (real Checkout does not).
    #[arg(long)]
    keep_default_payment_method: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = MockStripeConfig::default();
    let config = MockStripeConfig {
        api_key: args.api_key,
        webhook_url: args.webhook_url,
        webhook_secret: args.webhook_secret.unwrap_or(defaults.webhook_secret),
        enabled_events: if args.enabled_events.is_empty() {
            defaults.enabled_events
        } else {
            args.enabled_events
        },
        webhook_attempts: args.webhook_attempts,
        webhook_retry_base_ms: args.webhook_retry_ms,
        public_url: args.public_url,
        checkout_sets_default_payment_method: !args.keep_default_payment_method,
        ..defaults
    };
    // The server brings its own thread; this runtime only waits for a signal.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = MockStripe::start_on(args.listen, config).await?;
        eprintln!(
            "listening on {} (API key {}, webhook secret {})",
            server.url(),
            server.api_key(),
            server.webhook_secret()
        );
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
