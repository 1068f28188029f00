use tally::proto::tally::v1 as pb;
use tonic_types::RpcStatusExt;

use crate::common::*;

/// Sends every chunk on one stream and returns the response stream.
async fn open(
    app: &TestApp,
    chunks: Vec<pb::StreamRecordsRequest>,
) -> tonic::Streaming<pb::StreamRecordsResponse> {
    app.ingest
        .clone()
        .stream_records(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner()
}

fn chunk(request_id: &str, records: Vec<pb::Record>) -> pb::StreamRecordsRequest {
    pb::StreamRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: request_id.into(),
        records,
    }
}

#[tokio::test]
async fn each_chunk_gets_one_response_in_order_and_bad_records_are_rejected_alone() {
    let app = TestApp::start().await;
    let mut bad = invoice("1002", "1.00");
    bad.source_system = String::new();
    let chunks = vec![
        chunk("c1", clean_order("1001")),
        chunk(
            "c2",
            vec![order("1002", "5.00"), bad, charge("1002", "5.00")],
        ),
        chunk("c3", clean_order("1001")),
    ];
    let mut responses = open(&app, chunks).await;
    let mut got = vec![];
    while let Some(r) = responses.message().await.unwrap() {
        got.push(r);
    }
    assert_eq!(
        got.iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["c1", "c2", "c3"]
    );
    let outcomes =
        |r: &pb::StreamRecordsResponse| r.results.iter().map(|x| x.outcome()).collect::<Vec<_>>();
    assert_eq!(outcomes(&got[0]), vec![pb::RecordOutcome::Accepted; 3]);
    assert_eq!(
        outcomes(&got[1]),
        vec![
            pb::RecordOutcome::Accepted,
            pb::RecordOutcome::Rejected,
            pb::RecordOutcome::Accepted
        ]
    );
    assert_eq!(
        got[1].results.iter().map(|x| x.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let error = got[1].results[1].error.as_ref().unwrap();
    assert_eq!(error.code, tonic::Code::InvalidArgument as i32);
    let violations = error
        .get_details_bad_request()
        .expect("BadRequest detail")
        .field_violations;
    assert_eq!(violations[0].field, "records[1].source_system");
    assert!(error.get_details_error_info().is_some());
    // A later chunk repeating records is idempotent like a batch.
    assert_eq!(outcomes(&got[2]), vec![pb::RecordOutcome::Duplicate; 3]);

    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'accepted'")
            .await,
        5
    );
    assert_eq!(
        app.status("1001").await.state(),
        pb::ReconciliationState::Matched
    );
}

#[tokio::test]
async fn a_bad_chunk_envelope_fails_the_stream() {
    let app = TestApp::start().await;
    let mut bad = chunk("", clean_order("1"));
    bad.parent = "nope".into();
    let mut responses = open(&app, vec![chunk("", clean_order("2")), bad]).await;
    let first = responses.message().await.unwrap().unwrap();
    assert_eq!(first.results.len(), 3);
    let err = responses.message().await.unwrap_err();
    assert_eq!(bad_fields(&err), vec!["parent"]);
}

#[tokio::test]
async fn a_retried_chunk_returns_its_original_response() {
    let app = TestApp::start().await;
    let mut a = open(&app, vec![chunk("chunk-4001", clean_order("4001"))]).await;
    let mut b = open(&app, vec![chunk("chunk-4001", clean_order("4001"))]).await;
    let (a, b) = (
        a.message().await.unwrap().unwrap(),
        b.message().await.unwrap().unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3);
}

#[tokio::test]
async fn chunks_stored_together_still_fail_one_at_a_time() {
    let app = TestApp::start().await;
    app.submit_as("acme", "used", vec![invoice("1", "1.00")])
        .await
        .unwrap();
    // All three are waiting at once, so they are stored as a group; the
    // second reuses a request_id for other content, which must fail only
    // from there on: the first is stored and answered, the third never runs.
    let chunks = vec![
        chunk("", clean_order("5001")),
        chunk("used", vec![invoice("2", "2.00")]),
        chunk("", clean_order("5003")),
    ];
    let mut responses = open(&app, chunks).await;
    let first = responses.message().await.unwrap().unwrap();
    assert_eq!(first.results.len(), 3);
    let err = responses.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(
        app.status("5001").await.state(),
        pb::ReconciliationState::Matched
    );
    assert_eq!(
        app.transaction("5003").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn many_small_chunks_each_get_their_answer() {
    let app = TestApp::start().await;
    let chunks: Vec<_> = (0..200)
        .map(|i| chunk(&format!("c{i}"), vec![invoice(&format!("6{i:03}"), "1.00")]))
        .collect();
    let mut responses = open(&app, chunks).await;
    let mut n = 0;
    while let Some(r) = responses.message().await.unwrap() {
        assert_eq!(r.request_id, format!("c{n}"));
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].outcome(), pb::RecordOutcome::Accepted);
        n += 1;
    }
    assert_eq!(n, 200);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 200);
    assert_eq!(app.count("SELECT count(*) FROM submissions").await, 200);
}

/// A client that fell behind has many chunks waiting: they are stored
/// together, but never more than a batch of records in one transaction
/// (each transaction holds its orders' locks until it commits).
#[tokio::test]
async fn waiting_chunks_are_committed_a_batch_of_records_at_most() {
    let app = TestApp::start().await;
    let chunks: Vec<_> = (0..8)
        .map(|c| {
            let records = (0..400)
                .map(|i| invoice(&format!("{c}{i:03}"), "1.00"))
                .collect();
            chunk(&format!("c{c}"), records)
        })
        .collect();
    let mut responses = open(&app, chunks).await;
    let mut n = 0;
    while let Some(r) = responses.message().await.unwrap() {
        assert_eq!(r.results.len(), 400);
        n += 1;
    }
    assert_eq!(n, 8);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3200);
    let largest = app
        .count("SELECT max(n) FROM (SELECT count(*) AS n FROM record_log GROUP BY xmin::text) t")
        .await;
    assert!(largest <= 1000, "{largest} records in one transaction");
}
