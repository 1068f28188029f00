//! The records tests submit, and what their answers say.

use tally::proto::tally::v1 as pb;

pub fn usd(amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "USD".into(),
        amount: amount.into(),
    })
}

pub fn ts(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

/// A record of `system` with id `id`, of order `order` (empty: none), at `when`.
pub fn record(
    system: &str,
    id: &str,
    order: &str,
    when: &str,
    kind: pb::record::Kind,
) -> pb::Record {
    pb::Record {
        source_id: id.into(),
        source_system: system.into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts(when),
        source_update_time: None,
        kind: Some(kind),
    }
}

pub fn order(order: &str, total: &str) -> pb::Record {
    record(
        "shopify",
        order,
        order,
        "2026-11-02T10:00:00Z",
        pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
            name: format!("#{order}"),
            total: usd(total),
            line_items: vec![pb::LineItem {
                sku: "TEE".into(),
                quantity: 2,
                unit_price: None,
                discount: None,
                tax: None,
            }],
            tenders: vec![pb::Tender {
                r#type: pb::TenderType::Card as i32,
                gateway: "stripe".into(),
                amount: usd(total),
                processor_reference: format!("pi_{order}"),
            }],
            ..Default::default()
        }),
    )
}

pub fn charge(order: &str, amount: &str) -> pb::Record {
    record(
        "stripe",
        &format!("ch_{order}"),
        order,
        "2026-11-02T10:00:05Z",
        pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Charge as i32,
            amount: usd(amount),
            fee: usd("3.20"),
            payment_intent_id: format!("pi_{order}"),
            ..Default::default()
        }),
    )
}

pub fn invoice(order: &str, total: &str) -> pb::Record {
    record(
        "netsuite",
        &format!("INV-{order}"),
        order,
        "2026-11-02T12:00:00Z",
        pb::record::Kind::Invoice(pb::Invoice {
            total: usd(total),
            ..Default::default()
        }),
    )
}

pub fn fulfillment(order: &str, when: &str) -> pb::Record {
    record(
        "shipbob",
        &format!("F-{order}"),
        order,
        when,
        pb::record::Kind::Fulfillment(pb::Fulfillment {
            lines: vec![pb::FulfillmentLine {
                sku: "TEE".into(),
                quantity: 2,
            }],
            ..Default::default()
        }),
    )
}

pub fn journal(id: &str, lines: &[(&str, &str, &str, &str)]) -> pb::Record {
    record(
        "netsuite",
        id,
        "",
        "2026-11-03T09:00:00Z",
        pb::record::Kind::JournalEntry(pb::JournalEntry {
            currency_code: "USD".into(),
            lines: lines
                .iter()
                .map(|(account, debit, credit, reference)| pb::JournalLine {
                    account: account.to_string(),
                    debit: debit.to_string(),
                    credit: credit.to_string(),
                    reference: reference.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    )
}

pub fn clean_order(order_id: &str) -> Vec<pb::Record> {
    vec![
        order(order_id, "100.00"),
        charge(order_id, "100.00"),
        invoice(order_id, "100.00"),
    ]
}

pub fn outcomes(r: &pb::SubmitRecordsResponse) -> Vec<pb::RecordOutcome> {
    r.results.iter().map(|x| x.outcome()).collect()
}

/// The BadRequest field paths of a failed call.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    assert!(
        details.error_info().is_some(),
        "INVALID_ARGUMENT without ErrorInfo: {status:?}"
    );
    details
        .bad_request()
        .expect("INVALID_ARGUMENT without BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}
