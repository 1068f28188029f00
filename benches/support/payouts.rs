//! A payout's records as the cash worker finds them: orders captured and
//! invoiced, the processor's balance transactions, the payout that sweeps
//! them (cash_application, citus).
#![allow(dead_code)]

use tally::proto::tally::v1 as pb;

use super::{ts, usd};

/// A record of `system` for `order` (empty: none), at [`ts`]'s base.
pub fn rec(system: &str, id: String, order: &str, kind: pb::record::Kind) -> pb::Record {
    pb::Record {
        source_id: id,
        source_system: system.into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts(0),
        source_update_time: None,
        kind: Some(kind),
    }
}

/// One payout's records: `per_payout` orders (order, capture, invoice), their
/// balance transactions, the payout.
pub fn payout_records(tag: &str, p: usize, per_payout: usize) -> Vec<pb::Record> {
    let mut out = vec![];
    let po = format!("po_{tag}_{p}");
    for i in 0..per_payout {
        let o = format!("{tag}-{p}-{i}");
        let ch = format!("ch_{o}");
        out.push(rec(
            "shopify",
            o.clone(),
            &o,
            pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
                total: usd("25.00"),
                ..Default::default()
            }),
        ));
        out.push(rec(
            "stripe",
            ch.clone(),
            &o,
            pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
                r#type: pb::ProcessorPaymentType::Charge as i32,
                amount: usd("25.00"),
                charge_id: ch.clone(),
                ..Default::default()
            }),
        ));
        out.push(rec(
            "netsuite",
            format!("INV-{o}"),
            &o,
            pb::record::Kind::Invoice(pb::Invoice {
                total: usd("25.00"),
                ..Default::default()
            }),
        ));
        out.push(rec(
            "stripe",
            format!("txn_{o}"),
            "",
            pb::record::Kind::BalanceTransaction(pb::BalanceTransaction {
                reporting_category: "charge".into(),
                amount: usd("25.00"),
                fee: usd("1.03"),
                net: usd("23.97"),
                source: ch,
                payout_id: po.clone(),
                ..Default::default()
            }),
        ));
    }
    out.push(rec(
        "stripe",
        po,
        "",
        pb::record::Kind::Payout(pb::Payout {
            amount: usd(&format!("{:.2}", 23.97 * per_payout as f64)),
            status: pb::PayoutStatus::Paid as i32,
            arrival_time: None,
        }),
    ));
    out
}
