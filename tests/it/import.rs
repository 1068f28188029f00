//! `tally import` against a running Tally: a generated month goes in, a
//! second import changes nothing, a corrected re-export becomes a new
//! version, and the service finds what `tally audit` finds on the same
//! files.

use std::collections::BTreeSet;

use tally::cli::import::{Job, Summary};
use tally::cli::progress::Counters;
use tally::import::audit::{Input, run};
use tally::import::generate::{ledger_with_credit_memo, month};
use tally::import::{Options, Side};
use tally::proto::tally::v1 as pb;

use crate::common::TestApp;

const MERCHANT: &str = "acme";

async fn import(app: &TestApp, files: &[std::path::PathBuf]) -> Summary {
    let counters = Counters::default();
    let options = Options::default();
    let job = Job {
        merchant: MERCHANT,
        options: &options,
        chunk: 250,
        counters: &counters,
        key: None,
    };
    job.run(Some(app.channel.clone()), files).await.unwrap()
}

/// What the database holds, table by table.
async fn state(app: &TestApp) -> Vec<i64> {
    let mut out = vec![];
    for sql in [
        "SELECT count(*) FROM record_log WHERE outcome IN ('accepted', 'updated')",
        "SELECT count(*) FROM transactions",
        "SELECT count(*) FROM exceptions",
        "SELECT count(*) FROM order_refs",
        "SELECT count(*) FROM record_links",
        "SELECT count(*) FROM journal_entries",
    ] {
        out.push(app.count(sql).await);
    }
    out
}

/// Unresolved exceptions as (order, rule).
async fn service_exceptions(app: &TestApp) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = app
            .exceptions(pb::ListExceptionsRequest {
                parent: format!("merchants/{MERCHANT}"),
                page_size: 500,
                page_token: token.clone(),
                ..Default::default()
            })
            .await;
        // Resolved ones are history: a refund seen before its charge
        // arrived, say, cleared when the processor's file came in.
        for e in page
            .exceptions
            .into_iter()
            .filter(|e| e.state != pb::ExceptionState::Resolved as i32)
        {
            let order = e.transaction.rsplit('/').next().unwrap_or("").to_string();
            out.insert((order, e.rule));
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tally-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_month_imports_once_and_matches_the_offline_audit() {
    let app = TestApp::start().await;
    let dir = scratch("import");
    let m = month(&dir, 400).unwrap();
    let files = vec![m.storefront.clone(), m.processor.clone(), m.ledger.clone()];
    // Exported an hour ago: the corrected re-export below is newer.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in &files {
        let file = std::fs::File::options().write(true).open(f).unwrap();
        file.set_modified(hour_ago).unwrap();
    }

    let first = import(&app, &files).await;
    assert_eq!(first.refused, 0, "{:?}", first.reasons);
    assert!(first.accepted > 900, "{first:?}");
    assert_eq!((first.duplicate, first.updated, first.conflict), (0, 0, 0));
    let before = state(&app).await;

    let second = import(&app, &files).await;
    assert_eq!(second.accepted, 0, "{second:?}");
    assert_eq!(second.duplicate, first.accepted, "{second:?}");
    assert_eq!(
        state(&app).await,
        before,
        "the second import changed nothing"
    );

    // The offline audit on the same files finds what the service found.
    // Refund gaps differ by design: the audit judges history as it
    // happened, the service counts a backfilled refund as seen on import
    // and waits one lag before calling it late.
    let report = run(
        &Input {
            files: vec![
                (Side::Storefront, m.storefront.clone()),
                (Side::Processor, m.processor.clone()),
                (Side::Ledger, m.ledger.clone()),
            ],
            options: Options::default(),
        },
        chrono::Utc::now(),
        &Default::default(),
    );
    let audit: BTreeSet<(String, String)> = report
        .exceptions
        .iter()
        .filter(|e| !e.rule.starts_with("refund_not_"))
        .map(|e| (e.order_id.clone(), e.rule.clone()))
        .collect();
    assert!(audit.len() >= 10, "{audit:?}");
    assert_eq!(service_exceptions(&app).await, audit);

    // A corrected re-export: one order's total fixed, the file newer.
    let text = std::fs::read_to_string(&m.processor).unwrap();
    let planted = m
        .planted
        .iter()
        .find(|p| p.rule == "order_total_vs_captured")
        .unwrap();
    let charge_row = text
        .lines()
        .find(|l| l.contains(&format!("#{},", planted.order_id)))
        .unwrap()
        .to_string();
    let mut cols: Vec<String> = charge_row.split(',').map(String::from).collect();
    let gross: rust_decimal::Decimal = cols[4].parse().unwrap();
    let fee: rust_decimal::Decimal = cols[5].parse().unwrap();
    let fixed = gross - rust_decimal::Decimal::ONE;
    cols[4] = format!("{fixed:.2}");
    cols[6] = format!("{:.2}", fixed - fee);
    let corrected = dir.join("corrected.csv");
    std::fs::write(&corrected, text.replace(&charge_row, &cols.join(","))).unwrap();
    let third = import(&app, &[corrected]).await;
    // Newer file, so every record is restated as a version (the unchanged
    // ones with the same content); none is a conflict.
    assert_eq!(third.conflict, 0, "{third:?}");
    assert_eq!(
        third.updated,
        first_processor_records(&m.processor),
        "{third:?}"
    );
    // The corrected charge is the current version: its mismatch is gone.
    let after = service_exceptions(&app).await;
    assert!(!after.contains(&(planted.order_id.clone(), planted.rule.to_string())));
    // The ledger still books the old gross: now that is the difference.
    let mut want = audit.clone();
    want.remove(&(planted.order_id.clone(), planted.rule.to_string()));
    want.insert((planted.order_id.clone(), "processor_vs_journal".to_string()));
    assert_eq!(after, want);
    let _ = std::fs::remove_dir_all(&dir);
}

fn first_processor_records(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path).unwrap().lines().count() as u64 - 1
}

/// A GL export's credit memo (a `Type` column, lines of type `Credit
/// Memo`) goes in as the ERP's credit memo of its order, beside the
/// journals: stored as a credit memo record, nothing refused.
#[tokio::test]
async fn a_gl_export_s_credit_memo_imports_as_a_credit_memo() {
    let app = TestApp::start().await;
    let dir = scratch("import-credit-memo");
    let m = month(&dir, 100).unwrap();
    let credited = m
        .planted
        .iter()
        .find(|p| p.rule == "refund_not_credited")
        .unwrap()
        .order_id
        .clone();
    let ledger = dir.join("gl_lines.csv");
    ledger_with_credit_memo(&m, &credited, "5.00", &format!("re_x{credited}"), &ledger).unwrap();
    let files = vec![m.storefront.clone(), m.processor.clone(), ledger];
    let s = import(&app, &files).await;
    assert_eq!(s.refused, 0, "{:?}", s.reasons);
    let memos = app
        .count(&format!(
            "SELECT count(*) FROM record_log WHERE kind = 'credit_memo' AND source_system = 'netsuite' \
             AND source_id = 'CM-{credited}' AND order_id = '{credited}' AND outcome = 'accepted'"
        ))
        .await;
    assert_eq!(memos, 1);
    let journals = app
        .count(
            "SELECT count(*) FROM record_log WHERE kind = 'journal_entry' AND outcome = 'accepted'",
        )
        .await;
    assert!(journals > 90, "{journals}");
    let _ = std::fs::remove_dir_all(&dir);
}
