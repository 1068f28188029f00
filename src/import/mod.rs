//! Importers for the exports finance already has (issue 21): Stripe's
//! balance reports and API objects, Shopify's payments, payouts and orders
//! exports and Admin API bodies, and an ERP's journal lines. Each file's
//! format is recognised from its header row (columns by name, never by
//! position) or named; each row becomes Tally records or an error that says
//! file:line:column, the column and why, and never stops the rows around it.
//!
//! `audit` runs seed 004's three-way match offline over parsed files with
//! the service's own matching rules.

mod amount;
pub mod audit;
pub mod audit_report;
#[cfg(test)]
mod audit_tests;
pub mod compact;
mod compact_wire;
pub mod csv_read;
pub mod erp;
#[cfg(test)]
mod erp_tests;
#[cfg(test)]
mod format_tests;
pub mod generate;
mod json;
#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod parse_props;
pub mod shopify;
pub mod stripe;
pub mod suiteanalytics;
#[cfg(test)]
mod suiteanalytics_tests;
pub mod to_proto;

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::domain::record::Record;
use csv_read::{Row, Table};

/// Why a row, or a whole file, could not be read. `line` 0: the file as a
/// whole (or a JSON element, named in `column_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: u64,
    /// 1-based field number within the row; 0 when no one field is at fault.
    pub column: usize,
    pub column_name: String,
    pub why: String,
}

impl RowError {
    pub fn at(file: &str, line: u64, column: usize, name: &str, why: impl Into<String>) -> Self {
        RowError {
            file: file.to_string(),
            line,
            column,
            column_name: name.to_string(),
            why: why.into(),
        }
    }

    pub fn file(file: &str, why: impl Into<String>) -> Self {
        RowError::at(file, 0, 0, "", why)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.column_name.is_empty() {
            write!(f, ": column '{}'", self.column_name)?;
        }
        write!(f, ": {}", self.why)
    }
}

impl std::error::Error for RowError {}

/// One record and the line it came from (its first line when several rows
/// make it).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub line: u64,
    pub record: Record,
}

// Items pass one at a time from reader to consumer, never stored in bulk:
// boxing the record would cost an allocation per row for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(Parsed),
    Error(RowError),
}

/// Which of seed 004's three systems a file speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Storefront,
    Processor,
    Ledger,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Storefront => "storefront",
            Side::Processor => "processor",
            Side::Ledger => "ledger",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// balance_change_from_activity.itemized (v3), payout_reconciliation
    /// .itemized (v5), and the Dashboard's default balance download.
    StripeItemized,
    /// The older "balance history" export (id, Type, Source, Amount, ...).
    StripeBalanceHistory,
    StripeJson,
    ShopifyPayments,
    ShopifyPayouts,
    ShopifyOrders,
    ShopifyJson,
    /// NetSuite's journal-import columns (or any ERP's through a mapping).
    NetsuiteJournal,
    /// SuiteAnalytics tables: the accounting lines joined to the
    /// transaction, line, account and currency tables beside them.
    NetsuiteSuiteAnalytics,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::StripeItemized,
        Format::StripeBalanceHistory,
        Format::StripeJson,
        Format::ShopifyPayments,
        Format::ShopifyPayouts,
        Format::ShopifyOrders,
        Format::ShopifyJson,
        Format::NetsuiteJournal,
        Format::NetsuiteSuiteAnalytics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::StripeItemized => "stripe-itemized",
            Format::StripeBalanceHistory => "stripe-balance-history",
            Format::StripeJson => "stripe-json",
            Format::ShopifyPayments => "shopify-payments",
            Format::ShopifyPayouts => "shopify-payouts",
            Format::ShopifyOrders => "shopify-orders",
            Format::ShopifyJson => "shopify-json",
            Format::NetsuiteJournal => "netsuite-journal",
            Format::NetsuiteSuiteAnalytics => "netsuite-suiteanalytics",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn side(self) -> Side {
        match self {
            Format::StripeItemized | Format::StripeBalanceHistory | Format::StripeJson => {
                Side::Processor
            }
            Format::ShopifyPayments
            | Format::ShopifyPayouts
            | Format::ShopifyOrders
            | Format::ShopifyJson => Side::Storefront,
            Format::NetsuiteJournal | Format::NetsuiteSuiteAnalytics => Side::Ledger,
        }
    }

    /// The format whose required columns the header row has.
    pub fn detect(h: &csv_read::Headers) -> Option<Format> {
        if h.has_all(&["balance_transaction_id", "reporting_category"]) {
            Some(Format::StripeItemized)
        } else if h.has_all(&["id", "type", "amount", "fee", "net", "currency"])
            && (h.has("created (utc)") || h.has("created"))
        {
            Some(Format::StripeBalanceHistory)
        } else if h.has_all(&["transaction date", "type", "order", "amount", "net"]) {
            Some(Format::ShopifyPayments)
        } else if h.has_all(&["payout date", "status", "total", "currency"]) {
            Some(Format::ShopifyPayouts)
        } else if h.has_all(&["name", "financial status", "total"]) {
            Some(Format::ShopifyOrders)
        } else if h.has_all(&["account", "debit", "credit"])
            && (h.has("date") || h.has("posting period"))
        {
            Some(Format::NetsuiteJournal)
        } else if h.has("transaction")
            && (h.has("transactionline")
                || h.has("linesequencenumber")
                || h.has("accountingbook")
                || h.has("mainline"))
            || h.has_all(&["type", "trandate"])
            || h.has_all(&["acctnumber", "accttype"])
            || h.has_all(&["symbol", "currencyprecision"])
            || h.has("_fivetran_synced")
        {
            Some(Format::NetsuiteSuiteAnalytics)
        } else {
            None
        }
    }
}

/// Turns a CSV format's rows into records; rows that only make sense
/// together (an order's line items, a journal's lines) are held until the
/// group ends.
pub trait RowReader: Send {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>);
    fn finish(&mut self, _out: &mut Vec<Item>) {}
}

/// Options that change how files are read.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Read every file as this format instead of detecting it.
    pub format: Option<Format>,
    /// An ERP column mapping (`erp::Mapping`) for ledger CSVs.
    pub mapping: Option<erp::Mapping>,
}

/// A file being read: its records and errors, in file order.
pub struct FileReader {
    pub format: Format,
    table: Option<Table>,
    parser: Option<Box<dyn RowReader>>,
    queue: VecDeque<Item>,
    buf: Vec<Item>,
    finished: bool,
    /// A JSON file's items, parsed on a thread as they are taken.
    json: Option<std::sync::mpsc::Receiver<Item>>,
}

impl FileReader {
    pub fn open(path: &Path, opts: &Options) -> Result<FileReader, RowError> {
        let name = path.display().to_string();
        let reader =
            csv_read::open(path).map_err(|e| RowError::file(&name, format!("cannot open: {e}")))?;
        let mut r = FileReader::from_reader(name, reader, opts)?;
        // SuiteAnalytics' accounting lines are joined to the tables beside
        // them; read alone (no path), they are recognised and read as
        // nothing, like the other tables.
        let lines = r
            .table
            .as_ref()
            .is_some_and(|t| suiteanalytics::is_accounting_lines(&t.headers));
        if r.format == Format::NetsuiteSuiteAnalytics && lines {
            let dir = path.parent().unwrap_or(Path::new("."));
            r.parser = Some(Box::new(suiteanalytics::Reader::load(dir)));
        }
        Ok(r)
    }

    pub fn from_reader(
        name: String,
        reader: Box<dyn Read + Send>,
        opts: &Options,
    ) -> Result<FileReader, RowError> {
        let mut reader = std::io::BufReader::new(reader);
        let first = peek_non_space(&mut reader)
            .map_err(|e| RowError::file(&name, format!("cannot read: {e}")))?;
        let is_json = matches!(first, Some(b'{') | Some(b'['))
            || matches!(opts.format, Some(Format::StripeJson | Format::ShopifyJson));
        if is_json {
            let (format, items) = json::read(&name, reader, opts.format)?;
            return Ok(FileReader {
                format,
                table: None,
                parser: None,
                queue: VecDeque::new(),
                buf: vec![],
                finished: true,
                json: Some(items),
            });
        }
        let mut table = Table::from_reader(name.clone(), Box::new(reader))?;
        if let Some(m) = &opts.mapping {
            table.headers = m.rename(&table.headers);
        }
        let format = match opts.format {
            Some(f) => f,
            None => Format::detect(&table.headers).ok_or_else(|| {
                // A few names, each cut short: a file that is no CSV at all
                // has one enormous "column".
                let shown: Vec<String> = table
                    .headers
                    .names
                    .iter()
                    .take(12)
                    .map(|n| n.chars().take(40).collect())
                    .collect();
                let more = if table.headers.names.len() > 12 { ", ..." } else { "" };
                RowError::at(
                    &name,
                    1,
                    0,
                    "",
                    format!(
                        "no known export has these columns ({}{more}); name the format with --format",
                        shown.join(", ")
                    ),
                )
            })?,
        };
        let parser: Box<dyn RowReader> = match format {
            Format::StripeItemized | Format::StripeBalanceHistory => Box::new(stripe::CsvReader),
            Format::ShopifyPayments => Box::new(shopify::PaymentsReader),
            Format::ShopifyPayouts => Box::new(shopify::PayoutsReader),
            Format::ShopifyOrders => Box::new(shopify::OrdersReader::default()),
            Format::NetsuiteJournal => Box::new(erp::JournalReader::with_currency(
                opts.mapping
                    .as_ref()
                    .and_then(|m| m.currency.as_deref())
                    .and_then(crate::domain::currency::Currency::parse_lenient),
            )),
            Format::NetsuiteSuiteAnalytics => Box::new(erp::Ignored),
            Format::StripeJson | Format::ShopifyJson => {
                return Err(RowError::file(
                    &name,
                    "a JSON format was named for a CSV file",
                ));
            }
        };
        Ok(FileReader {
            format,
            table: Some(table),
            parser: Some(parser),
            queue: VecDeque::new(),
            buf: vec![],
            finished: false,
            json: None,
        })
    }

    /// Bytes of the (decoded) file read so far.
    pub fn position(&self) -> u64 {
        self.table.as_ref().map_or(0, Table::position)
    }
}

fn peek_non_space(r: &mut impl std::io::BufRead) -> std::io::Result<Option<u8>> {
    let buf = r.fill_buf()?;
    Ok(buf.iter().copied().find(|b| !b.is_ascii_whitespace()))
}

impl Iterator for FileReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(items) = &self.json {
            return items.recv().ok();
        }
        loop {
            if let Some(i) = self.queue.pop_front() {
                return Some(i);
            }
            if self.finished {
                return None;
            }
            let (Some(table), Some(parser)) = (self.table.as_mut(), self.parser.as_mut()) else {
                return None;
            };
            match table.next_row() {
                None => {
                    parser.finish(&mut self.buf);
                    self.finished = true;
                }
                Some(Err(e)) => self.buf.push(Item::Error(e)),
                Some(Ok(rec)) => {
                    parser.row(&table.row(&rec), &mut self.buf);
                    table.recycle(rec);
                }
            }
            self.queue.extend(self.buf.drain(..));
        }
    }
}

/// An order name as the storefront prints it ("#1001") as Tally's order id
/// ("1001"): order ids are [A-Za-z0-9._~-].
pub fn order_id(name: &str) -> Option<String> {
    let id: String = name
        .trim()
        .trim_start_matches('#')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
        .collect();
    (!id.is_empty() && id.len() <= 128).then_some(id)
}

/// The processor or storefront ids a free-text field carries, recognised by
/// their shape: Stripe's `ch_`, `py_`, `pi_`, `txn_`, `po_`, `re_` ids and
/// order names like `#1001`.
pub fn ids_in(text: &str) -> impl Iterator<Item = Id<'_>> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#'))
        .filter_map(Id::recognise)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id<'a> {
    /// A Stripe object id (its prefix says which).
    Processor(&'a str),
    /// An order name, without its '#'.
    Order(&'a str),
}

impl<'a> Id<'a> {
    pub fn recognise(word: &'a str) -> Option<Id<'a>> {
        const PREFIXES: [&str; 6] = ["ch_", "py_", "pi_", "txn_", "po_", "re_"];
        if let Some(n) = word.strip_prefix('#') {
            return (!n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()))
                .then_some(Id::Order(n));
        }
        PREFIXES
            .iter()
            .any(|p| word.len() > p.len() + 3 && word.starts_with(p))
            .then_some(Id::Processor(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_by_shape() {
        let got: Vec<Id<'_>> = ids_in("Stripe ch_3Abc123 for order #1001 (po_1XyZab)").collect();
        assert_eq!(
            got,
            vec![
                Id::Processor("ch_3Abc123"),
                Id::Order("1001"),
                Id::Processor("po_1XyZab")
            ]
        );
        assert!(ids_in("check re_ ch_ pie_123456 #").next().is_none());
        assert_eq!(order_id("#1001"), Some("1001".into()));
        assert_eq!(order_id("  "), None);
    }

    #[test]
    fn errors_say_where() {
        let e = RowError::at("a.csv", 3, 2, "Amount", "'x' is not an amount");
        assert_eq!(
            e.to_string(),
            "a.csv:3:2: column 'Amount': 'x' is not an amount"
        );
        assert_eq!(RowError::file("a.csv", "empty").to_string(), "a.csv: empty");
    }
}
