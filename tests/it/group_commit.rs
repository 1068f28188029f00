//! One-record SubmitRecords calls in flight together share a transaction
//! (`app/group_commit.rs`): each call must still get exactly its own
//! answer, one call's error must not be another's, and what is stored must
//! be what the same records submitted one batch at a time store.

use tally::proto::tally::v1 as pb;

use crate::common::*;

#[tokio::test]
async fn calls_in_flight_together_each_get_their_own_answer() {
    let app = TestApp::start().await;
    // A request_id already answered, to be reused for other content below.
    app.submit_as("acme", "req-taken", vec![invoice("8999", "1.00")])
        .await
        .unwrap();
    // 12 orders: 36 one-record calls at once, plus one call that must fail.
    let records: Vec<pb::Record> = (0..12)
        .flat_map(|i| {
            let mut order = clean_order(&format!("88{i:02}"));
            if i % 4 == 0 {
                order[2] = invoice(&format!("88{i:02}"), "99.00");
            }
            order
        })
        .collect();
    let calls = records.iter().cloned().map(|r| {
        let app = &app;
        async move {
            let id = r.source_id.clone();
            (id, app.submit(vec![r]).await)
        }
    });
    let reused = app.submit_as("acme", "req-taken", vec![invoice("8998", "2.00")]);
    let (answers, reused) = tokio::join!(futures::future::join_all(calls), reused);
    assert_eq!(reused.unwrap_err().code(), tonic::Code::AlreadyExists);
    for (id, answer) in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.results.len(), 1, "{id}: its own record only");
        assert_eq!(answer.results[0].index, 0);
        assert_eq!(answer.results[0].source_id, id);
        assert_eq!(answer.results[0].outcome(), pb::RecordOutcome::Accepted);
    }
    // The refused call stored nothing; the others everything, once.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM record_log WHERE order_id LIKE '88%' AND outcome = 'accepted'"
        )
        .await,
        36
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE order_id = '8998'")
            .await,
        0
    );
    // As one batch would have left them: clean orders matched, the three
    // with a short invoice in exception, and open exceptions on those only.
    for i in 0..12 {
        let want = if i % 4 == 0 {
            pb::ReconciliationState::Exception
        } else {
            pb::ReconciliationState::Matched
        };
        assert_eq!(
            app.status(&format!("88{i:02}")).await.state(),
            want,
            "order 88{i:02}"
        );
    }
    assert_eq!(
        app.count(
            "SELECT count(DISTINCT order_id) FROM exceptions WHERE order_id LIKE '88%' AND state = 'open'"
        )
            .await,
        3
    );
}
