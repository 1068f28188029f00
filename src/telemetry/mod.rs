//! Telemetry: logs, OpenTelemetry traces and metrics (Prometheus, OTLP).
//!
//! - [`init`] installs the log subscriber and, when an OTLP endpoint is
//!   configured by the standard `OTEL_*` variables, the OpenTelemetry layer
//!   and a batching exporter ([`tracing`](self::tracing)). With no endpoint
//!   no OpenTelemetry code runs: spans that exist only for traces are not
//!   even created ([`enabled`]).
//! - [`propagation`] is the tower layer that opens each call's server span,
//!   continuing the caller's W3C trace, and times it.
//! - [`metrics`] holds the counters and histograms, serves them at
//!   `/metrics` and, when an OTLP endpoint is configured, pushes them.

pub mod metrics;
pub mod propagation;
pub mod spans;
pub mod tls;
pub mod tracing;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: spans made only for traces (one per
/// record, one per matched order) are skipped when not.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes what is
/// batched.
#[must_use = "dropping it without shutdown loses the last batch of spans"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still batched and stops the exporter. Blocks: call
    /// it outside the runtime's tasks (the runtime must still be alive).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            ::tracing::warn!(error = %e, "flushing traces at shutdown");
        }
    }
}

/// Installs the global subscriber: logs to stderr (text, coloured only on a
/// terminal, or JSON), filtered by RUST_LOG (default info); spans to OTLP
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Must run inside the Tokio
/// runtime (the gRPC exporter's channel needs it).
pub fn init(format: LogFormat, get: impl Fn(&str) -> Option<String>) -> Telemetry {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Per-layer filters: RUST_LOG=warn quiets the logs, not the traces.
    let fmt = match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
    };
    let settings = self::tracing::Settings::from_lookup(&get);
    let (provider, otel, problem) = match self::tracing::provider(&settings) {
        Ok(Some((provider, tracer))) => {
            spans::install(tracer.clone());
            // Busy/idle times, thread names, source locations and targets
            // cost a clock read or a few strings per span and say little
            // here: span names already say where they come from. (The many
            // small spans, per record and per order, skip this layer:
            // `spans.rs`.)
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_target(false)
                .with_filter(self::tracing::span_filter());
            (Some(provider), Some(layer), None)
        }
        Ok(None) => (None, None, None),
        Err(e) => (None, None, Some(e)),
    };
    ENABLED.store(provider.is_some(), Ordering::Relaxed);
    opentelemetry::global::set_text_map_propagator(propagation::propagator());
    tracing_subscriber::registry().with(fmt).with(otel).init();
    if let Some(e) = problem {
        ::tracing::warn!(error = %e, "traces are not exported");
    } else if provider.is_some() {
        ::tracing::info!(endpoint = ?settings.endpoint,
            protocol = settings.transport().map(|t| t.as_str()).unwrap_or("?"),
            "exporting traces over OTLP");
    }
    Telemetry { provider }
}

/// Lowercase hex trace and span ids of `span`, when it is traced.
pub fn ids(span: &::tracing::Span) -> Option<(String, String)> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// A stored record's span (hex ids) as a remote, sampled span context;
/// None when the ids are not valid W3C ids.
pub fn stored_context(trace_id: &str, span_id: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let trace = TraceId::from_hex(trace_id).ok()?;
    let span = SpanId::from_hex(span_id).ok()?;
    let sc = SpanContext::new(trace, span, TraceFlags::SAMPLED, true, TraceState::NONE);
    sc.is_valid().then_some(sc)
}

/// Links `span` to the stored spans of the records a job consumes, so the
/// job is reachable from each record's trace (and each trace from the
/// job). Nothing when traces are off.
pub fn link_records(span: &::tracing::Span, stored: &[(String, String)]) {
    if !enabled() {
        return;
    }
    for (trace, id) in stored {
        if let Some(sc) = stored_context(trace, id) {
            span.add_link(sc);
        }
    }
}

/// The W3C `traceparent` to send on behalf of `span`: its own context when
/// traced, else the stored record span it acts for, else none.
pub fn traceparent(span: &::tracing::Span, stored: Option<(&str, &str)>) -> Option<String> {
    if let Some((trace, id)) = ids(span) {
        return Some(format!("00-{trace}-{id}-01"));
    }
    let (trace, id) = stored?;
    stored_context(trace, id).map(|sc| format!("00-{}-{}-01", sc.trace_id(), sc.span_id()))
}
