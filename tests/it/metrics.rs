//! Issue 9: the on-call gauges follow the database (open exceptions by
//! type and owner, the worker's backlog) and the cash application duration
//! histogram counts the jobs the worker ran.

use tally::app::App;
use tally::storage::Store;
use tally::telemetry::metrics;

use crate::cash::{bt, drain, payout};
use crate::common::*;

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const PAYOUTS_READY: &str =
    "tally_worker_backlog{tally_job_kind=\"apply_payout\",tally_job_state=\"ready\"}";
const APPLIED: &str = "tally_cash_application_duration_seconds_count{tally_job_kind=\"apply_payout\",tally_outcome=\"done\"}";

#[tokio::test]
async fn gauges_follow_the_database_and_apply_durations_are_counted() {
    let app = TestApp::start().await;
    let store = Store::connect(&app.db.url, 2).unwrap();
    let port = metrics::serve("127.0.0.1:0".parse().unwrap(), Some(store.clone()))
        .await
        .unwrap()
        .port();
    let before = scrape(port).await;
    assert_eq!(value(&before, PAYOUTS_READY), Some(0.0), "{before}");
    assert!(!before.contains("tally_exceptions_open{"), "{before}");
    // The histogram is the process's: other tests may have run jobs.
    let applied_before = value(&before, APPLIED).unwrap_or(0.0);

    // An under-capture (an open exception owned by payments) and a payout
    // waiting for the worker.
    app.submit(vec![
        order("M-1", "100.00"),
        charge("M-1", "60.00"),
        invoice("M-1", "100.00"),
        bt("txn_M1", "charge", "ch_M-1", "60.00", "3.20", "po_M1"),
        payout("po_M1", "56.80"),
    ])
    .await
    .unwrap();
    let during = scrape(port).await;
    assert_eq!(value(&during, PAYOUTS_READY), Some(1.0), "{during}");
    let rows = app
        .db
        .client()
        .await
        .query(
            "SELECT type, coalesce(owner, ''), count(*) FROM exceptions
             WHERE state <> 'resolved' GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let (t, owner, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let series = format!(
            "tally_exceptions_open{{tally_exception_type=\"{t}\",tally_owner=\"{owner}\"}}"
        );
        assert_eq!(
            value(&during, &series),
            Some(n as f64),
            "{series}\n{during}"
        );
    }

    drain(&App::new(store), "acme").await;
    let after = scrape(port).await;
    assert_eq!(value(&after, PAYOUTS_READY), Some(0.0), "{after}");
    assert!(
        value(&after, APPLIED).is_some_and(|n| n >= applied_before + 1.0),
        "{after}"
    );
}
