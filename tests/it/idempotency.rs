use tally::proto::tally::v1 as pb;

use crate::common::*;

#[tokio::test]
async fn the_same_batch_twice_changes_nothing() {
    let app = TestApp::start().await;
    let mut batch = clean_order("1001");
    batch[2] = invoice("1001", "100.02"); // with an exception, to see it is not doubled either
    let first = app.submit(batch.clone()).await.unwrap();
    let before = app.transaction("1001").await.unwrap();

    let again = app.submit(batch).await.unwrap();
    assert_eq!(outcomes(&again), vec![pb::RecordOutcome::Duplicate; 3]);
    // A duplicate answers with the original's receive time and transaction.
    for (a, b) in first.results.iter().zip(&again.results) {
        assert_eq!(a.receive_time, b.receive_time);
        assert_eq!(a.transaction, b.transaction);
    }
    assert_eq!(app.transaction("1001").await.unwrap(), before);
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'accepted'")
            .await,
        3
    );
    // Every arrival is in the audit log, each with its outcome.
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'duplicate'")
            .await,
        3
    );
    assert_eq!(app.count("SELECT count(*) FROM exceptions").await, 1);
}

#[tokio::test]
async fn equal_amounts_written_differently_are_the_same_content() {
    let app = TestApp::start().await;
    app.submit(vec![invoice("1002", "100.00")]).await.unwrap();
    let r = app.submit(vec![invoice("1002", "100.0")]).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Duplicate]);
}

#[tokio::test]
async fn a_retried_request_returns_the_original_response() {
    let app = TestApp::start().await;
    let request_id = "0b1c5f0e-7a8a-4f51-9d55-1e7e2b3f4a01";
    let first = app
        .submit_as("acme", request_id, clean_order("1003"))
        .await
        .unwrap();
    let again = app
        .submit_as("acme", request_id, clean_order("1003"))
        .await
        .unwrap();
    // The original response, not a re-run that would say DUPLICATE.
    assert_eq!(first, again);
    assert_eq!(outcomes(&again), vec![pb::RecordOutcome::Accepted; 3]);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3);

    // The same request_id for something else is refused, and stores nothing.
    let err = app
        .submit_as("acme", request_id, vec![invoice("9999", "1.00")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3);
}

#[tokio::test]
async fn the_same_batch_from_eight_tasks_at_once_is_stored_once() {
    let app = TestApp::start().await;
    let batch: Vec<_> = (0..20)
        .flat_map(|i| clean_order(&format!("50{i:02}")))
        .collect();
    let mut accepted = vec![0; batch.len()];
    for r in eight_at_once(&app, "", &batch).await {
        for x in &r.results {
            match x.outcome() {
                pb::RecordOutcome::Accepted => accepted[x.index as usize] += 1,
                pb::RecordOutcome::Duplicate => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(
        accepted.iter().all(|n| *n == 1),
        "each record accepted exactly once: {accepted:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'accepted'")
            .await,
        60
    );
    assert_eq!(
        app.count("SELECT count(*) FROM transactions WHERE state = 'matched'")
            .await,
        20
    );
    assert_eq!(app.count("SELECT count(*) FROM exceptions").await, 0);
}

#[tokio::test]
async fn the_same_request_id_from_eight_tasks_at_once_runs_once() {
    let app = TestApp::start().await;
    let batch = clean_order("6001");
    let responses = eight_at_once(&app, "req-6001", &batch).await;
    assert!(
        responses.windows(2).all(|w| w[0] == w[1]),
        "every caller sees the one original response"
    );
    assert_eq!(
        outcomes(&responses[0]),
        vec![pb::RecordOutcome::Accepted; 3]
    );
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3);
}

#[tokio::test]
async fn a_conflict_keeps_the_original_and_raises_an_exception() {
    let app = TestApp::start().await;
    app.submit(clean_order("7001")).await.unwrap();
    let r = app.submit(vec![invoice("7001", "250.00")]).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Conflict]);
    let result = &r.results[0];
    assert_eq!(
        result.error.as_ref().unwrap().code,
        tonic::Code::AlreadyExists as i32
    );
    assert!(result.exception.starts_with("merchants/acme/exceptions/"));

    // The original stands; the transaction is flagged for a person.
    let t = app.transaction("7001").await.unwrap();
    assert_eq!(t.totals.unwrap().invoiced, usd("100.00"));
    let s = app.status("7001").await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    assert_eq!(s.exceptions.len(), 1);
    assert_eq!(s.exceptions[0].name, result.exception);
    assert_eq!(s.exceptions[0].r#type(), pb::ExceptionType::RecordConflict);
    assert_eq!(s.exceptions[0].handoff(), pb::Handoff::FulfillmentToInvoice);
    // Both sides are there for the person deciding: what is kept, what came.
    let amounts: Vec<_> = s.exceptions[0]
        .observations
        .iter()
        .map(|o| o.amount.clone())
        .collect();
    assert_eq!(amounts, vec![usd("100.00"), usd("250.00")]);

    // The same conflicting content again is the same exception, not a second.
    let again = app.submit(vec![invoice("7001", "250.00")]).await.unwrap();
    assert_eq!(again.results[0].exception, result.exception);
    assert_eq!(app.count("SELECT count(*) FROM exceptions").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'conflict'")
            .await,
        2
    );
}

#[tokio::test]
async fn duplicates_within_one_batch_are_judged_against_the_first() {
    let app = TestApp::start().await;
    let r = app
        .submit(vec![
            invoice("8001", "10.00"),
            invoice("8001", "10.00"),
            invoice("8001", "11.00"),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes(&r),
        vec![
            pb::RecordOutcome::Accepted,
            pb::RecordOutcome::Duplicate,
            pb::RecordOutcome::Conflict
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'accepted'")
            .await,
        1
    );
}

/// The same request from eight tasks at once; every call must succeed.
async fn eight_at_once(
    app: &TestApp,
    request_id: &str,
    batch: &[pb::Record],
) -> Vec<pb::SubmitRecordsResponse> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut ingest = app.ingest.clone();
            let request = pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: request_id.into(),
                records: batch.to_vec(),
            };
            tokio::spawn(async move { ingest.submit_records(request).await })
        })
        .collect();
    let mut responses = vec![];
    for t in tasks {
        let r = t
            .await
            .unwrap()
            .expect("every concurrent submission succeeds");
        responses.push(r.into_inner());
    }
    responses
}
