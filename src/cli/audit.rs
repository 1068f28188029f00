//! `tally audit --storefront F --processor F --ledger F`: seed 004's
//! three-way match over exports, offline (see `import::audit`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::AuditArgs;
use super::progress::{Reading, Reporter};
use crate::import::audit::{Input, Progress, Report, Stage, run};
use crate::import::{Options, Side, audit_report, erp};

/// Runs the audit and writes the report; errors are for people.
pub fn main(args: &AuditArgs) -> ExitCode {
    match audit(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tally audit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn audit(args: &AuditArgs) -> Result<(), String> {
    let mapping = match &args.mapping {
        Some(p) => Some(erp::Mapping::load(p)?),
        None => None,
    };
    // A folder stands for the files in it (SuiteAnalytics' tables, say).
    let mut files = vec![];
    for (side, paths) in [
        (Side::Storefront, &args.storefront),
        (Side::Processor, &args.processor),
        (Side::Ledger, &args.ledger),
    ] {
        files.extend(super::import::files(paths)?.into_iter().map(|p| (side, p)));
    }
    let total = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()))
        .sum::<Result<u64, _>>()
        .map_err(|e| format!("cannot read a file's size: {e}"))?;
    let input = Input {
        files,
        options: Options {
            format: None,
            mapping,
        },
    };
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::watch(false, {
        let p = progress.clone();
        move || {
            let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
            let (stage, done, of, bytes) = match p.stage() {
                Stage::Parse => ("audit: parsing", load(&p.bytes), total, true),
                // Linking has no count of its own: the bar stays on the
                // bytes parsed until the orders to match are known.
                Stage::Link => ("audit: linking records to orders", total, total, true),
                Stage::Match => (
                    "audit: matching orders",
                    load(&p.matched),
                    load(&p.orders),
                    false,
                ),
            };
            Reading {
                stage,
                done,
                total: of,
                bytes,
                records: None,
            }
        }
    });
    let report = run(&input, chrono::Utc::now(), &progress);
    reporter.stop();
    write(args, &report)
}

fn write(args: &AuditArgs, report: &Report) -> Result<(), String> {
    if let Some(p) = &args.exceptions {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        );
        audit_report::write_csv(report, &mut f)
            .and_then(|()| f.flush())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let result = match args.format.as_str() {
        "csv" => audit_report::write_csv(report, &mut out),
        "html" => out.write_all(audit_report::html(report).as_bytes()),
        _ => out.write_all(audit_report::table(report).as_bytes()),
    };
    result
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the report: {e}"))
}
