//! A report's figures as lines (figure, currency, amount, count), the
//! figures derived from the stored sums, and the digest two people compare.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::figures::Overflow;
use crate::domain::matching::ExceptionType;

/// One figure in one currency ("" for counts that carry no money).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    pub figure: String,
    pub currency: String,
    pub amount: Decimal,
    pub count: i64,
}

/// Seed 004's four categories of ghost revenue, each the sum of the
/// unresolved exceptions of its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GhostCategory {
    RefundPropagation,
    FeeAllocation,
    RoundingCurrency,
    DiscountMapping,
}

impl GhostCategory {
    pub const ALL: [GhostCategory; 4] = [
        GhostCategory::RefundPropagation,
        GhostCategory::FeeAllocation,
        GhostCategory::RoundingCurrency,
        GhostCategory::DiscountMapping,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GhostCategory::RefundPropagation => "ghost.refund_propagation",
            GhostCategory::FeeAllocation => "ghost.fee_allocation",
            GhostCategory::RoundingCurrency => "ghost.rounding_currency",
            GhostCategory::DiscountMapping => "ghost.discount_mapping",
        }
    }

    pub fn types(self) -> &'static [ExceptionType] {
        match self {
            GhostCategory::RefundPropagation => &[ExceptionType::RefundNotPropagated],
            GhostCategory::FeeAllocation => &[ExceptionType::FeeUnallocated],
            GhostCategory::RoundingCurrency => {
                &[ExceptionType::RoundingVariance, ExceptionType::FxVariance]
            }
            GhostCategory::DiscountMapping => &[ExceptionType::DiscountUnmapped],
        }
    }

    pub fn parse(name: &str) -> Option<GhostCategory> {
        GhostCategory::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The stored figure of an exception type's unresolved exceptions.
pub fn exception_figure(t: ExceptionType) -> String {
    format!("exceptions.{}", t.as_str())
}

/// Ledger accounts a report shows the balance of, as (figure, account
/// role key, sign): a liability's credit balance reads positive.
pub const LEDGER_BALANCES: [(&str, &str, i8); 3] = [
    ("ledger.receivables_open", "accounts_receivable", 1),
    ("ledger.unapplied_cash", "unapplied_cash", -1),
    ("ledger.processor_clearing", "processor_clearing", 1),
];

/// All of a report's lines, keyed by (figure, currency), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sheet {
    lines: BTreeMap<(String, String), (Decimal, i64)>,
}

impl Sheet {
    /// Sums stored lines (several rows of one key add up); rows that sum to
    /// nothing are dropped, so a fact added and taken back leaves no line.
    pub fn from_lines(lines: impl IntoIterator<Item = Line>) -> Result<Sheet, Overflow> {
        let mut s = Sheet::default();
        for l in lines {
            s.add(&l.figure, &l.currency, l.amount, l.count)?;
        }
        s.prune();
        Ok(s)
    }

    fn add(
        &mut self,
        figure: &str,
        currency: &str,
        amount: Decimal,
        count: i64,
    ) -> Result<(), Overflow> {
        let e = self
            .lines
            .entry((figure.to_string(), currency.to_string()))
            .or_insert((Decimal::ZERO, 0));
        // Sums of stored numerics stay far inside Decimal's 28 digits; if
        // one did not, the report is refused, never summed wrong.
        e.0 = e.0.checked_add(amount).ok_or(Overflow("report sum"))?;
        e.1 = e.1.checked_add(count).ok_or(Overflow("report count"))?;
        Ok(())
    }

    fn prune(&mut self) {
        self.lines.retain(|_, (a, n)| !a.is_zero() || *n != 0);
    }

    pub fn get(&self, figure: &str, currency: &str) -> (Decimal, i64) {
        self.lines
            .get(&(figure.to_string(), currency.to_string()))
            .copied()
            .unwrap_or((Decimal::ZERO, 0))
    }

    pub fn currencies(&self) -> Vec<String> {
        let mut c: Vec<String> = self
            .lines
            .keys()
            .map(|(_, c)| c.clone())
            .filter(|c| !c.is_empty())
            .collect();
        c.dedup();
        c.sort();
        c.dedup();
        c
    }

    pub fn lines(&self) -> Vec<Line> {
        self.lines
            .iter()
            .map(|((figure, currency), (amount, count))| Line {
                figure: figure.clone(),
                currency: currency.clone(),
                amount: amount.normalize(),
                count: *count,
            })
            .collect()
    }

    /// Adds the figures derived from stored ones: processor net, the ghost
    /// categories, complete orders and the ledger balances (from `ledger`,
    /// lines of (account role key, currency, debits - credits)).
    pub fn with_derived(mut self, ledger: &[Line]) -> Result<Sheet, Overflow> {
        let mut derived = vec![];
        let over = || Overflow("a derived figure");
        for cur in self.currencies() {
            let g = |f: &str| self.get(f, &cur).0;
            let net = [
                (g("processor.refunded"), -1),
                (g("processor.fees"), -1),
                (g("processor.disputes_lost"), -1),
                (g("processor.disputes_won"), 1),
            ]
            .into_iter()
            .try_fold(g("processor.captured"), |acc, (x, sign)| {
                if sign < 0 {
                    acc.checked_sub(x)
                } else {
                    acc.checked_add(x)
                }
            })
            .ok_or_else(over)?;
            derived.push(("processor.net".to_string(), cur.clone(), net, 0));
            for cat in GhostCategory::ALL {
                let (mut amount, mut count) = (Decimal::ZERO, 0i64);
                for t in cat.types() {
                    let (a, n) = self.get(&exception_figure(*t), &cur);
                    amount = amount.checked_add(a).ok_or_else(over)?;
                    count = count.checked_add(n).ok_or_else(over)?;
                }
                derived.push((cat.name().to_string(), cur.clone(), amount, count));
            }
        }
        let orders = self.get("completeness.orders", "").1;
        let waiting = self.get("completeness.orders_waiting", "").1;
        derived.push((
            "completeness.orders_complete".into(),
            String::new(),
            Decimal::ZERO,
            orders.checked_sub(waiting).ok_or_else(over)?,
        ));
        for (figure, account, sign) in LEDGER_BALANCES {
            for l in ledger.iter().filter(|l| l.figure == account) {
                let amount = if sign < 0 { -l.amount } else { l.amount };
                derived.push((figure.to_string(), l.currency.clone(), amount, l.count));
            }
        }
        for (f, c, a, n) in derived {
            self.add(&f, &c, a, n)?;
        }
        self.prune();
        Ok(self)
    }

    /// Each line of `self` minus `earlier`'s, where they differ.
    pub fn minus(&self, earlier: &Sheet) -> Result<Sheet, Overflow> {
        let mut out = self.clone();
        for ((f, c), (a, n)) in &earlier.lines {
            out.add(f, c, -*a, -*n)?;
        }
        out.prune();
        Ok(out)
    }
}

/// What a digest covers besides the lines.
pub struct DigestHeader<'a> {
    pub merchant: &'a str,
    pub period: &'a super::Period,
    pub as_of: chrono::DateTime<chrono::Utc>,
    pub closed_as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// SHA-256 (hex) of the report's canonical text: one line per field and
/// per figure, amounts normalised, in key order. Two reports with the same
/// digest show the same numbers for the same period and knowledge time.
pub fn digest(h: &DigestHeader<'_>, figures: &Sheet, post_close: &Sheet) -> String {
    let mut text = String::from("tally.period_report.v1\n");
    let t =
        |x: chrono::DateTime<chrono::Utc>| x.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    text.push_str(&format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        h.merchant,
        h.period.label,
        h.period.zone.name(),
        t(h.period.start),
        t(h.period.end),
        t(h.as_of),
        h.closed_as_of.map(t).unwrap_or_else(|| "-".into()),
    ));
    for (section, sheet) in [("figures", figures), ("post_close", post_close)] {
        text.push_str(section);
        text.push('\n');
        for l in sheet.lines() {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                l.figure, l.currency, l.amount, l.count
            ));
        }
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: &str, c: &str, a: &str, n: i64) -> Line {
        Line {
            figure: f.into(),
            currency: c.into(),
            amount: a.parse().unwrap(),
            count: n,
        }
    }

    #[test]
    fn derived_figures_follow_the_stored_ones() {
        let s = Sheet::from_lines([
            line("processor.captured", "USD", "100", 1),
            line("processor.fees", "USD", "3.20", 1),
            line("processor.refunded", "USD", "10", 1),
            line("exceptions.rounding_variance", "USD", "0.01", 1),
            line("exceptions.fx_variance", "USD", "0.02", 1),
            line("completeness.orders", "", "0", 3),
            line("completeness.orders_waiting", "", "0", 1),
        ])
        .unwrap()
        .with_derived(&[line("unapplied_cash", "USD", "-5", 2)])
        .unwrap();
        assert_eq!(s.get("processor.net", "USD").0, "86.80".parse().unwrap());
        assert_eq!(
            s.get("ghost.rounding_currency", "USD"),
            ("0.03".parse().unwrap(), 2)
        );
        assert_eq!(s.get("completeness.orders_complete", "").1, 2);
        assert_eq!(
            s.get("ledger.unapplied_cash", "USD").0,
            "5".parse().unwrap()
        );
        assert_eq!(s.get("ghost.fee_allocation", "USD"), (Decimal::ZERO, 0));
    }

    #[test]
    fn a_sum_past_a_decimal_is_refused_not_summed_wrong() {
        let max = Decimal::MAX.to_string();
        let two = [
            line("erp.invoiced", "USD", &max, 1),
            line("erp.invoiced", "USD", &max, 1),
        ];
        assert!(Sheet::from_lines(two).is_err());
        let big = Sheet::from_lines([line("processor.captured", "USD", &max, 1)]).unwrap();
        let net = Sheet::from_lines([
            line("processor.captured", "USD", &max, 1),
            line("processor.disputes_won", "USD", "1", 1),
        ])
        .unwrap();
        assert!(big.with_derived(&[]).is_ok());
        assert!(
            net.with_derived(&[]).is_err(),
            "processor net past a decimal"
        );
    }

    #[test]
    fn a_fact_taken_back_leaves_no_line_and_the_digest_sees_every_cent() {
        let a = Sheet::from_lines([line("erp.invoiced", "USD", "100.00", 1)]).unwrap();
        let b = Sheet::from_lines([
            line("erp.invoiced", "USD", "100.00", 1),
            line("bank.deposited", "USD", "5", 1),
            line("bank.deposited", "USD", "-5", -1),
        ])
        .unwrap();
        assert_eq!(a, b);
        let period = super::super::Period::named("2026-10", chrono_tz::Tz::UTC).unwrap();
        let h = DigestHeader {
            merchant: "acme",
            period: &period,
            as_of: chrono::DateTime::UNIX_EPOCH,
            closed_as_of: None,
        };
        let c = Sheet::from_lines([line("erp.invoiced", "USD", "100.01", 1)]).unwrap();
        assert_eq!(
            digest(&h, &a, &Sheet::default()),
            digest(&h, &b, &Sheet::default())
        );
        assert_ne!(
            digest(&h, &a, &Sheet::default()),
            digest(&h, &c, &Sheet::default())
        );
        let moved = c.minus(&a).unwrap();
        assert_eq!(moved.lines(), vec![line("erp.invoiced", "USD", "0.01", 0)]);
    }
}
