//! `tally audit`: seed 004's 30-minute diagnostic, offline. The storefront's,
//! the processor's and the ledger's exports are parsed, each record is put
//! under its order the way the service links them (an order id, or an id
//! another record of an order carries: a charge, a payment intent, an order
//! name), and every order is matched by the service's own rules
//! (`domain::matching::evaluate_as_of`): one implementation, not a copy.
//!
//! Time: the files are history, so each record counts as seen when it
//! happened, and lags (a refund's propagation) run to the audit's clock.
//! The service instead counts a backfilled record as seen on import, so a
//! refund gap found here is pending there until one lag after the import.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{FileReader, Item, Options, RowError, Side};
use crate::domain::matching::{ExceptionType, Finding, evaluate_as_of};
use crate::domain::money::Money;
use crate::domain::policy::MatchPolicy;
use crate::domain::record::Record;
use crate::domain::transaction::StoredRecord;

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
    /// Seconds spent parsing, grouping and matching, pass by pass.
    pub phases: Vec<(&'static str, f64)>,
    /// Partitions of orders matched one after the other (memory bound).
    pub partitions: usize,
}

/// Errors kept for the report; the rest are only counted.
const KEEP_ERRORS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct Input {
    pub files: Vec<(Side, PathBuf)>,
    pub options: Options,
    /// Match in this many partitions of orders (None: by input size).
    pub partitions: Option<usize>,
}

/// Bytes parsed so far across every file: a progress bar reads it.
pub type Progress = Arc<AtomicU64>;

/// What one pass over one file counted.
struct Counted {
    side: Side,
    totals: SideTotals,
    errors: Vec<RowError>,
}

/// Parses one file to the end, handing each record to `sink`.
fn parse_file(
    side: Side,
    path: &std::path::Path,
    opts: &Options,
    progress: &Progress,
    sink: &mut dyn FnMut(Record),
) -> Counted {
    let mut c = Counted {
        side,
        totals: SideTotals {
            files: 1,
            ..SideTotals::default()
        },
        errors: vec![],
    };
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
        if c.totals.records % 8192 == 0 {
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
    per_file: impl Fn(Side, &std::path::Path, &Progress) -> T + Sync,
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

fn id_hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// What ties records to orders, as the service's links do: each order's
/// number, and the order of every id an order's records carry.
#[derive(Default)]
struct Links {
    index: HashMap<String, u32>,
    orders: Vec<String>,
    by_ref: HashMap<u64, u32>,
}

impl Links {
    fn add(&mut self, order: &str, ref_hashes: impl IntoIterator<Item = u64>) {
        let g = match self.index.get(order) {
            Some(g) => *g,
            None => {
                let g = self.orders.len() as u32;
                self.index.insert(order.to_string(), g);
                self.orders.push(order.to_string());
                g
            }
        };
        for h in ref_hashes {
            self.by_ref.entry(h).or_insert(g);
        }
    }

    /// The orders a record belongs to: its own, or, for a record of no
    /// order, every order whose records carry an id it points at.
    fn owners(&self, r: &Record) -> Vec<u32> {
        if let Some(o) = &r.order_id {
            return self.index.get(o).copied().into_iter().collect();
        }
        let mut owners: Vec<u32> = r
            .pointer_ids()
            .iter()
            .filter_map(|id| self.by_ref.get(&id_hash(id)).copied())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        owners
    }
}

fn ref_hashes(r: &Record) -> Vec<u64> {
    r.order_ref_ids().iter().map(|id| id_hash(id)).collect()
}

/// Bytes of input per partition: records take about twelve times their
/// CSV bytes in memory, so this keeps a pass near 600 MiB.
const BYTES_PER_PARTITION: u64 = 50 << 20;

/// Parses every file and matches every order. Inputs too large to hold at
/// once are matched in partitions of orders: a first pass learns which
/// order each id belongs to, then each pass keeps one partition's records.
pub fn run(input: &Input, as_of: DateTime<Utc>, progress: &Progress) -> Report {
    let bytes: u64 = input
        .files
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok().map(|m| m.len()))
        .sum();
    let k = input
        .partitions
        .unwrap_or_else(|| bytes.div_ceil(BYTES_PER_PARTITION) as usize)
        .max(1);
    let mut report = Report {
        as_of: Some(as_of),
        partitions: k,
        ..Report::default()
    };
    let started = std::time::Instant::now();
    if k == 1 {
        let parsed = each_file(input, progress, |side, path, progress| {
            let mut records = vec![];
            let c = parse_file(side, path, &input.options, progress, &mut |r| {
                records.push(r)
            });
            (c, records)
        });
        let mut links = Links::default();
        let mut all = vec![];
        for (c, records) in parsed {
            for r in &records {
                if let Some(o) = &r.order_id {
                    links.add(o, ref_hashes(r));
                }
            }
            all.push((c.side, records));
            count(&mut report, c);
        }
        report
            .phases
            .push(("parse", started.elapsed().as_secs_f64()));
        // Moved file by file into their orders, never all copied at once.
        let kept = all
            .into_iter()
            .flat_map(|(side, records)| records.into_iter().map(move |r| (side, r)))
            .map(|(side, r)| (side, links.owners(&r), r));
        let groups = group(&links, kept, 1, 0, &mut report);
        match_groups(groups, as_of, &mut report);
        return report;
    }
    // The link pass: order ids and the ids their records carry, nothing kept.
    let learned = each_file(input, progress, |side, path, progress| {
        let mut seen: Vec<(String, Vec<u64>)> = vec![];
        let c = parse_file(side, path, &input.options, progress, &mut |r| {
            if let Some(o) = &r.order_id {
                seen.push((o.clone(), ref_hashes(&r)));
            }
        });
        (c, seen)
    });
    let mut links = Links::default();
    for (c, seen) in learned {
        for (o, hashes) in seen {
            links.add(&o, hashes);
        }
        count(&mut report, c);
    }
    report
        .phases
        .push(("link pass", started.elapsed().as_secs_f64()));
    for p in 0..k {
        let t = std::time::Instant::now();
        let links = &links;
        let kept = each_file(input, progress, |side, path, progress| {
            let mut kept = vec![];
            parse_file(side, path, &input.options, progress, &mut |r| {
                let owners = links.owners(&r);
                if owners.is_empty() && p == 0 || owners.iter().any(|g| *g as usize % k == p) {
                    kept.push((side, owners, r));
                }
            });
            kept
        });
        report
            .phases
            .push(("partition parse", t.elapsed().as_secs_f64()));
        let groups = group(links, kept.into_iter().flatten(), k, p, &mut report);
        match_groups(groups, as_of, &mut report);
    }
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

/// One order's records and which sides spoke about it.
struct Group {
    order_id: String,
    records: Vec<StoredRecord>,
    sides: u8,
}

fn side_bit(s: Side) -> u8 {
    match s {
        Side::Storefront => 1,
        Side::Processor => 2,
        Side::Ledger => 4,
    }
}

/// Puts partition `p`'s records under their orders (of `k` partitions).
fn group(
    links: &Links,
    kept: impl IntoIterator<Item = (Side, Vec<u32>, Record)>,
    k: usize,
    p: usize,
    report: &mut Report,
) -> Vec<Group> {
    let t = std::time::Instant::now();
    // Order g of this partition is group g / k: partitions take every k-th.
    let mut groups: Vec<Group> = links
        .orders
        .iter()
        .skip(p)
        .step_by(k)
        .map(|o| Group {
            order_id: o.clone(),
            records: vec![],
            sides: 0,
        })
        .collect();
    for (side, owners, r) in kept {
        let mine: Vec<usize> = owners
            .iter()
            .filter(|g| **g as usize % k == p)
            .map(|g| *g as usize / k)
            .collect();
        if owners.is_empty() {
            *report.unlinked.entry(side).or_default() += 1;
            continue;
        }
        // The record counts as seen when it happened: the files are history.
        let stored = |r: Record| StoredRecord {
            receive_time: r.event_time,
            record: r,
        };
        let Some((last, rest)) = mine.split_last() else {
            continue;
        };
        for g in rest {
            push(&mut groups, *g, side, stored(r.clone()));
        }
        push(&mut groups, *last, side, stored(r));
    }
    report.phases.push(("group", t.elapsed().as_secs_f64()));
    groups
}

fn push(groups: &mut [Group], g: usize, side: Side, r: StoredRecord) {
    if let Some(group) = groups.get_mut(g) {
        group.sides |= side_bit(side);
        group.records.push(r);
    }
}

/// Matches every order (on every core) and tallies the outcome.
fn match_groups(groups: Vec<Group>, as_of: DateTime<Utc>, report: &mut Report) {
    let t = std::time::Instant::now();
    let policy = MatchPolicy::default();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunk = groups.len().div_ceil(threads).max(1);
    let results: Vec<(Vec<ExceptionRow>, [u64; 4])> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .chunks(chunk)
            .map(|part| {
                let policy = &policy;
                s.spawn(move || {
                    let mut rows = vec![];
                    // matched, in exception, storefront only, processor only
                    let mut counts = [0u64; 4];
                    for g in part {
                        let e = evaluate_as_of(policy, &g.order_id, &g.records, Some(as_of));
                        let (sf, pr) = (g.sides & 1 != 0, g.sides & 2 != 0);
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
                        rows.extend(e.findings.into_iter().map(|f| row(&g.order_id, f)));
                    }
                    (rows, counts)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    report.orders += groups.len() as u64;
    for (rows, c) in results {
        report.exceptions.extend(rows);
        report.matched += c[0];
        report.in_exception += c[1];
        report.storefront_only += c[2];
        report.processor_only += c[3];
    }
    report.phases.push(("match", t.elapsed().as_secs_f64()));
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
