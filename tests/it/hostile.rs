//! Input meant to hurt: each class refused with INVALID_ARGUMENT naming the
//! field (or RESOURCE_EXHAUSTED for size), nothing stored, and the same
//! shapes with honest values accepted.

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::record::Kind;
use tonic::Code;

use crate::common::*;

/// 28 nines: ten of them overflow the 96-bit decimal.
const NEAR_MAX: &str = "9999999999999999999999999999";

fn journal_with(f: impl FnOnce(&mut pb::JournalEntry)) -> pb::Record {
    let mut j = journal(
        "JE-1",
        &[("1190", "10.00", "", "ch_1"), ("1200", "", "10.00", "")],
    );
    if let Some(Kind::JournalEntry(e)) = &mut j.kind {
        f(e);
    }
    j
}

fn order_with(id: &str, f: impl FnOnce(&mut pb::StorefrontOrder)) -> pb::Record {
    let mut o = order(id, "100.00");
    if let Some(Kind::StorefrontOrder(so)) = &mut o.kind {
        f(so);
    }
    o
}

/// Submits one record alone; asserts it is refused naming exactly `field`
/// and that nothing was stored.
async fn refused(app: &TestApp, record: pb::Record, field: &str) {
    let before = app.count("SELECT count(*) FROM record_log").await;
    let status = app
        .submit(vec![record])
        .await
        .expect_err(&format!("accepted, expected {field} refused"));
    let fields = bad_fields(&status);
    assert!(
        fields.iter().any(|f| f == field),
        "{field} not in {fields:?}"
    );
    assert!(
        status.message().len() < 600,
        "an error message quoting too much: {} bytes",
        status.message().len()
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_log").await,
        before,
        "refused but stored"
    );
}

#[tokio::test]
async fn nul_in_any_text_field_of_a_journal_is_named_not_internal() {
    let app = TestApp::start().await;
    let p = "records[0].journal_entry";
    let cases: Vec<(pb::Record, String)> = vec![
        (
            journal_with(|e| e.memo = "a\0b".into()),
            format!("{p}.memo"),
        ),
        (
            journal_with(|e| e.posting_period = "Nov\0".into()),
            format!("{p}.posting_period"),
        ),
        (
            journal_with(|e| e.subsidiary = "\0".into()),
            format!("{p}.subsidiary"),
        ),
        (
            journal_with(|e| e.lines[0].memo = "x\0".into()),
            format!("{p}.lines[0].memo"),
        ),
        (
            journal_with(|e| e.lines[1].name = "\0x".into()),
            format!("{p}.lines[1].name"),
        ),
        (
            journal_with(|e| e.lines[0].reference = "ch_\u{0}1".into()),
            format!("{p}.lines[0].reference"),
        ),
        (
            journal_with(|e| e.lines[1].account = "12\u{0}00".into()),
            format!("{p}.lines[1].account"),
        ),
        (
            journal_with(|e| e.lines[0].debit = "10\0".into()),
            format!("{p}.lines[0].debit"),
        ),
        (
            journal_with(|e| e.exchange_rate = "1\0".into()),
            format!("{p}.exchange_rate"),
        ),
        (
            journal_with(|e| e.currency_code = "US\0".into()),
            format!("{p}.currency_code"),
        ),
    ];
    for (record, field) in cases {
        refused(&app, record, &field).await;
    }
    // Clean, with text a person writes: line breaks, accents, CJK.
    let ok = journal_with(|e| {
        e.memo = "Payout po_1\nfees for November: café, 注文".into();
        e.lines[0].name = "Zoë's Boutique".into();
    });
    assert_eq!(
        outcomes(&app.submit(vec![ok]).await.unwrap()),
        vec![pb::RecordOutcome::Accepted]
    );
}

#[tokio::test]
async fn nul_in_a_text_field_of_every_other_kind_is_named() {
    let app = TestApp::start().await;
    let mut cases: Vec<(pb::Record, &str)> = vec![];
    cases.push((
        order_with("1", |o| o.name = "#1\0".into()),
        "records[0].storefront_order.name",
    ));
    cases.push((
        order_with("1", |o| o.line_items[0].sku = "TEE\0".into()),
        "records[0].storefront_order.line_items[0].sku",
    ));
    cases.push((
        order_with("1", |o| o.tenders[0].gateway = "stripe\0".into()),
        "records[0].storefront_order.tenders[0].gateway",
    ));
    cases.push((
        order_with("1", |o| o.tenders[0].processor_reference = "pi\0".into()),
        "records[0].storefront_order.tenders[0].processor_reference",
    ));
    cases.push((
        order_with("1", |o| {
            o.discounts = vec![pb::Discount {
                code: "SUMMER\0".into(),
                amount: usd("1.00"),
            }]
        }),
        "records[0].storefront_order.discounts[0].code",
    ));
    let mut f = fulfillment("1", "2026-11-02T11:00:00Z");
    if let Some(Kind::Fulfillment(x)) = &mut f.kind {
        x.tracking_number = "1Z\0".into();
    }
    cases.push((f, "records[0].fulfillment.tracking_number"));
    let mut c = charge("1", "1.00");
    if let Some(Kind::ProcessorPayment(x)) = &mut c.kind {
        x.charge_id = "ch\0".into();
    }
    cases.push((c, "records[0].processor_payment.charge_id"));
    let mut r = invoice("1", "1.00");
    r.references = vec![pb::ExternalReference {
        r#type: pb::ReferenceType::Fulfillment as i32,
        id: "F-1\0".into(),
    }];
    cases.push((r, "records[0].references[0].id"));
    let mut r = invoice("1", "1.00");
    r.source_id = "INV\0".into();
    cases.push((r, "records[0].source_id"));
    let mut r = invoice("1", "1.00");
    r.kind = Some(Kind::BankDeposit(pb::BankDeposit {
        amount: usd("1.00"),
        account: "chk".into(),
        description: "ACH\0DEPOSIT".into(),
    }));
    cases.push((r, "records[0].bank_deposit.description"));
    for (record, field) in cases {
        refused(&app, record, field).await;
    }
}

#[tokio::test]
async fn a_nul_record_on_a_stream_is_rejected_alone_and_the_stream_goes_on() {
    let app = TestApp::start().await;
    let chunk = |records| pb::StreamRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: String::new(),
        records,
    };
    let chunks = vec![
        chunk(vec![
            order("1001", "10.00"),
            journal_with(|e| e.memo = "\0".into()),
            charge("1001", "10.00"),
        ]),
        chunk(vec![invoice("1001", "10.00")]),
    ];
    let mut replies = app
        .ingest
        .clone()
        .stream_records(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    let first = replies.message().await.unwrap().expect("first reply");
    let got: Vec<_> = first.results.iter().map(|r| r.outcome()).collect();
    assert_eq!(
        got,
        vec![
            pb::RecordOutcome::Accepted,
            pb::RecordOutcome::Rejected,
            pb::RecordOutcome::Accepted
        ]
    );
    let second = replies
        .message()
        .await
        .unwrap()
        .expect("the stream went on");
    assert_eq!(second.results[0].outcome(), pb::RecordOutcome::Accepted);
    assert!(replies.message().await.unwrap().is_none());
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'accepted'")
            .await,
        3
    );
}

/// The next_page_token of a one-item page, with its id replaced.
async fn forged_token(app: &TestApp, id: &str) -> String {
    let page = app
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // "2|fingerprint|micros|id|checksum"
    let raw = String::from_utf8(hex::decode(&page.next_page_token).unwrap()).unwrap();
    let (payload, sum) = raw.rsplit_once('|').unwrap();
    let mut parts: Vec<&str> = payload.splitn(4, '|').collect();
    parts[3] = id;
    hex::encode(format!("{}|{sum}", parts.join("|")))
}

#[tokio::test]
async fn a_forged_page_token_is_invalid_whatever_it_holds() {
    let app = TestApp::start().await;
    app.submit([clean_order("1001"), clean_order("1002")].concat())
        .await
        .unwrap();
    for id in ["a\0b", "1\u{202E}", " ", &"9".repeat(300)] {
        let token = forged_token(&app, id).await;
        let status = app
            .transactions
            .clone()
            .list_transactions(pb::ListTransactionsRequest {
                parent: "merchants/acme".into(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&status), vec!["page_token"], "{id:?}");
    }
    // The genuine token still works.
    let token = forged_token(&app, "1002").await;
    let page = app
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            page_size: 1,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.transactions.len(), 1);
}

#[tokio::test]
async fn sums_near_the_decimal_maximum_are_refused_by_field_not_a_panic() {
    let app = TestApp::start().await;
    let ten_tenders = order_with("1", |o| {
        let t = o.tenders[0].clone();
        o.tenders = vec![t; 10];
        for t in &mut o.tenders {
            t.amount = usd(NEAR_MAX);
        }
    });
    refused(
        &app,
        ten_tenders,
        "records[0].storefront_order.tenders[9].amount.amount",
    )
    .await;
    let lines: Vec<(&str, &str, &str, &str)> = (0..10)
        .map(|_| ("1190", NEAR_MAX, "", ""))
        .chain((0..10).map(|_| ("1200", "", NEAR_MAX, "")))
        .collect();
    refused(
        &app,
        journal("JE-9", &lines),
        "records[0].journal_entry.lines[0].debit",
    )
    .await;
    // Ten charges of one order, in one batch: each is named.
    let charges: Vec<_> = (0..10)
        .map(|i| {
            let mut c = charge("2", NEAR_MAX);
            c.source_id = format!("ch_{i}");
            c
        })
        .collect();
    let status = app.submit(charges).await.unwrap_err();
    assert_eq!(bad_fields(&status).len(), 10);
    assert!(bad_fields(&status).contains(&"records[9].processor_payment.amount.amount".into()));
    // A line priced beyond the bound by its quantity.
    let priced = order_with("3", |o| {
        o.line_items[0].unit_price = usd("999999999999999");
        o.line_items[0].quantity = 1_000_000;
    });
    refused(&app, priced, "records[0].storefront_order.line_items[0]").await;
    // The largest figures allowed are accepted, and read back whole.
    let big = "999999999999999999.99";
    let mut batch = vec![order_with("4", |o| {
        o.total = usd(big);
        o.tenders[0].amount = usd(big);
    })];
    batch.extend((0..10).map(|i| {
        let mut c = charge("4", big);
        c.source_id = format!("ch_4_{i}");
        c
    }));
    assert_eq!(app.submit(batch).await.unwrap().results.len(), 11);
    let t = app.transaction("4").await.unwrap();
    let captured = t.totals.unwrap().processor_captured.unwrap();
    assert_eq!(captured.amount, "9999999999999999999.90");
}

#[tokio::test]
async fn quantities_are_bounded_so_sums_cannot_wrap() {
    let app = TestApp::start().await;
    let two_max = order_with("1", |o| {
        let mut l = o.line_items[0].clone();
        l.quantity = i64::MAX;
        o.line_items = vec![l.clone(), l];
    });
    refused(
        &app,
        two_max,
        "records[0].storefront_order.line_items[0].quantity",
    )
    .await;
    let mut f = fulfillment("1", "2026-11-02T11:00:00Z");
    if let Some(Kind::Fulfillment(x)) = &mut f.kind {
        x.lines[0].quantity = 1_000_000_001;
    }
    refused(&app, f, "records[0].fulfillment.lines[0].quantity").await;
    // At the bound: accepted, and the sum is exact.
    let mut f = fulfillment("2", "2026-11-02T11:00:00Z");
    if let Some(Kind::Fulfillment(x)) = &mut f.kind {
        let l = x.lines[0].clone();
        x.lines = vec![l; 3];
        for l in &mut x.lines {
            l.quantity = 1_000_000_000;
        }
    }
    app.submit(vec![order("2", "10.00"), f]).await.unwrap();
    let t = app.transaction("2").await.unwrap();
    assert_eq!(t.fulfillments[0].quantity, 3_000_000_000);
}

#[tokio::test]
async fn look_alike_and_blank_ids_are_refused_and_named() {
    let app = TestApp::start().await;
    for id in [
        "   ",
        "INV\u{200B}1",
        "INV\u{202E}1",
        "\u{FEFF}INV1",
        " INV1",
        "INV\u{00A0}1",
    ] {
        let mut r = invoice("1", "1.00");
        r.source_id = id.into();
        refused(&app, r, "records[0].source_id").await;
    }
    let mut r = invoice("1", "1.00");
    r.references = vec![pb::ExternalReference {
        r#type: pb::ReferenceType::Fulfillment as i32,
        id: "F\u{2066}1".into(),
    }];
    refused(&app, r, "records[0].references[0].id").await;
    let mut r = invoice("..", "1.00");
    r.source_id = "INV-dots".into();
    refused(&app, r, "records[0].order_id").await;
    let status = app
        .submit_as("acme", "req\u{200B}1", vec![invoice("1", "1.00")])
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), vec!["request_id"]);
    // Honest ids with inner spaces and non-ASCII letters are fine.
    let mut r = invoice("1", "1.00");
    r.source_id = "Rechnung Nr. 7 – Köln".into();
    app.submit(vec![r]).await.unwrap();
}

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

#[tokio::test]
async fn times_outside_a_sane_window_are_refused_and_named() {
    let app = TestApp::start().await;
    let now = chrono::Utc::now().timestamp();
    let day = 86_400;
    // Year 1, the Unix epoch, 1999, year 9999, two days ahead.
    for seconds in [
        -62_135_596_800,
        0,
        946_684_799,
        253_402_300_799,
        now + 2 * day,
    ] {
        let mut r = invoice("1", "1.00");
        r.event_time = at(seconds);
        refused(&app, r, "records[0].event_time").await;
    }
    let mut p = invoice("1", "1.00");
    p.source_id = "po_1".into();
    p.kind = Some(Kind::Payout(pb::Payout {
        amount: usd("5.00"),
        status: pb::PayoutStatus::InTransit as i32,
        arrival_time: at(253_402_300_799),
    }));
    refused(&app, p.clone(), "records[0].payout.arrival_time").await;
    // A payout due in a month, an event a few hours ahead (clock skew):
    // accepted.
    if let Some(Kind::Payout(x)) = &mut p.kind {
        x.arrival_time = at(now + 30 * day);
    }
    p.event_time = at(now + 3600);
    app.submit(vec![p]).await.unwrap();
    // Filters may range wider, within what a Timestamp can say.
    let status = app
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            start_time: at(-9_000_000_000_000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), vec!["start_time"]);
}

#[tokio::test]
async fn every_text_field_is_bounded() {
    let app = TestApp::start().await;
    // 2 MB: under the message limit, over the field's.
    let long = "x".repeat(2 << 20);
    refused(
        &app,
        journal_with(|e| e.memo = long.clone()),
        "records[0].journal_entry.memo",
    )
    .await;
    refused(
        &app,
        journal_with(|e| e.lines[0].memo = "m".repeat(1025)),
        "records[0].journal_entry.lines[0].memo",
    )
    .await;
    let mut r = invoice("1", "1.00");
    r.source_id = "i".repeat(256);
    refused(&app, r, "records[0].source_id").await;
    refused(
        &app,
        order_with("1", |o| o.line_items[0].sku = "s".repeat(256)),
        "records[0].storefront_order.line_items[0].sku",
    )
    .await;
    refused(
        &app,
        order_with("1", |o| {
            let l = o.line_items[0].clone();
            o.line_items = vec![l; 1001];
        }),
        "records[0].storefront_order.line_items",
    )
    .await;
    // At the bounds: accepted.
    let ok = journal_with(|e| {
        e.memo = "m".repeat(1024);
        e.lines[0].memo = "é".repeat(1024);
    });
    app.submit(vec![ok]).await.unwrap();
}

fn assert_too_large(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("8388608 bytes"),
        "the limit is not named: {}",
        status.message()
    );
}

#[tokio::test]
async fn a_message_past_the_limit_is_resource_exhausted_naming_it() {
    let app = TestApp::start().await;
    let huge = journal_with(|e| e.memo = "x".repeat(20 << 20));
    let status = app.submit(vec![huge.clone()]).await.unwrap_err();
    assert_too_large(&status);
    // Streamed: the stream ends with the same status.
    let chunks = vec![pb::StreamRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: String::new(),
        records: vec![huge],
    }];
    let mut replies = app
        .ingest
        .clone()
        .stream_records(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert_too_large(&replies.message().await.unwrap_err());
    // A read request past it too.
    let status = app
        .transactions
        .clone()
        .get_transaction(pb::GetTransactionRequest {
            name: "n".repeat(9 << 20),
        })
        .await
        .unwrap_err();
    assert_too_large(&status);
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 0);
    // The server is fine afterwards.
    app.submit(clean_order("1001")).await.unwrap();
}
