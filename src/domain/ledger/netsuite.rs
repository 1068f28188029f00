//! NetSuite journal-entry import CSV, written from entries (pure: entries in, text out).
//!
//! A NetSuite journal has one currency, so an entry that moves two currencies (an FX
//! conversion) becomes one journal per currency; each balances on its own because every
//! entry balances per currency. Such journals get the currency appended to the external id.
//!
//! NetSuite takes at most 2 decimals. For a 3-decimal currency (KWD, BHD, JOD, OMR, TND,
//! LYD, IQD) each line is rounded half away from zero to 2 decimals; if the rounded lines no
//! longer balance, one line on the rounding account takes the difference (memo says so), so
//! the imported journal still balances and the sub-cent difference is visible, not lost.
//! Lines that round to zero are left out, and a journal left with nothing is not written.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use super::accounts::{AccountRole, ChartOfAccounts};
use super::journal::{JournalLine, LedgerEntry, LedgerError};
use crate::domain::currency::Currency;

pub const NETSUITE_COLUMNS: [&str; 12] = [
    "External ID",
    "Date",
    "Posting Period",
    "Subsidiary",
    "Currency",
    "Exchange Rate",
    "Memo",
    "Account",
    "Debit",
    "Credit",
    "Line Memo",
    "Name",
];

/// Account-specific settings of the import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetsuiteOptions {
    pub subsidiary: String,
    /// The subsidiary's base currency: its journals carry exchange rate 1.
    pub base_currency: Currency,
    /// Rates to the base currency the merchant wants stated; a currency missing here gets an
    /// empty Exchange Rate, which makes NetSuite use its own rate for the date.
    pub rates: BTreeMap<Currency, Decimal>,
    /// chrono format matching the NetSuite user's date preference, e.g. "%m/%d/%Y".
    pub date_format: String,
}

/// The CSV text, header first, journals in the order given, lines in entry order.
pub fn netsuite_csv(
    entries: &[LedgerEntry],
    chart: &ChartOfAccounts,
    options: &NetsuiteOptions,
) -> Result<String, LedgerError> {
    let mut out = row(NETSUITE_COLUMNS.iter().map(|c| c.to_string()));
    for entry in entries {
        let currencies = entry.currencies();
        for currency in &currencies {
            let lines = export_lines(entry, *currency)?;
            if lines.len() < 2 {
                continue;
            }
            let external_id = if currencies.len() > 1 {
                format!("{}-{}", entry.external_id().as_str(), currency)
            } else {
                entry.external_id().as_str().to_string()
            };
            let header = JournalHeader {
                external_id,
                date: entry.effective_date(),
                currency: *currency,
                memo: entry.memo(),
            };
            for line in &lines {
                out.push_str(&journal_row(&header, line, chart, options));
            }
        }
    }
    Ok(out)
}

struct JournalHeader<'a> {
    external_id: String,
    date: NaiveDate,
    currency: Currency,
    memo: &'a str,
}

/// One currency's lines as NetSuite will hold them: at most 2 decimals, still balanced.
fn export_lines(entry: &LedgerEntry, currency: Currency) -> Result<Vec<JournalLine>, LedgerError> {
    let mut lines: Vec<JournalLine> = entry
        .lines()
        .iter()
        .filter(|l| l.currency() == currency)
        .map(|l| {
            let mut l = l.clone();
            l.debit.amount = to_two_decimals(l.debit.amount);
            l.credit.amount = to_two_decimals(l.credit.amount);
            l
        })
        .filter(|l| !l.signed().is_zero())
        .collect();
    let gap = net(&lines)?;
    if !gap.is_zero() {
        let amount = crate::domain::money::Money::new(gap.abs(), currency);
        let fix = if gap.is_sign_positive() {
            JournalLine::credit(AccountRole::Rounding, amount)
        } else {
            JournalLine::debit(AccountRole::Rounding, amount)
        };
        lines.push(fix.memo(format!("NetSuite 2-decimal rounding of {currency} amounts")));
    }
    debug_assert!(net(&lines).is_ok_and(|n| n.is_zero()));
    Ok(lines)
}

/// Debits minus credits, checked.
fn net(lines: &[JournalLine]) -> Result<Decimal, LedgerError> {
    lines
        .iter()
        .map(JournalLine::signed)
        .try_fold(Decimal::ZERO, |acc, x| acc.checked_add(x))
        .ok_or(LedgerError::Overflow)
}

fn to_two_decimals(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn journal_row(
    h: &JournalHeader<'_>,
    line: &JournalLine,
    chart: &ChartOfAccounts,
    options: &NetsuiteOptions,
) -> String {
    let rate = if h.currency == options.base_currency {
        "1".to_string()
    } else {
        options
            .rates
            .get(&h.currency)
            .map(|r| r.normalize().to_string())
            .unwrap_or_default()
    };
    row([
        h.external_id.clone(),
        h.date.format(&options.date_format).to_string(),
        h.date.format("%b %Y").to_string(),
        options.subsidiary.clone(),
        h.currency.code().to_string(),
        rate,
        h.memo.to_string(),
        chart.account(line.account).code.clone(),
        amount_cell(line.debit.amount),
        amount_cell(line.credit.amount),
        line.memo.clone(),
        line.order_id.clone().unwrap_or_default(),
    ])
}

fn amount_cell(amount: Decimal) -> String {
    if amount.is_zero() {
        String::new()
    } else {
        let mut a = amount;
        a.rescale(2);
        a.to_string()
    }
}

fn row(cells: impl IntoIterator<Item = String>) -> String {
    let mut out = cells
        .into_iter()
        .map(|c| escape(&c))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// RFC 4180 quoting. Text starting with a formula character is prefixed with a quote mark so
/// a memo copied from a storefront cannot run as a formula when the file is opened in a
/// spreadsheet before import.
fn escape(cell: &str) -> String {
    let cell = if cell.starts_with(['=', '+', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    };
    if cell.contains([',', '"', '\n', '\r']) || cell.trim() != cell {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::journal::{EntryDraft, ExternalId, SourceKind, SourceRef};
    use crate::domain::ledger::test_support::{cur, day, m};

    fn options() -> NetsuiteOptions {
        NetsuiteOptions {
            subsidiary: "Tally Retail Inc.".into(),
            base_currency: cur("USD"),
            rates: BTreeMap::from([(cur("EUR"), Decimal::new(108, 2))]),
            date_format: "%m/%d/%Y".into(),
        }
    }

    fn entry(memo: &str, lines: Vec<JournalLine>) -> LedgerEntry {
        LedgerEntry::new(EntryDraft {
            external_id: ExternalId::derive("m1", "t", &[memo]),
            merchant_id: "m1".into(),
            effective_date: day(23),
            memo: memo.into(),
            source_refs: vec![SourceRef::new(SourceKind::Payout, "po_1")],
            lines,
        })
        .unwrap()
    }

    #[test]
    fn writes_the_netsuite_columns_and_one_row_per_line() {
        let e = entry(
            "Payout po_1, deposited",
            vec![
                JournalLine::debit(AccountRole::Bank, m("97 USD")),
                JournalLine::credit(AccountRole::ProcessorClearing, m("97 USD"))
                    .order(Some("#1001")),
            ],
        );
        let csv = netsuite_csv(
            std::slice::from_ref(&e),
            &ChartOfAccounts::default(),
            &options(),
        )
        .unwrap();
        let rows: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(rows[0], NETSUITE_COLUMNS.join(","));
        let id = e.external_id().as_str();
        assert_eq!(
            rows[1],
            format!(
                "{id},11/23/2026,Nov 2026,Tally Retail Inc.,USD,1,\"Payout po_1, deposited\",1000,97.00,,,"
            )
        );
        assert_eq!(
            rows[2],
            format!(
                "{id},11/23/2026,Nov 2026,Tally Retail Inc.,USD,1,\"Payout po_1, deposited\",1150,,97.00,,#1001"
            )
        );
        assert_eq!(rows.len(), 4, "header, two lines, trailing empty");
    }

    #[test]
    fn a_two_currency_entry_becomes_one_journal_per_currency() {
        let e = entry(
            "fx",
            vec![
                JournalLine::debit(AccountRole::ProcessorClearing, m("108 USD")),
                JournalLine::credit(AccountRole::FxGainLoss, m("108 USD")),
                JournalLine::debit(AccountRole::FxGainLoss, m("100 EUR")),
                JournalLine::credit(AccountRole::AccountsReceivable, m("100 EUR")),
            ],
        );
        let csv = netsuite_csv(
            std::slice::from_ref(&e),
            &ChartOfAccounts::default(),
            &options(),
        )
        .unwrap();
        let id = e.external_id().as_str();
        assert_eq!(csv.matches(&format!("{id}-EUR,")).count(), 2);
        assert_eq!(csv.matches(&format!("{id}-USD,")).count(), 2);
        assert!(csv.contains(",EUR,1.08,"));
    }

    #[test]
    fn three_decimal_currencies_round_to_two_and_stay_balanced() {
        // 1.235 + 1.235 = 2.470 KWD: each line rounds up to 1.24, the total to 2.47, so the
        // rounded debits (2.48) exceed the credit by 0.01, which the rounding account takes.
        let e = entry(
            "kwd",
            vec![
                JournalLine::debit(AccountRole::Bank, m("1.235 KWD")),
                JournalLine::debit(AccountRole::ProcessingFees, m("1.235 KWD")),
                JournalLine::credit(AccountRole::ProcessorClearing, m("2.470 KWD")),
            ],
        );
        let csv = netsuite_csv(&[e], &ChartOfAccounts::default(), &options()).unwrap();
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|r| r.split(',').collect())
            .collect();
        assert_eq!(rows.len(), 4);
        let debits: Decimal = rows
            .iter()
            .filter_map(|r| r[8].parse::<Decimal>().ok())
            .sum();
        let credits: Decimal = rows
            .iter()
            .filter_map(|r| r[9].parse::<Decimal>().ok())
            .sum();
        assert_eq!(debits, credits);
        assert_eq!(rows[3][7], "7200");
        assert_eq!(rows[3][9], "0.01");
        assert!(
            rows.iter()
                .all(|r| !r[8].contains('.') || r[8].split('.').nth(1).unwrap().len() == 2)
        );
    }

    #[test]
    fn a_line_that_rounds_to_nothing_is_left_out() {
        let e = entry(
            "kwd-small",
            vec![
                JournalLine::debit(AccountRole::Bank, m("10.000 KWD")),
                JournalLine::debit(AccountRole::Rounding, m("0.004 KWD")),
                JournalLine::credit(AccountRole::ProcessorClearing, m("10.004 KWD")),
            ],
        );
        let csv = netsuite_csv(&[e], &ChartOfAccounts::default(), &options()).unwrap();
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{csv}");
        assert!(rows.iter().all(|r| !r.contains(",0.00,")));
    }

    #[test]
    fn text_is_quoted_and_formulas_defused() {
        assert_eq!(escape("a,b"), "\"a,b\"");
        assert_eq!(escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(escape("plain"), "plain");
    }
}
