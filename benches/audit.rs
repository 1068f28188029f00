//! The offline three-way audit against a baseline that only parses the
//! same files: a generated month of exports (Shopify orders export, Stripe
//! payout reconciliation report, NetSuite journal import) with planted
//! variances, audited, every planted variance checked found.
//!
//!   cargo bench --bench audit                       (20,000 orders)
//!   TALLY_BENCH_AUDIT_ORDERS=1000000 cargo bench --bench audit
//!                                                   (1M rows per file: the
//!                                                    storefront and processor
//!                                                    files about 1M rows, the
//!                                                    journal file 2M lines)
//!
//! Reports, each measured in this run (machines here are noisy): the parse
//! baseline's and the audit's seconds, wall and CPU (every thread's user
//! and system time: less sensitive to other work on the machine than wall
//! time), their ratio, rows per second, and the process's peak resident
//! memory (VmHWM) after the audit.

use std::time::Instant;

use tally::import::audit::{Input, run};
use tally::import::generate::month;
use tally::import::{FileReader, Item, Options, Side};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds this process has used so far, every thread (Linux's
/// /proc/self/stat: utime and stime, in the kernel's 100 ticks a second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Reads every file to the end on one thread each, keeping nothing.
fn parse_only(files: &[(Side, std::path::PathBuf)]) -> u64 {
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|(_, p)| {
                s.spawn(move || {
                    let r =
                        FileReader::open(p, &Options::default()).expect("a generated file opens");
                    r.filter(|i| matches!(i, Item::Record(_))).count() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

fn main() {
    let orders: u64 = std::env::var("TALLY_BENCH_AUDIT_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("tally-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let started = Instant::now();
    let m = month(&dir, orders).expect("the month is written");
    let files = vec![
        (Side::Storefront, m.storefront.clone()),
        (Side::Processor, m.processor.clone()),
        (Side::Ledger, m.ledger.clone()),
    ];
    let rows: Vec<u64> = files
        .iter()
        .map(|(_, p)| {
            std::fs::read(p)
                .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64 - 1)
                .unwrap_or(0)
        })
        .collect();
    println!(
        "generated {orders} orders in {:.1}s: storefront {} rows, processor {} rows, ledger {} rows, {} planted",
        started.elapsed().as_secs_f64(),
        rows[0],
        rows[1],
        rows[2],
        m.planted.len()
    );

    let (t, cpu) = (Instant::now(), cpu_seconds());
    let records = parse_only(&files);
    let parse = t.elapsed().as_secs_f64();
    let parse_cpu = cpu_seconds().zip(cpu).map_or(0.0, |(b, a)| b - a);
    println!("parse only: {records} records in {parse:.2}s (cpu {parse_cpu:.2}s)");

    let input = Input {
        files,
        options: Options::default(),
    };
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let report = run(&input, chrono::Utc::now(), &Default::default());
    let audit = t.elapsed().as_secs_f64();
    let audit_cpu = cpu_seconds().zip(cpu).map_or(0.0, |(b, a)| b - a);
    let exceptions: std::collections::HashSet<(&str, &str, &str)> = report
        .exceptions
        .iter()
        .map(|e| (e.rule.as_str(), e.subject.as_str(), e.order_id.as_str()))
        .collect();
    let found = m
        .planted
        .iter()
        .filter(|p| exceptions.contains(&(p.rule, p.subject.as_str(), p.order_id.as_str())))
        .count();
    println!(
        "audit: {} orders, {} exceptions, {found}/{} planted found, in {audit:.2}s (cpu {audit_cpu:.2}s, {:.0} rows/s)",
        report.orders,
        report.exceptions.len(),
        m.planted.len(),
        rows.iter().sum::<u64>() as f64 / audit
    );
    for (phase, secs) in &report.phases {
        println!("  {phase}: {secs:.2}s");
    }
    println!(
        "ratio audit / parse only: {:.2} (cpu {:.2})",
        audit / parse.max(1e-9),
        audit_cpu / parse_cpu.max(1e-9)
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak resident memory: {mib:.0} MiB");
    }
    assert_eq!(found, m.planted.len(), "every planted variance is found");
    assert_eq!(report.exceptions.len(), m.planted.len(), "and nothing else");
    let _ = std::fs::remove_dir_all(&dir);
}
