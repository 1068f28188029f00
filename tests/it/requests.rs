//! What a request may say, both ways: ids ingest accepts read back under
//! the names lists give them, any person may act, and a contract's webhook
//! and tolerances are bounded.

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::proto::tally::v1::ledger_service_client::LedgerServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::cash::{bt, capture, drain, inv, payout, worker};
use crate::common::*;

#[tokio::test]
async fn ids_with_any_characters_read_back_under_their_listed_names() {
    let t = TestApp::start().await;
    t.submit(vec![
        order("3001", "10.00"),
        inv("3001", "INV/2026/0001", "10.00", "2026-11-02T12:00:00Z"),
        order("3002", "20.00"),
        inv("3002", "Ä-ÜBER-2", "20.00", "2026-11-02T12:00:00Z"),
        order("3003", "30.00"),
        capture("3003", "ch_3003", "30.00"),
        bt("txn_3003", "charge", "ch_3003", "30.00", "1.00", "po 1#A"),
        payout("po 1#A", "29.00"),
    ])
    .await
    .unwrap();
    drain(&worker(&t).await, "acme").await;
    let mut ledger = LedgerServiceClient::new(t.channel.clone());

    let payouts = ledger
        .list_payouts(pb::ListPayoutsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .payouts;
    let names: Vec<&str> = payouts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["merchants/acme/payouts/po%201%23A"]);
    let p = ledger
        .get_payout(pb::GetPayoutRequest {
            name: names[0].into(),
        })
        .await
        .unwrap()
        .into_inner()
        .payout
        .unwrap();
    assert_eq!(p.name, names[0]);

    let open = ledger
        .list_open_invoices(pb::ListOpenInvoicesRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invoices;
    let mut names: Vec<String> = open.iter().map(|i| i.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "merchants/acme/invoices/%C3%84-%C3%9CBER-2",
            "merchants/acme/invoices/INV%2F2026%2F0001",
        ]
    );
    for name in &names {
        let i = ledger
            .get_invoice(pb::GetInvoiceRequest { name: name.clone() })
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"))
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(&i.name, name);
    }
    // Unencoded but for '/' and '%', the same invoice.
    let i = ledger
        .get_invoice(pb::GetInvoiceRequest {
            name: "merchants/acme/invoices/Ä-ÜBER-2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(i.order_id, "3002");
    // A raw '/' is a path, not an id; an id of the wrong shape is refused.
    for bad in [
        "merchants/acme/invoices/INV/2026/0001",
        "merchants/acme/invoices/INV%2",
        "merchants/acme/invoices/a%00b",
    ] {
        let err = ledger
            .get_invoice(pb::GetInvoiceRequest { name: bad.into() })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&err), vec!["name"], "{bad}");
    }
}

/// An exception to work: an order whose charge is short.
async fn an_exception(t: &TestApp) -> String {
    t.submit(vec![
        order("5301", "100.00"),
        charge("5301", "90.00"),
        invoice("5301", "100.00"),
    ])
    .await
    .unwrap();
    let list = t
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await;
    list.exceptions[0].name.clone()
}

fn acknowledge(
    name: &str,
    header: &str,
    value: &str,
) -> tonic::Request<pb::AcknowledgeExceptionRequest> {
    let mut r = tonic::Request::new(pb::AcknowledgeExceptionRequest {
        name: name.into(),
        ..Default::default()
    });
    if header.ends_with("-bin") {
        r.metadata_mut().insert_bin(
            tonic::metadata::MetadataKey::from_bytes(header.as_bytes()).unwrap(),
            MetadataValue::from_bytes(value.as_bytes()),
        );
    } else {
        r.metadata_mut().insert(
            tonic::metadata::MetadataKey::from_bytes(header.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    r
}

#[tokio::test]
async fn any_printable_name_may_act_but_rules_in_any_case() {
    let t = TestApp::start().await;
    let name = an_exception(&t).await;
    let mut client = t.exceptions.clone();
    for (header, who) in [
        ("x-tally-actor", "Rules"),
        ("x-tally-actor", "RULES"),
        ("x-tally-actor-bin", "rules"),
        ("x-tally-actor-bin", "José\u{202E}Núñez"),
        ("x-tally-actor-bin", "José\u{1b}[31m"),
    ] {
        let err = client
            .acknowledge_exception(acknowledge(&name, header, who))
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&err), vec![header.to_string()], "{who:?}");
    }
    let e = client
        .acknowledge_exception(acknowledge(&name, "x-tally-actor-bin", "José Núñez"))
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    let last = e.history.last().unwrap();
    assert_eq!(
        (last.action(), last.actor.as_str()),
        (pb::ExceptionAction::Acknowledged, "José Núñez")
    );
}

#[tokio::test]
async fn a_webhook_needs_a_host_and_a_tolerance_a_bound() {
    let t = TestApp::start().await;
    let mut client = HandoffServiceClient::new(t.channel.clone());
    let update = |uri: &str, tolerance: &str| pb::UpdateHandoffContractRequest {
        handoff_contract: Some(pb::HandoffContract {
            name: "merchants/acme/handoffContracts/invoice-to-payment".into(),
            alert_webhook_uri: uri.into(),
            tolerances: vec![pb::CurrencyTolerance {
                currency_code: "USD".into(),
                amount: tolerance.into(),
            }],
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["alert_webhook_uri".into(), "tolerances".into()],
        }),
    };
    for (uri, tolerance, field) in [
        ("http://", "0.01", "handoff_contract.alert_webhook_uri"),
        ("https:///x", "0.01", "handoff_contract.alert_webhook_uri"),
        (
            "http://hooks.example/t",
            "79000000000000000000000000000",
            "handoff_contract.tolerances[0].amount",
        ),
        (
            "http://hooks.example/t",
            "1000000.01",
            "handoff_contract.tolerances[0].amount",
        ),
    ] {
        let err = client
            .update_handoff_contract(update(uri, tolerance))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            bad_fields(&err),
            vec![field.to_string()],
            "{uri} {tolerance}"
        );
    }
    assert_eq!(t.count("SELECT count(*) FROM handoff_contracts").await, 0);
    let c = client
        .update_handoff_contract(update("https://hooks.example:8443/t", "1000000"))
        .await
        .unwrap()
        .into_inner()
        .handoff_contract
        .unwrap();
    assert_eq!(c.alert_webhook_uri, "https://hooks.example:8443/t");
    assert_eq!(c.tolerances[0].amount, "1000000");
}
