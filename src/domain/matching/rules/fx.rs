//! Currency (seed 004: with rounding, 17% of ghost revenue): the rate the
//! processor converted a payment at against the rate the ERP booked it at
//! on the same day. Beyond the contract's rate tolerance (a fraction of
//! the ERP's rate) the difference is an unrecorded FX gain or loss:
//! FX_VARIANCE, with the money the two rates value differently at risk.

use rust_decimal::{Decimal, RoundingStrategy};

use super::Context;
use crate::domain::facts::select::{proc_payments, processor_ids};
use crate::domain::matching::findings::{ExceptionType, Finding, Observation, record_subject};
use crate::domain::money::Money;
use crate::domain::record::{Body, Handoff, JournalEntry, ProcessorPayment, Record};

/// The processor's rate of a payment: its own, or its balance
/// transaction's (Stripe states it there).
fn processor_rate(ctx: &Context<'_>, pr: &Record, p: &ProcessorPayment) -> Option<Decimal> {
    let ids = processor_ids(pr);
    p.exchange_rate
        .or_else(|| {
            ctx.records.iter().find_map(|sr| match &sr.record.body {
                Body::BalanceTransaction(b)
                    if b.source.as_deref().is_some_and(|s| ids.contains(&s)) =>
                {
                    b.exchange_rate
                }
                _ => None,
            })
        })
        .filter(|r| *r > Decimal::ZERO)
}

/// Journals of the payment's day, in its currency, with a rate, that book
/// it (a line names one of its ids).
fn erp_rates<'a>(ctx: &Context<'a>, pr: &Record) -> Vec<(&'a Record, &'a JournalEntry, Decimal)> {
    let ids = processor_ids(pr);
    let currency = pr.headline_amount().map(|m| m.currency);
    ctx.records
        .iter()
        .filter_map(|sr| match &sr.record.body {
            Body::JournalEntry(e) => Some((&sr.record, e)),
            _ => None,
        })
        .filter(|(j, e)| {
            Some(e.currency) == currency
                && j.event_time.date_naive() == pr.event_time.date_naive()
                && e.lines
                    .iter()
                    .any(|l| l.reference.as_deref().is_some_and(|r| ids.contains(&r)))
        })
        .filter_map(|(j, e)| Some((j, e, e.exchange_rate.filter(|r| *r > Decimal::ZERO)?)))
        .collect()
}

/// What the two rates value differently: amount x |difference of rates|
/// in the settlement currency when the fee names it, else back in the
/// payment's own currency; rounded to its minor unit.
fn at_risk(p: &ProcessorPayment, processor: Decimal, erp: Decimal) -> Option<Money> {
    let spread = (processor - erp).abs();
    let settled = p
        .fee
        .map(|f| f.currency)
        .filter(|c| *c != p.amount.currency);
    let (amount, currency) = match settled {
        Some(c) => (p.amount.amount.abs().checked_mul(spread)?, c),
        None => (
            p.amount
                .amount
                .abs()
                .checked_mul(spread)?
                .checked_div(processor)?,
            p.amount.currency,
        ),
    };
    let rounded =
        amount.round_dp_with_strategy(currency.exponent(), RoundingStrategy::MidpointAwayFromZero);
    Some(Money::new(rounded.normalize(), currency))
}

pub(crate) fn rates(ctx: &Context<'_>) -> Vec<Finding> {
    let tolerance = ctx.policy.fx_rate_tolerance;
    let mut out = vec![];
    for (pr, p) in proc_payments(ctx.records, false) {
        let Some(processor) = processor_rate(ctx, pr, p) else {
            continue;
        };
        for (j, _, erp) in erp_rates(ctx, pr) {
            let stray = (processor - erp).abs().checked_div(erp);
            if stray.is_none_or(|s| s <= tolerance) {
                continue;
            }
            out.push(Finding {
                exception_type: ExceptionType::FxVariance,
                handoff: Handoff::PaymentToCashApplication,
                rule: "fx_rate_variance".into(),
                subject: format!("{}+{}", record_subject(pr), j.source_id),
                summary: format!(
                    "{} {} ({}) converted at {processor}; ERP journal {} ({}) of the same day books it at {erp}: {}% apart, beyond the {}% tolerance",
                    pr.kind().as_str(),
                    pr.source_id,
                    pr.source_system,
                    j.source_id,
                    j.source_system,
                    stray
                        .and_then(|s| s.checked_mul(Decimal::ONE_HUNDRED))
                        .map(|s| s.round_dp(2).normalize())
                        .unwrap_or_default(),
                    (tolerance * Decimal::ONE_HUNDRED).normalize()
                ),
                observations: vec![
                    Observation::of(pr, Some(p.amount)),
                    Observation::of(j, j.headline_amount()),
                ],
                difference: at_risk(p, processor, erp),
            });
        }
    }
    out
}
