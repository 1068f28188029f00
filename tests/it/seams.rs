//! Bugs that hid in the seams between layers: a request id replayed across
//! methods, links lost between concurrent writers, and reads that mixed two
//! evaluations.

use tally::proto::tally::v1 as pb;
use tonic::Code;

use crate::common::*;

fn stream_chunk(request_id: &str, records: Vec<pb::Record>) -> pb::StreamRecordsRequest {
    pb::StreamRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: request_id.into(),
        records,
    }
}

/// The first response of a one-chunk stream, or the status it failed with.
async fn stream_once(
    app: &TestApp,
    request_id: &str,
    records: Vec<pb::Record>,
) -> Result<pb::StreamRecordsResponse, tonic::Status> {
    let mut responses = app
        .ingest
        .clone()
        .stream_records(tokio_stream::iter(vec![stream_chunk(request_id, records)]))
        .await?
        .into_inner();
    match responses.message().await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(tonic::Status::unknown(
            "the stream ended without a response",
        )),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn a_request_id_used_by_submit_is_refused_on_stream() {
    let app = TestApp::start().await;
    app.submit_as("acme", "rid-submit", clean_order("1001"))
        .await
        .unwrap();
    let err = stream_once(&app, "rid-submit", clean_order("1001"))
        .await
        .expect_err("a SubmitRecords reply must not be replayed to StreamRecords");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // Nothing of the refused call was logged.
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3);
}

#[tokio::test]
async fn a_request_id_used_by_stream_is_refused_on_submit() {
    let app = TestApp::start().await;
    let first = stream_once(&app, "rid-stream", clean_order("1002"))
        .await
        .unwrap();
    assert_eq!(first.results.len(), 3);
    let err = app
        .submit_as("acme", "rid-stream", clean_order("1002"))
        .await
        .expect_err("a StreamRecords reply must not be replayed to SubmitRecords");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // The same method again still replays its own reply.
    let again = stream_once(&app, "rid-stream", clean_order("1002"))
        .await
        .unwrap();
    assert_eq!(again, first);
}

/// A journal naming only a charge, and the charge's order, sent at once in
/// two requests: the journal must end up linked whichever commits first.
#[tokio::test]
async fn a_journal_and_its_charge_sent_at_once_are_always_linked() {
    let app = TestApp::start().await;
    for round in 0..50 {
        let order_id = format!("race-{round}");
        let charge_id = format!("ch_{order_id}");
        let je = journal(
            &format!("JE-{order_id}"),
            &[
                ("1190 Clearing", "100.00", "", charge_id.as_str()),
                ("1200 AR", "", "100.00", charge_id.as_str()),
            ],
        );
        let (a, b) = tokio::join!(app.submit(clean_order(&order_id)), app.submit(vec![je]));
        a.unwrap();
        b.unwrap();
        let t = app.transaction(&order_id).await.unwrap();
        assert_eq!(
            t.external_ids.unwrap().journal_entry_ids,
            vec![format!("JE-{order_id}")],
            "round {round}: the journal was linked to no order"
        );
        assert_eq!(t.totals.unwrap().journaled, usd("100.00"), "round {round}");
    }
}

/// A read shows one evaluation: state, reasons and totals agree even when
/// what the current code would make of the log differs from what was
/// evaluated when the order was written (simulated here by editing a
/// stored payload, as a code change would re-interpret it).
#[tokio::test]
async fn a_read_shows_one_consistent_evaluation() {
    let app = TestApp::start().await;
    app.submit(clean_order("4001")).await.unwrap();
    let before = app.transaction("4001").await.unwrap();
    assert_eq!(before.state(), pb::ReconciliationState::Matched);

    let db = app.db.client().await;
    let changed = db
        .execute(
            "UPDATE record_log SET payload = jsonb_set(payload, '{body,total,amount}', '\"100.02\"')
             WHERE kind = 'invoice' AND order_id = '4001'",
            &[],
        )
        .await
        .unwrap();
    let payload: serde_json::Value = db
        .query_one("SELECT payload FROM record_log WHERE kind = 'invoice'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(changed, 1, "{payload}");
    assert!(payload.to_string().contains("100.02"), "{payload}");

    let t = app.transaction("4001").await.unwrap();
    let totals = t.totals.clone().unwrap();
    if t.state() == pb::ReconciliationState::Matched {
        assert_eq!(
            totals.invoiced, totals.order_total,
            "read MATCHED with totals that do not match: two evaluations mixed"
        );
    }
    let status = app.status("4001").await;
    assert_eq!(status.state, t.state);
    assert_eq!(status.reasons, t.reasons);
    // Listing shows the same evaluation as the point read.
    let listed = app
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.transactions, vec![t]);
}

/// The server ending a session under a call (an administrator, a failover)
/// is an outage, not an internal error: the call is UNAVAILABLE.
#[tokio::test]
async fn a_session_the_server_ends_mid_call_is_unavailable() {
    let app = TestApp::start().await;
    let holder = app.db.client().await;
    // Hold the order's lock (in every key form it has had) so the
    // submission waits inside its transaction.
    for key in ["acme/T1", "acme\u{1f}order\u{1f}T1"] {
        holder
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .unwrap();
    }
    let call = {
        let app_ingest = app.ingest.clone();
        tokio::spawn(async move {
            app_ingest
                .clone()
                .submit_records(pb::SubmitRecordsRequest {
                    parent: "merchants/acme".into(),
                    request_id: String::new(),
                    records: vec![order("T1", "5.00")],
                })
                .await
        })
    };
    let mut terminated = 0i64;
    for _ in 0..100 {
        terminated = holder
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event = 'advisory'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if terminated > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(terminated, 1, "the submission never waited on the lock");
    let err = call.await.unwrap().expect_err("its session was ended");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}
