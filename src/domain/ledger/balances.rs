//! Balances over entries: the trial balance and the processor-clearing check.
//!
//! Processor clearing is the account that makes every gap visible: everything a payout
//! carried goes through it, so once a payout is applied and deposited it must be back at
//! zero. What is left is unexplained money, reported (never written off).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::accounts::AccountRole;
use super::journal::{LedgerEntry, LedgerError};
use crate::domain::currency::Currency;
use crate::domain::money::Money;

/// Net balance (debit positive) per account and currency over `entries`, checked.
pub fn trial_balance<'a>(
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
) -> Result<BTreeMap<(AccountRole, Currency), Decimal>, LedgerError> {
    let mut balances: BTreeMap<(AccountRole, Currency), Decimal> = BTreeMap::new();
    for entry in entries {
        for line in entry.lines() {
            let slot = balances.entry((line.account, line.currency())).or_default();
            *slot = slot
                .checked_add(line.debit.amount)
                .and_then(|b| b.checked_sub(line.credit.amount))
                .ok_or(LedgerError::Overflow)?;
        }
    }
    debug_assert!(
        per_currency_totals(&balances)
            .values()
            .all(Decimal::is_zero),
        "a trial balance over balanced entries sums to zero in each currency"
    );
    Ok(balances)
}

fn per_currency_totals(
    balances: &BTreeMap<(AccountRole, Currency), Decimal>,
) -> BTreeMap<Currency, Decimal> {
    let mut totals: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for ((_, currency), amount) in balances {
        let slot = totals.entry(*currency).or_default();
        // Only for the debug assertion: overflow here means the check is skipped, not a panic.
        *slot = slot.checked_add(*amount).unwrap_or(*slot);
    }
    totals
}

/// What processor clearing shows after a payout's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearingCheck {
    /// Every cent the payout carried is explained.
    Zero,
    /// Debit-positive residual per currency: money expected that never arrived (debit) or
    /// money that arrived unexplained (credit). An exception to raise, not a booking to make.
    Residual(Vec<Money>),
}

/// The processor-clearing balance over a payout's entries, per currency.
pub fn check_clearing<'a>(
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
) -> Result<ClearingCheck, LedgerError> {
    let residual: Vec<Money> = trial_balance(entries)?
        .into_iter()
        .filter(|((account, _), amount)| {
            *account == AccountRole::ProcessorClearing && !amount.is_zero()
        })
        .map(|((_, currency), amount)| Money::new(amount, currency))
        .collect();
    Ok(if residual.is_empty() {
        ClearingCheck::Zero
    } else {
        ClearingCheck::Residual(residual)
    })
}
