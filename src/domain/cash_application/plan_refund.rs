//! Refunds as booked: each credit memo's part split into returns, tax and shipping as the
//! memo splits its total, and a refund booked late converted at the processor's rate.

use chrono::NaiveDate;

use super::{EventKind, OrderFacts, PlanError};
use crate::domain::allocation::allocate_money;
use crate::domain::cash_application::order::{CashError, RefundApplication};
use crate::domain::ledger::LedgerError;
use crate::domain::ledger::posting::{Conversion, RefundBooking};
use crate::domain::money::Money;

/// A refund's part against one credit memo, split into returns, tax and shipping as the memo
/// splits its total (largest remainder, so every cent of the part is booked once).
pub(in crate::domain::cash_application) fn refund_booking(
    facts: &OrderFacts,
    a: &RefundApplication,
    date: NaiveDate,
    conversion: Option<Conversion>,
) -> Result<RefundBooking, PlanError> {
    let zero = Money::zero(a.amount.currency);
    let memo_total = facts
        .credit_memos
        .iter()
        .find(|m| m.id == a.credit_memo_id)
        .map(|m| m.total);
    let (returns, tax, shipping) = match (facts.memo_parts.get(&a.credit_memo_id), memo_total) {
        (Some(p), Some(total)) if !(p.tax.amount.is_zero() && p.shipping.amount.is_zero()) => {
            let goods = total
                .checked_sub(&p.tax)
                .and_then(|g| g.checked_sub(&p.shipping))
                .ok_or(LedgerError::Overflow)?;
            let split =
                allocate_money(a.amount, &[goods, p.tax, p.shipping]).map_err(CashError::from)?;
            (split[0], split[1], split[2])
        }
        _ => (a.amount, zero, zero),
    };
    let booked = returns
        .checked_add(&tax)
        .and_then(|x| x.checked_add(&shipping))
        .ok_or(LedgerError::Overflow)?;
    if booked != a.amount {
        return Err(LedgerError::PartsDoNotAddUp {
            field: "refund",
            total: a.amount,
            parts: booked,
        }
        .into());
    }
    Ok(RefundBooking {
        refund_id: a.refund_id.clone(),
        credit_memo_id: a.credit_memo_id.clone(),
        order_id: facts.order_id.clone(),
        date,
        returns,
        tax,
        shipping,
        conversion,
    })
}

/// The processor's conversion of the part of a refund booked late: its share of the
/// refund's settlement amount, at the refund's rate.
pub(super) fn late_conversion(
    facts: &OrderFacts,
    a: &RefundApplication,
) -> Result<Option<Conversion>, PlanError> {
    let Some(whole) = facts.refund_settlements.get(&a.refund_id) else {
        return Ok(None);
    };
    let refunded = facts
        .events
        .iter()
        .find(|e| e.kind == EventKind::Refund && e.ref_id == a.refund_id)
        .map(|e| e.amount);
    let Some(refunded) = refunded else {
        return Ok(None);
    };
    Ok(Some(Conversion {
        settlement: share(whole.settlement, a.amount, refunded)?,
        rate: whole.rate,
    }))
}

/// `part` of `whole`, in `of`'s currency, rounded to its minor unit.
pub(in crate::domain::cash_application) fn share(
    of: Money,
    part: Money,
    whole: Money,
) -> Result<Money, LedgerError> {
    if whole.amount.is_zero() || part == whole {
        return Ok(if whole.amount.is_zero() {
            Money::zero(of.currency)
        } else {
            of
        });
    }
    let exact = of
        .amount
        .checked_mul(part.amount)
        .and_then(|x| x.checked_div(whole.amount))
        .ok_or(LedgerError::Overflow)?;
    Ok(Money::new(
        exact.round_dp_with_strategy(
            of.currency.exponent(),
            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
        ),
        of.currency,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::cash_application::order::Document;
    use crate::domain::cash_application::plan::MemoParts;
    use crate::domain::ledger::test_support::m;

    fn facts(total: &str, tax: &str, shipping: &str) -> OrderFacts {
        let day = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        OrderFacts {
            unbookable_invoices: vec![],
            order_id: "o".into(),
            currency: m("0 USD").currency,
            events: vec![],
            invoices: vec![],
            credit_memos: vec![Document {
                id: "CM".into(),
                date: day,
                total: m(total),
            }],
            tenders: vec![],
            order_total: None,
            memo_parts: BTreeMap::from([(
                "CM".to_string(),
                MemoParts {
                    tax: m(tax),
                    shipping: m(shipping),
                },
            )]),
            refund_settlements: BTreeMap::new(),
        }
    }

    fn split(f: &OrderFacts, amount: &str) -> (Money, Money, Money) {
        let a = RefundApplication {
            refund_id: "re".into(),
            credit_memo_id: "CM".into(),
            amount: m(&format!("{amount} USD")),
        };
        let b = refund_booking(f, &a, NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(), None).unwrap();
        (b.returns, b.tax, b.shipping)
    }

    #[test]
    fn a_refund_is_split_as_its_memo_and_every_cent_is_booked() {
        let f = facts("30.00 USD", "5.00 USD", "5.00 USD");
        assert_eq!(
            split(&f, "30.00"),
            (m("20.00 USD"), m("5.00 USD"), m("5.00 USD"))
        );
        assert_eq!(split(&f, "0.01"), (m("0.01 USD"), m("0 USD"), m("0 USD")));
        for cents in 1..=3000i64 {
            let amount = rust_decimal::Decimal::new(cents, 2).to_string();
            let (r, t, s) = split(&f, &amount);
            let sum = r.checked_add(&t).and_then(|x| x.checked_add(&s)).unwrap();
            assert_eq!(sum, m(&format!("{amount} USD")), "{amount}");
        }
        // No parts on the memo: all of it is returned goods.
        let plain = facts("30.00 USD", "0 USD", "0 USD");
        assert_eq!(
            split(&plain, "12.34"),
            (m("12.34 USD"), m("0 USD"), m("0 USD"))
        );
    }
}
