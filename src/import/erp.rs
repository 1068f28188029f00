//! ERP journal lines: NetSuite's journal-import columns by default, any
//! other ERP's through a column mapping. NetSuite's import has no column
//! for the processor's reference, so people put the charge id, payout id or
//! order name in Line Memo, Memo or External ID: each line's reference is
//! the first id recognised by its shape there (`super::ids_in`).
//!
//! Rows of one journal follow each other under one External ID; the
//! journal is complete, and checked to balance, when the id changes.
//!
//! A GL or transaction saved-search export adds a `Type` column: a group of
//! type credit memo ("Credit Memo", SuiteAnalytics' `CustCred`) is the
//! ERP's credit memo of an order, not a journal (`TranType`); every other
//! type, or no Type column, is a journal as before.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::csv_read::{Headers, Row};
use super::{Id, Item, Parsed, RowError, RowReader, ids_in};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
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
        if let Some(c) = &m.currency
            && Currency::parse_lenient(c).is_none()
        {
            return Err(format!(
                "{}: currency '{c}' is not ISO 4217",
                path.display()
            ));
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

/// What a group of GL lines is, from its Type column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranType {
    Journal,
    /// A customer credit memo: the amount credited back on an order.
    CreditMemo,
}

impl TranType {
    /// NetSuite's display name ("Credit Memo") or SuiteAnalytics' code
    /// (`CustCred`); any other type (Journal, Invoice, ...) books as a
    /// journal, as a file without the column does.
    pub fn of(text: &str) -> TranType {
        // Letters and digits only, any case: read on every row, so no
        // allocation.
        let letters = || {
            text.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| b.to_ascii_lowercase())
        };
        let is = |name: &[u8]| letters().eq(name.iter().copied());
        if is(b"creditmemo") || is(b"custcred") {
            TranType::CreditMemo
        } else {
            TranType::Journal
        }
    }

    fn name(self) -> &'static str {
        match self {
            TranType::Journal => "journal",
            TranType::CreditMemo => "credit memo",
        }
    }
}

/// The journal being assembled: its first line, id, header fields, lines.
struct Open {
    file: String,
    line: u64,
    id: String,
    kind: TranType,
    head: Head,
    lines: Vec<JournalLine>,
    failed: bool,
}

pub(super) struct Head {
    pub(super) currency: Currency,
    pub(super) exchange_rate: Option<Decimal>,
    pub(super) posting_period: String,
    pub(super) subsidiary: String,
    pub(super) memo: String,
    pub(super) when: chrono::DateTime<chrono::Utc>,
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
        let kind = row.get(&["type"]).map_or(TranType::Journal, TranType::of);
        if self.open.as_ref().is_none_or(|o| o.id != id) {
            self.finish(out);
            match head(row, self.default_currency) {
                Ok(head) => {
                    self.open = Some(Open {
                        file: row.file.to_string(),
                        line: row.line,
                        id: id.to_string(),
                        kind,
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
        if kind != open.kind {
            // One transaction is one type: a line of another would make a
            // credit memo of a journal's lines, or the reverse.
            open.failed = true;
            out.push(Item::Error(row.err(
                "type",
                format!(
                    "{} {} began as a {}; this line says {}",
                    open.kind.name(),
                    open.id,
                    open.kind.name(),
                    kind.name()
                ),
            )));
            return;
        }
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
        match record(o.kind, o.id.clone(), o.head, o.lines) {
            Ok(record) => out.push(Item::Record(Parsed {
                line: o.line,
                record,
            })),
            Err((column, why)) => out.push(Item::Error(RowError {
                file: o.file,
                line: o.line,
                column: 0,
                column_name: column.into(),
                why: format!("{} {}: {why}", o.kind.name(), o.id),
            })),
        }
    }
}

/// One transaction's lines as Tally's record: a journal entry, or a credit
/// memo of the order its memos name. Checked to balance either way; an
/// error names the column at fault and why.
pub(super) fn record(
    kind: TranType,
    id: String,
    h: Head,
    lines: Vec<JournalLine>,
) -> Result<Record, (&'static str, String)> {
    let j = JournalEntry::new(
        h.currency,
        h.exchange_rate,
        h.posting_period,
        h.subsidiary,
        h.memo,
        lines,
    )
    .map_err(|e| ("Debit", e.to_string()))?;
    let (order_id, references, body) = match kind {
        TranType::Journal => (None, vec![], Body::JournalEntry(j)),
        TranType::CreditMemo => credit_memo(&id, j).map_err(|why| ("Memo", why))?,
    };
    Ok(Record {
        source_id: id,
        source_system: SYSTEM.into(),
        order_id,
        references,
        event_time: h.when,
        source_update_time: None,
        body,
    })
}

/// A credit memo's GL lines (revenue and tax debited, receivables
/// credited): the amount credited is the credits' total, and its order
/// the first order name (#1001) in its memos or External ID; the processor
/// ids there (the refund's `re_`) are its references.
fn credit_memo(
    id: &str,
    j: JournalEntry,
) -> Result<(Option<String>, Vec<Reference>, Body), String> {
    // `JournalEntry::new` checked the totals exist and balance.
    let credited = j.total_credits();
    if credited.is_zero() {
        return Err("a credit memo must credit more than zero".into());
    }
    let texts = j
        .lines
        .iter()
        .map(|l| l.memo.as_str())
        .chain([j.memo.as_str(), id]);
    let (mut order, mut references) = (None, Vec::<Reference>::new());
    for found in texts.flat_map(ids_in) {
        match found {
            Id::Order(o) => order = order.or_else(|| super::order_id(o)),
            Id::Processor(p) => {
                if !references.iter().any(|r| r.id == p) {
                    references.push(Reference {
                        kind: processor_ref_kind(p),
                        id: p.to_string(),
                    });
                }
            }
        }
    }
    if order.is_none() && references.is_empty() {
        return Err(
            "names no order (#1001) or refund id (re_...) in Memo, Line Memo or External ID".into(),
        );
    }
    let memo = CreditMemo {
        total: Money::new(credited, j.currency),
        tax: None,
        lines: vec![],
        shipping: None,
    };
    Ok((order, references, Body::CreditMemo(memo)))
}

/// What a Stripe id names, by its prefix (`Id::recognise` knows these).
fn processor_ref_kind(id: &str) -> RefKind {
    match id.split('_').next() {
        Some("re") => RefKind::Refund,
        Some("pi") => RefKind::PaymentIntent,
        Some("txn") => RefKind::BalanceTransaction,
        Some("po") => RefKind::Payout,
        _ => RefKind::Charge,
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

/// SuiteAnalytics tables other than the accounting lines: recognised, and
/// read as nothing on their own; `suiteanalytics::Reader` joins them to
/// the accounting lines.
pub struct Ignored;

impl RowReader for Ignored {
    fn row(&mut self, _row: &Row<'_>, _out: &mut Vec<Item>) {}
}
