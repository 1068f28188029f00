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
use super::record::{
    BalanceTransaction, Body, PaymentType, ProcessorPayment, Record, RecordKind, RefKind, Stage,
    Tender, TxnStatus,
};
use super::versions::RecordHistory;

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
    /// Records that changed at their source, with every version (see
    /// `versions`). Merging reads only current versions, so `merge` leaves
    /// this empty and reads fill it from the log.
    #[serde(default)]
    pub record_histories: Vec<RecordHistory>,
}

/// What the matching rules read of one order's records: its currency and
/// the figures per system. `merge` builds the whole view around them; the
/// offline audit, which shows no view, computes only these.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub currency: Option<Currency>,
    pub totals: Totals,
}

impl Figures {
    pub fn of(records: &[StoredRecord]) -> Figures {
        let currency = transaction_currency(records);
        Figures {
            currency,
            totals: totals(records, currency),
        }
    }
}

/// Merges the records of one order. State and reasons are left PENDING and
/// empty: `matching::evaluate` fills them.
pub fn merge(order_id: &str, records: &[StoredRecord]) -> Transaction {
    merge_with(order_id, records, Figures::of(records))
}

/// As `merge`, around figures already computed from the same records.
pub fn merge_with(order_id: &str, records: &[StoredRecord], figures: Figures) -> Transaction {
    let mut sorted: Vec<&StoredRecord> = records.iter().collect();
    sorted.sort_by(|a, b| {
        (a.record.event_time, &a.record.source_id).cmp(&(b.record.event_time, &b.record.source_id))
    });
    let Figures { currency, totals } = figures;
    let order = current_order(records);

    let mut ids = ExternalIds::default();
    ids.add(RefKind::Order, order_id);
    for sr in &sorted {
        ids.absorb(&sr.record, order_id);
    }
    let tenders = order
        .map(|(_, o)| o.tenders.iter().map(TenderView::of).collect())
        .unwrap_or_default();
    let event_time = order
        .map(|(r, _)| r.event_time)
        .or_else(|| sorted.first().map(|r| r.record.event_time))
        .unwrap_or_default();
    let receive_times = records.iter().map(|r| r.receive_time);

    Transaction {
        order_id: order_id.to_string(),
        currency,
        state: ReconciliationState::Pending,
        reasons: vec![],
        external_ids: ids,
        totals,
        tenders,
        fulfillments: sorted
            .iter()
            .filter_map(|sr| FulfillmentView::of(&sr.record))
            .collect(),
        movements: sorted
            .iter()
            .flat_map(|sr| movements_of(&sr.record))
            .collect(),
        exchange_rates: sorted
            .iter()
            .filter_map(|sr| RateView::of(&sr.record, records, currency))
            .collect(),
        timeline: sorted.iter().map(|sr| TimelineEntry::of(sr)).collect(),
        event_time,
        create_time: receive_times.clone().min().unwrap_or_default(),
        update_time: receive_times.max().unwrap_or_default(),
        record_histories: vec![],
    }
}

impl ExternalIds {
    /// Adds every id one record carries: its references, its own id under
    /// its kind, and the processor ids of a payment.
    fn absorb(&mut self, r: &Record, order_id: &str) {
        for reference in &r.references {
            self.add(reference.kind, &reference.id);
        }
        match &r.body {
            Body::StorefrontOrder(_) => self.add(RefKind::Order, &r.source_id),
            Body::StorefrontTransaction(_) => {
                self.add(RefKind::Order, order_id);
                self.storefront_transaction_ids.insert(r.source_id.clone());
            }
            Body::Fulfillment(_) => self.add(RefKind::Fulfillment, &r.source_id),
            Body::Invoice(_) => self.add(RefKind::Invoice, &r.source_id),
            Body::CreditMemo(_) => self.add(RefKind::CreditMemo, &r.source_id),
            Body::JournalEntry(_) => self.add(RefKind::JournalEntry, &r.source_id),
            Body::ProcessorPayment(p) => {
                let own = match p.payment_type {
                    PaymentType::Refund => RefKind::Refund,
                    _ => RefKind::Charge,
                };
                self.add(own, &r.source_id);
                let carried = [
                    (RefKind::PaymentIntent, &p.payment_intent_id),
                    (RefKind::Charge, &p.charge_id),
                    (RefKind::BalanceTransaction, &p.balance_transaction_id),
                ];
                for (kind, id) in carried {
                    if let Some(id) = id {
                        self.add(kind, id);
                    }
                }
            }
            Body::BalanceTransaction(b) => {
                self.add(RefKind::BalanceTransaction, &r.source_id);
                if let Some(po) = &b.payout_id {
                    self.add(RefKind::Payout, po);
                }
            }
            Body::Payout(_) => self.add(RefKind::Payout, &r.source_id),
            Body::BankDeposit(_) => self.add(RefKind::BankDeposit, &r.source_id),
        }
    }
}

impl TenderView {
    fn of(t: &Tender) -> TenderView {
        TenderView {
            tender_type: t.tender_type.as_str().to_string(),
            gateway: t.gateway.clone(),
            amount: t.amount,
            processor_reference: t.processor_reference.clone(),
        }
    }
}

impl FulfillmentView {
    fn of(r: &Record) -> Option<FulfillmentView> {
        let Body::Fulfillment(f) = &r.body else {
            return None;
        };
        Some(FulfillmentView {
            fulfillment_id: r.source_id.clone(),
            quantity: units(f.lines.iter().map(|l| l.quantity)),
            event_time: r.event_time,
        })
    }
}

impl RateView {
    /// The exchange rate a record states, as from x rate = to: a journal's
    /// from its currency to the (unnamed) base currency; a processor
    /// payment's from its amount's currency to its fee's; a balance
    /// transaction's from the presentment currency (its payment's, else
    /// the transaction's) to the settlement currency its amount is in.
    fn of(r: &Record, records: &[StoredRecord], currency: Option<Currency>) -> Option<RateView> {
        let (from, to, rate) = match &r.body {
            Body::JournalEntry(j) => (j.currency, None, j.exchange_rate?),
            Body::ProcessorPayment(p) => (
                p.amount.currency,
                p.fee.map(|f| f.currency),
                p.exchange_rate?,
            ),
            Body::BalanceTransaction(b) => {
                let presentment = settled_payment(r, b, records)
                    .map(|p| p.amount.currency)
                    .or(currency)?;
                (presentment, Some(b.amount.currency), b.exchange_rate?)
            }
            _ => return None,
        };
        Some(RateView {
            source_id: r.source_id.clone(),
            from,
            to,
            rate,
        })
    }
}

/// The processor payment a balance transaction settles: the one naming it,
/// or the one its `source` names.
fn settled_payment<'a>(
    r: &Record,
    b: &BalanceTransaction,
    records: &'a [StoredRecord],
) -> Option<&'a ProcessorPayment> {
    records.iter().find_map(|sr| match &sr.record.body {
        Body::ProcessorPayment(p)
            if p.balance_transaction_id.as_deref() == Some(r.source_id.as_str())
                || b.source.as_deref().is_some_and(|s| {
                    sr.record.source_id == s || p.charge_id.as_deref() == Some(s)
                }) =>
        {
            Some(p)
        }
        _ => None,
    })
}

impl TimelineEntry {
    fn of(sr: &StoredRecord) -> TimelineEntry {
        let r = &sr.record;
        TimelineEntry {
            stage: r.kind().stage(),
            kind: r.kind(),
            source_system: r.source_system.clone(),
            source_id: r.source_id.clone(),
            event_time: r.event_time,
            receive_time: sr.receive_time,
        }
    }
}

/// Money one record moved: a successful storefront transaction, or a
/// processor payment and its fee.
fn movements_of(r: &Record) -> Vec<Movement> {
    let mv = |t: &str, amount: Money, pref: Option<String>| Movement {
        movement_type: t.to_string(),
        source_system: r.source_system.clone(),
        source_id: r.source_id.clone(),
        amount,
        processor_reference: pref,
        event_time: r.event_time,
    };
    match &r.body {
        Body::StorefrontTransaction(t) if t.status == TxnStatus::Success => {
            vec![mv(t.kind.as_str(), t.amount, t.processor_reference.clone())]
        }
        Body::ProcessorPayment(p) => {
            let pref = p.charge_id.clone().or_else(|| p.payment_intent_id.clone());
            let mut out = vec![mv(p.payment_type.as_str(), p.amount, pref)];
            if let Some(fee) = p.fee.filter(|f| !f.amount.is_zero()) {
                out.push(mv("fee", fee, Some(r.source_id.clone())));
            }
            out
        }
        _ => vec![],
    }
}

/// A count of units that saturates instead of overflowing: quantities come
/// from callers, and no order ships 2^63 units.
pub(crate) fn units(quantities: impl Iterator<Item = i64>) -> i64 {
    quantities.fold(0, i64::saturating_add)
}

fn totals(records: &[StoredRecord], currency: Option<Currency>) -> Totals {
    let order = current_order(records);
    let facts = PaymentFacts::gather(records, currency);
    let invoices = records.iter().filter_map(|r| match &r.record.body {
        Body::Invoice(i) => Some(&i.total),
        _ => None,
    });
    let credit_memos = records.iter().filter_map(|r| match &r.record.body {
        Body::CreditMemo(c) => Some(&c.total),
        _ => None,
    });
    Totals {
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
        invoiced: sum_in(currency, invoices),
        credited: sum_in(currency, credit_memos),
        journaled: facts.journaled,
    }
}
