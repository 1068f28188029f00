//! Settlement rules: a processor payment against the balance transactions
//! that settle it. The settlement gross must be the presentment amount
//! times the exchange rate (presentment x rate = settlement), and the fee
//! the payment states must be the fee its balance transactions charged.

use rust_decimal::{Decimal, RoundingStrategy};

use super::Context;
use crate::domain::currency::Currency;
use crate::domain::facts::CurrencyTotals;
use crate::domain::facts::select::processor_ids;
use crate::domain::matching::findings::{Finding, Side, compare, record_subject};
use crate::domain::money::Money;
use crate::domain::record::{
    BalanceTransaction, Body, Handoff, PaymentType, ProcessorPayment, Record,
};

/// Categories whose gross is the payment's own money: a charge (less any
/// partial-capture reversal) or a refund. Fees, disputes and payouts move
/// other money.
const PAYMENT_CATEGORIES: [&str; 4] = ["charge", "payment", "refund", "partial_capture_reversal"];

/// One payment and the balance transactions that settle it.
struct Settled<'a> {
    record: &'a Record,
    payment: &'a ProcessorPayment,
    balance: Vec<(&'a Record, &'a BalanceTransaction)>,
}

impl Settled<'_> {
    /// The stated rate: the balance transaction's, else the payment's; 1
    /// when nothing is converted. None when the currencies differ and no
    /// rate says how.
    fn rate(&self, settlement: Currency) -> Option<Decimal> {
        let stated = self
            .balance
            .iter()
            .find_map(|(_, b)| b.exchange_rate)
            .or(self.payment.exchange_rate);
        match stated {
            Some(r) if r > Decimal::ZERO => Some(r),
            Some(_) => None,
            None if settlement == self.payment.amount.currency => Some(Decimal::ONE),
            None => None,
        }
    }

    fn records(&self) -> Vec<&Record> {
        self.balance.iter().map(|(r, _)| *r).collect()
    }
}

/// Payments with their balance transactions, linked by the payment's
/// `balance_transaction_id` or the balance transaction's `source`.
fn settled<'a>(ctx: &Context<'a>) -> Vec<Settled<'a>> {
    let balance: Vec<(&Record, &BalanceTransaction)> = ctx
        .records
        .iter()
        .filter_map(|sr| match &sr.record.body {
            Body::BalanceTransaction(b)
                if PAYMENT_CATEGORIES.contains(&b.reporting_category.as_str()) =>
            {
                Some((&sr.record, b))
            }
            _ => None,
        })
        .collect();
    ctx.payments
        .iter()
        .filter_map(|r| {
            let Body::ProcessorPayment(p) = &r.body else {
                return None;
            };
            let ids = processor_ids(r);
            // A refund carries its charge's id: it settles only through
            // refund entries, a charge never through them.
            let refund = p.payment_type == PaymentType::Refund;
            let linked: Vec<_> = balance
                .iter()
                .copied()
                .filter(|(_, b)| (b.reporting_category == "refund") == refund)
                .filter(|(br, b)| {
                    p.balance_transaction_id.as_deref() == Some(br.source_id.as_str())
                        || b.source.as_deref().is_some_and(|s| ids.contains(&s))
                })
                .collect();
            (!linked.is_empty()).then_some(Settled {
                record: r,
                payment: p,
                balance: linked,
            })
        })
        .collect()
}

/// One signed total in one currency, made positive; None when the parts
/// are in several currencies (reported by `currency_mismatch` and the
/// settlement side's own rules) or overflow.
fn one_total<'a>(items: impl IntoIterator<Item = &'a Money>) -> Option<Money> {
    let totals = CurrencyTotals::of(items);
    if totals.is_mixed() {
        return None;
    }
    let sum = totals.get(totals.currencies().next()?)?;
    Some(Money::new(sum.amount.abs(), sum.currency))
}

/// `m` x `rate` in `to`, rounded half away from zero to its minor unit.
fn convert(m: Money, rate: Decimal, to: Currency) -> Option<Money> {
    let amount = m
        .amount
        .abs()
        .checked_mul(rate)?
        .round_dp_with_strategy(to.exponent(), RoundingStrategy::MidpointAwayFromZero);
    Some(Money::new(amount, to))
}

/// The settlement gross against the presentment amount times the rate,
/// within the settlement currency's tolerance.
fn settlement_fx(ctx: &Context<'_>, s: &Settled<'_>) -> Option<Finding> {
    let gross = one_total(s.balance.iter().map(|(_, b)| &b.amount))?;
    let rate = s.rate(gross.currency)?;
    let expected = convert(s.payment.amount, rate, gross.currency)?;
    let what = format!(
        "{} x rate {} ({} presentment x rate = settlement)",
        s.payment.amount,
        rate.normalize(),
        s.payment.payment_type.as_str()
    );
    let records = s.records();
    compare(
        &ctx.policy.tolerance,
        (
            "settlement_fx",
            &record_subject(s.record),
            Handoff::PaymentToCashApplication,
        ),
        Side::many("balance transaction settlement gross", &records, gross),
        Side::one(&what, s.record, expected),
    )
}

/// The fee a payment states against the fees its balance transactions
/// charged; a payment fee in the presentment currency is converted at
/// the rate first.
fn fee_vs_balance(ctx: &Context<'_>, s: &Settled<'_>) -> Option<Finding> {
    let stated = s.payment.fee?;
    let fees: Vec<Money> = s.balance.iter().filter_map(|(_, b)| b.fee).collect();
    if fees.is_empty() {
        return None;
    }
    let charged = one_total(fees.iter())?;
    let stated = if stated.currency == charged.currency {
        stated
    } else if stated.currency == s.payment.amount.currency {
        convert(stated, s.rate(charged.currency)?, charged.currency)?
    } else {
        return None;
    };
    let records = s.records();
    compare(
        &ctx.policy.tolerance,
        (
            "processor_fee_vs_balance_transaction",
            &record_subject(s.record),
            Handoff::PaymentToCashApplication,
        ),
        Side::one("processor payment fee", s.record, stated),
        Side::many("balance transaction fee", &records, charged),
    )
}

pub(crate) fn all(ctx: &Context<'_>) -> Vec<Finding> {
    settled(ctx)
        .iter()
        .flat_map(|s| [settlement_fx(ctx, s), fee_vs_balance(ctx, s)])
        .flatten()
        .collect()
}
