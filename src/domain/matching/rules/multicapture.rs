//! A multicapture order that shipped in full with its captures short: the
//! last captures follow the shipment, so within the invoice-to-payment
//! contract's lag the order is pending (Hyperswitch's EXPECTED, not
//! MISMATCHED), with the reason and the deadline; after it, the totals
//! rule calls it AMOUNT_MISMATCH (`Context::capturing` stops excusing it).

use chrono::{DateTime, Utc};

use super::{Context, Held};
use crate::domain::facts::select::capture_records;

/// When the remaining captures are due: the contract's lag after the
/// latest shipment or capture, whichever came last. None while nothing
/// has shipped (then the order-to-fulfilment deadline is what runs).
pub(crate) fn deadline(ctx: &Context<'_>) -> Option<DateTime<Utc>> {
    let lag = ctx.policy.capture_lag;
    capture_records(ctx.records)
        .into_iter()
        .chain(ctx.fulfilments.iter().copied())
        .filter(|_| !ctx.fulfilments.is_empty())
        .filter_map(|r| ctx.deadline(r, lag))
        .max()
}

/// The held comparison while the lag runs.
pub(crate) fn held(ctx: &Context<'_>) -> Option<Held> {
    let (_, o) = ctx.order?;
    let captured = ctx.totals.captured?;
    if ctx.fulfilments.is_empty() || !ctx.capturing() {
        return None;
    }
    let due = deadline(ctx)?;
    Some(Held {
        rule: "order_total_vs_captured",
        reason: format!(
            "shipped in full, captured {captured} of {} so far; the remaining captures are due by {} (the invoice-to-payment contract's max lag)",
            o.total,
            due.to_rfc3339()
        ),
        due,
    })
}
