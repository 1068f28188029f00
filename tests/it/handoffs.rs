//! Handoff contracts, LATE_HANDOFF by deadline, and the exception
//! lifecycle: raised on the fault, silent on clean data, resolved by itself
//! when the late record arrives; worked by a person with etags and history.

use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tonic::Code;

use crate::common::*;

const O2F: &str = "merchants/acme/handoffContracts/order-to-fulfillment";

fn handoffs(app: &TestApp) -> HandoffServiceClient<tonic::transport::Channel> {
    HandoffServiceClient::new(app.channel.clone())
}

async fn set_lag_and_owner(app: &TestApp, seconds: i64, owner: &str) -> pb::HandoffContract {
    handoffs(app)
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(pb::HandoffContract {
                name: O2F.into(),
                max_lag: Some(prost_types::Duration { seconds, nanos: 0 }),
                owner: owner.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["max_lag".into(), "owner".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .handoff_contract
        .unwrap()
}

async fn late(app: &TestApp, order: &str) -> Vec<pb::Exception> {
    app.exceptions(pb::ListExceptionsRequest {
        parent: "merchants/acme".into(),
        r#type: pb::ExceptionType::LateHandoff as i32,
        transaction: format!("merchants/acme/transactions/{order}"),
        ..Default::default()
    })
    .await
    .exceptions
}

/// Waits until the order has a LATE_HANDOFF, or panics after `within`.
async fn await_late(app: &TestApp, order: &str, within: Duration) -> pb::Exception {
    let start = Instant::now();
    loop {
        if let Some(e) = late(app, order).await.into_iter().next() {
            return e;
        }
        assert!(
            start.elapsed() < within,
            "no LATE_HANDOFF for {order} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn with_actor<T>(msg: T, actor: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("x-tally-actor", actor.parse().unwrap());
    r
}

#[tokio::test]
async fn contracts_have_defaults_and_take_masked_updates_with_etags() {
    let app = TestApp::start().await;
    let list = handoffs(&app)
        .list_handoff_contracts(pb::ListHandoffContractsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .handoff_contracts;
    let ids: Vec<_> = list
        .iter()
        .map(|c| c.name.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "order-to-fulfillment",
            "fulfillment-to-invoice",
            "invoice-to-payment",
            "payment-to-cash-application",
            "reconciliation-to-reporting"
        ]
    );
    assert_eq!(list[0].max_lag.as_ref().unwrap().seconds, 24 * 3600);
    assert_eq!(list[0].owner, "fulfillment-ops");
    assert_eq!(list[0].etag, "0");

    let updated = set_lag_and_owner(&app, 90, "warehouse-team").await;
    assert_eq!(updated.max_lag.unwrap().seconds, 90);
    assert_eq!(updated.owner, "warehouse-team");
    assert_eq!(updated.sending_system, "storefront");
    assert_eq!(updated.etag, "1");

    // Unmasked fields stay; a stale etag is ABORTED and changes nothing.
    let mut c = handoffs(&app)
        .get_handoff_contract(pb::GetHandoffContractRequest { name: O2F.into() })
        .await
        .unwrap()
        .into_inner()
        .handoff_contract
        .unwrap();
    assert_eq!(c.owner, "warehouse-team");
    c.owner = "someone-else".into();
    c.etag = "0".into();
    let err = handoffs(&app)
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(c.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["owner".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    // Bad input names its field.
    c.etag = String::new();
    for (paths, field) in [
        (vec!["sending_system".to_string()], "update_mask.paths[0]"),
        (
            vec!["alert_webhook_uri".to_string()],
            "handoff_contract.alert_webhook_uri",
        ),
    ] {
        c.alert_webhook_uri = "ftp://nope".into();
        let err = handoffs(&app)
            .update_handoff_contract(pb::UpdateHandoffContractRequest {
                handoff_contract: Some(c.clone()),
                update_mask: Some(prost_types::FieldMask { paths }),
            })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&err), vec![field.to_string()]);
    }
    let err = handoffs(&app)
        .get_handoff_contract(pb::GetHandoffContractRequest {
            name: "merchants/acme/handoffContracts/order-to-shipping".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["name".to_string()]);
    // Other merchants keep the defaults.
    let other = handoffs(&app)
        .get_handoff_contract(pb::GetHandoffContractRequest {
            name: "merchants/globex/handoffContracts/order-to-fulfillment".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .handoff_contract
        .unwrap();
    assert_eq!(other.owner, "fulfillment-ops");
}

#[tokio::test]
async fn a_late_handoff_is_raised_by_its_deadline_and_resolved_when_the_record_arrives() {
    let app = TestApp::start().await;
    set_lag_and_owner(&app, 1, "warehouse-team").await;
    // Late: an order with no fulfilment. Clean: one shipped in time.
    app.submit(vec![order("5001", "100.00")]).await.unwrap();
    app.submit(vec![
        order("5002", "80.00"),
        fulfillment("5002", "2026-11-02T11:00:00Z"),
    ])
    .await
    .unwrap();
    let e = await_late(&app, "5001", Duration::from_secs(6)).await;
    assert_eq!(e.state(), pb::ExceptionState::Open);
    assert_eq!(e.handoff(), pb::Handoff::OrderToFulfillment);
    assert_eq!(e.owner, "warehouse-team");
    assert_eq!(e.amount_at_risk, usd("100.00"));
    assert!(e.due_time.is_some());
    assert!(e.summary.contains("fulfillment"), "{}", e.summary);
    // A second sweep never raises it twice; the clean order raises nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(late(&app, "5001").await.len(), 1);
    assert!(late(&app, "5002").await.is_empty());
    assert_eq!(
        app.count("SELECT count(*) FROM exception_events WHERE action = 'opened'")
            .await,
        1
    );

    // The fulfilment arrives: resolved by the rules.
    app.submit(vec![fulfillment("5001", "2026-11-02T12:00:00Z")])
        .await
        .unwrap();
    let e = late(&app, "5001").await.remove(0);
    assert_eq!(e.state(), pb::ExceptionState::Resolved);
    assert_eq!(e.resolved_by, "rules");
}

#[tokio::test]
async fn a_contract_change_applies_to_what_is_detected_from_then_on() {
    let app = TestApp::start().await;
    // With the default day, nothing is late.
    app.submit(vec![order("5101", "10.00")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(late(&app, "5101").await.is_empty());
    // A shorter lag applies to orders seen from now on.
    set_lag_and_owner(&app, 1, "night-shift").await;
    app.submit(vec![order("5102", "10.00")]).await.unwrap();
    let e = await_late(&app, "5102", Duration::from_secs(6)).await;
    assert_eq!(e.owner, "night-shift");
    assert!(late(&app, "5101").await.is_empty());
}

#[tokio::test]
async fn an_exception_is_acknowledged_assigned_and_resolved_with_history() {
    let app = TestApp::start().await;
    set_lag_and_owner(&app, 1, "warehouse-team").await;
    app.submit(vec![order("5201", "42.00")]).await.unwrap();
    let e = await_late(&app, "5201", Duration::from_secs(6)).await;
    let mut client = app.exceptions.clone();

    // Who acts must be named.
    let err = client
        .acknowledge_exception(pb::AcknowledgeExceptionRequest {
            name: e.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["x-tally-actor".to_string()]);

    let acked = client
        .acknowledge_exception(with_actor(
            pb::AcknowledgeExceptionRequest {
                name: e.name.clone(),
                etag: e.etag.clone(),
                note: "looking".into(),
            },
            "alice",
        ))
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(acked.state(), pb::ExceptionState::Acknowledged);
    assert_ne!(acked.etag, e.etag);

    // The old etag is stale: ABORTED, nothing changes.
    let err = client
        .assign_exception(with_actor(
            pb::AssignExceptionRequest {
                name: e.name.clone(),
                owner: "bob".into(),
                etag: e.etag.clone(),
                note: String::new(),
            },
            "alice",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    // Acknowledging twice is an illegal transition.
    let err = client
        .acknowledge_exception(with_actor(
            pb::AcknowledgeExceptionRequest {
                name: e.name.clone(),
                ..Default::default()
            },
            "alice",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let assigned = client
        .assign_exception(with_actor(
            pb::AssignExceptionRequest {
                name: e.name.clone(),
                owner: "bob".into(),
                etag: acked.etag.clone(),
                note: "bob knows the WMS".into(),
            },
            "alice",
        ))
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(assigned.owner, "bob");
    let mine = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            owner: "bob".into(),
            ..Default::default()
        })
        .await
        .exceptions;
    assert_eq!(mine.len(), 1);

    // Resolving needs a note.
    let err = client
        .resolve_exception(with_actor(
            pb::ResolveExceptionRequest {
                name: e.name.clone(),
                ..Default::default()
            },
            "bob",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["note".to_string()]);
    let resolved = client
        .resolve_exception(with_actor(
            pb::ResolveExceptionRequest {
                name: e.name.clone(),
                note: "3PL confirmed shipment by phone".into(),
                etag: String::new(),
            },
            "bob",
        ))
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(resolved.state(), pb::ExceptionState::Resolved);
    assert_eq!(resolved.resolved_by, "bob");
    assert_eq!(resolved.resolution_note, "3PL confirmed shipment by phone");
    let err = client
        .resolve_exception(with_actor(
            pb::ResolveExceptionRequest {
                name: e.name.clone(),
                note: "again".into(),
                etag: String::new(),
            },
            "bob",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    let got = client
        .get_exception(pb::GetExceptionRequest {
            name: e.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    let history: Vec<_> = got
        .history
        .iter()
        .map(|h| (h.action(), h.actor.as_str(), h.note.as_str()))
        .collect();
    assert_eq!(
        history,
        vec![
            (pb::ExceptionAction::Opened, "rules", ""),
            (pb::ExceptionAction::Acknowledged, "alice", "looking"),
            (pb::ExceptionAction::Assigned, "alice", "bob knows the WMS"),
            (
                pb::ExceptionAction::Resolved,
                "bob",
                "3PL confirmed shipment by phone"
            ),
        ]
    );
    // The history is never rewritten.
    let err = app
        .db
        .client()
        .await
        .execute("UPDATE exception_events SET note = 'edited'", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"));
}

#[tokio::test]
async fn a_watcher_that_resumes_sees_every_event_exactly_once() {
    let app = TestApp::start().await;
    let watch = |after: i64| {
        let mut c = app.exceptions.clone();
        async move {
            c.watch_exceptions(pb::WatchExceptionsRequest {
                parent: "merchants/acme".into(),
                after_sequence: after,
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    // Mismatches: order 100 vs captured 90, three orders -> events.
    for i in 0..3 {
        let id = format!("530{i}");
        app.submit(vec![order(&id, "100.00"), charge(&id, "90.00")])
            .await
            .unwrap();
    }
    let mut seen = vec![];
    let mut stream = watch(0).await;
    while seen.len() < 2 {
        let ev = stream.message().await.unwrap().unwrap().event.unwrap();
        seen.push(ev.sequence);
    }
    drop(stream); // disconnect
    // More changes while away.
    for i in 3..6 {
        let id = format!("530{i}");
        app.submit(vec![order(&id, "100.00"), charge(&id, "90.00")])
            .await
            .unwrap();
    }
    app.submit(vec![charge("5300", "10.00")]).await.ok();
    let total = app.count("SELECT count(*) FROM exception_events").await as usize;
    assert!(total >= 6, "{total}");
    let mut stream = watch(*seen.last().unwrap()).await;
    while seen.len() < total {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an event the watcher never saw")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        seen.push(ev.sequence);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "repeated: {seen:?}");
    let all: Vec<i64> = app
        .db
        .client()
        .await
        .query(
            "SELECT sequence FROM exception_events ORDER BY sequence",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(unique, all);
    // Nothing more arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), stream.message())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn exceptions_list_by_amount_at_risk_largest_first() {
    let app = TestApp::start().await;
    for (id, captured) in [("5401", "99.00"), ("5402", "50.00"), ("5403", "90.00")] {
        app.submit(vec![order(id, "100.00"), charge(id, captured)])
            .await
            .unwrap();
    }
    let mut amounts = vec![];
    let mut token = String::new();
    loop {
        let page = app
            .exceptions(pb::ListExceptionsRequest {
                parent: "merchants/acme".into(),
                order_by: "amount_at_risk desc".into(),
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await;
        amounts.extend(page.exceptions.iter().map(|e| {
            e.amount_at_risk
                .as_ref()
                .map(|m| m.amount.clone())
                .unwrap_or_default()
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(amounts.len() >= 3, "{amounts:?}");
    // A type no rule raises yet filters everything out, not nothing.
    let none = app
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            r#type: pb::ExceptionType::FeeUnallocated as i32,
            ..Default::default()
        })
        .await;
    assert!(none.exceptions.is_empty());
    assert_eq!(&amounts[..3], ["50.00", "10.00", "1.00"]);
}
