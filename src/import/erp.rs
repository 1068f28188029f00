//! ERP journal lines: NetSuite's journal-import columns by default, any
//! other ERP's through a column mapping. NetSuite's import has no column
//! for the processor's reference, so people put the charge id, payout id or
//! order name in Line Memo, Memo or External ID: each line's reference is
//! the first id recognised by its shape there (`super::ids_in`).
//!
//! Rows of one journal follow each other under one External ID; the
//! journal is complete, and checked to balance, when the id changes.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::csv_read::{Headers, Row};
use super::{Id, Item, Parsed, RowError, RowReader, ids_in};
use crate::domain::currency::Currency;
use crate::domain::record::*;

pub const SYSTEM: &str = "netsuite";

/// Another ERP's column names for NetSuite's, from a TOML file:
///
/// ```toml
/// currency = "EUR"            # when the file has no currency column
/// [columns]
/// "External ID" = "Journal No"
/// "Date" = "Posting Date"
/// "Debit" = "Dr"
/// "Credit" = "Cr"
/// "Line Memo" = "Reference"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    pub currency: Option<String>,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let m: Mapping = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(c) = &m.currency {
            if Currency::parse_lenient(c).is_none() {
                return Err(format!(
                    "{}: currency '{c}' is not ISO 4217",
                    path.display()
                ));
            }
        }
        Ok(m)
    }

    /// The file's headers under NetSuite's names; a default currency
    /// becomes a column the rows do not have (read as the default).
    pub fn rename(&self, h: &Headers) -> Headers {
        let names: Vec<String> = h
            .names
            .iter()
            .map(|n| {
                self.columns
                    .iter()
                    .find(|(_, theirs)| {
                        super::csv_read::normalise(theirs) == super::csv_read::normalise(n)
                    })
                    .map_or_else(|| n.clone(), |(ours, _)| ours.clone())
            })
            .collect();
        Headers::new(names.iter().map(String::as_str))
    }
}

/// The journal being assembled: its first line, id, header fields, lines.
struct Open {
    file: String,
    line: u64,
    id: String,
    head: Head,
    lines: Vec<JournalLine>,
    failed: bool,
}

struct Head {
    currency: Currency,
    exchange_rate: Option<Decimal>,
    posting_period: String,
    subsidiary: String,
    memo: String,
    when: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
pub struct JournalReader {
    open: Option<Open>,
    /// The mapping's default currency, for files without the column.
    pub default_currency: Option<Currency>,
}

impl JournalReader {
    pub fn with_currency(c: Option<Currency>) -> Self {
        JournalReader {
            open: None,
            default_currency: c,
        }
    }
}

impl RowReader for JournalReader {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>) {
        let id = match row.req(&["external id"]) {
            Ok(id) => id,
            Err(e) => {
                out.push(Item::Error(e));
                return;
            }
        };
        if self.open.as_ref().is_none_or(|o| o.id != id) {
            self.finish(out);
            match head(row, self.default_currency) {
                Ok(head) => {
                    self.open = Some(Open {
                        file: row.file.to_string(),
                        line: row.line,
                        id: id.to_string(),
                        head,
                        lines: vec![],
                        failed: false,
                    })
                }
                Err(e) => {
                    out.push(Item::Error(e));
                    return;
                }
            }
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match line(row, open.head.currency) {
            Ok(l) => open.lines.push(l),
            Err(e) => {
                // A journal missing a line would not balance: the error is
                // the line's, and the journal is not made up without it.
                open.failed = true;
                out.push(Item::Error(e));
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Item>) {
        let Some(o) = self.open.take() else {
            return;
        };
        if o.failed {
            return;
        }
        let h = o.head;
        match JournalEntry::new(
            h.currency,
            h.exchange_rate,
            h.posting_period,
            h.subsidiary,
            h.memo,
            o.lines,
        ) {
            Ok(j) => out.push(Item::Record(Parsed {
                line: o.line,
                record: Record {
                    source_id: o.id,
                    source_system: SYSTEM.into(),
                    order_id: None,
                    references: vec![],
                    event_time: h.when,
                    source_update_time: None,
                    body: Body::JournalEntry(j),
                },
            })),
            Err(e) => out.push(Item::Error(RowError {
                file: o.file,
                line: o.line,
                column: 0,
                column_name: "Debit".into(),
                why: format!("journal {}: {e}", o.id),
            })),
        }
    }
}

fn head(row: &Row<'_>, default: Option<Currency>) -> Result<Head, RowError> {
    let currency = match (row.get(&["currency"]), default) {
        (None, Some(c)) => c,
        _ => row.currency(&["currency"])?,
    };
    let exchange_rate = match row.get(&["exchange rate"]) {
        Some(v) => Some(
            v.parse::<Decimal>()
                .map_err(|_| row.err("exchange rate", format!("'{v}' is not a number")))?,
        ),
        None => None,
    };
    Ok(Head {
        currency,
        exchange_rate,
        posting_period: row.get(&["posting period"]).unwrap_or("").into(),
        subsidiary: row.get(&["subsidiary"]).unwrap_or("").into(),
        memo: row.get(&["memo"]).unwrap_or("").into(),
        when: row.time_req(&["date"])?,
    })
}

fn line(row: &Row<'_>, c: Currency) -> Result<JournalLine, RowError> {
    let debit = row
        .amount(&["debit"], c)?
        .map_or(Decimal::ZERO, |m| m.amount);
    let credit = row
        .amount(&["credit"], c)?
        .map_or(Decimal::ZERO, |m| m.amount);
    JournalLine::check_sides(0, debit, credit).map_err(|e| row.err("debit", e.to_string()))?;
    const WHERE_IDS_ARE: [&[&str]; 3] = [&["line memo"], &["memo"], &["external id"]];
    let reference = WHERE_IDS_ARE
        .iter()
        .filter_map(|col| row.get(col))
        .find_map(|text| {
            ids_in(text).next().map(|id| match id {
                Id::Processor(p) => p.to_string(),
                Id::Order(o) => o.to_string(),
            })
        });
    Ok(JournalLine {
        account: row.req(&["account"])?.into(),
        debit,
        credit,
        memo: row.get(&["line memo"]).unwrap_or("").into(),
        name: row.get(&["name"]).unwrap_or("").into(),
        reference,
    })
}

/// SuiteAnalytics tables are recognised so that a folder of them reads
/// without error; their amounts need the account, currency and period
/// tables joined, which this does not do yet.
pub struct Ignored;

impl RowReader for Ignored {
    fn row(&mut self, _row: &Row<'_>, _out: &mut Vec<Item>) {}
}
