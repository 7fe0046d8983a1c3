//! `tollgate`: the whole platform in one binary.
//!
//! - `tollgate serve [--config FILE]` runs every service in one process; with no file, providers
//!   come from the usual environment variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
//!   `GEMINI_API_KEY`, `AZURE_API_KEY` with `AZURE_API_BASE`).
//! - `tollgate check-config FILE` validates a config and prints every problem with its path.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tollgate_common::config::{Config, ConfigError, ProcessEnv};
use tollgate_gateway::Stages;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An AI gateway: one OpenAI-compatible API in front of every LLM provider."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the platform.
    Serve {
        /// YAML configuration; without it, providers are read from the environment.
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print every problem found.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(config),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "tollgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match Config::load(file, &ProcessEnv) {
        Ok(config) => {
            writeln!(
                out,
                "{}: OK ({} providers, {} models)",
                file.display(),
                config.providers.len(),
                config.models.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid(problems)) => {
            for problem in &problems {
                writeln!(out, "{}: {problem}", file.display())?;
            }
            writeln!(out, "{} problem(s) found", problems.len())?;
            Ok(ExitCode::FAILURE)
        }
        Err(err) => Err(err.into()),
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = match &config_path {
        Some(path) => Config::load(path, &ProcessEnv),
        None => Config::from_env(&ProcessEnv),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _telemetry = tollgate_common::telemetry::init(&config.telemetry)?;

    actix_web::rt::System::new().block_on(async move {
        let gateway = tollgate_gateway::build_gateway(&config, Stages::default())?;
        let running = tollgate_gateway::start(&config, gateway)?;
        if config.providers.is_empty() {
            tracing::warn!(
                "no provider configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, or pass --config"
            );
        }
        tracing::info!(
            addr = %running.addr,
            providers = config.providers.len(),
            models = config.models.len(),
            "tollgate listening on http://{}",
            running.addr
        );
        running.server.await.context("server stopped with an error")?;
        tracing::info!("tollgate stopped");
        Ok(ExitCode::SUCCESS)
    })
}
