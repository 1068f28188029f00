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
    /// Seconds spent parsing, grouping and matching.
    pub phases: Vec<(&'static str, f64)>,
}

/// Errors kept for the report; the rest are only counted.
const KEEP_ERRORS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct Input {
    pub files: Vec<(Side, PathBuf)>,
    pub options: Options,
}

/// Bytes parsed so far across every file: a progress bar reads it.
pub type Progress = Arc<AtomicU64>;

struct Parsed {
    side: Side,
    records: Vec<Record>,
    totals: SideTotals,
    errors: Vec<RowError>,
}

/// Parses one file to the end, counting as it goes.
fn parse_file(side: Side, path: &std::path::Path, opts: &Options, progress: &Progress) -> Parsed {
    let mut p = Parsed {
        side,
        records: vec![],
        totals: SideTotals {
            files: 1,
            ..SideTotals::default()
        },
        errors: vec![],
    };
    let mut reader = match FileReader::open(path, opts) {
        Ok(r) => r,
        Err(e) => {
            p.totals.errors += 1;
            p.errors.push(e);
            return p;
        }
    };
    let mut seen = 0u64;
    while let Some(item) = reader.next() {
        match item {
            Item::Record(r) => {
                if let Some(m) = r.record.headline_amount() {
                    let e = p.totals.amounts.entry(m.currency.code()).or_default();
                    *e = e.checked_add(m.amount).unwrap_or(*e);
                }
                p.totals.records += 1;
                p.records.push(r.record);
            }
            Item::Error(e) => {
                p.totals.errors += 1;
                if p.errors.len() < KEEP_ERRORS {
                    p.errors.push(e);
                }
            }
        }
        if p.totals.records % 8192 == 0 {
            let pos = reader.position();
            progress.fetch_add(pos.saturating_sub(seen), Ordering::Relaxed);
            seen = pos;
        }
    }
    progress.fetch_add(reader.position().saturating_sub(seen), Ordering::Relaxed);
    p
}

fn id_hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Parses every file (one thread each) and matches every order.
pub fn run(input: &Input, as_of: DateTime<Utc>, progress: &Progress) -> Report {
    let started = std::time::Instant::now();
    let parsed: Vec<Parsed> = std::thread::scope(|s| {
        let handles: Vec<_> = input
            .files
            .iter()
            .map(|(side, path)| s.spawn(move || parse_file(*side, path, &input.options, progress)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut report = Report {
        as_of: Some(as_of),
        ..Report::default()
    };
    let mut all: Vec<(Side, Record)> = vec![];
    for p in parsed {
        let t = report.sides.entry(p.side).or_default();
        t.files += p.totals.files;
        t.records += p.totals.records;
        t.errors += p.totals.errors;
        for (c, a) in p.totals.amounts {
            let e = t.amounts.entry(c).or_default();
            *e = e.checked_add(a).unwrap_or(*e);
        }
        let room = KEEP_ERRORS.saturating_sub(report.errors.len());
        report.errors.extend(p.errors.into_iter().take(room));
        all.extend(p.records.into_iter().map(|r| (p.side, r)));
    }
    report
        .phases
        .push(("parse", started.elapsed().as_secs_f64()));
    let t = std::time::Instant::now();
    let groups = group(all, &mut report);
    report.phases.push(("group", t.elapsed().as_secs_f64()));
    let t = std::time::Instant::now();
    evaluate_all(groups, as_of, &mut report);
    report.phases.push(("match", t.elapsed().as_secs_f64()));
    report
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

/// Puts each record under its order: by its order id, or, for a record of
/// no order, under every order whose records carry an id it points at
/// (`Record::pointer_ids`, as the service's links do).
fn group(all: Vec<(Side, Record)>, report: &mut Report) -> Vec<Group> {
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut groups: Vec<Group> = vec![];
    let mut by_ref: HashMap<u64, u32> = HashMap::new();
    for (_, r) in &all {
        let Some(o) = &r.order_id else { continue };
        let next = groups.len() as u32;
        let g = *index.entry(o.clone()).or_insert_with(|| {
            groups.push(Group {
                order_id: o.clone(),
                records: vec![],
                sides: 0,
            });
            next
        });
        for id in r.order_ref_ids() {
            by_ref.entry(id_hash(&id)).or_insert(g);
        }
    }
    for (side, r) in all {
        // The record counts as seen when it happened: the files are history.
        let stored = |r: Record| StoredRecord {
            receive_time: r.event_time,
            record: r,
        };
        if let Some(o) = &r.order_id {
            if let Some(g) = index.get(o).copied() {
                push(&mut groups, g, side, stored(r));
            }
            continue;
        }
        let mut owners: Vec<u32> = r
            .pointer_ids()
            .iter()
            .filter_map(|id| by_ref.get(&id_hash(id)).copied())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        match owners.split_last() {
            None => *report.unlinked.entry(side).or_default() += 1,
            Some((last, rest)) => {
                for g in rest {
                    push(&mut groups, *g, side, stored(r.clone()));
                }
                push(&mut groups, *last, side, stored(r));
            }
        }
    }
    groups
}

fn push(groups: &mut [Group], g: u32, side: Side, r: StoredRecord) {
    if let Some(group) = groups.get_mut(g as usize) {
        group.sides |= side_bit(side);
        group.records.push(r);
    }
}

/// Matches every order (on every core) and tallies the outcome.
fn evaluate_all(groups: Vec<Group>, as_of: DateTime<Utc>, report: &mut Report) {
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
    report.orders = groups.len() as u64;
    for (rows, c) in results {
        report.exceptions.extend(rows);
        report.matched += c[0];
        report.in_exception += c[1];
        report.storefront_only += c[2];
        report.processor_only += c[3];
    }
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
