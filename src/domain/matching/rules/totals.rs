//! Order totals: the order against what was invoiced and captured (once
//! shipping is complete, or at once when it is already exceeded), invoices
//! against captures when there is no order, refunds against credit memos.

use super::Context;
use crate::domain::facts::select::{capture_records, sf_txns};
use crate::domain::matching::findings::{Finding, Observation, Side, compare};
use crate::domain::money::Money;
use crate::domain::record::{Body, Handoff, Record, StorefrontOrder, TxnKind};

/// Whether a total is compared now: when shipping is complete, or when it
/// already exceeds the order (no later shipment makes that right).
fn due(ctx: &Context<'_>, figure: &Money, order: &StorefrontOrder) -> bool {
    !ctx.partly_shipped() || ctx.policy.tolerance.exceeds(figure, &order.total)
}

fn order_side<'a>(or: &Record, o: &StorefrontOrder) -> Side<'a> {
    Side::new(
        "storefront order total",
        Observation::of(or, Some(o.total)),
        o.total,
    )
}

pub(crate) fn order_vs_invoiced(ctx: &Context<'_>) -> Option<Finding> {
    let ((or, o), inv) = (ctx.order?, ctx.tx.totals.invoiced?);
    if !due(ctx, &inv, o) {
        return None;
    }
    let invoices = Observation::of_many(&ctx.invoices, Some(inv));
    let mut finding = compare(
        &ctx.policy.tolerance,
        (
            "order_total_vs_invoiced",
            ctx.order_id,
            Handoff::FulfillmentToInvoice,
        ),
        order_side(or, o),
        Side::new("ERP invoiced total", invoices, inv),
    )?;
    name_unbilled_discount(ctx, o, inv, &mut finding);
    Some(finding)
}

/// The commonest cause has a signature worth naming: the ERP billed full
/// retail because the discount never reached it.
fn name_unbilled_discount(ctx: &Context<'_>, o: &StorefrontOrder, inv: Money, f: &mut Finding) {
    let Some(discount) = o.total_discount.filter(|d| !d.amount.is_zero()) else {
        return;
    };
    let unbilled = ctx.invoices.iter().all(
        |i| matches!(&i.body, Body::Invoice(b) if b.discount.is_none_or(|d| d.amount.is_zero())),
    );
    if unbilled && f.difference == Some(discount) && inv.amount > o.total.amount {
        f.summary.push_str(&format!(
            "; that is the order's discount of {discount}, which the invoices do not carry"
        ));
    }
}

pub(crate) fn order_vs_captured(ctx: &Context<'_>) -> Option<Finding> {
    let ((or, o), cap) = (ctx.order?, ctx.tx.totals.captured?);
    if !due(ctx, &cap, o) {
        return None;
    }
    let capture_records = capture_records(ctx.records);
    let captures = if capture_records.is_empty() {
        Observation::of(or, Some(cap))
    } else {
        Observation::of_many(&capture_records, Some(cap))
    };
    compare(
        &ctx.policy.tolerance,
        (
            "order_total_vs_captured",
            ctx.order_id,
            Handoff::InvoiceToPayment,
        ),
        order_side(or, o),
        Side::new("captured", captures, cap),
    )
}

/// Without an order, the ERP's invoices against the processor's captures.
pub(crate) fn invoiced_vs_captured(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.order.is_some() || ctx.payments.is_empty() {
        return None;
    }
    let (inv, cap) = (ctx.tx.totals.invoiced?, ctx.tx.totals.captured?);
    compare(
        &ctx.policy.tolerance,
        (
            "invoiced_vs_captured",
            ctx.order_id,
            Handoff::InvoiceToPayment,
        ),
        Side::new(
            "ERP invoiced total",
            Observation::of_many(&ctx.invoices, Some(inv)),
            inv,
        ),
        Side::new(
            "processor captured",
            Observation::of_many(&ctx.payments, Some(cap)),
            cap,
        ),
    )
}

/// Refunds as the storefront saw them against the ERP's credit memos.
pub(crate) fn refunded_vs_credited(ctx: &Context<'_>) -> Option<Finding> {
    let refunded = ctx.tx.totals.storefront_refunded?;
    let credited = ctx.tx.totals.credited?;
    let sf: Vec<&Record> = sf_txns(ctx.records)
        .filter(|(_, t)| t.kind == TxnKind::Refund)
        .map(|(r, _)| r)
        .collect();
    let memos = Observation::of_many(&ctx.credit_memos, Some(credited));
    compare(
        &ctx.policy.tolerance,
        (
            "refunded_vs_credited",
            ctx.order_id,
            Handoff::FulfillmentToInvoice,
        ),
        Side::new(
            "storefront refunds",
            Observation::of_many(&sf, Some(refunded)),
            refunded,
        ),
        Side::new("ERP credit memos", memos, credited),
    )
}

pub(crate) fn all(ctx: &Context<'_>) -> Vec<Finding> {
    [
        order_vs_invoiced(ctx),
        order_vs_captured(ctx),
        invoiced_vs_captured(ctx),
        refunded_vs_credited(ctx),
    ]
    .into_iter()
    .flatten()
    .collect()
}
