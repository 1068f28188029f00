//! NetSuite's SuiteAnalytics tables (as Fivetran syncs them,
//! `netsuite2_*_data.csv`, or under their plain names): the accounting
//! lines (`transactionaccountingline`) joined to their transaction
//! (`transaction`: type, date, currency, memo), line memo
//! (`transactionline`), account and currency, into the same records as the
//! GL CSV (`erp::record`): journals, and `CustCred` as credit memos.
//!
//! Memory: the accounting lines are streamed, a transaction's lines
//! following each other as Fivetran's tables are ordered (by transaction);
//! held whole are the transaction, account and currency tables and the
//! line memos that are not empty. The other tables of a folder read as
//! nothing (`erp::Ignored`): the accounting lines' file drives the join.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rust_decimal::Decimal;

use super::csv_read::{Headers, Row, Table};
use super::erp::{Head, TranType, record};
use super::{Item, Parsed, RowError, RowReader};
use crate::domain::currency::Currency;
use crate::domain::record::JournalLine;

/// The accounting lines' table, by its columns.
pub fn is_accounting_lines(h: &Headers) -> bool {
    h.has_all(&["transaction", "transactionline", "account"])
        && (h.has("accountingbook") || h.has("posting"))
}

/// A table's file beside the accounting lines: Fivetran's name or the
/// plain one.
fn sibling(dir: &Path, names: &[&str]) -> Option<std::path::PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

struct Tran {
    kind: TranType,
    /// What people read as its number, for its source id and ids.
    number: String,
    memo: String,
    when: chrono::DateTime<chrono::Utc>,
    currency: Option<String>,
    period: String,
    posting: bool,
}

/// The held tables, keyed by NetSuite's internal ids.
#[derive(Default)]
struct Tables {
    trans: HashMap<String, Tran>,
    line_memos: HashMap<(String, String), String>,
    accounts: HashMap<String, String>,
    currencies: HashMap<String, Currency>,
}

fn deleted(row: &Row<'_>) -> bool {
    row.get(&["_fivetran_deleted"])
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("t"))
}

/// A row Fivetran keeps as history (`_fivetran_active` false).
fn inactive(row: &Row<'_>) -> bool {
    row.get(&["_fivetran_active"])
        .is_some_and(|v| v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("f"))
}

fn flag(v: Option<&str>, default: bool) -> bool {
    v.map_or(default, |v| {
        matches!(v.to_ascii_lowercase().as_str(), "t" | "true" | "1")
    })
}

/// Every current row of a table (not Fivetran's history), each given to
/// `f`, which sees `_fivetran_deleted` itself; a row `f` refuses is an
/// error of the table's file, and the rows around it still read.
fn each(path: &Path, errors: &mut Vec<Item>, mut f: impl FnMut(&Row<'_>) -> Result<(), RowError>) {
    let mut t = match Table::open(path) {
        Ok(t) => t,
        Err(e) => return errors.push(Item::Error(e)),
    };
    while let Some(rec) = t.next_row() {
        match rec {
            Err(e) => errors.push(Item::Error(e)),
            Ok(rec) => {
                let row = t.row(&rec);
                if !inactive(&row)
                    && let Err(e) = f(&row)
                {
                    errors.push(Item::Error(e));
                }
                t.recycle(rec);
            }
        }
    }
}

impl Tables {
    fn load(dir: &Path, errors: &mut Vec<Item>) -> Tables {
        let mut t = Tables::default();
        if let Some(p) = sibling(dir, &["netsuite2_currency_data.csv", "currency.csv"]) {
            each(&p, errors, |r| {
                if deleted(r) {
                    return Ok(());
                }
                let id = r.req(&["id"])?;
                // A currency NetSuite names by a symbol ISO 4217 does not
                // know stays out: its transactions are refused, by name.
                if let Some(c) = r.get(&["symbol"]).and_then(Currency::parse_lenient) {
                    t.currencies.insert(id.into(), c);
                }
                Ok(())
            });
        }
        if let Some(p) = sibling(dir, &["netsuite2_account_data.csv", "account.csv"]) {
            each(&p, errors, |r| {
                if deleted(r) {
                    return Ok(());
                }
                let id = r.req(&["id"])?;
                let name = [
                    r.get(&["acctnumber"]),
                    r.get(&["fullname", "accountsearchdisplayname"]),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
                if !name.is_empty() {
                    t.accounts.insert(id.into(), name);
                }
                Ok(())
            });
        }
        if let Some(p) = sibling(dir, &["netsuite2_transaction_data.csv", "transaction.csv"]) {
            each(&p, errors, |r| {
                let id = r.req(&["id"])?;
                let tran = Tran {
                    kind: r.get(&["type"]).map_or(TranType::Journal, TranType::of),
                    number: r
                        .get(&["tranid", "transactionnumber", "externalid"])
                        .unwrap_or(id)
                        .into(),
                    memo: [r.get(&["memo"]), r.get(&["externalid"])]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" "),
                    when: r.time_req(&["trandate"])?,
                    currency: r.get(&["currency"]).map(str::to_string),
                    period: r.get(&["postingperiod"]).unwrap_or("").into(),
                    // A deleted transaction is kept as posting nothing, so
                    // its lines are skipped, not refused as unknown.
                    posting: flag(r.get(&["posting"]), true) && !deleted(r),
                };
                t.trans.insert(id.into(), tran);
                Ok(())
            });
        }
        if let Some(p) = sibling(
            dir,
            &["netsuite2_transaction_line_data.csv", "transactionline.csv"],
        ) {
            each(&p, errors, |r| {
                if deleted(r) {
                    return Ok(());
                }
                if let (Some(tran), Some(line), Some(memo)) =
                    (r.get(&["transaction"]), r.get(&["id"]), r.get(&["memo"]))
                {
                    t.line_memos.insert((tran.into(), line.into()), memo.into());
                }
                Ok(())
            });
        }
        t
    }
}

/// The transaction being assembled from its accounting lines.
struct Open {
    file: String,
    line: u64,
    tran: String,
    lines: Vec<JournalLine>,
    failed: bool,
}

/// Streams the accounting lines, a transaction at a time.
pub struct Reader {
    tables: Tables,
    /// The held tables' own errors, given out before the first line's.
    pending: Vec<Item>,
    open: Option<Open>,
    /// Transactions already given out: a line of one again means the
    /// table is not ordered by transaction.
    done: HashSet<String>,
}

impl Reader {
    /// The reader for the accounting lines in `dir`, with the other tables
    /// found there held.
    pub fn load(dir: &Path) -> Reader {
        let mut pending = vec![];
        let tables = Tables::load(dir, &mut pending);
        Reader {
            tables,
            pending,
            open: None,
            done: HashSet::new(),
        }
    }
}

/// A line's amount: debit or credit, else `amount` (positive a debit).
fn sides(row: &Row<'_>) -> Result<(Decimal, Decimal), RowError> {
    let num = |names: &'static [&'static str]| -> Result<Decimal, RowError> {
        match row.get(names) {
            None => Ok(Decimal::ZERO),
            Some(v) => v
                .parse::<Decimal>()
                .map_err(|_| row.err(names[0], format!("'{v}' is not a number"))),
        }
    };
    let (debit, credit) = (num(&["debit"])?, num(&["credit"])?);
    if !debit.is_zero() || !credit.is_zero() {
        return Ok((debit, credit));
    }
    let amount = num(&["amount"])?;
    Ok(if amount.is_sign_negative() {
        (Decimal::ZERO, -amount)
    } else {
        (amount, Decimal::ZERO)
    })
}

impl RowReader for Reader {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>) {
        out.append(&mut self.pending);
        if deleted(row) || !flag(row.get(&["posting"]), true) {
            return;
        }
        let tran = match row.req(&["transaction"]) {
            Ok(t) => t,
            Err(e) => return out.push(Item::Error(e)),
        };
        if self.open.as_ref().is_none_or(|o| o.tran != tran) {
            self.finish(out);
            if self.done.contains(tran) {
                return out.push(Item::Error(row.err(
                    "transaction",
                    format!(
                        "transaction {tran}'s lines are not together: sort the table by transaction"
                    ),
                )));
            }
            self.open = Some(Open {
                file: row.file.into(),
                line: row.line,
                tran: tran.into(),
                lines: vec![],
                failed: false,
            });
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let (debit, credit) = match sides(row) {
            Ok(s) => s,
            Err(e) => {
                open.failed = true;
                return out.push(Item::Error(e));
            }
        };
        // Nothing posted: the line carries no money.
        if debit.is_zero() && credit.is_zero() {
            return;
        }
        let account = row.get(&["account"]).unwrap_or("");
        let memo = row
            .get(&["transactionline"])
            .and_then(|l| {
                self.tables
                    .line_memos
                    .get(&(tran.to_string(), l.to_string()))
            })
            .cloned()
            .unwrap_or_default();
        let reference = super::ids_in(&memo).next().map(|id| match id {
            super::Id::Processor(p) => p.to_string(),
            super::Id::Order(o) => o.to_string(),
        });
        open.lines.push(JournalLine {
            account: self
                .tables
                .accounts
                .get(account)
                .cloned()
                .unwrap_or_else(|| account.to_string()),
            debit,
            credit,
            memo,
            name: String::new(),
            reference,
        });
    }

    fn finish(&mut self, out: &mut Vec<Item>) {
        out.append(&mut self.pending);
        let Some(o) = self.open.take() else {
            return;
        };
        self.done.insert(o.tran.clone());
        if o.failed || o.lines.is_empty() {
            return;
        }
        let at =
            |column: &str, why: String| Item::Error(RowError::at(&o.file, o.line, 0, column, why));
        let Some(t) = self.tables.trans.get(&o.tran) else {
            return out.push(at(
                "transaction",
                format!("transaction {} is not in the transaction table", o.tran),
            ));
        };
        if !t.posting {
            return;
        }
        let Some(currency) = t
            .currency
            .as_ref()
            .and_then(|c| self.tables.currencies.get(c))
        else {
            return out.push(at(
                "transaction",
                format!(
                    "transaction {}: its currency ({}) is not in the currency table",
                    o.tran,
                    t.currency.as_deref().unwrap_or("none")
                ),
            ));
        };
        let head = Head {
            currency: *currency,
            exchange_rate: None,
            posting_period: t.period.clone(),
            subsidiary: String::new(),
            memo: format!("{} {}", t.memo, t.number).trim().to_string(),
            when: t.when,
        };
        let mut lines = o.lines;
        // A line's reference falls back to the transaction's memo, as a GL
        // line's does to its journal's.
        let fallback = super::ids_in(&head.memo).next().map(|id| match id {
            super::Id::Processor(p) => p.to_string(),
            super::Id::Order(o) => o.to_string(),
        });
        for l in &mut lines {
            if l.reference.is_none() {
                l.reference.clone_from(&fallback);
            }
        }
        match record(t.kind, t.number.clone(), head, lines) {
            Ok(record) => out.push(Item::Record(Parsed {
                line: o.line,
                record,
            })),
            Err((column, why)) => out.push(at(column, format!("transaction {}: {why}", o.tran))),
        }
    }
}
