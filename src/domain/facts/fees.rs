//! Processor fees: often in the settlement currency rather than the
//! order's, and then with a stated exchange rate.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::money::Money;
use crate::domain::record::{Body, ProcessorPayment, Record};
use crate::domain::transaction::StoredRecord;

/// A fee that could not join the fee total: in another currency, with no
/// stated rate that converts it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnconvertedFee<'a> {
    pub record: &'a Record,
    pub fee: Money,
}

/// The processor fees of one order, in the first fee's currency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fees<'a> {
    pub total: Option<Money>,
    /// Fees in another currency that the payment's rate does not convert:
    /// reported by the rules, never added as if they were the same money.
    pub unconverted: Vec<UnconvertedFee<'a>>,
}

/// Non-zero fees in record order (event time, then source id), so the
/// total's currency is the earliest fee's.
pub fn fees(records: &[StoredRecord]) -> Fees<'_> {
    let mut paid: Vec<(&Record, &ProcessorPayment, Money)> = records
        .iter()
        .filter_map(|sr| match &sr.record.body {
            Body::ProcessorPayment(p) => p.fee.map(|f| (&sr.record, p, f)),
            _ => None,
        })
        .filter(|(_, _, f)| !f.amount.is_zero())
        .collect();
    paid.sort_by(|a, b| (a.0.event_time, &a.0.source_id).cmp(&(b.0.event_time, &b.0.source_id)));
    let Some(target) = paid.first().map(|(_, _, f)| f.currency) else {
        return Fees::default();
    };
    let mut out = Fees::default();
    let mut total = Some(Money::zero(target));
    for (record, payment, fee) in paid {
        match convert(payment, fee, target) {
            Some(f) => total = total.and_then(|t| t.checked_add(&f)),
            None => out.unconverted.push(UnconvertedFee { record, fee }),
        }
    }
    out.total = total;
    out
}

/// `fee` in `target`: as it is, or through the payment's rate, which
/// states how much fee currency one unit of the payment's currency is.
/// Rounded half away from zero to the target's minor unit.
fn convert(
    payment: &ProcessorPayment,
    fee: Money,
    target: crate::domain::currency::Currency,
) -> Option<Money> {
    if fee.currency == target {
        return Some(fee);
    }
    let rate = payment.exchange_rate.filter(|r| *r > Decimal::ZERO)?;
    if payment.amount.currency != target {
        return None;
    }
    let amount = fee
        .amount
        .checked_div(rate)?
        .round_dp_with_strategy(target.exponent(), RoundingStrategy::MidpointAwayFromZero);
    Some(Money::new(amount.normalize(), target))
}
