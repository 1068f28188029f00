//! Sequence rules: steps dated before the steps they depend on.

use super::Context;
use crate::domain::matching::findings::{Finding, sequence};
use crate::domain::record::{Handoff, Record, RefKind};

/// Fulfilments and invoices dated before the order.
fn before_order(ctx: &Context<'_>) -> Vec<Finding> {
    let Some((or, _)) = ctx.order else {
        return vec![];
    };
    let fulfilments = ctx.fulfilments.iter().filter_map(|f| {
        sequence(
            ("fulfillment_before_order", Handoff::OrderToFulfillment),
            (f, "fulfilment"),
            (or, "order"),
        )
    });
    let invoices = ctx.invoices.iter().filter_map(|i| {
        sequence(
            ("invoice_before_order", Handoff::FulfillmentToInvoice),
            (i, "invoice"),
            (or, "order"),
        )
    });
    fulfilments.chain(invoices).collect()
}

/// The fulfilment an invoice must follow: the latest it bills, or the
/// first of the order when it names none.
fn billed_fulfilment<'a>(ctx: &Context<'a>, invoice: &Record) -> Option<&'a Record> {
    let billed: Vec<&Record> = invoice
        .ids_of(RefKind::Fulfillment)
        .filter_map(|id| ctx.fulfilments.iter().copied().find(|f| f.source_id == id))
        .collect();
    if billed.is_empty() {
        ctx.fulfilments.iter().copied().min_by_key(|f| f.event_time)
    } else {
        billed.into_iter().max_by_key(|f| f.event_time)
    }
}

fn invoice_before_fulfilment(ctx: &Context<'_>) -> Vec<Finding> {
    ctx.invoices
        .iter()
        .filter_map(|i| {
            let f = billed_fulfilment(ctx, i)?;
            sequence(
                ("invoice_before_fulfillment", Handoff::FulfillmentToInvoice),
                (i, "invoice"),
                (f, "fulfilment"),
            )
        })
        .collect()
}

fn credit_memo_before_invoice(ctx: &Context<'_>) -> Vec<Finding> {
    let Some(first_invoice) = ctx.invoices.iter().copied().min_by_key(|i| i.event_time) else {
        return vec![];
    };
    ctx.credit_memos
        .iter()
        .filter_map(|c| {
            sequence(
                ("credit_memo_before_invoice", Handoff::FulfillmentToInvoice),
                (c, "credit memo"),
                (first_invoice, "invoice"),
            )
        })
        .collect()
}

pub(crate) fn all(ctx: &Context<'_>) -> Vec<Finding> {
    let mut findings = before_order(ctx);
    findings.extend(invoice_before_fulfilment(ctx));
    findings.extend(credit_memo_before_invoice(ctx));
    findings
}
