//! A writer never waits on a job row a worker holds: it signals the job,
//! and the worker folds the signal into a fresh run once the holder is done
//! (storage::jobs::ENQUEUE, storage::job_signals).

use std::time::Duration;

use tally::app::worker::{self, WorkerConfig};

use crate::cash::{bt, payout, worker as cash_app};
use crate::common::TestApp;

const JOB: &str = "merchant_id = 'acme' AND kind = 'apply_payout' AND subject_id = 'po_sig'";

async fn signals(t: &TestApp) -> i64 {
    t.count("SELECT count(*) FROM job_signals WHERE subject_id = 'po_sig'")
        .await
}

async fn fold(t: &TestApp) -> usize {
    let app = cash_app(t).await;
    let mut conn = app.store().conn().await.unwrap();
    tally::storage::job_signals::fold(&mut conn, "acme", 100)
        .await
        .unwrap()
}

/// The payout's job, made from its record's signal.
async fn payout_job(t: &TestApp) {
    t.submit(vec![payout("po_sig", "100.00")]).await.unwrap();
    assert_eq!(signals(t).await, 1, "ingest signals the job");
    assert!(fold(t).await >= 1);
    assert_eq!(
        t.count(&format!("SELECT count(*) FROM jobs WHERE {JOB}"))
            .await,
        1
    );
    assert_eq!(signals(t).await, 0);
}

/// A connection in a transaction that holds the payout's job row as a
/// worker's batch does: `claim` (`FOR UPDATE`) or `complete` (`DELETE`).
async fn hold_job(t: &TestApp, how: &str) -> tokio_postgres::Client {
    let holder = t.db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    let sql = match how {
        "claim" => format!("SELECT 1 FROM jobs WHERE {JOB} FOR UPDATE"),
        _ => format!("DELETE FROM jobs WHERE {JOB} RETURNING 1"),
    };
    let held = holder.query(&sql, &[]).await.unwrap();
    assert_eq!(held.len(), 1, "the payout's job is there to hold");
    holder
}

async fn submit_within(t: &TestApp, records: Vec<tally::proto::tally::v1::Record>) {
    tokio::time::timeout(Duration::from_secs(10), t.submit(records))
        .await
        .expect("ingest waited on the job row a worker holds")
        .unwrap();
}

fn txn() -> Vec<tally::proto::tally::v1::Record> {
    vec![bt(
        "txn_sig", "charge", "ch_sig", "100.00", "0.00", "po_sig",
    )]
}

/// A worker completed the job earlier in its batch, still open: even an
/// insert of the job's key would wait for that batch to end. Ingest does
/// not, and the new fact runs the job again once the batch is over.
#[tokio::test]
async fn ingest_never_waits_on_a_batch_that_completed_the_job_and_the_job_runs_again() {
    let t = TestApp::start().await;
    payout_job(&t).await;
    let holder = hold_job(&t, "complete").await;
    submit_within(&t, txn()).await;
    assert_eq!(signals(&t).await, 1, "the new fact is signalled");
    holder.batch_execute("COMMIT").await.unwrap();
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
    crate::common::retry(|| async {
        let n = t
            .count("SELECT count(*) FROM payouts WHERE merchant_id = 'acme' AND payout_id = 'po_sig' AND state = 'applied'")
            .await;
        if n == 1 { Ok(()) } else { Err(()) }
    })
    .await;
    stop.send(true).unwrap();
    run.await.unwrap();
    assert_eq!(signals(&t).await, 0, "the signal was folded");
}

/// A claimed job: ingest does not wait; a fold keeps the signal while the
/// job is held and bumps the job once it is free.
#[tokio::test]
async fn a_fold_keeps_the_signal_of_a_claimed_job_and_bumps_it_once_free() {
    let t = TestApp::start().await;
    payout_job(&t).await;
    let generation = format!("SELECT generation FROM jobs WHERE {JOB}");
    let before = t.count(&generation).await;
    let holder = hold_job(&t, "claim").await;
    submit_within(&t, txn()).await;
    assert_eq!(fold(&t).await, 0, "a held job's signal stays");
    assert_eq!(signals(&t).await, 1);
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(fold(&t).await, 1);
    assert_eq!(signals(&t).await, 0);
    assert_eq!(
        t.count(&generation).await,
        before + 1,
        "the free job was bumped"
    );
}

/// Signals of one job, several arrivals before a fold, make one job.
#[tokio::test]
async fn several_signals_of_one_job_fold_into_one_ready_job() {
    let t = TestApp::start().await;
    t.submit(vec![payout("po_sig", "100.00")]).await.unwrap();
    t.submit(txn()).await.unwrap();
    assert_eq!(signals(&t).await, 2);
    assert_eq!(fold(&t).await, 2);
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM jobs WHERE {JOB} AND state = 'ready'"
        ))
        .await,
        1
    );
}

/// The worker's probes of the signals stay index probes under any
/// statistics: one merchant's backlog of signals (built up while no worker
/// ran) is never read whole to answer for another merchant, nor to list
/// the merchants with signals. Checked without statistics and after an
/// ANALYZE that shows the one merchant, as custom and generic plans.
#[tokio::test]
async fn the_signal_probes_never_read_a_merchants_backlog_whole() {
    let db = crate::common::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "ALTER TABLE job_signals SET (autovacuum_enabled = false);
         INSERT INTO job_signals (merchant_id, kind, subject_id)
         SELECT 'm1', 'apply_order', 'o' || i FROM generate_series(1, 20000) i;",
    )
    .await
    .unwrap();
    let probes = [
        (
            "any",
            tally::storage::job_signals::ANY,
            vec!["'m2'".to_string()],
        ),
        (
            "merchants with work",
            tally::storage::jobs::WITH_WORK,
            vec!["1000".to_string()],
        ),
    ];
    for analysed in [false, true] {
        if analysed {
            c.batch_execute("ANALYZE job_signals").await.unwrap();
        }
        for (what, sql, args) in &probes {
            for plan in crate::plans::plans(&c, sql, args).await {
                let shown = crate::plans::describe(&plan);
                for n in &plan {
                    let kind = n["Node Type"].as_str().unwrap_or("");
                    let on_signals = n["Relation Name"] == "job_signals";
                    assert!(
                        !(on_signals && matches!(kind, "Seq Scan" | "Bitmap Heap Scan")),
                        "{what} (analysed: {analysed}): {kind} in\n  {shown}"
                    );
                }
            }
        }
    }
}
