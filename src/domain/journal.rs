//! An ERP journal entry and the rules every one obeys: each line is a
//! debit or a credit (not both, not neither, never negative), there are at
//! least two lines, and debits equal credits. Validation calls these
//! checks where a journal is built; readers `debug_assert!` them.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::currency::Currency;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub currency: Currency,
    pub exchange_rate: Option<Decimal>,
    pub posting_period: String,
    pub subsidiary: String,
    pub memo: String,
    pub lines: Vec<JournalLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    pub account: String,
    pub debit: Decimal,
    pub credit: Decimal,
    pub memo: String,
    pub name: String,
    pub reference: Option<String>,
}

/// Why a journal entry is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("a journal entry needs at least two lines")]
    TooFewLines,
    #[error("a line is either a debit or a credit: set exactly one of them above zero")]
    OneSidePerLine { line: usize },
    #[error("'{amount}' must not be negative")]
    Negative { line: usize, amount: Decimal },
    #[error("debits ({debits}) do not equal credits ({credits})")]
    Unbalanced { debits: Decimal, credits: Decimal },
    #[error("the journal's totals are beyond what an exact decimal holds")]
    Overflow,
}

impl JournalLine {
    /// A line's two sides: exactly one above zero, neither negative.
    pub fn check_sides(line: usize, debit: Decimal, credit: Decimal) -> Result<(), JournalError> {
        for amount in [debit, credit] {
            if amount.is_sign_negative() && !amount.is_zero() {
                return Err(JournalError::Negative { line, amount });
            }
        }
        if debit.is_zero() == credit.is_zero() {
            return Err(JournalError::OneSidePerLine { line });
        }
        Ok(())
    }
}

impl JournalEntry {
    /// A journal entry, if it is one (see `check`).
    pub fn new(
        currency: Currency,
        exchange_rate: Option<Decimal>,
        posting_period: String,
        subsidiary: String,
        memo: String,
        lines: Vec<JournalLine>,
    ) -> Result<JournalEntry, JournalError> {
        let entry = JournalEntry {
            currency,
            exchange_rate,
            posting_period,
            subsidiary,
            memo,
            lines,
        };
        entry.check()?;
        Ok(entry)
    }

    /// Every rule at once: two lines or more, one side per line, balanced.
    pub fn check(&self) -> Result<(), JournalError> {
        if self.lines.len() < 2 {
            return Err(JournalError::TooFewLines);
        }
        for (i, l) in self.lines.iter().enumerate() {
            JournalLine::check_sides(i, l.debit, l.credit)?;
        }
        self.check_balance()
    }

    /// Debits equal credits, and both totals exist.
    pub fn check_balance(&self) -> Result<(), JournalError> {
        let (Some(debits), Some(credits)) = (self.checked_debits(), self.checked_credits()) else {
            return Err(JournalError::Overflow);
        };
        if debits != credits {
            return Err(JournalError::Unbalanced { debits, credits });
        }
        Ok(())
    }

    pub fn checked_debits(&self) -> Option<Decimal> {
        checked_sum(self.lines.iter().map(|l| l.debit))
    }

    pub fn checked_credits(&self) -> Option<Decimal> {
        checked_sum(self.lines.iter().map(|l| l.credit))
    }

    /// Total debits. `check` refuses a journal whose totals overflow, so a
    /// validated journal never sees the saturated figure.
    pub fn total_debits(&self) -> Decimal {
        self.checked_debits().unwrap_or(Decimal::MAX)
    }

    /// Total credits; saturates like `total_debits`.
    pub fn total_credits(&self) -> Decimal {
        self.checked_credits().unwrap_or(Decimal::MAX)
    }
}

fn checked_sum(mut items: impl Iterator<Item = Decimal>) -> Option<Decimal> {
    items.try_fold(Decimal::ZERO, |t, d| t.checked_add(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(debit: i64, credit: i64) -> JournalLine {
        JournalLine {
            account: "1190".into(),
            debit: Decimal::from(debit),
            credit: Decimal::from(credit),
            memo: String::new(),
            name: String::new(),
            reference: None,
        }
    }

    fn entry(lines: Vec<JournalLine>) -> Result<JournalEntry, JournalError> {
        let usd = Currency::from_code("USD").unwrap();
        JournalEntry::new(
            usd,
            None,
            "Nov 2026".into(),
            "US".into(),
            String::new(),
            lines,
        )
    }

    #[test]
    fn a_balanced_entry_of_one_sided_lines_is_built() {
        let e = entry(vec![line(10, 0), line(0, 10)]).unwrap();
        assert_eq!(e.total_debits(), Decimal::from(10));
    }

    #[test]
    fn broken_entries_are_refused_with_the_rule_they_break() {
        assert_eq!(entry(vec![line(10, 0)]), Err(JournalError::TooFewLines));
        assert_eq!(
            entry(vec![line(10, 10), line(0, 0)]),
            Err(JournalError::OneSidePerLine { line: 0 })
        );
        assert_eq!(
            entry(vec![line(10, 0), line(0, 0)]),
            Err(JournalError::OneSidePerLine { line: 1 })
        );
        assert_eq!(
            entry(vec![line(-10, 0), line(0, -10)]),
            Err(JournalError::Negative {
                line: 0,
                amount: Decimal::from(-10)
            })
        );
        assert_eq!(
            entry(vec![line(10, 0), line(0, 9)]),
            Err(JournalError::Unbalanced {
                debits: Decimal::from(10),
                credits: Decimal::from(9)
            })
        );
        let mut huge = line(0, 0);
        huge.debit = Decimal::MAX;
        assert_eq!(
            entry(vec![huge.clone(), huge, line(0, 1)]),
            Err(JournalError::Overflow)
        );
    }
}
