use tally::proto::tally::v1 as pb;

use crate::common::*;

#[tokio::test]
async fn an_order_with_its_capture_and_invoice_reads_back_matched() {
    let app = TestApp::start().await;
    let r = app.submit(clean_order("1001")).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 3]);
    assert!(
        r.results
            .iter()
            .all(|x| x.transaction == "merchants/acme/transactions/1001")
    );
    assert_eq!(
        r.results.iter().map(|x| x.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );

    let t = app.transaction("1001").await.unwrap();
    assert_eq!(t.name, "merchants/acme/transactions/1001");
    assert_eq!(t.state(), pb::ReconciliationState::Matched);
    assert_eq!(t.currency_code, "USD");
    let ids = t.external_ids.unwrap();
    assert_eq!(ids.order_ids, vec!["1001"]);
    assert_eq!(ids.charge_ids, vec!["ch_1001"]);
    assert_eq!(ids.payment_intent_ids, vec!["pi_1001"]);
    assert_eq!(ids.invoice_ids, vec!["INV-1001"]);
    let totals = t.totals.unwrap();
    assert_eq!(totals.order_total, usd("100.00"));
    assert_eq!(totals.captured, usd("100.00"));
    assert_eq!(totals.invoiced, usd("100.00"));
    assert_eq!(totals.processor_fees, usd("3.20"));
    assert_eq!(t.tenders.len(), 1);
    // The timeline runs in event order, with both clocks.
    let stages: Vec<_> = t.timeline.iter().map(|e| e.stage()).collect();
    assert_eq!(
        stages,
        vec![
            pb::Stage::OrderCapture,
            pb::Stage::PaymentCapture,
            pb::Stage::Invoice
        ]
    );
    assert!(
        t.timeline
            .iter()
            .all(|e| e.event_time.is_some() && e.receive_time.is_some())
    );

    let s = app.status("1001").await;
    assert_eq!(s.state(), pb::ReconciliationState::Matched);
    assert!(s.reasons.is_empty() && s.exceptions.is_empty());
}

#[tokio::test]
async fn a_partial_order_is_pending_with_reasons() {
    let app = TestApp::start().await;
    app.submit(vec![order("2001", "40.00")]).await.unwrap();
    let s = app.status("2001").await;
    assert_eq!(s.state(), pb::ReconciliationState::Pending);
    assert!(
        s.reasons.iter().any(|r| r.contains("invoice")),
        "{:?}",
        s.reasons
    );
    assert!(
        s.reasons.iter().any(|r| r.contains("capture")),
        "{:?}",
        s.reasons
    );
}

#[tokio::test]
async fn records_of_no_single_order_are_stored_without_a_transaction() {
    let app = TestApp::start().await;
    let r = app
        .submit(vec![journal(
            "JE-FEES-1",
            &[
                ("6100 Processing fees", "3.20", "", "po_1"),
                ("1190 Clearing", "", "3.20", "po_1"),
            ],
        )])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted]);
    assert_eq!(r.results[0].transaction, "");
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE kind = 'journal_entry'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM transactions").await, 0);
}

#[tokio::test]
async fn unknown_transactions_are_not_found_and_merchants_are_isolated() {
    let app = TestApp::start().await;
    app.submit(clean_order("3001")).await.unwrap();
    let err = app.transaction("nope").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Another merchant sees nothing of acme's.
    let mut tx = app.transactions.clone();
    let err = tx
        .get_transaction(pb::GetTransactionRequest {
            name: "merchants/globex/transactions/3001".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let list = tx
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/globex".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.transactions.is_empty());

    // Nor its exceptions, nor its request ids.
    app.submit(vec![order("3002", "10.00"), invoice("3002", "12.00")])
        .await
        .unwrap();
    let theirs = app
        .exceptions
        .clone()
        .list_exceptions(pb::ListExceptionsRequest {
            parent: "merchants/globex".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.exceptions.is_empty());
    let ours = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(ours.exceptions.len(), 1);
    app.submit_as("acme", "shared-id", vec![invoice("3003", "1.00")])
        .await
        .unwrap();
    let r = app
        .submit_as("globex", "shared-id", vec![invoice("3004", "2.00")])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted]);

    // The same order id under another merchant is another transaction.
    let r = app
        .submit_as("globex", "", vec![invoice("3001", "7.00")])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted]);
    assert_eq!(
        app.transaction("3001")
            .await
            .unwrap()
            .totals
            .unwrap()
            .invoiced,
        usd("100.00")
    );
}

#[tokio::test]
async fn bad_resource_names_are_invalid_arguments() {
    let app = TestApp::start().await;
    let mut tx = app.transactions.clone();
    for name in [
        "",
        "merchants/acme",
        "merchants/acme/orders/1",
        "merchants/ACME/transactions/1",
    ] {
        let err = tx
            .get_transaction(pb::GetTransactionRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&err), vec!["name"], "{name}");
    }
}
