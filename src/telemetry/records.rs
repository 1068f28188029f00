//! Record spans, made with the OpenTelemetry SDK directly.
//!
//! A batch of 1,000 records makes 1,000 of them, so they skip the `tracing`
//! machinery (registry slot, per-layer filters, the log layer formatting
//! fields no log line prints, the bridge's visitors and context look-ups):
//! they are exported only, never logged, and nothing runs inside them. Their
//! parent is the call's current span, once per batch.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::record::Record;

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Called once, by [`super::init`], when spans are exported.
pub(super) fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// One record's span, ended when dropped. Empty when traces are off.
pub struct RecordSpan(Option<Span>);

impl RecordSpan {
    /// Lowercase hex trace and span ids, when traced.
    pub fn ids(&self) -> Option<(String, String)> {
        let sc = self.0.as_ref()?.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }

    /// How the record was judged (accepted, duplicate, ...).
    pub fn outcome(&mut self, outcome: &'static str) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new("tally.outcome", outcome));
        }
    }

    /// Seconds behind its predecessor in the order's previous stage.
    pub fn lag(&mut self, seconds: f64) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new("tally.lag", seconds));
        }
    }
}

/// A span per record, children of the current span: who sent what for
/// which order and handoff, never a payload field (no card or personal
/// data). Empty spans when traces are off.
pub fn record_spans<'r>(
    merchant: &str,
    records: impl ExactSizeIterator<Item = &'r Record>,
) -> Vec<RecordSpan> {
    let Some(tracer) = TRACER.get().filter(|_| super::enabled()) else {
        return records.map(|_| RecordSpan(None)).collect();
    };
    let parent: Context = tracing::Span::current().context();
    let merchant = Value::String(StringValue::from(Arc::<str>::from(merchant)));
    records
        .map(|r| {
            let kind = r.kind();
            let mut attributes = Vec::with_capacity(9);
            attributes.push(KeyValue::new("tally.merchant", merchant.clone()));
            if let Some(order) = &r.order_id {
                attributes.push(KeyValue::new("tally.order_id", order.clone()));
            }
            attributes.extend([
                KeyValue::new("tally.handoff", kind.handoff().as_str()),
                KeyValue::new("tally.source_system", r.source_system.clone()),
                KeyValue::new("tally.source_id", r.source_id.clone()),
                KeyValue::new("tally.record_kind", kind.as_str()),
            ]);
            let span = tracer
                .span_builder("tally.record")
                .with_kind(SpanKind::Internal)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            RecordSpan(Some(span))
        })
        .collect()
}
