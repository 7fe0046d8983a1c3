//! Logs and traces: `tracing` everywhere, printed as logs, exported over OTLP when configured.
//!
//! The log layer sees events only, never spans, so the per-request spans cost nothing unless an
//! OTLP endpoint is set; then they are exported with OpenTelemetry's GenAI attribute names.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Metadata;
use tracing::subscriber::Interest;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::TelemetryConfig;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.log_level: `{0}` is not a valid filter ({1})")]
    LogLevel(String, String),
    #[error("telemetry.otlp_endpoint: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Lets events through and never spans, decided once per call site: with no OTLP endpoint, no
/// layer wants the request spans, so creating one costs a cached check and nothing more.
struct EventsOnly;

impl<S> Filter<S> for EventsOnly {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.is_event()
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_event() {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

/// Installs the global subscriber: logs to stderr, traces to OTLP when an endpoint is set.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let log_filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| TelemetryError::LogLevel(config.log_level.clone(), e.to_string()))?;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(log_filter.and(EventsOnly));

    let mut provider = None;
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let tracer_provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(config.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = tracer_provider.tracer("tollgate");
            provider = Some(tracer_provider);
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(Targets::new().with_target("tollgate", tracing::Level::INFO)),
            )
        }
        None => None,
    };

    // No `Option<Layer>` here: an absent layer counts as one that wants every span, and the
    // request spans would then be built for nobody.
    let registry = Registry::default().with(logs);
    match traces {
        Some(traces) => registry.with(traces).try_init(),
        None => registry.try_init(),
    }
    .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { provider })
}
