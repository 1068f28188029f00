//! The canonical transaction: every record of one order merged into one
//! view. Pure: the same records always merge to the same transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::currency::Currency;
use super::facts::select::{current_order, transaction_currency};
use super::facts::{PaymentFacts, fees, sum_in};
use super::money::Money;
use super::record::{Body, PaymentType, Record, RecordKind, RefKind, Stage, TxnStatus};

/// A record as stored: what Tally knew, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub record: Record,
    pub receive_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconciliationState {
    Pending,
    Matched,
    Exception,
}

impl ReconciliationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconciliationState::Pending => "pending",
            ReconciliationState::Matched => "matched",
            ReconciliationState::Exception => "exception",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "matched" => Some(Self::Matched),
            "exception" => Some(Self::Exception),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExternalIds {
    pub order_ids: BTreeSet<String>,
    pub payment_intent_ids: BTreeSet<String>,
    pub charge_ids: BTreeSet<String>,
    pub refund_ids: BTreeSet<String>,
    pub balance_transaction_ids: BTreeSet<String>,
    pub payout_ids: BTreeSet<String>,
    pub fulfillment_ids: BTreeSet<String>,
    pub invoice_ids: BTreeSet<String>,
    pub credit_memo_ids: BTreeSet<String>,
    pub journal_entry_ids: BTreeSet<String>,
    pub storefront_transaction_ids: BTreeSet<String>,
    pub bank_deposit_ids: BTreeSet<String>,
}

impl ExternalIds {
    fn set_mut(&mut self, kind: RefKind) -> &mut BTreeSet<String> {
        match kind {
            RefKind::Order => &mut self.order_ids,
            RefKind::PaymentIntent => &mut self.payment_intent_ids,
            RefKind::Charge => &mut self.charge_ids,
            RefKind::Refund => &mut self.refund_ids,
            RefKind::BalanceTransaction => &mut self.balance_transaction_ids,
            RefKind::Payout => &mut self.payout_ids,
            RefKind::Fulfillment => &mut self.fulfillment_ids,
            RefKind::Invoice => &mut self.invoice_ids,
            RefKind::CreditMemo => &mut self.credit_memo_ids,
            RefKind::JournalEntry => &mut self.journal_entry_ids,
            RefKind::BankDeposit => &mut self.bank_deposit_ids,
        }
    }

    fn add(&mut self, kind: RefKind, id: &str) {
        if !id.is_empty() {
            self.set_mut(kind).insert(id.to_string());
        }
    }
}

/// Figures per system, in the transaction's currency (fees in theirs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub order_total: Option<Money>,
    pub order_discount: Option<Money>,
    pub storefront_captured: Option<Money>,
    pub storefront_refunded: Option<Money>,
    pub processor_captured: Option<Money>,
    pub processor_refunded: Option<Money>,
    pub processor_fees: Option<Money>,
    pub captured: Option<Money>,
    pub invoiced: Option<Money>,
    pub credited: Option<Money>,
    pub journaled: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenderView {
    pub tender_type: String,
    pub gateway: String,
    pub amount: Money,
    pub processor_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfillmentView {
    pub fulfillment_id: String,
    pub quantity: i64,
    pub event_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Movement {
    pub movement_type: String,
    pub source_system: String,
    pub source_id: String,
    pub amount: Money,
    pub processor_reference: Option<String>,
    pub event_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateView {
    pub source_id: String,
    pub from: Currency,
    pub to: Option<Currency>,
    pub rate: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub stage: Stage,
    pub kind: RecordKind,
    pub source_system: String,
    pub source_id: String,
    pub event_time: DateTime<Utc>,
    pub receive_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub order_id: String,
    pub currency: Option<Currency>,
    pub state: ReconciliationState,
    pub reasons: Vec<String>,
    pub external_ids: ExternalIds,
    pub totals: Totals,
    pub tenders: Vec<TenderView>,
    pub fulfillments: Vec<FulfillmentView>,
    pub movements: Vec<Movement>,
    pub exchange_rates: Vec<RateView>,
    pub timeline: Vec<TimelineEntry>,
    pub event_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// Merges the records of one order. State and reasons are left PENDING and
/// empty: `matching::evaluate` fills them.
pub fn merge(order_id: &str, records: &[StoredRecord]) -> Transaction {
    let mut sorted: Vec<&StoredRecord> = records.iter().collect();
    sorted.sort_by(|a, b| {
        (a.record.event_time, &a.record.source_id).cmp(&(b.record.event_time, &b.record.source_id))
    });
    let currency = transaction_currency(records);
    let order = current_order(records);

    let mut ids = ExternalIds::default();
    let mut tenders = vec![];
    let mut fulfillments = vec![];
    let mut movements = vec![];
    let mut rates = vec![];
    let mut timeline = vec![];

    ids.add(RefKind::Order, order_id);
    for sr in &sorted {
        let r = &sr.record;
        for reference in &r.references {
            ids.add(reference.kind, &reference.id);
        }
        timeline.push(TimelineEntry {
            stage: r.kind().stage(),
            kind: r.kind(),
            source_system: r.source_system.clone(),
            source_id: r.source_id.clone(),
            event_time: r.event_time,
            receive_time: sr.receive_time,
        });
        let mv = |t: &str, amount: Money, pref: Option<String>| Movement {
            movement_type: t.to_string(),
            source_system: r.source_system.clone(),
            source_id: r.source_id.clone(),
            amount,
            processor_reference: pref,
            event_time: r.event_time,
        };
        match &r.body {
            Body::StorefrontOrder(_) => ids.add(RefKind::Order, &r.source_id),
            Body::StorefrontTransaction(t) => {
                ids.add(RefKind::Order, order_id);
                ids.storefront_transaction_ids.insert(r.source_id.clone());
                if t.status == TxnStatus::Success {
                    movements.push(mv(t.kind.as_str(), t.amount, t.processor_reference.clone()));
                }
            }
            Body::Fulfillment(f) => {
                ids.add(RefKind::Fulfillment, &r.source_id);
                fulfillments.push(FulfillmentView {
                    fulfillment_id: r.source_id.clone(),
                    quantity: f.lines.iter().map(|l| l.quantity).sum(),
                    event_time: r.event_time,
                });
            }
            Body::Invoice(_) => ids.add(RefKind::Invoice, &r.source_id),
            Body::CreditMemo(_) => ids.add(RefKind::CreditMemo, &r.source_id),
            Body::JournalEntry(j) => {
                ids.add(RefKind::JournalEntry, &r.source_id);
                if let Some(rate) = j.exchange_rate {
                    rates.push(RateView {
                        source_id: r.source_id.clone(),
                        from: j.currency,
                        to: None,
                        rate,
                    });
                }
            }
            Body::ProcessorPayment(p) => {
                match p.payment_type {
                    PaymentType::Refund => ids.add(RefKind::Refund, &r.source_id),
                    _ => ids.add(RefKind::Charge, &r.source_id),
                }
                if let Some(pi) = &p.payment_intent_id {
                    ids.add(RefKind::PaymentIntent, pi);
                }
                if let Some(ch) = &p.charge_id {
                    ids.add(RefKind::Charge, ch);
                }
                if let Some(bt) = &p.balance_transaction_id {
                    ids.add(RefKind::BalanceTransaction, bt);
                }
                let pref = p.charge_id.clone().or_else(|| p.payment_intent_id.clone());
                movements.push(mv(p.payment_type.as_str(), p.amount, pref.clone()));
                if let Some(fee) = p.fee {
                    if !fee.amount.is_zero() {
                        movements.push(mv("fee", fee, Some(r.source_id.clone())));
                    }
                }
                if let Some(rate) = p.exchange_rate {
                    rates.push(RateView {
                        source_id: r.source_id.clone(),
                        from: p.amount.currency,
                        to: p.fee.map(|f| f.currency),
                        rate,
                    });
                }
            }
            Body::BalanceTransaction(b) => {
                ids.add(RefKind::BalanceTransaction, &r.source_id);
                if let Some(po) = &b.payout_id {
                    ids.add(RefKind::Payout, po);
                }
                if let Some(rate) = b.exchange_rate {
                    rates.push(RateView {
                        source_id: r.source_id.clone(),
                        from: b.amount.currency,
                        to: None,
                        rate,
                    });
                }
            }
            Body::Payout(_) => ids.add(RefKind::Payout, &r.source_id),
            Body::BankDeposit(_) => ids.add(RefKind::BankDeposit, &r.source_id),
        }
    }

    if let Some((_, o)) = order {
        tenders = o
            .tenders
            .iter()
            .map(|t| TenderView {
                tender_type: t.tender_type.as_str().to_string(),
                gateway: t.gateway.clone(),
                amount: t.amount,
                processor_reference: t.processor_reference.clone(),
            })
            .collect();
    }

    let facts = PaymentFacts::gather(records, currency);
    let totals = Totals {
        order_total: order.map(|(_, o)| o.total),
        order_discount: order.and_then(|(_, o)| o.total_discount),
        storefront_captured: facts.storefront_captured,
        storefront_refunded: facts.storefront_refunded,
        processor_captured: facts.processor_captured,
        processor_refunded: facts.processor_refunded,
        // Fees in another currency are converted with their payment's rate
        // or reported by the rules; never added as if the same money.
        processor_fees: fees(records).total,
        captured: facts.captured,
        invoiced: sum_in(
            currency,
            records.iter().filter_map(|r| match &r.record.body {
                Body::Invoice(i) => Some(&i.total),
                _ => None,
            }),
        ),
        credited: sum_in(
            currency,
            records.iter().filter_map(|r| match &r.record.body {
                Body::CreditMemo(c) => Some(&c.total),
                _ => None,
            }),
        ),
        journaled: facts.journaled,
    };

    let event_time = order
        .map(|(r, _)| r.event_time)
        .or_else(|| sorted.first().map(|r| r.record.event_time))
        .unwrap_or_default();
    let create_time = records
        .iter()
        .map(|r| r.receive_time)
        .min()
        .unwrap_or_default();
    let update_time = records
        .iter()
        .map(|r| r.receive_time)
        .max()
        .unwrap_or_default();

    Transaction {
        order_id: order_id.to_string(),
        currency,
        state: ReconciliationState::Pending,
        reasons: vec![],
        external_ids: ids,
        totals,
        tenders,
        fulfillments,
        movements,
        exchange_rates: rates,
        timeline,
        event_time,
        create_time,
        update_time,
    }
}
