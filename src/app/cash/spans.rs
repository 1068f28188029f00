//! The spans of cash-application work: each job's and its journal write's
//! link to the stored spans of the records they consume, so one order's
//! path is reachable from any of its traces, across processes.

use crate::error::Result;
use crate::storage::{Conn, record_log};

/// Links the current (job) span to the stored spans of the records it
/// consumes, the orders' and the payout's, so the job is reachable from
/// each of their traces; returns them for the journal span. Nothing is
/// read when traces are off.
pub(super) async fn links(
    conn: &mut Conn,
    merchant: &str,
    orders: &[String],
    payout_id: Option<&str>,
) -> Result<Vec<(String, String)>> {
    if !crate::telemetry::enabled() {
        return Ok(vec![]);
    }
    let span = tracing::Span::current();
    span.record("tally.orders", orders.len());
    let rows = record_log::span_contexts(conn, merchant, orders, payout_id).await?;
    let stored: Vec<(String, String)> = rows.into_iter().map(|r| (r.trace_id, r.span_id)).collect();
    crate::telemetry::link_records(&span, &stored);
    Ok(stored)
}

/// `tally.journal.write`, linked like its job's span to the records it books.
pub(super) fn journal_span(
    merchant: &str,
    payout_id: Option<&str>,
    entries: usize,
    links: &[(String, String)],
) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(target: "tally::ledger", "journal_write",
        otel.name = "tally.journal.write",
        tally.merchant = merchant,
        tally.payout_id = payout_id,
        tally.entries = entries);
    crate::telemetry::link_records(&span, links);
    span
}
