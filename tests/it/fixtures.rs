//! Real public examples of Shopify and Stripe records (tests/fixtures,
//! provenance inside), mapped the way integration middleware would map them.
//! Their shapes are right and their arithmetic often is not: Tally must take
//! them and flag what does not add up, not choke on them.

use serde_json::Value;
use tally::domain::currency::Currency;
use tally::domain::money::{Money, format_amount};
use tally::proto::tally::v1 as pb;

use crate::common::*;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Shopify money is a decimal string in major units.
fn shop_money(currency: &str, v: &Value) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: currency.into(),
        amount: v.as_str().unwrap().into(),
    })
}

/// Stripe money is an integer count of minor units and a lowercase code.
fn stripe_money(amount: &Value, currency: &Value) -> Option<pb::Money> {
    let c = Currency::parse_lenient(currency.as_str().unwrap()).unwrap();
    let m = Money::from_minor_units(amount.as_i64().unwrap(), c);
    Some(pb::Money {
        currency_code: currency.as_str().unwrap().into(),
        amount: format_amount(m.amount, c),
    })
}

fn stamp(rfc3339: &Value) -> Option<prost_types::Timestamp> {
    ts(rfc3339.as_str().unwrap())
}

#[tokio::test]
async fn the_shopify_order_example_is_taken_and_its_arithmetic_flagged() {
    let app = TestApp::start().await;
    let o = &fixture("shopify_order.json")["order"];
    let cur = o["currency"].as_str().unwrap();
    let id = o["id"].to_string();
    let record = pb::Record {
        source_id: id.clone(),
        source_system: "shopify".into(),
        order_id: id.clone(),
        references: vec![],
        event_time: stamp(&o["created_at"]),
        source_update_time: None,
        kind: Some(pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
            name: o["name"].as_str().unwrap().into(),
            total: shop_money(cur, &o["total_price"]),
            subtotal: shop_money(cur, &o["subtotal_price"]),
            total_discount: shop_money(cur, &o["total_discounts"]),
            total_tax: shop_money(cur, &o["total_tax"]),
            total_shipping: None,
            line_items: o["line_items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| pb::LineItem {
                    sku: l["sku"].as_str().unwrap_or_default().into(),
                    quantity: l["quantity"].as_i64().unwrap(),
                    unit_price: shop_money(cur, &l["price"]),
                    discount: None,
                    tax: None,
                })
                .collect(),
            discounts: o["discount_codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| pb::Discount {
                    code: d["code"].as_str().unwrap().into(),
                    amount: shop_money(cur, &d["amount"]),
                })
                .collect(),
            tenders: vec![],
        })),
    };
    let r = app
        .submit(vec![record])
        .await
        .expect("the example's shape is valid");
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted]);

    // Three lines at 199.00 are 597.00, not the stated subtotal of 398.00;
    // a 10.00 discount code against total discounts of 0.00.
    let s = app.status(&id).await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    let mut flagged: Vec<_> = s
        .exceptions
        .iter()
        .map(|e| (e.rule.as_str(), e.r#type()))
        .collect();
    flagged.sort();
    assert_eq!(
        flagged,
        vec![
            ("order_discounts_sum", pb::ExceptionType::ValidationFailed),
            ("order_lines_sum", pb::ExceptionType::ValidationFailed),
        ]
    );
    let lines = s
        .exceptions
        .iter()
        .find(|e| e.rule == "order_lines_sum")
        .unwrap();
    assert!(
        lines.summary.contains("398.00") && lines.summary.contains("597.00"),
        "{}",
        lines.summary
    );
    // Subtotal - discount + tax + shipping does equal the total: not flagged.
    assert!(
        !s.exceptions
            .iter()
            .any(|e| e.rule == "order_components_sum")
    );
}

#[tokio::test]
async fn stripe_examples_in_minor_units_are_read_as_exact_money() {
    let app = TestApp::start().await;
    let d = fixture("stripe_core_objects.json");
    let bt = &d["balance_transaction"];
    let po = &d["payout"];
    let records = vec![
        pb::Record {
            source_id: bt["id"].as_str().unwrap().into(),
            source_system: "stripe".into(),
            order_id: String::new(),
            references: vec![],
            event_time: Some(prost_types::Timestamp {
                seconds: bt["created"].as_i64().unwrap(),
                nanos: 0,
            }),
            source_update_time: None,
            kind: Some(pb::record::Kind::BalanceTransaction(
                pb::BalanceTransaction {
                    reporting_category: bt["reporting_category"].as_str().unwrap().into(),
                    amount: stripe_money(&bt["amount"], &bt["currency"]),
                    fee: stripe_money(&bt["fee"], &bt["currency"]),
                    net: stripe_money(&bt["net"], &bt["currency"]),
                    source: bt["source"].as_str().unwrap().into(),
                    ..Default::default()
                },
            )),
        },
        pb::Record {
            source_id: po["id"].as_str().unwrap().into(),
            source_system: "stripe".into(),
            order_id: String::new(),
            references: vec![],
            event_time: Some(prost_types::Timestamp {
                seconds: po["created"].as_i64().unwrap(),
                nanos: 0,
            }),
            source_update_time: None,
            kind: Some(pb::record::Kind::Payout(pb::Payout {
                amount: stripe_money(&po["amount"], &po["currency"]),
                status: pb::PayoutStatus::InTransit as i32,
                arrival_time: Some(prost_types::Timestamp {
                    seconds: po["arrival_date"].as_i64().unwrap(),
                    nanos: 0,
                }),
            })),
        },
    ];
    let r = app.submit(records).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 2]);
    let db = app.db.client().await;
    let rows = db
        .query(
            "SELECT kind, currency_code, amount::text FROM record_log ORDER BY kind",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // 100 cents is 1.00 USD; the payout's 1100 is 11.00. Lowercase "usd" is stored as USD.
    assert_eq!(
        got,
        vec![
            ("balance_transaction".into(), "USD".into(), "1".into()),
            ("payout".into(), "USD".into(), "11".into()),
        ]
    );
}
