//! Rounding (seed 004: with currency, 17% of ghost revenue): parts that
//! each round within policy (one tolerance per part) but together miss
//! their total by more than the tolerance. Split tenders and ledger lines
//! that do this are ROUNDING_VARIANCE, not an AMOUNT_MISMATCH: no one
//! figure is wrong, the rounding of several adds up.

use rust_decimal::Decimal;

use super::Context;
use crate::domain::facts::sum_in;
use crate::domain::matching::findings::{ExceptionType, Finding, Observation};
use crate::domain::money::Money;
use crate::domain::policy::TolerancePolicy;
use crate::domain::record::{Handoff, Record};

/// Whether `parts` parts summing to `sum` miss `total` beyond the
/// tolerance, yet by no more than one tolerance per part.
pub(crate) fn within_rounding(
    tolerance: &TolerancePolicy,
    parts: usize,
    total: &Money,
    sum: &Money,
) -> bool {
    if parts < 2 || tolerance.agree(total, sum) {
        return false;
    }
    let Some(d) = total.abs_diff(sum) else {
        return false;
    };
    tolerance
        .for_currency(d.currency)
        .checked_mul(Decimal::from(parts as u64))
        .is_some_and(|allowed| d.amount <= allowed)
}

fn finding(
    (rule, subject, handoff): (&str, &str, Handoff),
    what: &str,
    parts: usize,
    whole: Observation,
    sum: Observation,
) -> Option<Finding> {
    let (total, summed) = (whole.amount?, sum.amount?);
    let difference = total.abs_diff(&summed)?;
    Some(Finding {
        exception_type: ExceptionType::RoundingVariance,
        handoff,
        rule: rule.into(),
        subject: subject.into(),
        summary: format!(
            "{parts} {what} ({} {}) sum to {summed}, {difference} from {total} ({} {}): each within rounding, together beyond the tolerance",
            sum.source_system,
            sum.source_ids.join(","),
            whole.source_system,
            whole.source_ids.join(",")
        ),
        observations: vec![whole, sum],
        difference: Some(difference),
    })
}

/// An order's split tenders against its total.
pub(crate) fn split_tenders(ctx: &Context<'_>) -> Option<Finding> {
    let (or, o) = ctx.order?;
    let sum = sum_in(Some(o.total.currency), o.tenders.iter().map(|t| &t.amount))?;
    if o.tenders
        .iter()
        .any(|t| t.amount.currency != o.total.currency)
        || !within_rounding(&ctx.policy.tolerance, o.tenders.len(), &o.total, &sum)
    {
        return None;
    }
    finding(
        (
            "split_tender_rounding",
            ctx.order_id,
            Handoff::OrderToFulfillment,
        ),
        "tenders",
        o.tenders.len(),
        Observation::of(or, Some(o.total)),
        Observation::of(or, Some(sum)),
    )
}

/// The journal lines that book one payment against its gross.
pub(crate) fn ledger_lines(
    ctx: &Context<'_>,
    pr: &Record,
    gross: Money,
    lines: usize,
    journals: &[&Record],
    booked: Money,
) -> Option<Finding> {
    if journals.is_empty() || !within_rounding(&ctx.policy.tolerance, lines, &gross, &booked) {
        return None;
    }
    finding(
        (
            "ledger_line_rounding",
            &pr.source_id,
            Handoff::PaymentToCashApplication,
        ),
        "ERP journal lines",
        lines,
        Observation::of(pr, Some(gross)),
        Observation::of_many(journals, Some(booked)),
    )
}
