//! Order totals: the order against what was invoiced and captured (once
//! shipping is complete, or at once when it is already exceeded), invoices
//! against captures when there is no order, refunds against credit memos.

use super::Context;
use crate::domain::facts::select::{capture_records, proc_payments, processor_ids, sf_txns};
use crate::domain::facts::sum_in;
use crate::domain::matching::findings::{Finding, Side, compare};
use crate::domain::money::Money;
use crate::domain::record::{Handoff, Record, StorefrontOrder, Tender, TenderType, TxnKind};

/// Whether a total is compared now: when shipping is complete, or when it
/// already exceeds the order (no later shipment makes that right).
fn due(ctx: &Context<'_>, figure: &Money, order: &StorefrontOrder) -> bool {
    !ctx.partly_shipped() || ctx.policy.tolerance.exceeds(figure, &order.total)
}

fn order_side<'a>(or: &'a Record, o: &StorefrontOrder) -> Side<'a> {
    Side::one("storefront order total", or, o.total)
}

pub(crate) fn order_vs_invoiced(ctx: &Context<'_>) -> Option<Finding> {
    let ((or, o), inv) = (ctx.order?, ctx.totals.invoiced?);
    if !due(ctx, &inv, o) {
        return None;
    }
    let finding = compare(
        &ctx.policy.tolerance,
        (
            "order_total_vs_invoiced",
            ctx.order_id,
            Handoff::FulfillmentToInvoice,
        ),
        order_side(or, o),
        Side::many("ERP invoiced total", &ctx.invoices, inv),
    )?;
    Some(super::discount::unmapped(ctx, o, inv, finding))
}

pub(crate) fn order_vs_captured(ctx: &Context<'_>) -> Option<Finding> {
    let ((or, o), cap) = (ctx.order?, ctx.totals.captured?);
    if !due(ctx, &cap, o) || ctx.capturing() {
        return None;
    }
    // Tenders short by their rounding were captured as tendered: one
    // fault, reported once, as ROUNDING_VARIANCE.
    if super::rounding::split_tenders(ctx).is_some()
        && super::rounding::within_rounding(&ctx.policy.tolerance, o.tenders.len(), &o.total, &cap)
    {
        return None;
    }
    if let Some(f) = card_tenders_vs_charges(ctx, o) {
        return Some(f);
    }
    let capture_records = capture_records(ctx.records);
    let captures = if capture_records.is_empty() {
        Side::one("captured", or, cap)
    } else {
        Side::many("captured", &capture_records, cap)
    };
    compare(
        &ctx.policy.tolerance,
        (
            "order_total_vs_captured",
            ctx.order_id,
            Handoff::InvoiceToPayment,
        ),
        order_side(or, o),
        captures,
    )
}

/// A split tender: the gift card settled at checkout, so a disagreement
/// about the card is the card tender against its charges, not the
/// order's total against a figure blended with the gift card. None when
/// the order is not split, its charges are unknown, or they agree.
fn card_tenders_vs_charges(ctx: &Context<'_>, o: &StorefrontOrder) -> Option<Finding> {
    let (or, _) = ctx.order?;
    let cards: Vec<&Tender> = o
        .tenders
        .iter()
        .filter(|t| t.tender_type == TenderType::Card && t.processor_reference.is_some())
        .collect();
    if cards.is_empty() || cards.len() == o.tenders.len() {
        return None;
    }
    let references: Vec<&str> = cards
        .iter()
        .filter_map(|t| t.processor_reference.as_deref())
        .collect();
    let charges: Vec<(&Record, Money)> = proc_payments(ctx.records, false)
        .filter(|(r, _)| processor_ids(r).iter().any(|id| references.contains(id)))
        .map(|(r, p)| (r, p.amount))
        .collect();
    if charges.is_empty() {
        return None;
    }
    let currency = ctx.currency;
    let tendered = sum_in(currency, cards.iter().map(|t| &t.amount))?;
    let charged = sum_in(currency, charges.iter().map(|(_, m)| m))?;
    let charge_records: Vec<&Record> = charges.iter().map(|(r, _)| *r).collect();
    compare(
        &ctx.policy.tolerance,
        (
            "order_total_vs_captured",
            ctx.order_id,
            Handoff::InvoiceToPayment,
        ),
        Side::one("storefront card tender", or, tendered),
        Side::many("processor charged", &charge_records, charged),
    )
}

/// Without an order, the ERP's invoices against the processor's captures.
pub(crate) fn invoiced_vs_captured(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.order.is_some() || ctx.payments.is_empty() {
        return None;
    }
    let (inv, cap) = (ctx.totals.invoiced?, ctx.totals.captured?);
    compare(
        &ctx.policy.tolerance,
        (
            "invoiced_vs_captured",
            ctx.order_id,
            Handoff::InvoiceToPayment,
        ),
        Side::many("ERP invoiced total", &ctx.invoices, inv),
        Side::many("processor captured", &ctx.payments, cap),
    )
}

/// Refunds as the storefront saw them against the ERP's credit memos.
pub(crate) fn refunded_vs_credited(ctx: &Context<'_>) -> Option<Finding> {
    let refunded = ctx.totals.storefront_refunded?;
    let credited = ctx.totals.credited?;
    let sf: Vec<&Record> = sf_txns(ctx.records)
        .filter(|(_, t)| t.kind == TxnKind::Refund)
        .map(|(r, _)| r)
        .collect();
    compare(
        &ctx.policy.tolerance,
        (
            "refunded_vs_credited",
            ctx.order_id,
            Handoff::FulfillmentToInvoice,
        ),
        Side::many("storefront refunds", &sf, refunded),
        Side::many("ERP credit memos", &ctx.credit_memos, credited),
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
