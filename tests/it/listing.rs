use tally::proto::tally::v1 as pb;

use crate::common::*;

fn at(order_id: &str, hour: u32, records: Vec<pb::Record>) -> Vec<pb::Record> {
    records
        .into_iter()
        .map(|mut r| {
            let base = format!(
                "2026-11-0{}T{hour:02}:00:00Z",
                if r.source_id == order_id { 2 } else { 3 }
            );
            r.event_time = ts(&base);
            r
        })
        .collect()
}

async fn list(
    app: &TestApp,
    req: pb::ListTransactionsRequest,
) -> Result<pb::ListTransactionsResponse, tonic::Status> {
    app.transactions
        .clone()
        .list_transactions(req)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn transactions_page_newest_first_and_filter_by_state_and_time() {
    let app = TestApp::start().await;
    for h in 1..=5 {
        let id = format!("900{h}");
        let mut records = clean_order(&id);
        if h % 2 == 0 {
            records.pop(); // no invoice: pending
        }
        app.submit(at(&id, h, records)).await.unwrap();
    }
    // All, two at a time, newest order first.
    let mut names = vec![];
    let mut token = String::new();
    loop {
        let page = list(
            &app,
            pb::ListTransactionsRequest {
                parent: "merchants/acme".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(page.transactions.len() <= 2);
        names.extend(page.transactions.into_iter().map(|t| t.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, vec!["9005", "9004", "9003", "9002", "9001"]);

    let pending = list(
        &app,
        pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            state: pb::ReconciliationState::Pending as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pending
            .transactions
            .iter()
            .map(|t| t.order_id.as_str())
            .collect::<Vec<_>>(),
        vec!["9004", "9002"]
    );

    let window = list(
        &app,
        pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            start_time: ts("2026-11-02T02:00:00Z"),
            end_time: ts("2026-11-02T04:00:00Z"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        window
            .transactions
            .iter()
            .map(|t| t.order_id.as_str())
            .collect::<Vec<_>>(),
        vec!["9003", "9002"]
    );

    // A token only works with the filter it was issued for.
    let first = list(
        &app,
        pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = list(
        &app,
        pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            page_size: 1,
            page_token: first.next_page_token,
            state: pb::ReconciliationState::Matched as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["page_token"]);

    let err = list(
        &app,
        pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            start_time: ts("2026-11-03T00:00:00Z"),
            end_time: ts("2026-11-02T00:00:00Z"),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["end_time"]);
    let err = list(
        &app,
        pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            page_size: -1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["page_size"]);
}

#[tokio::test]
async fn exceptions_filter_by_type_handoff_and_state_and_page() {
    let app = TestApp::start().await;
    for i in 0..3 {
        app.submit(vec![
            order(&format!("80{i}"), "100.00"),
            charge(&format!("80{i}"), "100.00"),
            invoice(&format!("80{i}"), "100.50"),
        ])
        .await
        .unwrap();
    }
    let mut seq = clean_order("810");
    seq.push(fulfillment("810", "2026-11-01T00:00:00Z"));
    app.submit(seq).await.unwrap();

    let all = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(all.exceptions.len(), 4);

    let mismatches = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            r#type: pb::ExceptionType::AmountMismatch as i32,
            handoff: pb::Handoff::FulfillmentToInvoice as i32,
            state: pb::ExceptionState::Open as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(mismatches.exceptions.len(), 3);
    let sequence = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            handoff: pb::Handoff::OrderToFulfillment as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(sequence.exceptions.len(), 1);
    assert_eq!(
        sequence.exceptions[0].r#type(),
        pb::ExceptionType::OutOfSequence
    );

    let mut seen = vec![];
    let mut token = String::new();
    loop {
        let page = app
            .exceptions(pb::ListExceptionsRequest {
                parent: "merchants/acme".into(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await;
        seen.extend(page.exceptions.into_iter().map(|e| e.name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (4, 4));

    let none = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            start_time: ts("2099-01-01T00:00:00Z"),
            ..Default::default()
        })
        .await;
    assert!(none.exceptions.is_empty());
}

#[tokio::test]
async fn pages_never_skip_or_repeat_rows_that_tie_on_time() {
    let app = TestApp::start().await;
    // One batch: every order has the same event time, and every exception
    // the same create time (one transaction), so only the id orders them.
    let batch: Vec<_> = (0..7)
        .flat_map(|i| {
            vec![
                order(&format!("77{i}"), "10.00"),
                invoice(&format!("77{i}"), "11.00"),
            ]
        })
        .collect();
    app.submit(batch).await.unwrap();

    let mut orders = vec![];
    let mut token = String::new();
    loop {
        let page = list(
            &app,
            pb::ListTransactionsRequest {
                parent: "merchants/acme".into(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        orders.extend(page.transactions.into_iter().map(|t| t.order_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        orders,
        vec!["776", "775", "774", "773", "772", "771", "770"]
    );

    let mut names = vec![];
    let mut token = String::new();
    loop {
        let page = app
            .exceptions(pb::ListExceptionsRequest {
                parent: "merchants/acme".into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await;
        names.extend(page.exceptions.into_iter().map(|e| e.name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((names.len(), unique.len()), (7, 7));
}
