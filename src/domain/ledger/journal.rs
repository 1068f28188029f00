//! Journal entries: balanced double-entry bookings with stable external ids.
//!
//! A `LedgerEntry` can only be built through `LedgerEntry::new`, which refuses anything a
//! ledger must never hold (an unbalanced entry, a line on both sides or neither, a negative
//! amount, fewer than two lines). Storage and export therefore never re-check; they read.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::accounts::AccountRole;
use crate::domain::currency::Currency;
use crate::domain::money::Money;

/// Everything that makes a booking impossible. Each names what the caller sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("merchant_id is required")]
    MissingMerchant,
    #[error("a journal entry needs at least two lines, got {0}")]
    TooFewLines(usize),
    #[error("line {line} has both a debit and a credit")]
    BothSides { line: usize },
    #[error("line {line} has neither a debit nor a credit")]
    NeitherSide { line: usize },
    #[error("line {line} has a negative amount")]
    Negative { line: usize },
    #[error("line {line} mixes currencies between its debit and credit")]
    LineCurrencyMismatch { line: usize },
    #[error("line {line}: {amount} has more decimals than its currency allows")]
    TooPrecise { line: usize, amount: String },
    #[error("{currency} does not balance: debits {debits}, credits {credits}")]
    Unbalanced {
        currency: Currency,
        debits: Decimal,
        credits: Decimal,
    },
    #[error("{field}: expected {expected}, got {found}")]
    CurrencyMismatch {
        field: &'static str,
        expected: Currency,
        found: Currency,
    },
    #[error("{field} must not be negative")]
    NegativeInput { field: &'static str },
    #[error("invoice {invoice_id}: stated total {stated} but its lines add up to {computed}")]
    InvoiceTotalMismatch {
        invoice_id: String,
        stated: Money,
        computed: Money,
    },
    #[error("{presentment} at rate {rate} is not {settlement} (more than one minor unit apart)")]
    RateMismatch {
        presentment: Money,
        rate: Decimal,
        settlement: Money,
    },
    #[error("rounding of {amount} is beyond the policy limit {limit}")]
    OutsideRoundingPolicy { amount: Money, limit: Decimal },
    #[error("{field}: the parts add up to {parts}, not {total}")]
    PartsDoNotAddUp {
        field: &'static str,
        total: Money,
        parts: Money,
    },
    #[error("amounts overflow exact decimal arithmetic")]
    Overflow,
}

/// What an entry was booked from, so a line can be traced to its source records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Order,
    Invoice,
    CreditMemo,
    Capture,
    Tender,
    Refund,
    Dispute,
    BalanceTransaction,
    Payout,
    Deposit,
}

impl SourceKind {
    pub const ALL: [SourceKind; 10] = [
        SourceKind::Order,
        SourceKind::Invoice,
        SourceKind::CreditMemo,
        SourceKind::Capture,
        SourceKind::Tender,
        SourceKind::Refund,
        SourceKind::Dispute,
        SourceKind::BalanceTransaction,
        SourceKind::Payout,
        SourceKind::Deposit,
    ];

    /// The key storage and the API use.
    pub fn key(self) -> &'static str {
        match self {
            SourceKind::Order => "order",
            SourceKind::Invoice => "invoice",
            SourceKind::CreditMemo => "credit_memo",
            SourceKind::Capture => "capture",
            SourceKind::Tender => "tender",
            SourceKind::Refund => "refund",
            SourceKind::Dispute => "dispute",
            SourceKind::BalanceTransaction => "balance_transaction",
            SourceKind::Payout => "payout",
            SourceKind::Deposit => "deposit",
        }
    }

    pub fn from_key(key: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.key() == key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub kind: SourceKind,
    pub id: String,
}

impl SourceRef {
    pub fn new(kind: SourceKind, id: impl Into<String>) -> Self {
        SourceRef {
            kind,
            id: id.into(),
        }
    }
}

/// A stable id the ERP deduplicates on: the same booking always gets the same id, so a
/// retried worker or a re-export never creates a second journal in the ERP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalId(String);

impl ExternalId {
    /// An id read back from storage, where it was derived when booked.
    pub fn stored(id: impl Into<String>) -> ExternalId {
        ExternalId(id.into())
    }

    /// A UUIDv5 over the merchant, the kind of booking and its keys. Each part is length
    /// prefixed, so ("a-b", "c") and ("a", "b-c") can never collide.
    pub fn derive(merchant_id: &str, kind: &str, keys: &[&str]) -> ExternalId {
        let mut name = String::new();
        for part in [merchant_id, kind].iter().chain(keys.iter()) {
            name.push_str(&format!("{}:{};", part.len(), part));
        }
        ExternalId(format!(
            "tally-{}",
            Uuid::new_v5(&TALLY_NAMESPACE, name.as_bytes())
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Fixed forever: changing it would re-key every journal already exported.
const TALLY_NAMESPACE: Uuid = Uuid::from_u128(0x7a11_7a11_5e1d_4c0a_9b1e_0000_1ed6_e700);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLine {
    pub account: AccountRole,
    pub debit: Money,
    pub credit: Money,
    pub memo: String,
    /// The order a line belongs to, when it has one: the NetSuite "Name" column and how a
    /// swept fee is traced back to the orders it was charged on.
    pub order_id: Option<String>,
}

impl JournalLine {
    pub fn debit(account: AccountRole, amount: Money) -> Self {
        Self::side(account, amount, Money::zero(amount.currency))
    }

    pub fn credit(account: AccountRole, amount: Money) -> Self {
        Self::side(account, Money::zero(amount.currency), amount)
    }

    fn side(account: AccountRole, debit: Money, credit: Money) -> Self {
        JournalLine {
            account,
            debit,
            credit,
            memo: String::new(),
            order_id: None,
        }
    }

    pub fn memo(mut self, memo: impl Into<String>) -> Self {
        self.memo = memo.into();
        self
    }

    pub fn order(mut self, order_id: Option<&str>) -> Self {
        self.order_id = order_id.map(str::to_string);
        self
    }

    pub fn currency(&self) -> Currency {
        self.debit.currency
    }

    /// Debit positive, credit negative: the line's effect on its account's balance.
    pub fn signed(&self) -> Decimal {
        // A line carries money on one side only (`LedgerEntry::new` refuses others), so no
        // arithmetic is needed; a line under construction with both sides never overflows
        // either, its sides being non-negative, and saturates rather than panics if not.
        if self.credit.amount.is_zero() {
            self.debit.amount
        } else if self.debit.amount.is_zero() {
            -self.credit.amount
        } else {
            self.debit.amount.saturating_sub(self.credit.amount)
        }
    }

    /// The same line on the other side, for reversals.
    fn swapped(&self) -> Self {
        JournalLine {
            debit: self.credit,
            credit: self.debit,
            ..self.clone()
        }
    }
}

/// The parts of an entry before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    pub external_id: ExternalId,
    pub merchant_id: String,
    pub effective_date: NaiveDate,
    pub memo: String,
    pub source_refs: Vec<SourceRef>,
    pub lines: Vec<JournalLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    draft: EntryDraft,
}

impl LedgerEntry {
    /// Checks every line and that debits equal credits in each currency.
    pub fn new(draft: EntryDraft) -> Result<LedgerEntry, LedgerError> {
        if draft.merchant_id.trim().is_empty() {
            return Err(LedgerError::MissingMerchant);
        }
        if draft.lines.len() < 2 {
            return Err(LedgerError::TooFewLines(draft.lines.len()));
        }
        for (index, line) in draft.lines.iter().enumerate() {
            check_line(index, line)?;
        }
        for (currency, (debits, credits)) in side_totals(&draft.lines)? {
            if debits != credits {
                return Err(LedgerError::Unbalanced {
                    currency,
                    debits,
                    credits,
                });
            }
        }
        Ok(LedgerEntry { draft })
    }

    pub fn external_id(&self) -> &ExternalId {
        &self.draft.external_id
    }

    /// The same entry under another id (a payout derived again books its round's
    /// entries under ids of their own); checked again like any new entry.
    pub fn with_external_id(self, id: ExternalId) -> Result<LedgerEntry, LedgerError> {
        let mut draft = self.draft;
        draft.external_id = id;
        LedgerEntry::new(draft)
    }

    pub fn merchant_id(&self) -> &str {
        &self.draft.merchant_id
    }

    pub fn effective_date(&self) -> NaiveDate {
        self.draft.effective_date
    }

    pub fn memo(&self) -> &str {
        &self.draft.memo
    }

    pub fn source_refs(&self) -> &[SourceRef] {
        &self.draft.source_refs
    }

    pub fn lines(&self) -> &[JournalLine] {
        &self.draft.lines
    }

    /// Debit and credit totals per currency; equal by construction.
    pub fn totals(&self) -> BTreeMap<Currency, (Decimal, Decimal)> {
        // `new` summed these same lines without overflow, so summing again cannot fail.
        let totals = side_totals(&self.draft.lines).unwrap_or_default();
        debug_assert!(totals.values().all(|(d, c)| d == c), "entry unbalanced");
        totals
    }

    /// The currencies the entry moves, in order.
    pub fn currencies(&self) -> Vec<Currency> {
        self.totals().into_keys().collect()
    }

    /// The entry's net effect on one account in one currency (debit positive).
    pub fn balance(
        &self,
        account: AccountRole,
        currency: Currency,
    ) -> Result<Decimal, LedgerError> {
        let net = self
            .lines()
            .iter()
            .filter(|l| l.account == account && l.currency() == currency)
            .map(JournalLine::signed)
            .try_fold(Decimal::ZERO, |acc, x| acc.checked_add(x))
            .ok_or(LedgerError::Overflow)?;
        debug_assert!(self.totals().contains_key(&currency) || net == Decimal::ZERO);
        Ok(net)
    }

    /// The mirror image of this entry (every line on the other side), for a payout that
    /// failed after it was paid or a dispute that was won.
    pub fn reversal(
        &self,
        external_id: ExternalId,
        effective_date: NaiveDate,
        memo: impl Into<String>,
    ) -> Result<LedgerEntry, LedgerError> {
        LedgerEntry::new(EntryDraft {
            external_id,
            merchant_id: self.draft.merchant_id.clone(),
            effective_date,
            memo: memo.into(),
            source_refs: self.draft.source_refs.clone(),
            lines: self.lines().iter().map(JournalLine::swapped).collect(),
        })
    }
}

fn check_line(line: usize, l: &JournalLine) -> Result<(), LedgerError> {
    if l.debit.currency != l.credit.currency {
        return Err(LedgerError::LineCurrencyMismatch { line });
    }
    if l.debit.amount.is_sign_negative() && !l.debit.amount.is_zero()
        || l.credit.amount.is_sign_negative() && !l.credit.amount.is_zero()
    {
        return Err(LedgerError::Negative { line });
    }
    match (l.debit.amount.is_zero(), l.credit.amount.is_zero()) {
        (false, false) => return Err(LedgerError::BothSides { line }),
        (true, true) => return Err(LedgerError::NeitherSide { line }),
        _ => {}
    }
    let exponent = l.currency().exponent();
    for money in [l.debit, l.credit] {
        if money.amount.normalize().scale() > exponent {
            return Err(LedgerError::TooPrecise {
                line,
                amount: money.to_string(),
            });
        }
    }
    Ok(())
}

fn side_totals(
    lines: &[JournalLine],
) -> Result<BTreeMap<Currency, (Decimal, Decimal)>, LedgerError> {
    let mut totals: BTreeMap<Currency, (Decimal, Decimal)> = BTreeMap::new();
    for line in lines {
        let (d, c) = totals.entry(line.currency()).or_default();
        *d = d
            .checked_add(line.debit.amount)
            .ok_or(LedgerError::Overflow)?;
        *c = c
            .checked_add(line.credit.amount)
            .ok_or(LedgerError::Overflow)?;
    }
    Ok(totals)
}

/// Checked `a + b` in one currency.
pub fn add(a: Money, b: Money, field: &'static str) -> Result<Money, LedgerError> {
    same_currency(a, b, field)?;
    let amount = a
        .amount
        .checked_add(b.amount)
        .ok_or(LedgerError::Overflow)?;
    Ok(Money::new(amount, a.currency))
}

/// Checked `a - b` in one currency.
pub fn sub(a: Money, b: Money, field: &'static str) -> Result<Money, LedgerError> {
    same_currency(a, b, field)?;
    let amount = a
        .amount
        .checked_sub(b.amount)
        .ok_or(LedgerError::Overflow)?;
    Ok(Money::new(amount, a.currency))
}

/// Checked sum in `currency`; every part must be in it.
pub fn sum<'a>(
    parts: impl IntoIterator<Item = &'a Money>,
    currency: Currency,
    field: &'static str,
) -> Result<Money, LedgerError> {
    parts
        .into_iter()
        .try_fold(Money::zero(currency), |acc, m| add(acc, *m, field))
}

pub fn same_currency(a: Money, b: Money, field: &'static str) -> Result<(), LedgerError> {
    if a.currency != b.currency {
        return Err(LedgerError::CurrencyMismatch {
            field,
            expected: a.currency,
            found: b.currency,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
