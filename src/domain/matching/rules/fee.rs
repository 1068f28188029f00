//! Fee allocation (seed 004: 28% of ghost revenue). The ERP booked a
//! payment at its net, the processor's fee already taken, and no line of
//! its journals carries the fee: the fee never reached the books, and
//! sales are understated by it. FEE_UNALLOCATED, with the fee at risk. A
//! journal that books the fee on a line of its own is not this (the
//! payment rule compares its figures).

use super::Context;
use crate::domain::matching::findings::{ExceptionType, Finding, Observation};
use crate::domain::money::Money;
use crate::domain::record::{Body, Handoff, ProcessorPayment, Record};

/// The finding when `journals` book `pr` at `booked`, its net, and none of
/// them has a line for its fee.
pub(crate) fn unallocated(
    ctx: &Context<'_>,
    pr: &Record,
    p: &ProcessorPayment,
    journals: &[&Record],
    booked: Money,
) -> Option<Finding> {
    let tolerance = &ctx.policy.tolerance;
    let fee = p
        .fee
        .filter(|f| !f.amount.is_zero() && f.currency == p.amount.currency)?;
    let net = p.amount.checked_sub(&fee)?;
    if journals.is_empty() || !tolerance.agree(&booked, &net) {
        return None;
    }
    let fee_line = journals.iter().any(|j| match &j.body {
        Body::JournalEntry(e) if e.currency == fee.currency => e.lines.iter().any(|l| {
            l.reference.as_deref() != Some(pr.source_id.as_str())
                && tolerance.agree(&Money::new(l.debit, e.currency), &fee)
        }),
        _ => false,
    });
    if fee_line {
        return None;
    }
    let ids: Vec<&str> = journals.iter().map(|j| j.source_id.as_str()).collect();
    Some(Finding {
        exception_type: ExceptionType::FeeUnallocated,
        handoff: Handoff::PaymentToCashApplication,
        rule: "fee_unallocated".into(),
        subject: pr.source_id.clone(),
        summary: format!(
            "ERP journal {} books {} ({}) at its net of {booked}; the processor's fee of {fee} has no journal line of its own and never reaches processing fees",
            ids.join(","),
            pr.source_id,
            pr.source_system
        ),
        observations: vec![
            Observation::of(pr, Some(p.amount)),
            Observation::of_many(journals, Some(booked)),
        ],
        difference: Some(fee),
    })
}
