use tally::proto::tally::v1 as pb;

use crate::common::*;

#[tokio::test]
async fn two_cents_between_invoice_and_capture_is_an_amount_mismatch() {
    let app = TestApp::start().await;
    app.submit(vec![
        order("1001", "100.00"),
        charge("1001", "100.00"),
        invoice("1001", "100.02"),
    ])
    .await
    .unwrap();

    let s = app.status("1001").await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    assert_eq!(s.exceptions.len(), 1, "{:?}", s.exceptions);
    let e = &s.exceptions[0];
    assert_eq!(e.r#type(), pb::ExceptionType::AmountMismatch);
    assert_eq!(e.handoff(), pb::Handoff::FulfillmentToInvoice);
    assert_eq!(e.state(), pb::ExceptionState::Open);
    assert_eq!(e.transaction, "merchants/acme/transactions/1001");
    assert_eq!(e.difference, usd("0.02"));
    let systems: Vec<_> = e
        .observations
        .iter()
        .map(|o| o.source_system.as_str())
        .collect();
    assert_eq!(systems, vec!["shopify", "netsuite"]);
    assert_eq!(e.observations[1].source_ids, vec!["INV-1001"]);
    assert_eq!(e.observations[1].amount, usd("100.02"));
    assert!(
        e.summary.contains("100.02") && e.summary.contains("INV-1001"),
        "{}",
        e.summary
    );

    let listed = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            r#type: pb::ExceptionType::AmountMismatch as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(listed.exceptions.len(), 1);
    assert_eq!(listed.exceptions[0].name, e.name);
}

#[tokio::test]
async fn one_cent_is_within_tolerance() {
    let app = TestApp::start().await;
    app.submit(vec![
        order("1002", "100.00"),
        charge("1002", "100.01"),
        invoice("1002", "99.99"),
    ])
    .await
    .unwrap();
    assert_eq!(
        app.status("1002").await.state(),
        pb::ReconciliationState::Matched
    );
}

#[tokio::test]
async fn a_late_correct_record_resolves_the_mismatch_it_explains() {
    let app = TestApp::start().await;
    // Half captured: the order looks under-captured until the rest arrives.
    let mut first = charge("1003", "60.00");
    first.source_id = "ch_1003_a".into();
    app.submit(vec![
        order("1003", "100.00"),
        invoice("1003", "100.00"),
        first,
    ])
    .await
    .unwrap();
    let s = app.status("1003").await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    let name = s.exceptions[0].name.clone();

    let mut second = charge("1003", "40.00");
    second.source_id = "ch_1003_b".into();
    app.submit(vec![second]).await.unwrap();
    let s = app.status("1003").await;
    assert_eq!(
        s.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        s.reasons
    );
    let resolved = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            state: pb::ExceptionState::Resolved as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(resolved.exceptions.len(), 1);
    assert_eq!(resolved.exceptions[0].name, name);
    assert!(resolved.exceptions[0].resolve_time.is_some());
}

#[tokio::test]
async fn a_fulfilment_before_its_order_is_out_of_sequence() {
    let app = TestApp::start().await;
    let mut records = clean_order("1004");
    records.push(fulfillment("1004", "2026-11-02T09:00:00Z"));
    app.submit(records).await.unwrap();
    let s = app.status("1004").await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    let types: Vec<_> = s
        .exceptions
        .iter()
        .map(|e| (e.r#type(), e.rule.as_str(), e.handoff()))
        .collect();
    assert!(
        types.contains(&(
            pb::ExceptionType::OutOfSequence,
            "fulfillment_before_order",
            pb::Handoff::OrderToFulfillment
        )),
        "{types:?}"
    );
    // The invoice (12:00) follows the shipment (09:00): that part is in order.
    assert!(!types.iter().any(|t| t.1 == "invoice_before_fulfillment"));
}

#[tokio::test]
async fn an_invoice_before_its_shipment_is_out_of_sequence() {
    let app = TestApp::start().await;
    let mut records = clean_order("1005");
    records.push(fulfillment("1005", "2026-11-02T15:00:00Z"));
    app.submit(records).await.unwrap();
    let s = app.status("1005").await;
    let rules: Vec<_> = s.exceptions.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(rules, vec!["invoice_before_fulfillment"]);
    assert_eq!(s.exceptions[0].handoff(), pb::Handoff::FulfillmentToInvoice);
}

#[tokio::test]
async fn a_journal_that_books_a_different_gross_is_flagged() {
    let app = TestApp::start().await;
    let mut je = journal(
        "JE-1006",
        &[
            ("1190 Clearing", "99.00", "", "ch_1006"),
            ("1200 AR", "", "99.00", "ch_1006"),
        ],
    );
    je.order_id = "1006".into();
    let mut records = clean_order("1006");
    records.push(je);
    app.submit(records).await.unwrap();
    let s = app.status("1006").await;
    let rules: Vec<_> = s
        .exceptions
        .iter()
        .map(|e| (e.rule.as_str(), e.handoff()))
        .collect();
    assert_eq!(
        rules,
        vec![(
            "processor_vs_journal",
            pb::Handoff::PaymentToCashApplication
        )]
    );
    assert_eq!(s.exceptions[0].difference, usd("1.00"));
}

#[tokio::test]
async fn a_journal_naming_only_the_charge_is_matched_whichever_arrives_first() {
    let app = TestApp::start().await;
    // Journal first: it names the charge, and no order yet.
    app.submit(vec![journal(
        "JE-7001",
        &[
            ("1190 Clearing", "99.00", "", "ch_7001"),
            ("1200 AR", "", "99.00", "ch_7001"),
        ],
    )])
    .await
    .unwrap();
    app.submit(clean_order("7001")).await.unwrap();
    let s = app.status("7001").await;
    let rules: Vec<_> = s.exceptions.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(rules, vec!["processor_vs_journal"]);
    let t = app.transaction("7001").await.unwrap();
    assert_eq!(t.external_ids.unwrap().journal_entry_ids, vec!["JE-7001"]);

    // Journal after, and right: matched, and journaled.
    app.submit(clean_order("7002")).await.unwrap();
    app.submit(vec![journal(
        "JE-7002",
        &[
            ("1190 Clearing", "100.00", "", "ch_7002"),
            ("1200 AR", "", "100.00", "ch_7002"),
        ],
    )])
    .await
    .unwrap();
    let t = app.transaction("7002").await.unwrap();
    assert_eq!(
        t.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        t.reasons
    );
    assert_eq!(t.totals.unwrap().journaled, usd("100.00"));
    assert_eq!(t.external_ids.unwrap().journal_entry_ids, vec!["JE-7002"]);
    assert!(
        t.timeline
            .iter()
            .any(|e| e.stage() == pb::Stage::CashApplication)
    );
}

#[tokio::test]
async fn a_balance_transaction_that_does_not_add_up_is_flagged_and_joins_its_order() {
    let app = TestApp::start().await;
    let bt = pb::Record {
        source_id: "txn_8001".into(),
        source_system: "stripe".into(),
        order_id: String::new(),
        references: vec![],
        event_time: ts("2026-11-02T10:00:06Z"),
        source_update_time: None,
        kind: Some(pb::record::Kind::BalanceTransaction(
            pb::BalanceTransaction {
                reporting_category: "charge".into(),
                amount: usd("100.00"),
                fee: usd("3.20"),
                net: usd("97.00"),
                source: "ch_8001".into(),
                payout_id: "po_8001".into(),
                ..Default::default()
            },
        )),
    };
    app.submit(vec![bt]).await.unwrap();
    let open = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(open.exceptions.len(), 1);
    assert_eq!(open.exceptions[0].rule, "balance_transaction_net");
    assert_eq!(
        open.exceptions[0].r#type(),
        pb::ExceptionType::ValidationFailed
    );
    assert_eq!(open.exceptions[0].transaction, "", "no order known yet");
    assert_eq!(open.exceptions[0].difference, usd("0.20"));

    // Its charge arrives: the same exception now belongs to the order, and
    // the payout is among the order's ids.
    app.submit(clean_order("8001")).await.unwrap();
    let s = app.status("8001").await;
    assert_eq!(s.exceptions.len(), 1);
    assert_eq!(s.exceptions[0].name, open.exceptions[0].name);
    assert_eq!(
        s.exceptions[0].transaction,
        "merchants/acme/transactions/8001"
    );
    let ids = app.transaction("8001").await.unwrap().external_ids.unwrap();
    assert_eq!(ids.payout_ids, vec!["po_8001"]);
    assert_eq!(ids.balance_transaction_ids, vec!["txn_8001"]);
}

fn sf_txn(
    id: &str,
    order_id: &str,
    kind: pb::StorefrontTransactionKind,
    gateway: &str,
    amount: &str,
    processor: &str,
) -> pb::Record {
    pb::Record {
        source_id: id.into(),
        source_system: "shopify".into(),
        order_id: order_id.into(),
        references: vec![],
        event_time: ts("2026-11-02T10:00:02Z"),
        source_update_time: None,
        kind: Some(pb::record::Kind::StorefrontTransaction(
            pb::StorefrontTransaction {
                kind: kind as i32,
                status: pb::StorefrontTransactionStatus::Success as i32,
                gateway: gateway.into(),
                amount: usd(amount),
                parent_id: String::new(),
                processor_reference: processor.into(),
            },
        )),
    }
}

#[tokio::test]
async fn a_split_tender_refunded_and_credited_reconciles() {
    use pb::StorefrontTransactionKind as K;
    let app = TestApp::start().await;
    let mut o = order("9101", "100.00");
    if let Some(pb::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.tenders = vec![
            pb::Tender {
                r#type: pb::TenderType::Card as i32,
                gateway: "stripe".into(),
                amount: usd("80.00"),
                processor_reference: "ch_9101".into(),
            },
            pb::Tender {
                r#type: pb::TenderType::GiftCard as i32,
                gateway: "gift_card".into(),
                amount: usd("20.00"),
                processor_reference: String::new(),
            },
        ];
    }
    let mut card = charge("9101", "80.00");
    card.source_id = "ch_9101".into();
    app.submit(vec![
        o,
        sf_txn("t1", "9101", K::Capture, "stripe", "80.00", "ch_9101"),
        sf_txn("t2", "9101", K::Sale, "gift_card", "20.00", ""),
        card,
        invoice("9101", "100.00"),
    ])
    .await
    .unwrap();
    let t = app.transaction("9101").await.unwrap();
    assert_eq!(
        t.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        t.reasons
    );
    let totals = t.totals.unwrap();
    assert_eq!(
        totals.captured,
        usd("100.00"),
        "the card counted once, at the processor's figure"
    );
    assert_eq!(totals.storefront_captured, usd("100.00"));
    assert_eq!(
        t.external_ids.unwrap().storefront_transaction_ids,
        vec!["t1", "t2"]
    );

    // A refund the ERP has not credited yet leaves the order pending...
    app.submit(vec![sf_txn(
        "t3",
        "9101",
        K::Refund,
        "stripe",
        "15.00",
        "ch_9101",
    )])
    .await
    .unwrap();
    let s = app.status("9101").await;
    assert_eq!(s.state(), pb::ReconciliationState::Pending);
    assert!(
        s.reasons.iter().any(|r| r.contains("not yet credited")),
        "{:?}",
        s.reasons
    );

    // ...and a credit memo for the wrong amount is a mismatch.
    let memo = pb::Record {
        source_id: "CM-9101".into(),
        source_system: "netsuite".into(),
        order_id: "9101".into(),
        references: vec![],
        event_time: ts("2026-11-04T09:00:00Z"),
        source_update_time: None,
        kind: Some(pb::record::Kind::CreditMemo(pb::CreditMemo {
            total: usd("10.00"),
            ..Default::default()
        })),
    };
    app.submit(vec![memo]).await.unwrap();
    let s = app.status("9101").await;
    let rules: Vec<_> = s.exceptions.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(rules, vec!["refunded_vs_credited"]);
    assert_eq!(s.exceptions[0].difference, usd("5.00"));
}
