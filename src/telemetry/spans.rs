//! Spans made with the OpenTelemetry SDK directly, for the many small ones.
//!
//! A batch of 1,000 records makes 1,000 record spans and a span per order
//! it touches, so these skip the `tracing` machinery (a registry slot,
//! per-layer filters, the log layer formatting fields no log line prints,
//! the bridge's visitors and context look-ups): they are exported, never
//! logged, and nothing runs inside them. Their parent is the current
//! `tracing` span, looked up once per batch. About half of tracing's CPU
//! cost on ingest went with this (docs/benchmarks.md, "Tracing cost").

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

/// A span ended when dropped; empty when traces are off.
pub struct DataSpan(Option<Span>);

impl DataSpan {
    /// Lowercase hex trace and span ids, when traced.
    pub fn ids(&self) -> Option<(String, String)> {
        let sc = self.0.as_ref()?.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }

    /// Sets (or replaces) one attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new(key, value));
        }
    }
}

/// Starts spans under the span current when it was made.
pub struct Children {
    tracer: &'static SdkTracer,
    parent: Context,
    merchant: Value,
}

impl Children {
    /// None when traces are off: nothing to make.
    pub fn of_current(merchant: &str) -> Option<Children> {
        let tracer = TRACER.get().filter(|_| super::enabled())?;
        Some(Children {
            tracer,
            parent: tracing::Span::current().context(),
            merchant: Value::String(StringValue::from(Arc::<str>::from(merchant))),
        })
    }

    /// A span named `name` with the merchant and `attributes`.
    pub fn start(&self, name: &'static str, attributes: Vec<KeyValue>) -> DataSpan {
        let mut all = Vec::with_capacity(attributes.len() + 1);
        all.push(KeyValue::new("tally.merchant", self.merchant.clone()));
        all.extend(attributes);
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(all)
            .start_with_context(self.tracer, &self.parent);
        DataSpan(Some(span))
    }
}

/// A span per record, children of the current span: who sent what for
/// which order and handoff, never a payload field (no card or personal
/// data). The caller sets `tally.outcome` once judged, and `tally.lag`
/// (seconds behind its predecessor in the order's previous stage).
pub fn record_spans<'r>(
    merchant: &str,
    records: impl ExactSizeIterator<Item = &'r Record>,
) -> Vec<DataSpan> {
    let Some(children) = Children::of_current(merchant) else {
        return records.map(|_| DataSpan(None)).collect();
    };
    records
        .map(|r| {
            let kind = r.kind();
            let mut attributes = Vec::with_capacity(5);
            if let Some(order) = &r.order_id {
                attributes.push(KeyValue::new("tally.order_id", order.clone()));
            }
            attributes.extend([
                KeyValue::new("tally.handoff", kind.handoff().as_str()),
                KeyValue::new("tally.source_system", r.source_system.clone()),
                KeyValue::new("tally.source_id", r.source_id.clone()),
                KeyValue::new("tally.record_kind", kind.as_str()),
            ]);
            children.start("tally.record", attributes)
        })
        .collect()
}
