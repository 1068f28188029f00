//! The audit on a generated month: every planted variance found, nothing
//! else, and the summary's counts.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::audit::{Category, ExceptionRow, Input, Report, run};
use super::generate::{Planted, month};
use super::{FileReader, Item, Side};
use crate::domain::matching::evaluate_as_of;
use crate::domain::policy::MatchPolicy;
use crate::domain::record::Record;
use crate::domain::transaction::StoredRecord;

pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tally-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_planted_variance_is_found_and_nothing_else() {
    let dir = scratch("audit");
    let m = month(&dir, 2_000).unwrap();
    assert!(m.planted.len() >= 5 * 20, "{}", m.planted.len());
    let input = Input {
        files: vec![
            (Side::Storefront, m.storefront.clone()),
            (Side::Processor, m.processor.clone()),
            (Side::Ledger, m.ledger.clone()),
        ],
        options: Default::default(),
    };
    let as_of = chrono::Utc::now();
    let report = run(&input, as_of, &Default::default());
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(3)]
    );
    let mut found: Vec<Planted> = report
        .exceptions
        .iter()
        .map(|e| Planted {
            order_id: e.order_id.clone(),
            rule: Box::leak(e.rule.clone().into_boxed_str()),
            subject: e.subject.clone(),
        })
        .collect();
    found.sort();
    let missing: Vec<_> = m.planted.iter().filter(|p| !found.contains(p)).collect();
    let extra: Vec<_> = found.iter().filter(|p| !m.planted.contains(p)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {:?}",
        &extra[..extra.len().min(5)]
    );

    assert_eq!(report.storefront_only, m.storefront_only);
    assert_eq!(report.processor_only, m.processor_only);
    assert_eq!(report.in_exception as usize, m.planted.len());
    assert_eq!(report.unlinked.values().sum::<u64>(), 0);
    let cats = report.by_category();
    assert_eq!(
        cats[&Category::FeeAllocation].0 as usize,
        m.planted
            .iter()
            .filter(|p| p.rule == "fee_unallocated")
            .count()
    );
    assert!(cats[&Category::RefundPropagation].0 > 0 && cats[&Category::RoundingAndCurrency].0 > 0);
    let sf = &report.sides[&Side::Storefront];
    let refunds = m
        .planted
        .iter()
        .filter(|p| p.rule.starts_with("refund_"))
        .count() as u64;
    assert_eq!(
        sf.records,
        2_000 - m.processor_only + refunds,
        "orders plus their refunds"
    );

    // The packed, linked, chunked path says what the straightforward one
    // says, row for row and count for count.
    assert_eq!(Outcome::of(&report), straightforward(&input, as_of));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_three_renderings() {
    let dir = scratch("render");
    let m = month(&dir, 300).unwrap();
    let input = Input {
        files: vec![
            (Side::Storefront, m.storefront.clone()),
            (Side::Processor, m.processor.clone()),
            (Side::Ledger, m.ledger.clone()),
        ],
        options: Default::default(),
    };
    let report = run(&input, chrono::Utc::now(), &Default::default());
    let table = super::audit_report::table(&report);
    for want in [
        "storefront",
        "processor only",
        "fee allocation",
        "refund propagation",
        "rounding & currency",
        "discount mapping",
    ] {
        assert!(table.contains(want), "{want}: {table}");
    }
    let mut csv = vec![];
    super::audit_report::write_csv(&report, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), report.exceptions.len() + 1);
    assert!(csv.starts_with(
        "order_id,category,exception_type,rule,subject,difference,currency,summary\n"
    ));
    // Every row has eight fields (summaries with commas are quoted).
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert!(r.records().all(|row| row.unwrap().len() == 8));

    let html = super::audit_report::html(&report);
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg"));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    assert_eq!(html.matches("<rect").count(), Category::ALL.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// What an audit concluded, in the report's order.
#[derive(Debug, PartialEq)]
struct Outcome {
    rows: Vec<ExceptionRow>,
    /// orders, matched, in exception, storefront only, processor only.
    counts: [u64; 5],
    unlinked: BTreeMap<Side, u64>,
    records: BTreeMap<Side, u64>,
}

impl Outcome {
    fn of(r: &Report) -> Outcome {
        Outcome {
            rows: r.exceptions.clone(),
            counts: [
                r.orders,
                r.matched,
                r.in_exception,
                r.storefront_only,
                r.processor_only,
            ],
            unlinked: r.unlinked.clone(),
            records: r.sides.iter().map(|(s, t)| (*s, t.records)).collect(),
        }
    }
}

/// The audit done the plain way: every record parsed and kept whole,
/// linked by exact ids (no hashes), each order matched one after another.
fn straightforward(input: &Input, as_of: DateTime<Utc>) -> Outcome {
    let mut all: Vec<(Side, Record)> = vec![];
    for (side, path) in &input.files {
        let reader = FileReader::open(path, &input.options).unwrap();
        all.extend(reader.filter_map(|i| match i {
            Item::Record(p) => Some((*side, p.record)),
            Item::Error(_) => None,
        }));
    }
    let (mut orders, mut index, mut by_ref) = (vec![], HashMap::new(), HashMap::new());
    for (_, r) in &all {
        let Some(o) = &r.order_id else { continue };
        let g = *index.entry(o.clone()).or_insert_with(|| {
            orders.push(o.clone());
            orders.len() - 1
        });
        for id in r.order_ref_ids() {
            by_ref.entry(id.to_string()).or_insert(g);
        }
    }
    let mut groups: Vec<(Vec<StoredRecord>, u8)> = vec![(vec![], 0); orders.len()];
    let mut out = Outcome {
        rows: vec![],
        counts: [orders.len() as u64, 0, 0, 0, 0],
        unlinked: BTreeMap::new(),
        records: BTreeMap::new(),
    };
    for (side, r) in all {
        *out.records.entry(side).or_default() += 1;
        let mut owners: Vec<usize> = match &r.order_id {
            Some(o) => vec![index[o]],
            None => r
                .pointer_ids()
                .iter()
                .filter_map(|id| by_ref.get(*id).copied())
                .collect(),
        };
        owners.sort_unstable();
        owners.dedup();
        if owners.is_empty() {
            *out.unlinked.entry(side).or_default() += 1;
        }
        let bit = match side {
            Side::Storefront => 1,
            Side::Processor => 2,
            Side::Ledger => 4,
        };
        for g in owners {
            groups[g].0.push(StoredRecord {
                receive_time: r.event_time,
                record: r.clone(),
            });
            groups[g].1 |= bit;
        }
    }
    let policy = MatchPolicy::default();
    for (order_id, (records, sides)) in orders.iter().zip(groups) {
        let e = evaluate_as_of(&policy, order_id, &records, Some(as_of));
        let (sf, pr) = (sides & 1 != 0, sides & 2 != 0);
        if !e.findings.is_empty() {
            out.counts[2] += 1;
        } else if sf && pr {
            out.counts[1] += 1;
        }
        out.counts[3] += u64::from(sf && !pr);
        out.counts[4] += u64::from(pr && !sf);
        out.rows
            .extend(e.findings.into_iter().map(|f| ExceptionRow {
                order_id: order_id.clone(),
                category: Category::of(f.exception_type),
                exception_type: f.exception_type,
                rule: f.rule,
                subject: f.subject,
                difference: f.difference,
                summary: f.summary,
            }));
    }
    out
}

/// Reorders a file's data rows by `seed`, keeping runs of rows whose first
/// field is equal together (a journal's lines), the header first.
fn shuffle(path: &std::path::Path, seed: u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let mut runs: Vec<Vec<&str>> = vec![];
    for l in lines {
        let key = l.split(',').next();
        match runs.last_mut() {
            Some(run) if run[0].split(',').next() == key => run.push(l),
            _ => runs.push(vec![l]),
        }
    }
    // Fisher-Yates on a small LCG: reproducible from the seed alone.
    let mut x = seed | 1;
    for i in (1..runs.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        runs.swap(i, (x >> 33) as usize % (i + 1));
    }
    let mut out = header;
    for l in runs.into_iter().flatten() {
        out.push('\n');
        out.push_str(l);
    }
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Over generated months of any size, with the processor's rows and the
    /// ledger's journals in any order, the packed audit concludes what the
    /// straightforward one does.
    #[test]
    fn the_packed_audit_agrees_with_the_straightforward_one(
        orders in 0u64..400,
        seeds in proptest::prelude::any::<(u64, u64)>(),
    ) {
        let dir = scratch(&format!("audit-prop-{orders}-{}", seeds.0));
        let m = month(&dir, orders).unwrap();
        shuffle(&m.storefront, seeds.0 ^ seeds.1);
        shuffle(&m.processor, seeds.0);
        shuffle(&m.ledger, seeds.1);
        let input = Input {
            files: vec![
                (Side::Storefront, m.storefront.clone()),
                (Side::Processor, m.processor.clone()),
                (Side::Ledger, m.ledger.clone()),
            ],
            options: Default::default(),
        };
        let as_of = chrono::Utc::now();
        let report = run(&input, as_of, &Default::default());
        proptest::prop_assert_eq!(report.exceptions.len(), m.planted.len());
        proptest::prop_assert_eq!(Outcome::of(&report), straightforward(&input, as_of));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
