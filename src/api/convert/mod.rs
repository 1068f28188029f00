//! Proto <-> domain conversions, all in one place: enums in `enums`,
//! messages here.

mod enums;
pub mod handoffs;
mod records;
pub mod reports;
pub mod trace;

pub use enums::known;

use chrono::{DateTime, Utc};

use crate::api::names::{exception_name, transaction_name};
use crate::domain::matching::Observation;
use crate::domain::money::{Money, format_amount};
use crate::domain::transaction::Transaction;
use crate::domain::versions::RecordHistory;
use crate::proto::tally::v1 as pb;
use crate::storage::exceptions::ExceptionRow;

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn money(m: &Money) -> pb::Money {
    pb::Money {
        currency_code: m.currency.code().to_string(),
        amount: format_amount(m.amount, m.currency),
    }
}

fn opt_money(m: &Option<Money>) -> Option<pb::Money> {
    m.as_ref().map(money)
}

fn sorted(s: &std::collections::BTreeSet<String>) -> Vec<String> {
    s.iter().cloned().collect()
}

pub fn transaction(merchant: &str, t: &Transaction) -> pb::Transaction {
    let ids = &t.external_ids;
    let totals = &t.totals;
    pb::Transaction {
        name: transaction_name(merchant, &t.order_id),
        order_id: t.order_id.clone(),
        currency_code: t.currency.map(|c| c.code().to_string()).unwrap_or_default(),
        state: pb::ReconciliationState::from(t.state) as i32,
        reasons: t.reasons.clone(),
        external_ids: Some(pb::ExternalIds {
            order_ids: sorted(&ids.order_ids),
            payment_intent_ids: sorted(&ids.payment_intent_ids),
            charge_ids: sorted(&ids.charge_ids),
            refund_ids: sorted(&ids.refund_ids),
            balance_transaction_ids: sorted(&ids.balance_transaction_ids),
            payout_ids: sorted(&ids.payout_ids),
            fulfillment_ids: sorted(&ids.fulfillment_ids),
            invoice_ids: sorted(&ids.invoice_ids),
            credit_memo_ids: sorted(&ids.credit_memo_ids),
            journal_entry_ids: sorted(&ids.journal_entry_ids),
            storefront_transaction_ids: sorted(&ids.storefront_transaction_ids),
            bank_deposit_ids: sorted(&ids.bank_deposit_ids),
        }),
        totals: Some(pb::Totals {
            order_total: opt_money(&totals.order_total),
            order_discount: opt_money(&totals.order_discount),
            storefront_captured: opt_money(&totals.storefront_captured),
            storefront_refunded: opt_money(&totals.storefront_refunded),
            processor_captured: opt_money(&totals.processor_captured),
            processor_refunded: opt_money(&totals.processor_refunded),
            processor_fees: opt_money(&totals.processor_fees),
            captured: opt_money(&totals.captured),
            invoiced: opt_money(&totals.invoiced),
            credited: opt_money(&totals.credited),
            journaled: opt_money(&totals.journaled),
        }),
        tenders: t
            .tenders
            .iter()
            .map(|x| pb::TransactionTender {
                r#type: x.tender_type.clone(),
                gateway: x.gateway.clone(),
                amount: Some(money(&x.amount)),
                processor_reference: x.processor_reference.clone().unwrap_or_default(),
            })
            .collect(),
        fulfillments: t
            .fulfillments
            .iter()
            .map(|f| pb::TransactionFulfillment {
                fulfillment_id: f.fulfillment_id.clone(),
                quantity: f.quantity,
                event_time: Some(timestamp(f.event_time)),
            })
            .collect(),
        movements: t
            .movements
            .iter()
            .map(|m| pb::MoneyMovement {
                r#type: m.movement_type.clone(),
                source_system: m.source_system.clone(),
                source_id: m.source_id.clone(),
                amount: Some(money(&m.amount)),
                processor_reference: m.processor_reference.clone().unwrap_or_default(),
                event_time: Some(timestamp(m.event_time)),
            })
            .collect(),
        exchange_rates: t
            .exchange_rates
            .iter()
            .map(|r| pb::ExchangeRate {
                source_id: r.source_id.clone(),
                from_currency_code: r.from.code().to_string(),
                to_currency_code: r.to.map(|c| c.code().to_string()).unwrap_or_default(),
                rate: r.rate.normalize().to_string(),
            })
            .collect(),
        timeline: t
            .timeline
            .iter()
            .map(|e| pb::TimelineEntry {
                stage: pb::Stage::from(e.stage) as i32,
                kind: pb::RecordKind::from(e.kind) as i32,
                source_system: e.source_system.clone(),
                source_id: e.source_id.clone(),
                event_time: Some(timestamp(e.event_time)),
                receive_time: Some(timestamp(e.receive_time)),
            })
            .collect(),
        event_time: Some(timestamp(t.event_time)),
        create_time: Some(timestamp(t.create_time)),
        update_time: Some(timestamp(t.update_time)),
        record_histories: t.record_histories.iter().map(history).collect(),
    }
}

fn history(h: &RecordHistory) -> pb::RecordHistory {
    pb::RecordHistory {
        source_system: h.source_system.clone(),
        kind: pb::RecordKind::from(h.kind) as i32,
        source_id: h.source_id.clone(),
        versions: h
            .versions
            .iter()
            .map(|v| pb::RecordVersion {
                source_update_time: v.source_update_time.map(timestamp),
                receive_time: Some(timestamp(v.receive_time)),
                event_time: Some(timestamp(v.event_time)),
                amount: opt_money(&v.amount),
                status: v.status.clone().unwrap_or_default(),
                current: v.current,
            })
            .collect(),
    }
}

pub fn exception(merchant: &str, e: &ExceptionRow) -> pb::Exception {
    let observations: Vec<Observation> = e
        .details
        .get("observations")
        .and_then(|o| serde_json::from_value(o.clone()).ok())
        .unwrap_or_default();
    let difference: Option<Money> = e
        .details
        .get("difference")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .flatten();
    pb::Exception {
        name: exception_name(merchant, &e.exception_id),
        r#type: pb::ExceptionType::from(e.exception_type) as i32,
        handoff: pb::Handoff::from(e.handoff) as i32,
        state: pb::ExceptionState::from(e.state) as i32,
        transaction: e
            .order_id
            .as_deref()
            .map(|o| transaction_name(merchant, o))
            .unwrap_or_default(),
        rule: e.rule.clone(),
        summary: e.summary.clone(),
        observations: observations
            .iter()
            .map(|o| pb::Observation {
                source_system: o.source_system.clone(),
                kind: pb::RecordKind::from(o.kind) as i32,
                source_ids: o.source_ids.clone(),
                amount: opt_money(&o.amount),
                event_time: o.event_time.map(timestamp),
            })
            .collect(),
        difference: opt_money(&difference),
        create_time: Some(timestamp(e.create_time)),
        update_time: Some(timestamp(e.update_time)),
        resolve_time: e.resolve_time.map(timestamp),
        owner: e.work.owner.clone().unwrap_or_default(),
        due_time: e.work.due_time.map(timestamp),
        amount_at_risk: opt_money(&e.work.at_risk),
        etag: crate::app::exceptions::etag(e.work.version),
        resolved_by: e.work.resolved_by.clone().unwrap_or_default(),
        resolution_note: e.work.resolution_note.clone().unwrap_or_default(),
        history: vec![],
    }
}
