//! Payout completeness: may this payout be applied yet?
//!
//! A payout is applied only once its balance transactions account for its amount to the
//! cent; before that some of them are still on their way and applying would book a payout
//! with a hole in it. The bridge (gross, fees, net, per reporting category) is the answer to
//! a merchant's "why is my payout not the sum of my orders".

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::currency::Currency;
use crate::domain::money::Money;

/// A balance transaction as the processor reports it, in settlement currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceTxn {
    pub id: String,
    /// The processor's reporting category: charge, refund, partial_capture_reversal,
    /// dispute, dispute_reversal, fee, payout, payout_reversal, other_adjustment, ...
    pub category: String,
    pub amount: Money,
    pub fee: Money,
    pub net: Money,
}

/// Gross to net, every cent a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutBridge {
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
    /// Net per reporting category.
    pub by_category: BTreeMap<String, Money>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    /// The transactions' nets sum to the payout amount: apply it.
    Complete(PayoutBridge),
    /// Not yet: `missing` (payout minus what is accounted for, signed) is still to arrive.
    Waiting {
        bridge: PayoutBridge,
        missing: Money,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayoutError {
    /// Boxed: the whole transaction is the evidence, and it keeps the error small.
    #[error(
        "balance transaction {}: net {} is not amount {} minus fee {}",
        .0.id, .0.net, .0.amount, .0.fee
    )]
    NetIsNotAmountMinusFee(Box<BalanceTxn>),
    #[error("balance transaction {id} is in {found}, the payout in {expected}")]
    CurrencyMismatch {
        id: String,
        expected: Currency,
        found: Currency,
    },
    #[error("balance transaction {0} is listed twice")]
    Duplicate(String),
    #[error("amounts overflow exact decimal arithmetic")]
    Overflow,
}

/// Decides whether `txns` account for `payout_amount`. The payout's own balance transaction
/// (category "payout", the money leaving the balance) is not part of what it pays out and is
/// skipped, so the processor's full list for a payout can be passed as is.
pub fn payout_completeness(
    payout_amount: Money,
    txns: &[BalanceTxn],
) -> Result<Completeness, PayoutError> {
    let bridge = bridge(payout_amount.currency, txns)?;
    let missing = payout_amount
        .amount
        .checked_sub(bridge.net.amount)
        .ok_or(PayoutError::Overflow)?;
    Ok(if missing.is_zero() {
        Completeness::Complete(bridge)
    } else {
        Completeness::Waiting {
            bridge,
            missing: Money::new(missing, payout_amount.currency),
        }
    })
}

/// Sums gross, fees and nets, checking each transaction's own arithmetic on the way.
pub fn bridge(currency: Currency, txns: &[BalanceTxn]) -> Result<PayoutBridge, PayoutError> {
    let mut seen = BTreeSet::new();
    let mut b = PayoutBridge {
        gross: Money::zero(currency),
        fees: Money::zero(currency),
        net: Money::zero(currency),
        by_category: BTreeMap::new(),
    };
    for t in txns.iter().filter(|t| t.category != "payout") {
        if !seen.insert(t.id.as_str()) {
            return Err(PayoutError::Duplicate(t.id.clone()));
        }
        check_txn(currency, t)?;
        b.gross.amount = add(b.gross.amount, t.amount.amount)?;
        b.fees.amount = add(b.fees.amount, t.fee.amount)?;
        b.net.amount = add(b.net.amount, t.net.amount)?;
        let slot = b
            .by_category
            .entry(t.category.clone())
            .or_insert(Money::zero(currency));
        slot.amount = add(slot.amount, t.net.amount)?;
    }
    debug_assert_eq!(
        b.gross.amount.checked_sub(b.fees.amount),
        Some(b.net.amount),
        "bridge must close"
    );
    Ok(b)
}

fn check_txn(currency: Currency, t: &BalanceTxn) -> Result<(), PayoutError> {
    for m in [t.amount, t.fee, t.net] {
        if m.currency != currency {
            return Err(PayoutError::CurrencyMismatch {
                id: t.id.clone(),
                expected: currency,
                found: m.currency,
            });
        }
    }
    if t.amount.amount.checked_sub(t.fee.amount) != Some(t.net.amount) {
        return Err(PayoutError::NetIsNotAmountMinusFee(Box::new(t.clone())));
    }
    Ok(())
}

fn add(
    a: rust_decimal::Decimal,
    b: rust_decimal::Decimal,
) -> Result<rust_decimal::Decimal, PayoutError> {
    a.checked_add(b).ok_or(PayoutError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::test_support::m;

    fn txn(id: &str, category: &str, amount: &str, fee: &str, net: &str) -> BalanceTxn {
        BalanceTxn {
            id: id.into(),
            category: category.into(),
            amount: m(amount),
            fee: m(fee),
            net: m(net),
        }
    }

    fn payout_txns() -> Vec<BalanceTxn> {
        vec![
            txn("txn_1", "charge", "100.00 USD", "3.20 USD", "96.80 USD"),
            txn("txn_2", "charge", "50.00 USD", "1.75 USD", "48.25 USD"),
            txn("txn_3", "refund", "-20.00 USD", "0 USD", "-20.00 USD"),
            txn("txn_po", "payout", "-125.05 USD", "0 USD", "-125.05 USD"),
        ]
    }

    #[test]
    fn complete_when_the_nets_make_the_payout_with_a_gross_to_net_bridge() {
        let Completeness::Complete(b) =
            payout_completeness(m("125.05 USD"), &payout_txns()).unwrap()
        else {
            panic!("complete")
        };
        assert_eq!(
            (b.gross, b.fees, b.net),
            (m("130 USD"), m("4.95 USD"), m("125.05 USD"))
        );
        assert_eq!(b.by_category["refund"], m("-20 USD"));
        assert!(!b.by_category.contains_key("payout"));
    }

    #[test]
    fn waiting_says_what_is_missing() {
        let mut txns = payout_txns();
        txns.remove(1);
        assert_eq!(
            payout_completeness(m("125.05 USD"), &txns).unwrap(),
            Completeness::Waiting {
                bridge: bridge(m("0 USD").currency, &txns).unwrap(),
                missing: m("48.25 USD")
            }
        );
        // A refund still to come shows as negative money missing.
        let mut early = payout_txns();
        early.remove(2);
        let Completeness::Waiting { missing, .. } =
            payout_completeness(m("125.05 USD"), &early).unwrap()
        else {
            panic!("waiting")
        };
        assert_eq!(missing, m("-20 USD"));
    }

    #[test]
    fn refuses_a_transaction_that_does_not_add_up_or_is_elsewhere() {
        let bad = [txn("txn_1", "charge", "100 USD", "3 USD", "96 USD")];
        assert!(matches!(
            payout_completeness(m("96 USD"), &bad),
            Err(PayoutError::NetIsNotAmountMinusFee(_))
        ));
        let eur = [txn("txn_1", "charge", "100 EUR", "3 EUR", "97 EUR")];
        assert!(matches!(
            payout_completeness(m("97 USD"), &eur),
            Err(PayoutError::CurrencyMismatch { .. })
        ));
        let twice = [
            txn("t", "charge", "1 USD", "0 USD", "1 USD"),
            txn("t", "charge", "1 USD", "0 USD", "1 USD"),
        ];
        assert_eq!(
            payout_completeness(m("2 USD"), &twice),
            Err(PayoutError::Duplicate("t".into()))
        );
    }
}
