//! The audit on a generated month: every planted variance found, nothing
//! else, and the summary's counts.

use std::sync::Arc;

use super::Side;
use super::audit::{Category, Input, run};
use super::generate::{Planted, month};

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
        partitions: None,
    };
    let report = run(&input, chrono::Utc::now(), &Arc::default());
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

    // Matched in three partitions of orders (as a large input is): the
    // same exceptions and counts.
    let parts = run(
        &Input {
            partitions: Some(3),
            ..input
        },
        chrono::Utc::now(),
        &Arc::default(),
    );
    assert_eq!(parts.partitions, 3);
    let key = |r: &super::audit::Report| {
        let mut v: Vec<(String, String, String)> = r
            .exceptions
            .iter()
            .map(|e| (e.order_id.clone(), e.rule.clone(), e.subject.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&parts), key(&report));
    assert_eq!(
        (
            parts.orders,
            parts.matched,
            parts.storefront_only,
            parts.processor_only
        ),
        (
            report.orders,
            report.matched,
            report.storefront_only,
            report.processor_only
        )
    );
    assert_eq!(
        parts.sides[&Side::Ledger].records,
        report.sides[&Side::Ledger].records
    );
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
        partitions: None,
    };
    let report = run(&input, chrono::Utc::now(), &Arc::default());
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
