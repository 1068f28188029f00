//! `tally audit`: seed 004's 30-minute diagnostic, offline. The storefront's,
//! the processor's and the ledger's exports are parsed, each record is put
//! under its order the way the service links them (an order id, or an id
//! another record of an order carries: a charge, a payment intent, an order
//! name), and every order is matched by the service's own rules
//! (`domain::matching::judge`, which `evaluate_as_of` runs for the
//! service): one implementation, not a copy.
//!
//! Memory and time: the files are parsed once, each on a thread; every
//! record is kept packed (`compact`, a few times smaller than the parsed
//! form) with the ids that link it, then the orders are matched in
//! chunks on every core, each order's records unpacked only while it is
//! matched.
//!
//! Time: the files are history, so each record counts as seen when it
//! happened, and lags (a refund's propagation) run to the audit's clock.
//! The service instead counts a backfilled record as seen on import, so a
//! refund gap found here is pending there until one lag after the import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{FileReader, Item, Options, RowError, Side, compact};
use crate::domain::matching::{ExceptionType, Finding, judge};
use crate::domain::money::Money;
use crate::domain::policy::MatchPolicy;
use crate::domain::record::Record;
use crate::domain::transaction::{Figures, StoredRecord};

#[path = "audit_link.rs"]
mod link;
use link::{Groups, Packed, link, pack_file};

/// Seed 004's four categories of ghost revenue, and what is none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    RefundPropagation,
    FeeAllocation,
    RoundingAndCurrency,
    DiscountMapping,
    /// A variance the evidence does not place in one of the four.
    Other,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::RefundPropagation,
        Category::FeeAllocation,
        Category::RoundingAndCurrency,
        Category::DiscountMapping,
        Category::Other,
    ];

    pub fn of(t: ExceptionType) -> Category {
        match t {
            ExceptionType::RefundNotPropagated => Category::RefundPropagation,
            ExceptionType::FeeUnallocated => Category::FeeAllocation,
            ExceptionType::RoundingVariance | ExceptionType::FxVariance => {
                Category::RoundingAndCurrency
            }
            ExceptionType::DiscountUnmapped => Category::DiscountMapping,
            _ => Category::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::RefundPropagation => "refund propagation",
            Category::FeeAllocation => "fee allocation",
            Category::RoundingAndCurrency => "rounding & currency",
            Category::DiscountMapping => "discount mapping",
            Category::Other => "other variance",
        }
    }
}

/// One exception: an order, the rule that found it, the money at risk.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionRow {
    pub order_id: String,
    pub category: Category,
    pub exception_type: ExceptionType,
    pub rule: String,
    pub subject: String,
    pub difference: Option<Money>,
    pub summary: String,
}

/// What one side's files held.
#[derive(Debug, Clone, Default)]
pub struct SideTotals {
    pub files: usize,
    pub records: u64,
    pub errors: u64,
    /// Headline amounts summed per currency code.
    pub amounts: BTreeMap<&'static str, Decimal>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sides: BTreeMap<Side, SideTotals>,
    pub orders: u64,
    /// Orders with storefront and processor records and no exception.
    pub matched: u64,
    pub in_exception: u64,
    pub storefront_only: u64,
    pub processor_only: u64,
    /// Orderless records (journals, balance transactions) that name no id
    /// any order carries.
    pub unlinked: BTreeMap<Side, u64>,
    pub exceptions: Vec<ExceptionRow>,
    /// The first errors (all are counted in `sides`).
    pub errors: Vec<RowError>,
    pub as_of: Option<DateTime<Utc>>,
    /// Seconds spent parsing, linking and matching.
    pub phases: Vec<(&'static str, f64)>,
}

/// Errors kept for the report; the rest are only counted.
const KEEP_ERRORS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct Input {
    pub files: Vec<(Side, PathBuf)>,
    pub options: Options,
}

/// How far an audit is, for a progress bar: bytes parsed, then the
/// orders matched of how many.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes parsed so far across every file.
    pub bytes: AtomicU64,
    /// Orders to match, known once the records are linked.
    pub orders: AtomicU64,
    /// Orders matched so far.
    pub matched: AtomicU64,
    stage: AtomicU8,
}

/// The audit's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Parse,
    Link,
    Match,
}

impl Progress {
    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Relaxed) {
            0 => Stage::Parse,
            1 => Stage::Link,
            _ => Stage::Match,
        }
    }

    fn enter(&self, s: Stage) {
        self.stage.store(s as u8, Ordering::Relaxed);
    }
}

/// What one pass over one file counted.
struct Counted {
    side: Side,
    totals: SideTotals,
    errors: Vec<RowError>,
}

impl Counted {
    fn new(side: Side) -> Counted {
        Counted {
            side,
            totals: SideTotals {
                files: 1,
                ..SideTotals::default()
            },
            errors: vec![],
        }
    }
}

/// Parses one file to the end, handing each record to `sink`.
fn parse_file(
    side: Side,
    path: &Path,
    opts: &Options,
    progress: &AtomicU64,
    sink: &mut dyn FnMut(Record),
) -> Counted {
    let mut c = Counted::new(side);
    let mut reader = match FileReader::open(path, opts) {
        Ok(r) => r,
        Err(e) => {
            c.totals.errors += 1;
            c.errors.push(e);
            return c;
        }
    };
    let mut seen = 0u64;
    while let Some(item) = reader.next() {
        match item {
            Item::Record(r) => {
                if let Some(m) = r.record.headline_amount() {
                    let e = c.totals.amounts.entry(m.currency.code()).or_default();
                    *e = e.checked_add(m.amount).unwrap_or(*e);
                }
                c.totals.records += 1;
                sink(r.record);
            }
            Item::Error(e) => {
                c.totals.errors += 1;
                if c.errors.len() < KEEP_ERRORS {
                    c.errors.push(e);
                }
            }
        }
        if c.totals.records.is_multiple_of(8192) {
            let pos = reader.position();
            progress.fetch_add(pos.saturating_sub(seen), Ordering::Relaxed);
            seen = pos;
        }
    }
    progress.fetch_add(reader.position().saturating_sub(seen), Ordering::Relaxed);
    c
}

/// Runs `per_file` over every file on a thread each, results in file order.
fn each_file<T: Send>(
    input: &Input,
    progress: &Progress,
    per_file: impl Fn(Side, &Path, &Progress) -> T + Sync,
) -> Vec<T> {
    std::thread::scope(|s| {
        let per_file = &per_file;
        let handles: Vec<_> = input
            .files
            .iter()
            .map(|(side, path)| s.spawn(move || per_file(*side, path, progress)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// Parses every file once (a thread each), links the records to their
/// orders, and matches every order by the service's rules.
pub fn run(input: &Input, as_of: DateTime<Utc>, progress: &Progress) -> Report {
    let mut report = Report {
        as_of: Some(as_of),
        ..Report::default()
    };
    let t = std::time::Instant::now();
    let packed = each_file(input, progress, |side, path, progress| {
        (side, pack_file(side, path, &input.options, progress))
    });
    report.phases.push(("parse", t.elapsed().as_secs_f64()));
    progress.enter(Stage::Link);
    let t = std::time::Instant::now();
    let mut files = vec![];
    for (side, mut p) in packed {
        let counted = std::mem::replace(&mut p.counted, Counted::new(side));
        count(&mut report, counted);
        files.push((side, p));
    }
    let groups = link(&mut files, &mut report);
    // What only linking needs goes before matching starts.
    for (_, f) in &mut files {
        f.refs = vec![];
        f.order_of = vec![];
        f.orders = vec![];
        f.pointers = vec![];
    }
    report.phases.push(("link", t.elapsed().as_secs_f64()));
    progress
        .orders
        .store(groups.order_ids.len() as u64, Ordering::Relaxed);
    progress.enter(Stage::Match);
    match_groups(&files, &groups, as_of, progress, &mut report);
    report
}

fn count(report: &mut Report, c: Counted) {
    let t = report.sides.entry(c.side).or_default();
    t.files += c.totals.files;
    t.records += c.totals.records;
    t.errors += c.totals.errors;
    for (cur, a) in c.totals.amounts {
        let e = t.amounts.entry(cur).or_default();
        *e = e.checked_add(a).unwrap_or(*e);
    }
    let room = KEEP_ERRORS.saturating_sub(report.errors.len());
    report.errors.extend(c.errors.into_iter().take(room));
}

/// Orders handed to a thread at a time: small enough to balance the
/// cores, large enough that taking one costs nothing.
const CHUNK: usize = 2048;

/// What one chunk of orders came to: its exception rows and its counts
/// (matched, in exception, storefront only, processor only, unreadable).
type Tally = (Vec<ExceptionRow>, [u64; 5]);

/// Matches every order (on every core, chunks taken in turn) and tallies
/// the outcome in order of the groups.
fn match_groups(
    files: &[(Side, Packed)],
    groups: &Groups,
    as_of: DateTime<Utc>,
    progress: &Progress,
    report: &mut Report,
) {
    let t = std::time::Instant::now();
    let policy = MatchPolicy::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = groups.order_ids.len();
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Tally)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (policy, next) = (&policy, &next);
                s.spawn(move || {
                    let mut out = vec![];
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        let from = c.saturating_mul(CHUNK);
                        if from >= n {
                            return out;
                        }
                        let to = n.min(from + CHUNK);
                        let tally = match_chunk(files, groups, from..to, policy, as_of);
                        progress
                            .matched
                            .fetch_add((to - from) as u64, Ordering::Relaxed);
                        out.push((c, tally));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    done.sort_by_key(|(c, _)| *c);
    report.orders += n as u64;
    for (_, (rows, c)) in done {
        report.exceptions.extend(rows);
        report.matched += c[0];
        report.in_exception += c[1];
        report.storefront_only += c[2];
        report.processor_only += c[3];
        if c[4] > 0 {
            // Never expected: `compact` reads back what it wrote.
            report.errors.push(RowError::file(
                "(audit)",
                format!("{} records could not be read back from memory", c[4]),
            ));
        }
    }
    report.phases.push(("match", t.elapsed().as_secs_f64()));
}

fn match_chunk(
    files: &[(Side, Packed)],
    groups: &Groups,
    range: std::ops::Range<usize>,
    policy: &MatchPolicy,
    as_of: DateTime<Utc>,
) -> Tally {
    let mut rows = vec![];
    let mut counts = [0u64; 5];
    let mut records: Vec<StoredRecord> = vec![];
    for g in range {
        records.clear();
        let members = groups
            .members
            .get(groups.start[g]..groups.start[g + 1])
            .unwrap_or_default();
        for (fi, i) in members {
            let f = &files[*fi as usize].1;
            let mut bytes = f.bytes.get(f.starts[*i as usize]..).unwrap_or_default();
            match compact::unpack(&mut bytes) {
                // The record counts as seen when it happened: the files are history.
                Some(r) => records.push(StoredRecord {
                    receive_time: r.event_time,
                    record: r,
                }),
                None => counts[4] += 1,
            }
        }
        let order_id = &groups.order_ids[g];
        // The service's rules (`evaluate_as_of` runs the same `judge`),
        // without the merged view the service stores and the audit never shows.
        let e = judge(
            policy,
            order_id,
            &records,
            &Figures::of(&records),
            Some(as_of),
        );
        let sides = groups.sides[g];
        let (sf, pr) = (sides & 1 != 0, sides & 2 != 0);
        if !e.findings.is_empty() {
            counts[1] += 1;
        } else if sf && pr {
            counts[0] += 1;
        }
        if sf && !pr {
            counts[2] += 1;
        }
        if pr && !sf {
            counts[3] += 1;
        }
        rows.extend(e.findings.into_iter().map(|f| row(order_id, f)));
    }
    (rows, counts)
}

fn row(order_id: &str, f: Finding) -> ExceptionRow {
    ExceptionRow {
        order_id: order_id.to_string(),
        category: Category::of(f.exception_type),
        exception_type: f.exception_type,
        rule: f.rule,
        subject: f.subject,
        difference: f.difference,
        summary: f.summary,
    }
}

impl Report {
    /// Count and money at risk per category, per currency.
    pub fn by_category(&self) -> BTreeMap<Category, (u64, BTreeMap<&'static str, Decimal>)> {
        let mut out: BTreeMap<Category, (u64, BTreeMap<&'static str, Decimal>)> = Category::ALL
            .into_iter()
            .map(|c| (c, (0, BTreeMap::new())))
            .collect();
        for e in &self.exceptions {
            let entry = out.entry(e.category).or_default();
            entry.0 += 1;
            if let Some(d) = e.difference {
                let sum = entry.1.entry(d.currency.code()).or_default();
                *sum = sum.checked_add(d.amount).unwrap_or(*sum);
            }
        }
        out
    }
}
