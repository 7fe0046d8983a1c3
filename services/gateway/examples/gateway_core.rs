//! The gateway core on its own: routing, retries, provider adapters and streaming, with every
//! other pipeline stage a pass-through (open access, no limits, no budgets, usage only logged).
//!
//! Not a deployment: anyone can call it. It exists so that the benchmark can measure what
//! authentication, rate limits, budget reservation and metering add on top of the core
//! (`python3 bench/gateway_bench.py --with-core`).
//!
//! ```sh
//! cargo run --release -p tollgate-gateway --example gateway_core -- CONFIG.yaml
//! ```

use std::path::PathBuf;

use anyhow::Context;
use tollgate_common::config::{Config, ProcessEnv};
use tollgate_gateway::pipeline::Stages;

fn main() -> anyhow::Result<()> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: gateway_core CONFIG.yaml")?
        .into();
    let config = Config::load(&path, &ProcessEnv).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _telemetry = tollgate_common::telemetry::init(&config.telemetry)?;
    actix_web::rt::System::new().block_on(async move {
        let gateway = tollgate_gateway::build_gateway(&config, Stages::default())?;
        let running = tollgate_gateway::start(&config, gateway)?;
        tracing::info!(addr = %running.addr, "gateway core listening (no authentication)");
        running.server.await.context("server stopped with an error")
    })
}
