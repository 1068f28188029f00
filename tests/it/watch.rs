//! WatchExceptions: a cursor it did not issue is OUT_OF_RANGE, delivery is
//! held back only by transactions that may still commit an event, and an
//! event that commits late is delivered in its place, never skipped.

use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tonic::Code;
use tonic::codec::Streaming;

use crate::common::*;

async fn watch(
    app: &TestApp,
    merchant: &str,
    after: i64,
) -> Result<Streaming<pb::WatchExceptionsResponse>, tonic::Status> {
    app.exceptions
        .clone()
        .watch_exceptions(pb::WatchExceptionsRequest {
            parent: format!("merchants/{merchant}"),
            after_sequence: after,
        })
        .await
        .map(|r| r.into_inner())
}

/// An order whose charge is short: one exception opened.
async fn mismatch(app: &TestApp, merchant: &str, id: &str) {
    app.submit_as(merchant, "", vec![order(id, "100.00"), charge(id, "90.00")])
        .await
        .unwrap();
}

async fn sequences(app: &TestApp, merchant: &str) -> Vec<i64> {
    app.db
        .client()
        .await
        .query(
            "SELECT sequence FROM exception_events WHERE merchant_id = $1 ORDER BY sequence",
            &[&merchant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn next(
    stream: &mut Streaming<pb::WatchExceptionsResponse>,
    within: Duration,
) -> Option<i64> {
    match tokio::time::timeout(within, stream.message()).await {
        Err(_) => None,
        Ok(m) => Some(m.unwrap().unwrap().event.unwrap().sequence),
    }
}

#[tokio::test]
async fn a_cursor_past_the_end_or_of_another_merchant_is_out_of_range() {
    let app = TestApp::start().await;
    mismatch(&app, "acme", "6001").await;
    mismatch(&app, "globex", "6002").await;
    let acme = sequences(&app, "acme").await;
    let globex = sequences(&app, "globex").await;
    for after in [globex[0], acme.last().unwrap() + 1_000_000] {
        let err = watch(&app, "acme", after).await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{after}: {err:?}");
    }
    let err = watch(&app, "acme", -1).await.unwrap_err();
    assert_eq!(bad_fields(&err), vec!["after_sequence"]);
    // The merchant's own cursor resumes after it; 0 is the start.
    let mut from_start = watch(&app, "acme", 0).await.unwrap();
    assert_eq!(
        next(&mut from_start, Duration::from_secs(2)).await,
        Some(acme[0])
    );
    mismatch(&app, "acme", "6003").await;
    let mut resumed = watch(&app, "acme", acme[0]).await.unwrap();
    let after = sequences(&app, "acme").await;
    assert_eq!(
        next(&mut resumed, Duration::from_secs(2)).await,
        Some(after[1])
    );
}

#[tokio::test]
async fn idle_transactions_here_and_in_another_database_hold_nothing_back() {
    let app = TestApp::start().await;
    // Idle in transaction, each holding a transaction id: one in another
    // database of the cluster, one in Tally's own.
    let elsewhere = admin().await;
    elsewhere
        .batch_execute("BEGIN; SELECT txid_current();")
        .await
        .unwrap();
    let here = app.db.client().await;
    here.batch_execute("BEGIN; SELECT txid_current(); SELECT count(*) FROM exceptions;")
        .await
        .unwrap();
    let mut stream = watch(&app, "acme", 0).await.unwrap();
    let start = Instant::now();
    mismatch(&app, "acme", "6101").await;
    let first = next(&mut stream, Duration::from_secs(1)).await;
    assert_eq!(
        first,
        sequences(&app, "acme").await.first().copied(),
        "not delivered within a second"
    );
    eprintln!("delivered in {:?}", start.elapsed());
    elsewhere.batch_execute("ROLLBACK").await.unwrap();
    here.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn an_event_that_commits_late_is_delivered_in_order_never_skipped() {
    let app = TestApp::start().await;
    // A writer takes event number N and stays open.
    let late = app.db.client().await;
    late.batch_execute("BEGIN").await.unwrap();
    let n: i64 = late
        .query_one(
            "INSERT INTO exception_events (merchant_id, exception_id, action, actor, state)
             VALUES ('acme', gen_random_uuid(), 'opened', 'rules', 'open') RETURNING sequence",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut stream = watch(&app, "acme", 0).await.unwrap();
    // Events numbered after N commit first.
    mismatch(&app, "acme", "6201").await;
    let committed = sequences(&app, "acme").await;
    assert!(committed.iter().all(|s| *s > n), "{committed:?} vs {n}");
    // Not delivered past N while N may still commit.
    assert_eq!(next(&mut stream, Duration::from_millis(800)).await, None);
    late.batch_execute("COMMIT").await.unwrap();
    let mut seen = vec![];
    while seen.len() < committed.len() + 1 {
        let s = next(&mut stream, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("only {seen:?}"));
        seen.push(s);
    }
    let mut all = vec![n];
    all.extend(committed);
    assert_eq!(seen, all);

    // A writer that rolls back holds delivery only while it is open.
    let gone = app.db.client().await;
    gone.batch_execute(
        "BEGIN; INSERT INTO exception_events (merchant_id, exception_id, action, actor, state)
         VALUES ('acme', gen_random_uuid(), 'opened', 'rules', 'open')",
    )
    .await
    .unwrap();
    mismatch(&app, "acme", "6202").await;
    gone.batch_execute("ROLLBACK").await.unwrap();
    let newest = *sequences(&app, "acme").await.last().unwrap();
    assert_eq!(
        next(&mut stream, Duration::from_secs(2)).await,
        Some(newest)
    );
}
