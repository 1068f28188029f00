//! Processor-side bookings: the fee sweep, disputes, the payout and its failure, residuals.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Header, Side, entry, line, non_negative, nonzero};
use crate::domain::allocation::allocate_money;
use crate::domain::currency::Currency;
use crate::domain::ledger::accounts::AccountRole;
use crate::domain::ledger::journal::{
    ExternalId, JournalLine, LedgerEntry, LedgerError, SourceKind, SourceRef, add, sum,
};
use crate::domain::money::Money;

/// One balance transaction's fee, with the order its charge belongs to when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeItem {
    pub balance_transaction_id: String,
    pub order_id: Option<String>,
    pub fee: Money,
}

/// An order's part of a payout's swept fees; `None` when the payout has no orders to carry
/// a payout-level fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeShare {
    pub order_id: Option<String>,
    pub amount: Money,
}

/// The single fee entry of a payout, and where each cent of it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSweep {
    /// None when the fees net to zero: there is nothing to book.
    pub entry: Option<LedgerEntry>,
    pub total: Money,
    pub shares: Vec<FeeShare>,
}

/// Books all of a payout's fees as ONE entry (Dr processing fees / Cr clearing for their
/// sum: seed 004's settlement-level sweep, so the ERP sees one line per payout, not one per
/// charge) and computes each order's share so a fee is still traceable to its orders.
/// A fee on a charge belongs to that charge's order; a fee naming no order (a payout or
/// monthly fee) is spread over `order_gross` (order id, gross charged in this payout) by
/// largest remainder, so the shares always add up to the booked total.
pub fn book_fee_sweep(
    merchant_id: &str,
    payout_id: &str,
    date: NaiveDate,
    currency: Currency,
    items: &[FeeItem],
    order_gross: &[(String, Money)],
) -> Result<FeeSweep, LedgerError> {
    let total = sum(items.iter().map(|i| &i.fee), currency, "fees")?;
    let shares = fee_shares(currency, items, order_gross)?;
    debug_assert_eq!(
        sum(shares.iter().map(|s| &s.amount), currency, "shares").ok(),
        Some(total),
        "fee shares must add up to the swept total"
    );
    if total.amount.is_zero() {
        return Ok(FeeSweep {
            entry: None,
            total,
            shares,
        });
    }
    // Fees refunded beyond fees charged leave a credit to give back: the same two lines
    // booked the other way round.
    let (fee_side, clearing_side) = if total.amount.is_sign_negative() {
        (Side::Credit, Side::Debit)
    } else {
        (Side::Debit, Side::Credit)
    };
    let magnitude = Money::new(total.amount.abs(), currency);
    let lines = vec![
        line(fee_side, AccountRole::ProcessingFees, magnitude),
        line(clearing_side, AccountRole::ProcessorClearing, magnitude),
    ];
    let mut sources = vec![SourceRef::new(SourceKind::Payout, payout_id)];
    sources.extend(
        items
            .iter()
            .map(|i| SourceRef::new(SourceKind::BalanceTransaction, &i.balance_transaction_id)),
    );
    let header = Header {
        merchant_id,
        kind: "fee-sweep",
        keys: &[payout_id],
        date,
        memo: format!(
            "Processor fees of payout {payout_id} ({} transactions)",
            items.len()
        ),
        sources,
    };
    Ok(FeeSweep {
        entry: Some(entry(header, lines)?),
        total,
        shares,
    })
}

fn fee_shares(
    currency: Currency,
    items: &[FeeItem],
    order_gross: &[(String, Money)],
) -> Result<Vec<FeeShare>, LedgerError> {
    let mut by_order: BTreeMap<Option<String>, Money> = BTreeMap::new();
    let mut unattributed = Money::zero(currency);
    for item in items {
        match &item.order_id {
            Some(order) => {
                let slot = by_order
                    .entry(Some(order.clone()))
                    .or_insert(Money::zero(currency));
                *slot = add(*slot, item.fee, "fees")?;
            }
            None => unattributed = add(unattributed, item.fee, "fees")?,
        }
    }
    if !unattributed.amount.is_zero() {
        spread(unattributed, order_gross, &mut by_order)?;
    }
    Ok(by_order
        .into_iter()
        .filter(|(_, amount)| !amount.amount.is_zero())
        .map(|(order_id, amount)| FeeShare { order_id, amount })
        .collect())
}

/// Spreads a fee naming no order over the orders by gross; with no gross to go by it stays
/// on the payout (order `None`) rather than being pinned on an arbitrary order.
fn spread(
    fee: Money,
    order_gross: &[(String, Money)],
    by_order: &mut BTreeMap<Option<String>, Money>,
) -> Result<(), LedgerError> {
    let weights: Vec<Money> = order_gross
        .iter()
        .map(|(_, g)| Money::new(g.amount.abs(), g.currency))
        .collect();
    let Ok(parts) = allocate_money(fee, &weights) else {
        let slot = by_order.entry(None).or_insert(Money::zero(fee.currency));
        *slot = add(*slot, fee, "fees")?;
        return Ok(());
    };
    for ((order, _), part) in order_gross.iter().zip(parts) {
        let slot = by_order
            .entry(Some(order.clone()))
            .or_insert(Money::zero(fee.currency));
        *slot = add(*slot, part, "fees")?;
    }
    Ok(())
}

/// A dispute as the processor booked it: the amount withdrawn and the dispute fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeBooking {
    pub dispute_id: String,
    /// The payout that swept it: a dispute booked again under another payout (its
    /// balance transaction moved) is an entry of its own.
    pub payout_id: String,
    pub order_id: Option<String>,
    pub date: NaiveDate,
    pub amount: Money,
    pub fee: Money,
}

/// Dr chargebacks, dispute fees / Cr processor clearing.
pub fn book_dispute(merchant_id: &str, d: &DisputeBooking) -> Result<LedgerEntry, LedgerError> {
    dispute_entry(merchant_id, d, false)
}

/// A won dispute gives back the amount and the fee: the dispute entry mirrored.
pub fn book_dispute_won(merchant_id: &str, d: &DisputeBooking) -> Result<LedgerEntry, LedgerError> {
    dispute_entry(merchant_id, d, true)
}

fn dispute_entry(
    merchant_id: &str,
    d: &DisputeBooking,
    won: bool,
) -> Result<LedgerEntry, LedgerError> {
    non_negative(d.amount, "amount")?;
    non_negative(d.fee, "fee")?;
    let total = add(d.amount, d.fee, "fee")?;
    let (cost, clearing) = if won {
        (Side::Credit, Side::Debit)
    } else {
        (Side::Debit, Side::Credit)
    };
    let order = d.order_id.as_deref();
    let lines = nonzero([
        line(cost, AccountRole::Chargebacks, d.amount),
        line(cost, AccountRole::DisputeFees, d.fee),
        line(clearing, AccountRole::ProcessorClearing, total),
    ])
    .map(|l| l.order(order))
    .collect();
    let header = Header {
        merchant_id,
        kind: if won { "dispute-won" } else { "dispute" },
        keys: &[&d.dispute_id, &d.payout_id],
        date: d.date,
        memo: format!("Dispute {}{}", d.dispute_id, if won { " won" } else { "" }),
        sources: vec![SourceRef::new(SourceKind::Dispute, &d.dispute_id)],
    };
    entry(header, lines)
}

/// Dr bank / Cr processor clearing for the payout's net; a negative payout (the processor
/// debiting the bank) is booked the other way round. None for a zero payout.
pub fn book_payout_deposit(
    merchant_id: &str,
    payout_id: &str,
    date: NaiveDate,
    net: Money,
) -> Result<Option<LedgerEntry>, LedgerError> {
    let sources = vec![SourceRef::new(SourceKind::Payout, payout_id)];
    let memo = format!("Payout {payout_id} deposited");
    residual_entry(
        merchant_id,
        ("payout", payout_id),
        date,
        net,
        AccountRole::Bank,
        memo,
        sources,
    )
}

/// A payout that failed after it was paid: each entry it booked, mirrored, with an id
/// derived from the original's so the reversal is booked once.
/// `why` says in the memo why the payout's bookings are taken back ("failed", "changed").
/// The id of the entry that reverses `entry`, booked by [`book_payout_failure`].
pub fn failure_mirror_id(payout_id: &str, entry: &LedgerEntry) -> ExternalId {
    ExternalId::derive(
        entry.merchant_id(),
        "payout-failed",
        &[payout_id, entry.external_id().as_str()],
    )
}

pub fn book_payout_failure(
    payout_id: &str,
    date: NaiveDate,
    booked: &[LedgerEntry],
    why: &str,
) -> Result<Vec<LedgerEntry>, LedgerError> {
    booked
        .iter()
        .map(|e| {
            let id = failure_mirror_id(payout_id, e);
            e.reversal(
                id,
                date,
                format!("Payout {payout_id} {why}: reverses {}", e.memo()),
            )
        })
        .collect()
}

/// Clears a processor-clearing residual the processor's FX explains. `residual` is the
/// clearing balance (debit positive): a debit residual is money expected that did not
/// come, an FX loss; a credit residual is an FX gain.
pub fn book_fx_difference(
    merchant_id: &str,
    payout_id: &str,
    date: NaiveDate,
    residual: Money,
) -> Result<Option<LedgerEntry>, LedgerError> {
    let sources = vec![SourceRef::new(SourceKind::Payout, payout_id)];
    let memo = format!("FX difference on payout {payout_id}");
    residual_entry(
        merchant_id,
        ("fx-difference", payout_id),
        date,
        residual,
        AccountRole::FxGainLoss,
        memo,
        sources,
    )
}

/// Clears a clearing residual within the rounding policy (`limit`, e.g. 0.01). Anything
/// larger is unexplained money: refused here, so it stays on clearing as an exception and is
/// never written off.
pub fn book_rounding(
    merchant_id: &str,
    payout_id: &str,
    date: NaiveDate,
    residual: Money,
    limit: Decimal,
) -> Result<Option<LedgerEntry>, LedgerError> {
    if residual.amount.abs() > limit {
        return Err(LedgerError::OutsideRoundingPolicy {
            amount: residual,
            limit,
        });
    }
    let sources = vec![SourceRef::new(SourceKind::Payout, payout_id)];
    let memo = format!("Rounding on payout {payout_id}");
    residual_entry(
        merchant_id,
        ("rounding", payout_id),
        date,
        residual,
        AccountRole::Rounding,
        memo,
        sources,
    )
}

/// Moves `amount` (debit positive) between `account` and clearing: Dr account / Cr clearing
/// when positive, the reverse when negative, nothing when zero.
fn residual_entry(
    merchant_id: &str,
    (kind, key): (&str, &str),
    date: NaiveDate,
    amount: Money,
    account: AccountRole,
    memo: String,
    sources: Vec<SourceRef>,
) -> Result<Option<LedgerEntry>, LedgerError> {
    if amount.amount.is_zero() {
        return Ok(None);
    }
    let magnitude = Money::new(amount.amount.abs(), amount.currency);
    let (to, from) = if amount.amount.is_sign_negative() {
        (Side::Credit, Side::Debit)
    } else {
        (Side::Debit, Side::Credit)
    };
    let lines: Vec<JournalLine> = vec![
        line(to, account, magnitude),
        line(from, AccountRole::ProcessorClearing, magnitude),
    ];
    let header = Header {
        merchant_id,
        kind,
        keys: &[key],
        date,
        memo,
        sources,
    };
    entry(header, lines).map(Some)
}
