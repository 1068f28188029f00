//! Refund rules: a refund that has not reached the next system within the
//! invoice-to-payment contract's lag is REFUND_NOT_PROPAGATED (seed 004's
//! largest ghost-revenue category: the ERP keeps revenue the customer got
//! back), pending with its deadline until then; and refunds beyond what
//! was captured.

use chrono::{DateTime, Utc};

use super::{Context, Held};
use crate::domain::facts::select::{capture_records, proc_payments, processor_ids, sf_txns};
use crate::domain::matching::findings::{ExceptionType, Finding, Observation, record_subject};
use crate::domain::money::Money;
use crate::domain::record::{Handoff, Record, TxnKind};

/// A refund that has not reached the system after it.
struct Gap<'a> {
    rule: &'static str,
    handoff: Handoff,
    record: &'a Record,
    what: &'static str,
    amount: Money,
    /// What is missing, for a person.
    missing: String,
    due: Option<DateTime<Utc>>,
}

/// Storefront refunds of a processor's payment (they name it) that no
/// processor refund answers to; and processor refunds of an order without
/// any ERP credit memo (the memo's amount is the totals rule's business).
fn gaps<'a>(ctx: &Context<'a>) -> Vec<Gap<'a>> {
    let lag = ctx.policy.refund_propagation;
    let processor_refunds: Vec<&Record> =
        proc_payments(ctx.records, true).map(|(r, _)| r).collect();
    let mut out = vec![];
    for (r, t) in sf_txns(ctx.records).filter(|(_, t)| t.kind == TxnKind::Refund) {
        // A refund to a gift card or in cash never goes to the processor.
        let Some(reference) = t.processor_reference.as_deref() else {
            continue;
        };
        let answered = processor_refunds
            .iter()
            .any(|p| processor_ids(p).contains(&reference));
        if answered || t.amount.amount.is_zero() {
            continue;
        }
        out.push(Gap {
            rule: "refund_not_at_processor",
            handoff: Handoff::InvoiceToPayment,
            record: r,
            what: "storefront refund",
            amount: t.amount,
            missing: format!("no processor refund of {reference}"),
            due: ctx.deadline(r, lag),
        });
    }
    if ctx.credit_memos.is_empty() {
        for (r, p) in proc_payments(ctx.records, true).filter(|(_, p)| !p.amount.amount.is_zero()) {
            out.push(Gap {
                rule: "refund_not_credited",
                handoff: Handoff::PaymentToCashApplication,
                record: r,
                what: "processor refund",
                amount: p.amount,
                missing: "no ERP credit memo".into(),
                due: ctx.deadline(r, lag),
            });
        }
    }
    out
}

fn abs(m: Money) -> Money {
    Money::new(m.amount.abs(), m.currency)
}

fn when(due: Option<DateTime<Utc>>) -> String {
    due.map_or_else(|| "never".to_string(), |d| d.to_rfc3339())
}

fn refund_not_propagated(ctx: &Context<'_>) -> Vec<Finding> {
    gaps(ctx)
        .into_iter()
        .filter(|g| ctx.passed(g.due))
        .map(|g| Finding {
            exception_type: ExceptionType::RefundNotPropagated,
            handoff: g.handoff,
            rule: g.rule.into(),
            subject: record_subject(g.record),
            summary: format!(
                "{} {} of {} ({}, {}) has not propagated: {} by {}, the deadline of the {}-hour lag; the ERP still counts it as revenue",
                g.what,
                g.record.source_id,
                abs(g.amount),
                g.record.source_system,
                g.record.event_time.to_rfc3339(),
                g.missing,
                when(g.due),
                ctx.policy.refund_propagation.num_hours()
            ),
            observations: vec![Observation::of(g.record, Some(g.amount))],
            difference: Some(abs(g.amount)),
        })
        .collect()
}

/// While the lag runs, an unpropagated refund is only late so far.
pub(crate) fn held(ctx: &Context<'_>) -> Vec<Held> {
    gaps(ctx)
        .into_iter()
        .filter(|g| !ctx.passed(g.due))
        .filter_map(|g| {
            Some(Held {
                rule: g.rule,
                reason: format!(
                    "{} {} of {} ({}) not yet propagated: {} so far; due by {} ({} hours)",
                    g.what,
                    g.record.source_id,
                    abs(g.amount),
                    g.record.source_system,
                    g.missing,
                    when(g.due),
                    ctx.policy.refund_propagation.num_hours()
                ),
                due: g.due?,
            })
        })
        .collect()
}

/// More refunded than captured: the processor's refunds where it reported
/// any, the storefront's otherwise, against every payment counted once.
fn refund_exceeds_captured(ctx: &Context<'_>) -> Option<Finding> {
    let totals = &ctx.totals;
    let currency = ctx.currency?;
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
