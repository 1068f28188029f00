//! Issue 8's lag-held comparisons and the person's word, end to end: a
//! refund that never propagates and a multicapture short after shipping are
//! pending with their deadline, become exceptions by the sweeper once the
//! contract's lag runs out, and resolve when the record arrives; a fault a
//! person resolved is not reopened by the rules on the same evidence.

use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;

use crate::common::*;

pub(crate) async fn set_lag(app: &TestApp, contract: &str, seconds: i64) {
    HandoffServiceClient::new(app.channel.clone())
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(pb::HandoffContract {
                name: format!("merchants/acme/handoffContracts/{contract}"),
                max_lag: Some(prost_types::Duration { seconds, nanos: 0 }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["max_lag".into()],
            }),
        })
        .await
        .unwrap();
}

fn stripe(id: &str, order: &str, kind: pb::record::Kind) -> pb::Record {
    pb::Record {
        source_id: id.into(),
        source_system: "stripe".into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts("2026-11-02T13:00:00Z"),
        source_update_time: None,
        kind: Some(kind),
    }
}

pub(crate) fn payment(
    id: &str,
    order: &str,
    kind: pb::ProcessorPaymentType,
    amount: &str,
) -> pb::Record {
    stripe(
        id,
        order,
        pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: kind as i32,
            amount: usd(amount),
            charge_id: format!("ch_{order}"),
            payment_intent_id: format!("pi_{order}"),
            ..Default::default()
        }),
    )
}

fn credit_memo(order: &str, total: &str) -> pb::Record {
    pb::Record {
        source_id: format!("CM-{order}"),
        source_system: "netsuite".into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts("2026-11-04T09:00:00Z"),
        source_update_time: None,
        kind: Some(pb::record::Kind::CreditMemo(pb::CreditMemo {
            total: usd(total),
            ..Default::default()
        })),
    }
}

/// Waits until the order has an unresolved exception of `rule`.
pub(crate) async fn await_rule(app: &TestApp, order: &str, rule: &str) -> pb::Exception {
    let start = Instant::now();
    loop {
        let s = app.status(order).await;
        if let Some(e) = s.exceptions.into_iter().find(|e| e.rule == rule) {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {rule} on {order}: {:?}",
            app.status(order).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn of_type(app: &TestApp, t: pb::ExceptionType) -> Vec<pb::Exception> {
    app.exceptions(pb::ListExceptionsRequest {
        parent: "merchants/acme".into(),
        r#type: t as i32,
        ..Default::default()
    })
    .await
    .exceptions
}

#[tokio::test]
async fn a_refund_never_credited_is_pending_then_refund_not_propagated_then_resolved() {
    let app = TestApp::start().await;
    set_lag(&app, "invoice-to-payment", 2).await;
    let mut records = clean_order("7001");
    records.push(payment(
        "re_7001",
        "7001",
        pb::ProcessorPaymentType::Refund,
        "20.00",
    ));
    app.submit(records).await.unwrap();
    let s = app.status("7001").await;
    assert_eq!(s.state(), pb::ReconciliationState::Pending, "{s:?}");
    assert!(
        s.reasons
            .iter()
            .any(|r| r.contains("re_7001") && r.contains("due by")),
        "{:?}",
        s.reasons
    );
    assert!(
        of_type(&app, pb::ExceptionType::RefundNotPropagated)
            .await
            .is_empty()
    );

    // The sweeper re-matches the order at its deadline.
    let e = await_rule(&app, "7001", "refund_not_credited").await;
    assert_eq!(e.r#type(), pb::ExceptionType::RefundNotPropagated);
    assert_eq!(e.handoff(), pb::Handoff::PaymentToCashApplication);
    assert_eq!(e.observations[0].source_ids, vec!["re_7001"]);
    assert_eq!(e.observations[0].source_system, "stripe");
    assert_eq!(e.amount_at_risk, usd("20.00"));
    assert_eq!(
        app.status("7001").await.state(),
        pb::ReconciliationState::Exception
    );

    // The credit memo arrives: resolved by the rules.
    app.submit(vec![credit_memo("7001", "20.00")])
        .await
        .unwrap();
    let s = app.status("7001").await;
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
    let all = of_type(&app, pb::ExceptionType::RefundNotPropagated).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state(), pb::ExceptionState::Resolved);
    assert_eq!(app.count("SELECT count(*) FROM rechecks").await, 0);
}

#[tokio::test]
async fn a_multicapture_short_after_shipping_is_expected_until_its_deadline() {
    let app = TestApp::start().await;
    set_lag(&app, "invoice-to-payment", 2).await;
    app.submit(vec![
        order("7101", "100.00"),
        invoice("7101", "100.00"),
        fulfillment("7101", "2026-11-02T11:00:00Z"),
        payment(
            "cap_7101a",
            "7101",
            pb::ProcessorPaymentType::Capture,
            "70.00",
        ),
    ])
    .await
    .unwrap();
    let s = app.status("7101").await;
    assert_eq!(s.state(), pb::ReconciliationState::Pending, "{s:?}");
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
    assert!(
        s.reasons
            .iter()
            .any(|r| r.contains("captured 70.00 USD of 100.00 USD") && r.contains("due by")),
        "{:?}",
        s.reasons
    );

    let e = await_rule(&app, "7101", "order_total_vs_captured").await;
    assert_eq!(e.r#type(), pb::ExceptionType::AmountMismatch);
    assert_eq!(e.amount_at_risk, usd("30.00"));

    // The last capture, late: matched, the mismatch resolved by the rules.
    app.submit(vec![payment(
        "cap_7101b",
        "7101",
        pb::ProcessorPaymentType::Capture,
        "30.00",
    )])
    .await
    .unwrap();
    let s = app.status("7101").await;
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
}

#[tokio::test]
async fn a_fault_a_person_resolved_stays_resolved_until_its_evidence_changes() {
    let app = TestApp::start().await;
    app.submit(vec![
        order("7201", "100.00"),
        charge("7201", "100.00"),
        invoice("7201", "100.02"),
    ])
    .await
    .unwrap();
    let e = await_rule(&app, "7201", "order_total_vs_invoiced").await;
    let mut req = tonic::Request::new(pb::ResolveExceptionRequest {
        name: e.name.clone(),
        note: "2 cents written off by finance".into(),
        etag: String::new(),
    });
    req.metadata_mut()
        .insert("x-tally-actor", "alice".parse().unwrap());
    app.exceptions.clone().resolve_exception(req).await.unwrap();

    // Another record of the order: the rules find the same fault on the
    // same evidence, and leave the person's decision alone.
    app.submit(vec![fulfillment("7201", "2026-11-02T11:00:00Z")])
        .await
        .unwrap();
    let s = app.status("7201").await;
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
    let events = app
        .count("SELECT count(*) FROM exception_events WHERE action = 'reopened'")
        .await;
    assert_eq!(events, 0);

    // The invoice changes at its source: a new occurrence, open; the
    // resolved one keeps its resolution.
    let mut changed = invoice("7201", "100.05");
    changed.source_update_time = ts("2026-11-03T08:00:00Z");
    app.submit(vec![changed]).await.unwrap();
    let s = app.status("7201").await;
    assert_eq!(s.exceptions.len(), 1, "{:?}", s.exceptions);
    assert_ne!(s.exceptions[0].name, e.name);
    assert_eq!(s.exceptions[0].amount_at_risk, usd("0.05"));
    let all = of_type(&app, pb::ExceptionType::AmountMismatch).await;
    let first = all.iter().find(|x| x.name == e.name).unwrap();
    assert_eq!(first.state(), pb::ExceptionState::Resolved);
}

#[tokio::test]
async fn a_matched_order_not_booked_in_the_ledger_is_a_late_reporting_handoff() {
    let app = TestApp::start().await;
    set_lag(&app, "reconciliation-to-reporting", 1).await;
    app.submit(clean_order("7301")).await.unwrap();
    assert_eq!(
        app.status("7301").await.state(),
        pb::ReconciliationState::Matched
    );
    let start = Instant::now();
    let late = loop {
        let late: Vec<_> = of_type(&app, pb::ExceptionType::LateHandoff)
            .await
            .into_iter()
            .filter(|e| e.handoff() == pb::Handoff::ReconciliationToReporting)
            .collect();
        if let Some(e) = late.into_iter().next() {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no late reporting"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(late.summary.contains("journal_entry"), "{}", late.summary);
    assert_eq!(late.amount_at_risk, usd("100.00"));

    // The ERP books the order's payment: met, resolved by the rules.
    app.submit(vec![journal(
        "JE-7301",
        &[
            ("1200 Stripe clearing", "100.00", "0", "ch_7301"),
            ("1100 Receivables", "0", "100.00", ""),
        ],
    )])
    .await
    .unwrap();
    let after = of_type(&app, pb::ExceptionType::LateHandoff).await;
    let e = after.iter().find(|e| e.name == late.name).unwrap();
    assert_eq!(e.state(), pb::ExceptionState::Resolved);
}

/// A EUR order charged at 1.10 USD/EUR (fee in USD), and the ERP journal
/// of the same day booking it at 1.08.
fn fx_records(id: &str) -> (Vec<pb::Record>, pb::Record) {
    let mut fx = vec![
        order(id, "100.00"),
        charge(id, "100.00"),
        invoice(id, "100.00"),
    ];
    for r in &mut fx {
        match &mut r.kind {
            Some(pb::record::Kind::StorefrontOrder(so)) => {
                so.total = eur("100.00");
                so.tenders[0].amount = eur("100.00");
            }
            Some(pb::record::Kind::ProcessorPayment(p)) => {
                p.amount = eur("100.00");
                p.exchange_rate = "1.10".into();
            }
            Some(pb::record::Kind::Invoice(i)) => i.total = eur("100.00"),
            _ => {}
        }
    }
    let mut je = journal(
        &format!("JE-{id}"),
        &[
            ("1200 Clearing", "100.00", "0", &format!("ch_{id}")),
            ("1100 AR", "0", "100.00", ""),
        ],
    );
    je.event_time = ts("2026-11-02T18:00:00Z");
    if let Some(pb::record::Kind::JournalEntry(j)) = &mut je.kind {
        j.currency_code = "EUR".into();
        j.exchange_rate = "1.08".into();
    }
    (fx, je)
}

fn eur(amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "EUR".into(),
        amount: amount.into(),
    })
}

/// Seed 004's four categories, one order each, from the records each
/// system sends: each raised with its type and amount at risk, so ghost
/// revenue sums by category; the clean twin raises nothing; the
/// corrected record resolves it.
#[tokio::test]
async fn ghost_revenue_is_raised_by_category_with_its_amount_at_risk() {
    use pb::ExceptionType as T;
    let app = TestApp::start().await;

    // Discount: the ERP invoices full retail for a 10.00 discount.
    let mut o = order("7401", "90.00");
    if let Some(pb::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.total_discount = usd("10.00");
        so.discounts = vec![pb::Discount {
            code: "WELCOME10".into(),
            amount: usd("10.00"),
        }];
    }
    let full_price = invoice("7401", "100.00");
    app.submit(vec![o, charge("7401", "90.00"), full_price])
        .await
        .unwrap();

    // Fee: the ERP booked the payment net as sales.
    let mut fee = clean_order("7402");
    fee.push(journal(
        "JE-7402",
        &[
            ("1000 Bank", "96.80", "0", "ch_7402"),
            ("4000 Sales", "0", "96.80", ""),
        ],
    ));
    app.submit(fee).await.unwrap();

    // Rounding: three tenders, each rounded, two cents short together.
    let mut o = order("7403", "100.00");
    if let Some(pb::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.tenders[0].amount = usd("33.33");
        for (t, a) in [
            (pb::TenderType::GiftCard, "33.33"),
            (pb::TenderType::StoreCredit, "33.32"),
        ] {
            so.tenders.push(pb::Tender {
                r#type: t as i32,
                gateway: "gift_card".into(),
                amount: usd(a),
                processor_reference: String::new(),
            });
        }
    }
    app.submit(vec![o, charge("7403", "33.33"), invoice("7403", "100.00")])
        .await
        .unwrap();

    // FX: a EUR charge settled at 1.10 USD/EUR, the ERP's rate that day 1.08.
    let (mut fx, mut je) = fx_records("7404");
    fx.push(je.clone());
    app.submit(fx).await.unwrap();

    // The clean twin of each raises nothing.
    app.submit(clean_order("7400")).await.unwrap();
    assert!(app.status("7400").await.exceptions.is_empty());

    let at_risk = |es: &[pb::Exception]| -> Vec<(String, String)> {
        es.iter()
            .map(|e| {
                let m = e.amount_at_risk.clone().unwrap_or_default();
                (m.amount, m.currency_code)
            })
            .collect()
    };
    for (t, order, amount, currency) in [
        (T::DiscountUnmapped, "7401", "10.00", "USD"),
        (T::FeeUnallocated, "7402", "3.20", "USD"),
        (T::RoundingVariance, "7403", "0.02", "USD"),
        (T::FxVariance, "7404", "2.00", "USD"), // settled in USD (the fee)
    ] {
        let es = of_type(&app, t).await;
        assert_eq!(es.len(), 1, "{t:?}: {es:?}");
        assert!(es[0].transaction.ends_with(order), "{t:?}: {:?}", es[0]);
        assert_eq!(
            at_risk(&es),
            vec![(amount.to_string(), currency.to_string())],
            "{t:?}"
        );
        assert!(!es[0].observations.is_empty() && !es[0].summary.is_empty());
    }

    // Corrected records resolve them: the journal books gross (a new
    // version at the source), the ERP's rate is fixed.
    let mut gross = journal(
        "JE-7402",
        &[
            ("1200 Stripe clearing", "100.00", "0", "ch_7402"),
            ("1100 AR", "0", "100.00", ""),
        ],
    );
    gross.source_update_time = ts("2026-11-04T08:00:00Z");
    if let Some(pb::record::Kind::JournalEntry(j)) = &mut je.kind {
        j.exchange_rate = "1.10".into();
    }
    je.source_update_time = ts("2026-11-04T08:00:00Z");
    app.submit(vec![gross, je]).await.unwrap();
    for t in [T::FeeUnallocated, T::FxVariance] {
        let es = of_type(&app, t).await;
        assert_eq!(es[0].state(), pb::ExceptionState::Resolved, "{t:?}");
    }
}

#[tokio::test]
async fn an_unmapped_sku_breaks_its_contract_until_the_invoice_is_corrected() {
    let app = TestApp::start().await;
    let lined = |sku: &str| {
        let mut inv = invoice("7501", "100.00");
        if let Some(pb::record::Kind::Invoice(i)) = &mut inv.kind {
            i.lines = vec![pb::InvoiceLine {
                sku: sku.into(),
                quantity: 2,
                amount: usd("100.00"),
            }];
        }
        inv
    };
    app.submit(vec![
        order("7501", "100.00"),
        charge("7501", "100.00"),
        lined("TEE-OLD"),
    ])
    .await
    .unwrap();
    let s = app.status("7501").await;
    assert_eq!(s.exceptions.len(), 1, "{:?}", s.exceptions);
    let e = &s.exceptions[0];
    assert_eq!(e.r#type(), pb::ExceptionType::ValidationFailed);
    assert_eq!(e.handoff(), pb::Handoff::FulfillmentToInvoice);
    assert_eq!(e.observations[0].source_ids, vec!["INV-7501"]);
    assert_eq!(e.amount_at_risk, usd("100.00"));
    assert!(e.summary.contains("unmapped SKU"), "{}", e.summary);

    let mut fixed = lined("TEE");
    fixed.source_update_time = ts("2026-11-03T08:00:00Z");
    app.submit(vec![fixed]).await.unwrap();
    let s = app.status("7501").await;
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
    assert_eq!(s.state(), pb::ReconciliationState::Matched);
}

#[tokio::test]
async fn the_fx_rate_tolerance_is_the_contracts() {
    let app = TestApp::start().await;
    let updated = HandoffServiceClient::new(app.channel.clone())
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(pb::HandoffContract {
                name: "merchants/acme/handoffContracts/payment-to-cash-application".into(),
                fx_rate_tolerance: "0.02".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["fx_rate_tolerance".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .handoff_contract
        .unwrap();
    assert_eq!(updated.fx_rate_tolerance, "0.02");
    // 1.10 against 1.08 is 1.85% apart: within 2%.
    let (mut fx, je) = fx_records("7601");
    fx.push(je);
    app.submit(fx).await.unwrap();
    let s = app.status("7601").await;
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
    assert!(
        of_type(&app, pb::ExceptionType::FxVariance)
            .await
            .is_empty()
    );
}

/// A balance transaction of no order whose net is not amount - fee: found
/// when it arrives. A person resolves it; a new version of the record with
/// the same figures (it moved to another payout) leaves that decision
/// alone, as for an order's faults.
#[tokio::test]
async fn a_fault_of_no_order_a_person_resolved_stays_resolved_on_a_new_version() {
    let app = TestApp::start().await;
    let odd = |payout: &str, updated: Option<&str>| pb::Record {
        source_id: "txn_7401".into(),
        source_system: "stripe".into(),
        order_id: String::new(),
        references: vec![],
        event_time: ts("2026-11-03T08:00:00Z"),
        source_update_time: updated.and_then(ts),
        kind: Some(pb::record::Kind::BalanceTransaction(
            pb::BalanceTransaction {
                reporting_category: "charge".into(),
                amount: usd("25.00"),
                fee: usd("1.00"),
                net: usd("23.50"),
                source: "ch_unknown_7401".into(),
                payout_id: payout.into(),
                ..Default::default()
            },
        )),
    };
    let found = async || {
        app.exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .exceptions
        .into_iter()
        .filter(|e| e.rule == "balance_transaction_net")
        .collect::<Vec<_>>()
    };
    app.submit(vec![odd("po_7401", None)]).await.unwrap();
    let open = found().await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].state(), pb::ExceptionState::Open);
    let mut req = tonic::Request::new(pb::ResolveExceptionRequest {
        name: open[0].name.clone(),
        note: "the processor's rounding, accepted".into(),
        etag: String::new(),
    });
    req.metadata_mut()
        .insert("x-tally-actor", "alice".parse().unwrap());
    app.exceptions.clone().resolve_exception(req).await.unwrap();

    let r = app
        .submit(vec![odd("po_7402", Some("2026-11-03T09:00:00Z"))])
        .await
        .unwrap();
    let o = outcomes(&r);
    assert_eq!(o, vec![pb::RecordOutcome::Updated]);
    let after = found().await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].state(), pb::ExceptionState::Resolved);
    let reopened = app
        .count("SELECT count(*) FROM exception_events WHERE action = 'reopened'")
        .await;
    assert_eq!(reopened, 0);
}
