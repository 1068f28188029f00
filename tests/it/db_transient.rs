//! Errors PostgreSQL raises that diesel names no kind for (a deadlock
//! 40P01, a cancelled statement 57014, a terminated backend 57P01) end a
//! submission's attempt, never the call with INTERNAL: the submission runs
//! again, and its records are stored once.
//!
//! A second session (the holder) takes one of the submission's order locks
//! (`storage::locks`, advisory locks taken in hash order) before the
//! submission does, so the submission waits on it holding the orders
//! below; the holder then provokes the error.

use std::time::Duration;

use tally::proto::tally::v1 as pb;
use tonic::Code;

use crate::common::*;

/// The advisory lock key Tally takes for an order of merchant acme.
async fn order_lock(c: &tokio_postgres::Client, order: &str) -> i64 {
    c.query_one(
        "SELECT hashtextextended($1, 0)",
        &[&format!("acme\u{1f}order\u{1f}{order}")],
    )
    .await
    .unwrap()
    .get(0)
}

/// A submission of two orders waiting for the later of their two locks (in
/// the order Tally takes them), which the holder session holds in an open
/// transaction; the submission holds the earlier one meanwhile.
struct Blocked {
    holder: tokio_postgres::Client,
    earlier_lock: i64,
    backend: i32,
    call: tokio::task::JoinHandle<Result<pb::SubmitRecordsResponse, tonic::Status>>,
}

async fn blocked_submission(app: &TestApp) -> Blocked {
    let holder = app.db.client().await;
    // The submission's session detects the deadlock after its 1 s; the
    // holder's never does first, so the submission is always the victim.
    holder
        .batch_execute("SET deadlock_timeout = '60s'; BEGIN")
        .await
        .unwrap();
    let (a, b) = (
        order_lock(&holder, "t1").await,
        order_lock(&holder, "t2").await,
    );
    let (earlier_lock, later_lock) = (a.min(b), a.max(b));
    holder
        .execute("SELECT pg_advisory_xact_lock($1)", &[&later_lock])
        .await
        .unwrap();
    let ingest = app.ingest.clone();
    let call = tokio::spawn(async move {
        ingest
            .clone()
            .submit_records(pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records: vec![order("t1", "10.00"), order("t2", "20.00")],
            })
            .await
            .map(|r| r.into_inner())
    });
    let backend = waiting_for(&holder, later_lock).await;
    Blocked {
        holder,
        earlier_lock,
        backend,
        call,
    }
}

/// The backend waiting for advisory lock `key`, once one waits.
async fn waiting_for(c: &tokio_postgres::Client, key: i64) -> i32 {
    // An advisory lock's bigint key is split into classid (high half) and
    // objid (low half) in pg_locks.
    let wait = "SELECT pid FROM pg_locks
                 WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND (classid::bigint << 32) | objid::bigint = $1";
    for _ in 0..1000 {
        if let Some(row) = c.query_opt(wait, &[&key]).await.unwrap() {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the submission never waited for the held order lock");
}

async fn stored_orders(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM record_log WHERE order_id IN ('t1', 't2')")
        .await
}

/// When the backend's transaction began (none: no transaction). Asked
/// outside a transaction: within one, pg_stat_activity stays as first read.
async fn xact_start(c: &tokio_postgres::Client, backend: i32) -> Option<String> {
    c.query_one(
        "SELECT xact_start::text FROM pg_stat_activity WHERE pid = $1",
        &[&backend],
    )
    .await
    .unwrap()
    .get(0)
}

/// Ends the holder's transaction, letting the submission through: it must
/// answer with both orders accepted (stored by this call, once).
async fn let_through_and_check(app: &TestApp, b: Blocked) {
    b.holder.batch_execute("COMMIT").await.unwrap();
    let r = b.call.await.unwrap().expect("the submission ran again");
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 2]);
    assert_eq!(stored_orders(app).await, 2);
}

#[tokio::test]
async fn a_submission_chosen_as_a_deadlock_victim_runs_again_and_is_stored_once() {
    let app = TestApp::start().await;
    let b = blocked_submission(&app).await;
    // The submission holds the earlier lock and waits for the later: asking
    // for the earlier closes the cycle, and PostgreSQL ends the submission's
    // transaction with 40P01. The holder getting the lock is the proof.
    tokio::time::timeout(
        Duration::from_secs(30),
        b.holder
            .execute("SELECT pg_advisory_xact_lock($1)", &[&b.earlier_lock]),
    )
    .await
    .expect("the deadlock was never detected")
    .expect("the holder, not the submission, was the deadlock's victim");
    let_through_and_check(&app, b).await;
}

#[tokio::test]
async fn a_submission_whose_statement_is_cancelled_runs_again_and_is_stored_once() {
    let app = TestApp::start().await;
    let b = blocked_submission(&app).await;
    let watcher = app.db.client().await;
    let started = xact_start(&watcher, b.backend).await;
    // 57014 query_canceled, as a statement_timeout raises it.
    let cancelled: bool = b
        .holder
        .query_one("SELECT pg_cancel_backend($1)", &[&b.backend])
        .await
        .unwrap()
        .get(0);
    assert!(cancelled);
    // Only once the cancelled transaction is over is the lock let go: the
    // attempt cannot have been let through before it was cancelled.
    let mut polls = 0;
    while xact_start(&watcher, b.backend).await == started {
        polls += 1;
        assert!(polls < 1000, "the cancelled transaction never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let_through_and_check(&app, b).await;
}

#[tokio::test]
async fn a_submission_whose_backend_is_terminated_answers_ok_or_unavailable_never_internal() {
    let app = TestApp::start().await;
    let b = blocked_submission(&app).await;
    // 57P01 admin_shutdown, then the connection closes.
    b.holder
        .execute("SELECT pg_terminate_backend($1)", &[&b.backend])
        .await
        .unwrap();
    b.holder.batch_execute("COMMIT").await.unwrap();
    match b.call.await.unwrap() {
        Ok(r) => assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 2]),
        Err(s) => {
            assert_eq!(s.code(), Code::Unavailable, "{s:?}");
            // Nothing of the ended attempt was kept: the caller's retry
            // stores the records, once.
            let r = app
                .submit(vec![order("t1", "10.00"), order("t2", "20.00")])
                .await
                .unwrap();
            assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 2]);
        }
    }
    assert_eq!(stored_orders(&app).await, 2);
}
