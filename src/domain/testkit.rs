//! Builders for domain tests: a clean order with its capture and invoice,
//! and knobs to break it.

use chrono::{DateTime, Duration, Utc};

use super::currency::Currency;
use super::money::Money;
use super::record::*;
use super::transaction::StoredRecord;

pub fn usd(s: &str) -> Money {
    Money::parse(s, Currency::from_code("USD").unwrap()).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-02T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

pub fn rec(system: &str, id: &str, when: DateTime<Utc>, body: Body) -> StoredRecord {
    StoredRecord {
        record: Record {
            source_id: id.into(),
            source_system: system.into(),
            order_id: Some("1001".into()),
            references: vec![],
            event_time: when,
            source_update_time: None,
            body,
        },
        receive_time: when + Duration::seconds(30),
    }
}

pub fn order(total: &str, units: i64) -> StoredRecord {
    rec(
        "shopify",
        "1001",
        t0(),
        Body::StorefrontOrder(StorefrontOrder {
            name: "#1001".into(),
            total: usd(total),
            subtotal: None,
            total_discount: None,
            total_tax: None,
            total_shipping: None,
            line_items: vec![LineItem {
                sku: "TEE".into(),
                quantity: units,
                unit_price: None,
                discount: None,
                tax: None,
            }],
            discounts: vec![],
            tenders: vec![Tender {
                tender_type: TenderType::Card,
                gateway: "stripe".into(),
                amount: usd(total),
                processor_reference: Some("pi_1".into()),
            }],
        }),
    )
}

pub fn charge(id: &str, amount: &str, minutes: i64) -> StoredRecord {
    rec(
        "stripe",
        id,
        at(minutes),
        Body::ProcessorPayment(ProcessorPayment {
            payment_type: PaymentType::Charge,
            amount: usd(amount),
            fee: Some(usd("3.20")),
            exchange_rate: None,
            payment_intent_id: Some("pi_1".into()),
            charge_id: None,
            balance_transaction_id: None,
        }),
    )
}

pub fn sf_capture(id: &str, amount: &str, processor_ref: &str, minutes: i64) -> StoredRecord {
    rec(
        "shopify",
        id,
        at(minutes),
        Body::StorefrontTransaction(StorefrontTransaction {
            kind: TxnKind::Capture,
            status: TxnStatus::Success,
            gateway: "stripe".into(),
            amount: usd(amount),
            parent_id: None,
            processor_reference: Some(processor_ref.into()),
        }),
    )
}

pub fn invoice(id: &str, total: &str, minutes: i64) -> StoredRecord {
    rec(
        "netsuite",
        id,
        at(minutes),
        Body::Invoice(Invoice {
            total: usd(total),
            discount: None,
            tax: None,
            shipping: None,
            lines: vec![],
        }),
    )
}

pub fn fulfilment(id: &str, units: i64, minutes: i64) -> StoredRecord {
    rec(
        "shipbob",
        id,
        at(minutes),
        Body::Fulfillment(Fulfillment {
            lines: vec![FulfillmentLine {
                sku: "TEE".into(),
                quantity: units,
            }],
            tracking_number: String::new(),
            location: String::new(),
        }),
    )
}

/// One record of every kind, each with its optional parts filled in, so
/// a serde attribute that breaks reading a stored payload back fails
/// here rather than in production.
pub fn every_kind() -> Vec<Record> {
    let m = usd("10.00");
    let bodies = vec![
        order("100.00", 2).record.body,
        Body::StorefrontTransaction(StorefrontTransaction {
            kind: TxnKind::Refund,
            status: TxnStatus::Success,
            gateway: "stripe".into(),
            amount: m,
            parent_id: Some("1".into()),
            processor_reference: Some("re_1".into()),
        }),
        fulfilment("F1", 1, 0).record.body,
        Body::Invoice(Invoice {
            total: m,
            discount: Some(m),
            tax: Some(m),
            shipping: Some(m),
            lines: vec![],
        }),
        Body::CreditMemo(CreditMemo {
            total: m,
            tax: None,
            lines: vec![InvoiceLine {
                sku: "S".into(),
                quantity: 1,
                amount: Some(m),
            }],
            shipping: None,
        }),
        Body::JournalEntry(JournalEntry {
            currency: m.currency,
            exchange_rate: Some(rust_decimal::Decimal::new(9231, 4)),
            posting_period: "Nov 2026".into(),
            subsidiary: "US".into(),
            memo: String::new(),
            lines: vec![JournalLine {
                account: "1190".into(),
                debit: m.amount,
                credit: rust_decimal::Decimal::ZERO,
                memo: String::new(),
                name: String::new(),
                reference: Some("ch_1".into()),
            }],
        }),
        charge("ch_1", "10.00", 0).record.body,
        Body::BalanceTransaction(BalanceTransaction {
            reporting_category: "charge".into(),
            amount: m,
            fee: Some(m),
            net: None,
            exchange_rate: None,
            source: Some("ch_1".into()),
            payout_id: Some("po_1".into()),
            available_time: Some(t0()),
        }),
        Body::Payout(Payout {
            amount: m,
            status: PayoutStatus::InTransit,
            arrival_time: Some(t0()),
        }),
        Body::BankDeposit(BankDeposit {
            amount: m,
            account: "chase".into(),
            description: "STRIPE".into(),
        }),
    ];
    bodies
        .into_iter()
        .map(|body| Record {
            source_id: "x".into(),
            source_system: "s".into(),
            order_id: None,
            references: vec![Reference {
                kind: RefKind::Charge,
                id: "ch_1".into(),
            }],
            event_time: t0(),
            source_update_time: None,
            body,
        })
        .collect()
}
