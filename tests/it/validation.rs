use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::record::Kind;

use crate::common::*;

fn money(currency: &str, amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: currency.into(),
        amount: amount.into(),
    })
}

fn with_kind(kind: Kind) -> pb::Record {
    let mut r = invoice("1001", "1.00");
    r.kind = Some(kind);
    r
}

/// One malformed record of every kind, and the field that must be named.
fn cases() -> Vec<(&'static str, pb::Record, &'static str)> {
    let mut c: Vec<(&str, pb::Record, &str)> = vec![];
    let mut r = invoice("1001", "1.00");
    r.source_id = String::new();
    c.push(("missing source id", r, "records[0].source_id"));
    let mut r = invoice("1001", "1.00");
    r.source_system = "NetSuite".into();
    c.push(("uppercase source system", r, "records[0].source_system"));
    let mut r = invoice("1001", "1.00");
    r.order_id = String::new();
    c.push(("invoice without order", r, "records[0].order_id"));
    let mut r = invoice("1001", "1.00");
    r.order_id = "10/01".into();
    c.push(("order id with a slash", r, "records[0].order_id"));
    let mut r = invoice("1001", "1.00");
    r.event_time = None;
    c.push(("missing event time", r, "records[0].event_time"));
    let mut r = invoice("1001", "1.00");
    r.event_time = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: -5,
    });
    c.push(("malformed timestamp", r, "records[0].event_time"));
    let mut r = invoice("1001", "1.00");
    r.event_time = Some(prost_types::Timestamp {
        seconds: 300_000_000_000,
        nanos: 0,
    });
    c.push(("timestamp past year 9999", r, "records[0].event_time"));
    let mut r = invoice("1001", "1.00");
    r.kind = None;
    c.push(("no kind", r, "records[0].kind"));
    let mut r = invoice("1001", "1.00");
    r.references = vec![pb::ExternalReference {
        r#type: 0,
        id: "x".into(),
    }];
    c.push(("reference without type", r, "records[0].references[0].type"));

    let mut o = order("1001", "100.00");
    if let Some(Kind::StorefrontOrder(so)) = &mut o.kind {
        so.total = money("ZZZ", "100.00");
    }
    c.push((
        "order: unknown currency",
        o,
        "records[0].storefront_order.total.currency_code",
    ));
    let mut o = order("1001", "100.00");
    if let Some(Kind::StorefrontOrder(so)) = &mut o.kind {
        so.tenders[0].amount = money("USD", "100.001");
    }
    c.push((
        "order: more decimals than USD allows",
        o,
        "records[0].storefront_order.tenders[0].amount.amount",
    ));
    let mut o = order("1001", "100.00");
    if let Some(Kind::StorefrontOrder(so)) = &mut o.kind {
        so.line_items[0].quantity = 0;
    }
    c.push((
        "order: zero quantity",
        o,
        "records[0].storefront_order.line_items[0].quantity",
    ));
    let mut o = order("1001", "100.00");
    if let Some(Kind::StorefrontOrder(so)) = &mut o.kind {
        so.discounts = vec![pb::Discount {
            code: "SUMMER".into(),
            amount: money("USD", "-5.00"),
        }];
    }
    c.push((
        "order: negative discount",
        o,
        "records[0].storefront_order.discounts[0].amount.amount",
    ));

    c.push((
        "transaction: no kind",
        with_kind(Kind::StorefrontTransaction(pb::StorefrontTransaction {
            status: pb::StorefrontTransactionStatus::Success as i32,
            amount: money("USD", "1.00"),
            ..Default::default()
        })),
        "records[0].storefront_transaction.kind",
    ));
    c.push((
        "transaction: negative amount",
        with_kind(Kind::StorefrontTransaction(pb::StorefrontTransaction {
            kind: pb::StorefrontTransactionKind::Refund as i32,
            status: pb::StorefrontTransactionStatus::Success as i32,
            amount: money("USD", "-1.00"),
            ..Default::default()
        })),
        "records[0].storefront_transaction.amount.amount",
    ));
    c.push((
        "fulfilment: line without sku",
        with_kind(Kind::Fulfillment(pb::Fulfillment {
            lines: vec![pb::FulfillmentLine {
                sku: String::new(),
                quantity: 1,
            }],
            ..Default::default()
        })),
        "records[0].fulfillment.lines[0].sku",
    ));
    c.push((
        "invoice: JPY with decimals",
        with_kind(Kind::Invoice(pb::Invoice {
            total: money("JPY", "1500.5"),
            ..Default::default()
        })),
        "records[0].invoice.total.amount",
    ));
    c.push((
        "invoice: missing total",
        with_kind(Kind::Invoice(pb::Invoice::default())),
        "records[0].invoice.total",
    ));
    c.push((
        "credit memo: not a number",
        with_kind(Kind::CreditMemo(pb::CreditMemo {
            total: money("USD", "1e3"),
            ..Default::default()
        })),
        "records[0].credit_memo.total.amount",
    ));
    let mut je = journal(
        "JE-1",
        &[
            ("1190 Clearing", "10.00", "", ""),
            ("1200 AR", "", "9.99", ""),
        ],
    );
    je.order_id = "1001".into();
    c.push(("journal: unbalanced", je, "records[0].journal_entry.lines"));
    c.push((
        "journal: one line",
        journal("JE-2", &[("1190 Clearing", "10.00", "", "")]),
        "records[0].journal_entry.lines",
    ));
    c.push((
        "journal: both debit and credit",
        journal(
            "JE-3",
            &[
                ("1190 Clearing", "10.00", "10.00", ""),
                ("1200 AR", "", "", ""),
            ],
        ),
        "records[0].journal_entry.lines[0]",
    ));
    c.push((
        "journal: KWD line with four decimals",
        {
            let mut j = journal(
                "JE-4",
                &[("1190", "1.2345", "", ""), ("1200", "", "1.2345", "")],
            );
            if let Some(Kind::JournalEntry(e)) = &mut j.kind {
                e.currency_code = "KWD".into();
            }
            j
        },
        "records[0].journal_entry.lines[0].debit",
    ));
    c.push((
        "payment: fee in another currency without a rate",
        with_kind(Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Charge as i32,
            amount: money("EUR", "10.00"),
            fee: money("USD", "0.30"),
            ..Default::default()
        })),
        "records[0].processor_payment.exchange_rate",
    ));
    c.push((
        "payment: zero exchange rate",
        with_kind(Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Charge as i32,
            amount: money("USD", "10.00"),
            exchange_rate: "0".into(),
            ..Default::default()
        })),
        "records[0].processor_payment.exchange_rate",
    ));
    c.push((
        "balance transaction: no category",
        with_kind(Kind::BalanceTransaction(pb::BalanceTransaction {
            amount: money("USD", "-10.00"),
            ..Default::default()
        })),
        "records[0].balance_transaction.reporting_category",
    ));
    c.push((
        "balance transaction: negative fee",
        with_kind(Kind::BalanceTransaction(pb::BalanceTransaction {
            reporting_category: "charge".into(),
            amount: money("USD", "10.00"),
            fee: money("USD", "-0.30"),
            ..Default::default()
        })),
        "records[0].balance_transaction.fee.amount",
    ));
    c.push((
        "payout: no status",
        with_kind(Kind::Payout(pb::Payout {
            amount: money("USD", "-5.00"),
            ..Default::default()
        })),
        "records[0].payout.status",
    ));
    c.push((
        "bank deposit: negative",
        with_kind(Kind::BankDeposit(pb::BankDeposit {
            amount: money("USD", "-5.00"),
            ..Default::default()
        })),
        "records[0].bank_deposit.amount.amount",
    ));
    c
}

#[tokio::test]
async fn every_malformed_field_is_named_and_nothing_is_stored() {
    let app = TestApp::start().await;
    for (what, record, field) in cases() {
        let err = app.submit(vec![record]).await.expect_err(what);
        let fields = bad_fields(&err);
        assert!(
            fields.contains(&field.to_string()),
            "{what}: expected {field}, got {fields:?}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM transactions").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM exceptions").await, 0);
}

#[tokio::test]
async fn one_bad_record_rejects_the_whole_batch() {
    let app = TestApp::start().await;
    let mut batch = clean_order("2001");
    let mut bad = invoice("2002", "1.00");
    bad.source_id = String::new();
    batch.push(bad);
    let err = app.submit(batch).await.unwrap_err();
    assert_eq!(bad_fields(&err), vec!["records[3].source_id"]);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 0);
    assert_eq!(
        app.transaction("2001").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn every_violation_of_a_batch_is_listed() {
    let app = TestApp::start().await;
    let mut a = invoice("1", "1.00");
    a.source_id = String::new();
    let mut b = order("2", "1.00");
    b.source_system = String::new();
    let err = app
        .submit(vec![a, invoice("3", "1.00"), b])
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&err),
        vec!["records[0].source_id", "records[2].source_system"]
    );
}

#[tokio::test]
async fn batch_envelope_is_checked() {
    let app = TestApp::start().await;
    let err = app.submit(vec![]).await.unwrap_err();
    assert_eq!(bad_fields(&err), vec!["records"]);

    let oversize: Vec<_> = (0..1001).map(|i| invoice(&i.to_string(), "1.00")).collect();
    let err = app.submit(oversize).await.unwrap_err();
    assert_eq!(bad_fields(&err), vec!["records"]);

    let err = app
        .submit_as("Not A Merchant", "", clean_order("1"))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["parent"]);

    let err = app
        .submit_as("acme", "has spaces in it", clean_order("1"))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["request_id"]);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 0);
}

#[tokio::test]
async fn lowercase_currency_is_normalised_and_three_decimal_currencies_work() {
    let app = TestApp::start().await;
    let mut o = order("3001", "12.345");
    if let Some(Kind::StorefrontOrder(so)) = &mut o.kind {
        so.total = money("kwd", "12.345");
        so.tenders[0].amount = money("KWD", "12.345");
    }
    app.submit(vec![o]).await.unwrap();
    let t = app.transaction("3001").await.unwrap();
    assert_eq!(t.currency_code, "KWD");
    assert_eq!(t.totals.unwrap().order_total, money("KWD", "12.345"));
}
