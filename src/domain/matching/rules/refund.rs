//! Refund rules: a refund the processor made that neither the storefront
//! nor the ERP has heard of (pending while its propagation lag runs), and
//! refunds beyond what was captured.

use super::Context;
use crate::domain::facts::select::{capture_records, proc_payments, sf_txns};
use crate::domain::matching::findings::{ExceptionType, Finding, Observation, record_subject};
use crate::domain::money::Money;
use crate::domain::record::{Handoff, ProcessorPayment, Record, TxnKind};

/// Processor refunds the storefront and the ERP know nothing of: the order
/// has no storefront refund and no credit memo. A refund either names its
/// storefront counterpart or not, so propagation is judged per order;
/// the amounts of propagated refunds are compared by the payment and
/// totals rules.
fn unpropagated<'a>(ctx: &Context<'a>) -> Vec<(&'a Record, &'a ProcessorPayment)> {
    let storefront_knows = sf_txns(ctx.records).any(|(_, t)| t.kind == TxnKind::Refund);
    if storefront_knows || !ctx.credit_memos.is_empty() {
        return vec![];
    }
    proc_payments(ctx.records, true)
        .filter(|(_, p)| !p.amount.amount.is_zero())
        .collect()
}

/// Whether a refund's propagation lag has run out by the context's time.
/// A lag that overflows the calendar never runs out.
fn lag_over(ctx: &Context<'_>, r: &Record) -> bool {
    r.event_time
        .checked_add_signed(ctx.policy.refund_propagation)
        .is_some_and(|due| due <= ctx.now)
}

fn refund_not_propagated(ctx: &Context<'_>) -> Vec<Finding> {
    unpropagated(ctx)
        .into_iter()
        .filter(|(r, _)| lag_over(ctx, r))
        .map(|(r, p)| Finding {
            exception_type: ExceptionType::NotPropagated,
            handoff: Handoff::InvoiceToPayment,
            rule: "refund_not_propagated".into(),
            subject: record_subject(r),
            summary: format!(
                "processor refund {} of {} ({}, {}) has reached neither the storefront (no storefront refund) nor the ERP (no credit memo) within {} hours",
                r.source_id,
                p.amount,
                r.source_system,
                r.event_time.to_rfc3339(),
                ctx.policy.refund_propagation.num_hours()
            ),
            observations: vec![Observation::of(r, Some(p.amount))],
            difference: Some(p.amount),
        })
        .collect()
}

/// While the lag runs, an unpropagated refund is only late so far.
pub(crate) fn pending(ctx: &Context<'_>) -> Vec<String> {
    unpropagated(ctx)
        .into_iter()
        .filter(|(r, _)| !lag_over(ctx, r))
        .map(|(r, p)| {
            format!(
                "processor refund {} of {} ({}) not yet seen at the storefront or in the ERP; waiting up to {} hours",
                r.source_id,
                p.amount,
                r.source_system,
                ctx.policy.refund_propagation.num_hours()
            )
        })
        .collect()
}

/// More refunded than captured: the processor's refunds where it reported
/// any, the storefront's otherwise, against every payment counted once.
fn refund_exceeds_captured(ctx: &Context<'_>) -> Option<Finding> {
    let totals = &ctx.tx.totals;
    let currency = ctx.tx.currency?;
    let (refunded, refunds): (Money, Vec<&Record>) = match totals.processor_refunded {
        Some(r) => (
            r,
            proc_payments(ctx.records, true).map(|(r, _)| r).collect(),
        ),
        None => (
            totals.storefront_refunded?,
            sf_txns(ctx.records)
                .filter(|(_, t)| t.kind == TxnKind::Refund)
                .map(|(r, _)| r)
                .collect(),
        ),
    };
    let captured = totals.captured.unwrap_or(Money::zero(currency));
    if refunds.is_empty() || !ctx.policy.tolerance.exceeds(&refunded, &captured) {
        return None;
    }
    let excess = refunded.checked_sub(&captured)?;
    let captures = capture_records(ctx.records);
    let mut observations = vec![Observation::of_many(&refunds, Some(refunded))];
    let captured_by = if captures.is_empty() {
        "nothing captured".to_string()
    } else {
        let o = Observation::of_many(&captures, Some(captured));
        let by = format!("{} {}", o.source_system, o.source_ids.join(","));
        observations.push(o);
        by
    };
    Some(Finding {
        exception_type: ExceptionType::AmountMismatch,
        handoff: Handoff::InvoiceToPayment,
        rule: "refund_exceeds_captured".into(),
        subject: ctx.order_id.to_string(),
        summary: format!(
            "refunds of {refunded} ({} {}) exceed the {captured} captured ({captured_by}) by {excess}",
            observations[0].source_system,
            observations[0].source_ids.join(",")
        ),
        observations,
        difference: Some(excess),
    })
}

pub(crate) fn findings(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = refund_not_propagated(ctx);
    out.extend(refund_exceeds_captured(ctx));
    out
}
