//! A writer never waits on a job row a worker holds: it signals the job,
//! and the worker folds the signal into a fresh run once the holder is done
//! (storage::jobs::ENQUEUE, storage::job_signals).

use std::time::Duration;

use tally::app::worker::{self, WorkerConfig};

use crate::cash::{bt, payout, worker as cash_app};
use crate::common::TestApp;

const JOB: &str = "merchant_id = 'acme' AND kind = 'apply_payout' AND subject_id = 'po_sig'";

async fn signals(t: &TestApp) -> i64 {
    t.count("SELECT count(*) FROM job_signals").await
}

/// A connection that holds the payout's job row as a worker's claim does.
async fn hold_job(t: &TestApp) -> tokio_postgres::Client {
    let holder = t.db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    let held = holder
        .query(&format!("SELECT 1 FROM jobs WHERE {JOB} FOR UPDATE"), &[])
        .await
        .unwrap();
    assert_eq!(held.len(), 1, "the payout's job is there to hold");
    holder
}

async fn submit_within(t: &TestApp, records: Vec<tally::proto::tally::v1::Record>) {
    tokio::time::timeout(Duration::from_secs(10), t.submit(records))
        .await
        .expect("ingest waited on the job row a worker holds")
        .unwrap();
}

#[tokio::test]
async fn ingest_never_waits_on_a_held_job_and_the_job_runs_again_after_its_holder() {
    let t = TestApp::start().await;
    t.submit(vec![payout("po_sig", "100.00")]).await.unwrap();
    let holder = hold_job(&t).await;
    submit_within(
        &t,
        vec![bt(
            "txn_sig", "charge", "ch_sig", "100.00", "0.00", "po_sig",
        )],
    )
    .await;
    assert_eq!(signals(&t).await, 1, "the held job is signalled");
    // The holder read its facts before the transaction commits and finishes
    // its job: the row is gone, the signal is what is left of the new fact.
    holder
        .batch_execute(&format!("DELETE FROM jobs WHERE {JOB}; COMMIT"))
        .await
        .unwrap();
    assert_eq!(
        t.count(&format!("SELECT count(*) FROM jobs WHERE {JOB}"))
            .await,
        0
    );

    let app = cash_app(&t).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let config = WorkerConfig {
        concurrency: 1,
        idle_poll: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let run = tokio::spawn(worker::run(app, config, shutdown));
    let applied = crate::common::retry(|| async {
        let n = t
            .count("SELECT count(*) FROM payouts WHERE merchant_id = 'acme' AND payout_id = 'po_sig' AND state = 'applied'")
            .await;
        if n == 1 { Ok(()) } else { Err(()) }
    });
    applied.await;
    stop.send(true).unwrap();
    run.await.unwrap();
    assert_eq!(signals(&t).await, 0, "the signal was folded");
}

#[tokio::test]
async fn a_fold_keeps_the_signal_of_a_job_still_held_and_bumps_it_once_free() {
    let t = TestApp::start().await;
    t.submit(vec![payout("po_sig", "100.00")]).await.unwrap();
    let generation = format!("SELECT generation FROM jobs WHERE {JOB}");
    let before = t.count(&generation).await;
    let holder = hold_job(&t).await;
    submit_within(
        &t,
        vec![bt(
            "txn_sig", "charge", "ch_sig", "100.00", "0.00", "po_sig",
        )],
    )
    .await;
    let app = cash_app(&t).await;
    let mut conn = app.store().conn().await.unwrap();
    let folded = tally::storage::job_signals::fold(&mut conn, "acme", 100)
        .await
        .unwrap();
    assert_eq!(folded, 0, "a held job's signal stays");
    assert_eq!(signals(&t).await, 1);
    holder.batch_execute("ROLLBACK").await.unwrap();
    let folded = tally::storage::job_signals::fold(&mut conn, "acme", 100)
        .await
        .unwrap();
    assert_eq!(folded, 1);
    assert_eq!(signals(&t).await, 0);
    assert_eq!(
        t.count(&generation).await,
        before + 1,
        "the free job was bumped"
    );
}

#[tokio::test]
async fn a_job_nobody_holds_is_bumped_in_place_without_a_signal() {
    let t = TestApp::start().await;
    t.submit(vec![payout("po_sig", "100.00")]).await.unwrap();
    let before = t
        .count(&format!("SELECT generation FROM jobs WHERE {JOB}"))
        .await;
    t.submit(vec![bt(
        "txn_sig", "charge", "ch_sig", "100.00", "0.00", "po_sig",
    )])
    .await
    .unwrap();
    assert_eq!(signals(&t).await, 0);
    assert_eq!(
        t.count(&format!("SELECT generation FROM jobs WHERE {JOB}"))
            .await,
        before + 1
    );
}
