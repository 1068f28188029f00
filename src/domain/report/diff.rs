//! What moved a report between two knowledge times: each fact learned in
//! between, with the figure and the amount it moved. The facts must add up
//! to the difference of the two reports, cent for cent (`explain`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::sheet::{Line, Sheet};

/// Where a fact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FactSource {
    /// A record version (new, or superseding another).
    Record,
    /// An exception opened, re-valued or resolved.
    Exception,
    /// A journal entry Tally booked.
    JournalEntry,
    /// Orders' handoffs completed or opened (counted per figure).
    Handoffs,
}

impl FactSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FactSource::Record => "record",
            FactSource::Exception => "exception",
            FactSource::JournalEntry => "journal_entry",
            FactSource::Handoffs => "handoffs",
        }
    }
}

/// One fact's move of one figure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fact {
    pub known_at: DateTime<Utc>,
    pub source: FactSource,
    /// The fact's resource name (a record version, an exception, an entry).
    pub name: String,
    pub figure: String,
    pub currency: String,
    pub amount: Decimal,
    pub count: i64,
    /// What happened, in words ("new version of payout po_1: paid -> failed").
    pub description: String,
}

/// The facts do not add up to the reports' difference: a bug, never the
/// caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the facts move {figure} {currency} by {facts}, the reports by {reports}")]
pub struct Unexplained {
    pub figure: String,
    pub currency: String,
    pub facts: String,
    pub reports: String,
}

/// Checks that `facts` explain every stored figure's move from `before` to
/// `after` (the derived figures follow from the stored ones).
pub fn explain(before: &Sheet, after: &Sheet, facts: &[Fact]) -> Result<Sheet, Unexplained> {
    let overflow = |e: super::figures::Overflow| Unexplained {
        figure: e.0.to_string(),
        currency: String::new(),
        facts: "overflow".into(),
        reports: "overflow".into(),
    };
    let moved = after.minus(before).map_err(overflow)?;
    let by_facts = Sheet::from_lines(facts.iter().map(|f| Line {
        figure: f.figure.clone(),
        currency: f.currency.clone(),
        amount: f.amount,
        count: f.count,
    }))
    .map_err(overflow)?;
    let stored = |s: &Sheet| {
        Sheet::from_lines(s.lines().into_iter().filter(|l| is_stored(&l.figure))).map_err(overflow)
    };
    let (m, f) = (stored(&moved)?, stored(&by_facts)?);
    if m != f {
        let all: std::collections::BTreeSet<(String, String)> = m
            .lines()
            .into_iter()
            .chain(f.lines())
            .map(|l| (l.figure, l.currency))
            .collect();
        for (figure, currency) in all {
            let (a, b) = (f.get(&figure, &currency), m.get(&figure, &currency));
            if a != b {
                return Err(Unexplained {
                    figure,
                    currency,
                    facts: format!("{} ({} items)", a.0, a.1),
                    reports: format!("{} ({} items)", b.0, b.1),
                });
            }
        }
    }
    Ok(moved)
}

/// Figures that facts move directly (ledger balances included: each
/// entry's lines move them), as opposed to those derived from others.
pub fn is_stored(figure: &str) -> bool {
    !(figure.starts_with("ghost.")
        || figure == "processor.net"
        || figure == "completeness.orders_complete")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(figure: &str, amount: &str, count: i64) -> Fact {
        Fact {
            known_at: DateTime::UNIX_EPOCH,
            source: FactSource::Record,
            name: "r".into(),
            figure: figure.into(),
            currency: "USD".into(),
            amount: amount.parse().unwrap(),
            count,
            description: String::new(),
        }
    }

    fn sheet(lines: &[(&str, &str, i64)]) -> Sheet {
        Sheet::from_lines(lines.iter().map(|(f, a, n)| Line {
            figure: f.to_string(),
            currency: "USD".into(),
            amount: a.parse().unwrap(),
            count: *n,
        }))
        .unwrap()
    }

    #[test]
    fn facts_that_add_up_explain_the_move() {
        let before = sheet(&[("erp.invoiced", "100", 1)]);
        let after = sheet(&[("erp.invoiced", "90", 1), ("erp.credit_memos", "10", 1)]);
        let facts = [
            fact("erp.invoiced", "-100", -1),
            fact("erp.invoiced", "90", 1),
            fact("erp.credit_memos", "10", 1),
        ];
        let moved = explain(&before, &after, &facts).unwrap();
        assert_eq!(moved.get("erp.invoiced", "USD").0, "-10".parse().unwrap());
    }

    #[test]
    fn a_missing_cent_is_named() {
        let before = sheet(&[]);
        let after = sheet(&[("erp.invoiced", "100.01", 1)]);
        let e = explain(&before, &after, &[fact("erp.invoiced", "100", 1)]).unwrap_err();
        assert_eq!(e.figure, "erp.invoiced");
        assert!(e.reports.starts_with("100.01"));
    }
}
