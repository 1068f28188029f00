//! Posting rules: one pure function per event of the booking table (DOMAIN.md, "How the
//! money moves"), each turning facts the worker has gathered into a checked `LedgerEntry`.
//!
//! | event                              | debit                                  | credit                                  | rule |
//! |------------------------------------|----------------------------------------|-----------------------------------------|------|
//! | invoice (at shipment)              | AR (total), sales discounts            | revenue, sales tax payable, shipping    | `book_invoice` |
//! | capture / tender applied           | clearing or gift card liability        | AR per invoice, unapplied cash (rest)   | `book_payment` |
//! | held cash meets its invoice        | unapplied cash                         | AR                                      | `book_unapplied_release` |
//! | held cash taken back off invoices  | AR                                     | unapplied cash                          | `book_unapplied_return` |
//! | partial-capture reversal           | unapplied cash / AR                    | clearing                                | `book_payment` (reverse) |
//! | refund via credit memo             | sales returns, tax payable, shipping   | clearing                                | `book_refund` |
//! | fees of a payout (one sweep)       | processing fees                        | clearing                                | `book_fee_sweep` |
//! | dispute / dispute fee              | chargebacks, dispute fees              | clearing                                | `book_dispute` |
//! | dispute won                        | clearing                               | chargebacks, dispute fees               | `book_dispute_won` |
//! | payout deposited                   | bank                                   | clearing (net)                          | `book_payout_deposit` |
//! | payout failed after paid           | (mirror of what it booked)             |                                         | `book_payout_failure` |
//! | FX, presentment != settlement      | clearing (settlement), FX (presentment)| FX (settlement), AR (presentment)       | `Conversion` legs |
//! | FX / rounding residual             | FX loss / rounding                     | clearing (or the reverse)               | `book_fx_difference`, `book_rounding` |
//!
//! Every entry balances per currency. Cross-currency money uses the FX gain/loss account as
//! a currency trading account: the settlement and presentment legs land there, each
//! currency balancing on its own. Once a sale and its refund (or its settlement) have both
//! passed through, the settlement-currency balance left on FX gain/loss is the realised
//! difference between the processor's rates (and, translated at the ERP's rate, the
//! difference between the processor's rate and the ERP's).

mod processor;
mod sales;

pub use processor::{
    DisputeBooking, FeeItem, FeeShare, FeeSweep, book_dispute, book_dispute_won, book_fee_sweep,
    book_fx_difference, book_payout_deposit, book_payout_failure, book_rounding, failure_mirror_id,
};
pub use sales::{
    InvoiceBooking, PAYMENT_MEMO, PaymentBooking, RefundBooking, Tender, book_invoice,
    book_payment, book_refund, book_unapplied_release, book_unapplied_return,
};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::accounts::AccountRole;
use super::journal::{EntryDraft, ExternalId, JournalLine, LedgerEntry, LedgerError, SourceRef};
use crate::domain::money::Money;

/// How the processor turned presentment money into settlement money: `rate` is the
/// processor's exchange rate (presentment x rate = settlement), as on its balance transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    pub settlement: Money,
    pub rate: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Debit,
    Credit,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

pub(crate) fn line(side: Side, account: AccountRole, amount: Money) -> JournalLine {
    match side {
        Side::Debit => JournalLine::debit(account, amount),
        Side::Credit => JournalLine::credit(account, amount),
    }
}

/// The processor-clearing line(s) for `amount` in presentment currency. Without a conversion
/// (or one into the same currency) it is one clearing line; across currencies, clearing takes
/// the settlement amount and FX gain/loss takes a leg in each currency, so each balances.
pub(crate) fn clearing_lines(
    side: Side,
    amount: Money,
    conversion: Option<&Conversion>,
) -> Result<Vec<JournalLine>, LedgerError> {
    let Some(conv) = conversion.filter(|c| c.settlement.currency != amount.currency) else {
        if let Some(c) = conversion {
            super::journal::same_currency(amount, c.settlement, "conversion.settlement")?;
            if c.settlement.amount != amount.amount {
                return Err(rate_mismatch(amount, c));
            }
        }
        return Ok(vec![line(side, AccountRole::ProcessorClearing, amount)]);
    };
    check_rate(amount, conv)?;
    let memo = format!("{} at processor rate {}", amount, conv.rate);
    Ok(vec![
        line(side, AccountRole::ProcessorClearing, conv.settlement),
        line(side.other(), AccountRole::FxGainLoss, conv.settlement).memo(memo.clone()),
        line(side, AccountRole::FxGainLoss, amount).memo(memo),
    ])
}

/// The processor rounds presentment x rate to the settlement minor unit; anything further
/// apart than one unit is not the conversion it claims to be.
fn check_rate(amount: Money, conv: &Conversion) -> Result<(), LedgerError> {
    if conv.rate <= Decimal::ZERO || conv.settlement.amount.is_sign_negative() {
        return Err(rate_mismatch(amount, conv));
    }
    let exact = amount
        .amount
        .checked_mul(conv.rate)
        .ok_or(LedgerError::Overflow)?;
    let gap = exact
        .checked_sub(conv.settlement.amount)
        .ok_or(LedgerError::Overflow)?
        .abs();
    if gap > Decimal::new(1, conv.settlement.currency.exponent()) {
        return Err(rate_mismatch(amount, conv));
    }
    Ok(())
}

fn rate_mismatch(amount: Money, conv: &Conversion) -> LedgerError {
    LedgerError::RateMismatch {
        presentment: amount,
        rate: conv.rate,
        settlement: conv.settlement,
    }
}

/// What every rule fills in; `kind` and `keys` make the stable external id.
pub(crate) struct Header<'a> {
    pub merchant_id: &'a str,
    pub kind: &'a str,
    pub keys: &'a [&'a str],
    pub date: NaiveDate,
    pub memo: String,
    pub sources: Vec<SourceRef>,
}

pub(crate) fn entry(h: Header<'_>, lines: Vec<JournalLine>) -> Result<LedgerEntry, LedgerError> {
    LedgerEntry::new(EntryDraft {
        external_id: ExternalId::derive(h.merchant_id, h.kind, h.keys),
        merchant_id: h.merchant_id.to_string(),
        effective_date: h.date,
        memo: h.memo,
        source_refs: h.sources,
        lines,
    })
}

pub(crate) fn non_negative(amount: Money, field: &'static str) -> Result<(), LedgerError> {
    if amount.amount.is_sign_negative() && !amount.amount.is_zero() {
        return Err(LedgerError::NegativeInput { field });
    }
    Ok(())
}

/// A line only when there is money to put on it: a zero line is refused by the journal.
pub(crate) fn nonzero<const N: usize>(
    lines: [JournalLine; N],
) -> impl Iterator<Item = JournalLine> {
    lines.into_iter().filter(|l| !l.signed().is_zero())
}

#[cfg(test)]
mod tests;
