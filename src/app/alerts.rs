//! Alerts: when an exception opens, its owner's webhook gets one
//! Slack-compatible JSON message. The exceptions trigger writes the outbox
//! row (one per exception, ever); the worker (`worker.rs`) claims due rows
//! per merchant (SKIP LOCKED, a lease longer than a POST may take) and
//! commits, POSTs (`webhook.rs`: http:// or https://) with no transaction
//! open, then records the attempt:
//! delivered, or retried with exponential back-off. A row stays until
//! delivered, so a restart loses nothing, and the lease means two workers
//! never send one alert twice (only a worker dying between a 2xx reply
//! and recording it can: the lease ends and the alert is sent again).
//!
//! Each POST carries a W3C `traceparent`: the delivery span's, whose
//! parent is the stored span of the exception's newest record, so the
//! receiver's handling joins the order's trace.

use tracing::Instrument;

use super::App;
use super::webhook::POST_TIMEOUT;
use crate::domain::currency::Currency;
use crate::domain::handoff::contract_id;
use crate::domain::money::format_amount;
use crate::domain::record::Handoff;
use crate::error::Result;
use crate::storage::alerts::{self, Due};

/// Alerts sent per merchant per transaction.
const BATCH: i64 = 20;
/// How long a claim keeps other workers off an alert: a batch of POSTs,
/// each bounded by `webhook::POST_TIMEOUT`, and then some.
const LEASE_MS: i64 = BATCH * POST_TIMEOUT.as_millis() as i64 + 30_000;
/// Back-off: 0.5 s, 1 s, 2 s, ... up to five minutes.
const FIRST_RETRY_MS: i64 = 500;
const LAST_RETRY_MS: i64 = 5 * 60 * 1000;

/// The wait after the `attempts`-th failure.
pub fn backoff_ms(attempts: i32) -> i64 {
    let shift = attempts.clamp(0, 20) as u32;
    FIRST_RETRY_MS
        .saturating_mul(1_i64 << shift)
        .min(LAST_RETRY_MS)
}

/// The message: `text` for people, fields for machines and Slack.
pub fn message(merchant: &str, d: &Due) -> serde_json::Value {
    let name = format!("merchants/{merchant}/exceptions/{}", d.exception_id);
    let handoff = Handoff::parse(&d.handoff).map(contract_id).unwrap_or("?");
    let order = d.order_id.clone().unwrap_or_default();
    // "100.00 USD": the amount at its currency's scale.
    let at_risk = match (d.at_risk_amount, d.at_risk_currency.as_deref()) {
        (Some(a), Some(code)) => match Currency::from_code(code) {
            Some(c) => format!("{} {code}", format_amount(a, c)),
            None => format!("{a} {code}"),
        },
        _ => "no amount".to_string(),
    };
    let fetch = format!(
        "grpcurl -plaintext -d '{{\"name\":\"{name}\"}}' {} tally.v1.ExceptionService/GetException",
        crate::config::DEFAULT_GRPC_ADDR
    );
    let field = |title: &str, value: &str| serde_json::json!({"title": title, "value": value, "short": title != "fetch"});
    serde_json::json!({
        "text": format!(
            "{} on order {order} ({handoff}), {at_risk} at risk: {}",
            d.r#type.to_uppercase(),
            d.summary
        ),
        "attachments": [{
            "fallback": d.summary,
            "fields": [
                field("exception", &name),
                field("type", &d.r#type.to_uppercase()),
                field("order", &order),
                field("handoff", handoff),
                field("amount at risk", &at_risk),
                field("owner", d.owner.as_deref().unwrap_or_default()),
                field("fetch", &fetch),
            ],
        }],
    })
}

/// The delivery's span: a child of the record span it alerts about (and
/// linked to it), so it belongs to the order's trace.
fn delivery_span(merchant: &str, d: &Due) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: "tally::alert",
        "alert",
        otel.name = "tally.alert.deliver",
        otel.kind = "client",
        tally.merchant = merchant,
        tally.exception_id = %d.exception_id,
        tally.exception_type = %d.r#type,
        tally.handoff = %d.handoff,
        tally.order_id = d.order_id.as_deref(),
        tally.attempt = d.attempts + 1,
        http.request.method = "POST",
        tally.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let (Some(t), Some(s)) = (&d.trace_id, &d.span_id)
        && let Some(sc) = crate::telemetry::stored_context(t, s)
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc.clone()));
        span.add_link(sc);
    }
    span
}

impl App {
    /// Sends every due alert once, merchant by merchant; returns how many
    /// were delivered. Run by the worker.
    pub async fn deliver_alerts(&self) -> Result<usize> {
        let merchants = {
            let mut conn = self.store().conn().await?;
            alerts::merchants_due(&mut conn).await?
        };
        let mut delivered = 0;
        for merchant in merchants {
            delivered += self.deliver_merchant_alerts(&merchant).await?;
        }
        Ok(delivered)
    }

    /// Claim (committed) -> POST (no transaction, no connection held) ->
    /// record the result.
    async fn deliver_merchant_alerts(&self, merchant: &str) -> Result<usize> {
        let due = {
            let mut conn = self.store().conn().await?;
            alerts::claim(&mut conn, merchant, BATCH, LEASE_MS).await?
        };
        let mut ok = 0;
        for d in &due {
            let span = delivery_span(merchant, d);
            let stored = d.trace_id.as_deref().zip(d.span_id.as_deref());
            let traceparent = crate::telemetry::traceparent(&span, stored);
            let result = self
                .webhooks()
                .post(
                    &d.webhook_uri,
                    &message(merchant, d),
                    traceparent.as_deref(),
                )
                .instrument(span.clone())
                .await;
            match &result {
                Ok(()) => {
                    ok += 1;
                    span.record("tally.outcome", "delivered");
                }
                Err(e) => {
                    span.record("tally.outcome", "failed");
                    span.record("otel.status_code", "error");
                    tracing::warn!(
                        exception = %d.exception_id, attempts = d.attempts + 1,
                        error = %e, "alert not delivered; will retry")
                }
            }
            let error = result.err();
            let mut conn = self.store().conn().await?;
            alerts::record(
                &mut conn,
                merchant,
                d.exception_id,
                error.as_deref(),
                backoff_ms(d.attempts),
            )
            .await?;
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff_ms(0), 500);
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(3), 4000);
        assert_eq!(backoff_ms(30), LAST_RETRY_MS);
        assert_eq!(backoff_ms(-1), 500);
    }
}
