//! A parsed record as the public API takes it, so `tally import` submits
//! exactly what `tally audit` matched. The service validates it again
//! (`api::validate`) and answers per record.

use crate::api::convert::{money, timestamp};
use crate::domain::money::{Money, format_amount};
use crate::domain::record::*;
use crate::proto::tally::v1 as pb;

fn opt(m: &Option<Money>) -> Option<pb::Money> {
    m.as_ref().map(money)
}

fn reference(k: RefKind) -> pb::ReferenceType {
    match k {
        RefKind::Order => pb::ReferenceType::Order,
        RefKind::PaymentIntent => pb::ReferenceType::PaymentIntent,
        RefKind::Charge => pb::ReferenceType::Charge,
        RefKind::Refund => pb::ReferenceType::Refund,
        RefKind::BalanceTransaction => pb::ReferenceType::BalanceTransaction,
        RefKind::Payout => pb::ReferenceType::Payout,
        RefKind::Fulfillment => pb::ReferenceType::Fulfillment,
        RefKind::Invoice => pb::ReferenceType::Invoice,
        RefKind::CreditMemo => pb::ReferenceType::CreditMemo,
        RefKind::JournalEntry => pb::ReferenceType::JournalEntry,
        RefKind::BankDeposit => pb::ReferenceType::BankDeposit,
    }
}

pub fn record(r: &Record) -> pb::Record {
    pb::Record {
        source_id: r.source_id.clone(),
        source_system: r.source_system.clone(),
        order_id: r.order_id.clone().unwrap_or_default(),
        references: r
            .references
            .iter()
            .map(|x| pb::ExternalReference {
                r#type: reference(x.kind) as i32,
                id: x.id.clone(),
            })
            .collect(),
        event_time: Some(timestamp(r.event_time)),
        source_update_time: r.source_update_time.map(timestamp),
        kind: Some(kind(&r.body)),
    }
}

fn kind(b: &Body) -> pb::record::Kind {
    use pb::record::Kind;
    match b {
        Body::StorefrontOrder(o) => Kind::StorefrontOrder(pb::StorefrontOrder {
            name: o.name.clone(),
            total: Some(money(&o.total)),
            subtotal: opt(&o.subtotal),
            total_discount: opt(&o.total_discount),
            total_tax: opt(&o.total_tax),
            total_shipping: opt(&o.total_shipping),
            line_items: o
                .line_items
                .iter()
                .map(|l| pb::LineItem {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_price: opt(&l.unit_price),
                    discount: opt(&l.discount),
                    tax: opt(&l.tax),
                })
                .collect(),
            discounts: o
                .discounts
                .iter()
                .map(|d| pb::Discount {
                    code: d.code.clone(),
                    amount: Some(money(&d.amount)),
                })
                .collect(),
            tenders: o
                .tenders
                .iter()
                .map(|t| pb::Tender {
                    r#type: match t.tender_type {
                        TenderType::Card => pb::TenderType::Card,
                        TenderType::GiftCard => pb::TenderType::GiftCard,
                        TenderType::StoreCredit => pb::TenderType::StoreCredit,
                        TenderType::Cash => pb::TenderType::Cash,
                        TenderType::Other => pb::TenderType::Other,
                    } as i32,
                    gateway: t.gateway.clone(),
                    amount: Some(money(&t.amount)),
                    processor_reference: t.processor_reference.clone().unwrap_or_default(),
                })
                .collect(),
        }),
        Body::StorefrontTransaction(t) => Kind::StorefrontTransaction(pb::StorefrontTransaction {
            kind: match t.kind {
                TxnKind::Authorization => pb::StorefrontTransactionKind::Authorization,
                TxnKind::Capture => pb::StorefrontTransactionKind::Capture,
                TxnKind::Sale => pb::StorefrontTransactionKind::Sale,
                TxnKind::Refund => pb::StorefrontTransactionKind::Refund,
                TxnKind::Void => pb::StorefrontTransactionKind::Void,
            } as i32,
            status: match t.status {
                TxnStatus::Success => pb::StorefrontTransactionStatus::Success,
                TxnStatus::Pending => pb::StorefrontTransactionStatus::Pending,
                TxnStatus::Failure => pb::StorefrontTransactionStatus::Failure,
                TxnStatus::Error => pb::StorefrontTransactionStatus::Error,
            } as i32,
            gateway: t.gateway.clone(),
            amount: Some(money(&t.amount)),
            parent_id: t.parent_id.clone().unwrap_or_default(),
            processor_reference: t.processor_reference.clone().unwrap_or_default(),
        }),
        Body::Fulfillment(f) => Kind::Fulfillment(pb::Fulfillment {
            lines: f
                .lines
                .iter()
                .map(|l| pb::FulfillmentLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            tracking_number: f.tracking_number.clone(),
            location: f.location.clone(),
        }),
        Body::Invoice(i) => Kind::Invoice(pb::Invoice {
            total: Some(money(&i.total)),
            discount: opt(&i.discount),
            tax: opt(&i.tax),
            shipping: opt(&i.shipping),
            lines: invoice_lines(&i.lines),
        }),
        Body::CreditMemo(c) => Kind::CreditMemo(pb::CreditMemo {
            total: Some(money(&c.total)),
            tax: opt(&c.tax),
            lines: invoice_lines(&c.lines),
            shipping: opt(&c.shipping),
        }),
        Body::JournalEntry(j) => Kind::JournalEntry(pb::JournalEntry {
            currency_code: j.currency.code().to_string(),
            exchange_rate: j.exchange_rate.map(|r| r.to_string()).unwrap_or_default(),
            posting_period: j.posting_period.clone(),
            subsidiary: j.subsidiary.clone(),
            memo: j.memo.clone(),
            lines: j
                .lines
                .iter()
                .map(|l| pb::JournalLine {
                    account: l.account.clone(),
                    debit: side(l.debit, j),
                    credit: side(l.credit, j),
                    memo: l.memo.clone(),
                    name: l.name.clone(),
                    reference: l.reference.clone().unwrap_or_default(),
                })
                .collect(),
        }),
        Body::ProcessorPayment(p) => Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: match p.payment_type {
                PaymentType::Charge => pb::ProcessorPaymentType::Charge,
                PaymentType::Capture => pb::ProcessorPaymentType::Capture,
                PaymentType::Refund => pb::ProcessorPaymentType::Refund,
            } as i32,
            amount: Some(money(&p.amount)),
            fee: opt(&p.fee),
            exchange_rate: p.exchange_rate.map(|r| r.to_string()).unwrap_or_default(),
            payment_intent_id: p.payment_intent_id.clone().unwrap_or_default(),
            charge_id: p.charge_id.clone().unwrap_or_default(),
            balance_transaction_id: p.balance_transaction_id.clone().unwrap_or_default(),
        }),
        Body::BalanceTransaction(b) => Kind::BalanceTransaction(pb::BalanceTransaction {
            reporting_category: b.reporting_category.clone(),
            amount: Some(money(&b.amount)),
            fee: opt(&b.fee),
            net: opt(&b.net),
            exchange_rate: b.exchange_rate.map(|r| r.to_string()).unwrap_or_default(),
            source: b.source.clone().unwrap_or_default(),
            payout_id: b.payout_id.clone().unwrap_or_default(),
            available_time: b.available_time.map(timestamp),
        }),
        Body::Payout(p) => Kind::Payout(pb::Payout {
            amount: Some(money(&p.amount)),
            status: match p.status {
                PayoutStatus::Pending => pb::PayoutStatus::Pending,
                PayoutStatus::InTransit => pb::PayoutStatus::InTransit,
                PayoutStatus::Paid => pb::PayoutStatus::Paid,
                PayoutStatus::Failed => pb::PayoutStatus::Failed,
                PayoutStatus::Canceled => pb::PayoutStatus::Canceled,
            } as i32,
            arrival_time: p.arrival_time.map(timestamp),
        }),
        Body::BankDeposit(d) => Kind::BankDeposit(pb::BankDeposit {
            amount: Some(money(&d.amount)),
            account: d.account.clone(),
            description: d.description.clone(),
        }),
    }
}

/// A journal line's side: empty when zero (the API wants exactly one).
fn side(d: rust_decimal::Decimal, j: &JournalEntry) -> String {
    if d.is_zero() {
        String::new()
    } else {
        format_amount(d, j.currency)
    }
}

fn invoice_lines(lines: &[InvoiceLine]) -> Vec<pb::InvoiceLine> {
    lines
        .iter()
        .map(|l| pb::InvoiceLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            amount: opt(&l.amount),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::domain::testkit::every_kind;

    /// Every kind survives the trip through the API's own validation.
    #[test]
    fn every_kind_round_trips_through_validation() {
        for mut r in every_kind() {
            if r.kind().needs_order() {
                r.order_id = Some("1001".into());
            }
            // The sample journal has one line; a real one is below.
            if let crate::domain::record::Body::JournalEntry(j) = &mut r.body {
                let mut credit = j.lines[0].clone();
                std::mem::swap(&mut credit.debit, &mut credit.credit);
                credit.reference = None;
                j.lines.push(credit);
            }
            let pb = super::record(&r);
            let mut violations = vec![];
            let back = crate::api::validate::record(0, &pb, &mut violations);
            assert!(violations.is_empty(), "{:?}: {violations:?}", r.kind());
            assert_eq!(back.as_ref(), Some(&r), "{:?}", r.kind());
        }
    }
}
