//! A record: one thing one system saw, validated and normalised. Its
//! serialised form is both the stored payload and the input of its content
//! hash, so equal content always hashes equal.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::money::Money;

pub use super::journal::{JournalEntry, JournalError, JournalLine};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub source_id: String,
    pub source_system: String,
    pub order_id: Option<String>,
    pub references: Vec<Reference>,
    pub event_time: DateTime<Utc>,
    /// When the source last changed the record: orders the versions of one
    /// key. Left out of the payload when absent, so records stored before it
    /// existed read back and hash as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_update_time: Option<DateTime<Utc>>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub kind: RefKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefKind {
    Order,
    PaymentIntent,
    Charge,
    Refund,
    BalanceTransaction,
    Payout,
    Fulfillment,
    Invoice,
    CreditMemo,
    JournalEntry,
    BankDeposit,
}

/// The identity of a record: its source's id is unique only within the
/// source system and the kind of object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub source_system: String,
    pub kind: RecordKind,
    pub source_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    StorefrontOrder,
    StorefrontTransaction,
    Fulfillment,
    Invoice,
    CreditMemo,
    JournalEntry,
    ProcessorPayment,
    BalanceTransaction,
    Payout,
    BankDeposit,
}

impl RecordKind {
    pub const ALL: [RecordKind; 10] = [
        RecordKind::StorefrontOrder,
        RecordKind::StorefrontTransaction,
        RecordKind::Fulfillment,
        RecordKind::Invoice,
        RecordKind::CreditMemo,
        RecordKind::JournalEntry,
        RecordKind::ProcessorPayment,
        RecordKind::BalanceTransaction,
        RecordKind::Payout,
        RecordKind::BankDeposit,
    ];

    /// The name stored in the database (its CHECK constraint lists these).
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::StorefrontOrder => "storefront_order",
            RecordKind::StorefrontTransaction => "storefront_transaction",
            RecordKind::Fulfillment => "fulfillment",
            RecordKind::Invoice => "invoice",
            RecordKind::CreditMemo => "credit_memo",
            RecordKind::JournalEntry => "journal_entry",
            RecordKind::ProcessorPayment => "processor_payment",
            RecordKind::BalanceTransaction => "balance_transaction",
            RecordKind::Payout => "payout",
            RecordKind::BankDeposit => "bank_deposit",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Kinds that describe money of one order and make no sense without it.
    pub fn needs_order(self) -> bool {
        !matches!(
            self,
            RecordKind::JournalEntry
                | RecordKind::BalanceTransaction
                | RecordKind::Payout
                | RecordKind::BankDeposit
        )
    }

    /// The handoff a record of this kind arrives through; an order starts
    /// the chain, so its problems belong to the first handoff.
    pub fn handoff(self) -> Handoff {
        Handoff::into_stage(self.stage()).unwrap_or(Handoff::OrderToFulfillment)
    }

    /// The step of the order's journey this kind of record reports.
    pub fn stage(self) -> Stage {
        match self {
            RecordKind::StorefrontOrder | RecordKind::StorefrontTransaction => Stage::OrderCapture,
            RecordKind::Fulfillment => Stage::Fulfillment,
            RecordKind::Invoice | RecordKind::CreditMemo => Stage::Invoice,
            RecordKind::ProcessorPayment => Stage::PaymentCapture,
            RecordKind::JournalEntry
            | RecordKind::BalanceTransaction
            | RecordKind::Payout
            | RecordKind::BankDeposit => Stage::CashApplication,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    OrderCapture,
    Fulfillment,
    Invoice,
    PaymentCapture,
    CashApplication,
    Reporting,
}

/// Handoff N carries data from stage N to stage N+1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handoff {
    OrderToFulfillment,
    FulfillmentToInvoice,
    InvoiceToPayment,
    PaymentToCashApplication,
    ReconciliationToReporting,
}

impl Handoff {
    pub const ALL: [Handoff; 5] = [
        Handoff::OrderToFulfillment,
        Handoff::FulfillmentToInvoice,
        Handoff::InvoiceToPayment,
        Handoff::PaymentToCashApplication,
        Handoff::ReconciliationToReporting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Handoff::OrderToFulfillment => "order_to_fulfillment",
            Handoff::FulfillmentToInvoice => "fulfillment_to_invoice",
            Handoff::InvoiceToPayment => "invoice_to_payment",
            Handoff::PaymentToCashApplication => "payment_to_cash_application",
            Handoff::ReconciliationToReporting => "reconciliation_to_reporting",
        }
    }

    pub fn parse(s: &str) -> Option<Handoff> {
        Handoff::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// The handoff whose receiving end is `stage`.
    pub fn into_stage(stage: Stage) -> Option<Handoff> {
        match stage {
            Stage::OrderCapture => None,
            Stage::Fulfillment => Some(Handoff::OrderToFulfillment),
            Stage::Invoice => Some(Handoff::FulfillmentToInvoice),
            Stage::PaymentCapture => Some(Handoff::InvoiceToPayment),
            Stage::CashApplication => Some(Handoff::PaymentToCashApplication),
            Stage::Reporting => Some(Handoff::ReconciliationToReporting),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Tagged "record_kind": "kind" is a field of storefront transactions.
#[serde(tag = "record_kind", rename_all = "snake_case")]
pub enum Body {
    StorefrontOrder(StorefrontOrder),
    StorefrontTransaction(StorefrontTransaction),
    Fulfillment(Fulfillment),
    Invoice(Invoice),
    CreditMemo(CreditMemo),
    JournalEntry(JournalEntry),
    ProcessorPayment(ProcessorPayment),
    BalanceTransaction(BalanceTransaction),
    Payout(Payout),
    BankDeposit(BankDeposit),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorefrontOrder {
    pub name: String,
    pub total: Money,
    pub subtotal: Option<Money>,
    pub total_discount: Option<Money>,
    pub total_tax: Option<Money>,
    pub total_shipping: Option<Money>,
    pub line_items: Vec<LineItem>,
    pub discounts: Vec<Discount>,
    pub tenders: Vec<Tender>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: Option<Money>,
    pub discount: Option<Money>,
    pub tax: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discount {
    pub code: String,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenderType {
    Card,
    GiftCard,
    StoreCredit,
    Cash,
    Other,
}

impl TenderType {
    pub fn as_str(self) -> &'static str {
        match self {
            TenderType::Card => "card",
            TenderType::GiftCard => "gift_card",
            TenderType::StoreCredit => "store_credit",
            TenderType::Cash => "cash",
            TenderType::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tender {
    pub tender_type: TenderType,
    pub gateway: String,
    pub amount: Money,
    pub processor_reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnKind {
    Authorization,
    Capture,
    Sale,
    Refund,
    Void,
}

impl TxnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnKind::Authorization => "authorization",
            TxnKind::Capture => "capture",
            TxnKind::Sale => "sale",
            TxnKind::Refund => "refund",
            TxnKind::Void => "void",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnStatus {
    Success,
    Pending,
    Failure,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorefrontTransaction {
    pub kind: TxnKind,
    pub status: TxnStatus,
    pub gateway: String,
    pub amount: Money,
    pub parent_id: Option<String>,
    pub processor_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    pub lines: Vec<FulfillmentLine>,
    pub tracking_number: String,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfillmentLine {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub total: Money,
    pub discount: Option<Money>,
    pub tax: Option<Money>,
    pub shipping: Option<Money>,
    pub lines: Vec<InvoiceLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub sku: String,
    pub quantity: i64,
    pub amount: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditMemo {
    pub total: Money,
    pub tax: Option<Money>,
    pub lines: Vec<InvoiceLine>,
    /// Shipping credited (records stored before it existed have none).
    #[serde(default)]
    pub shipping: Option<Money>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentType {
    Charge,
    Capture,
    Refund,
}

impl PaymentType {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentType::Charge => "charge",
            PaymentType::Capture => "capture",
            PaymentType::Refund => "refund",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorPayment {
    pub payment_type: PaymentType,
    pub amount: Money,
    pub fee: Option<Money>,
    pub exchange_rate: Option<Decimal>,
    pub payment_intent_id: Option<String>,
    pub charge_id: Option<String>,
    pub balance_transaction_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceTransaction {
    pub reporting_category: String,
    pub amount: Money,
    pub fee: Option<Money>,
    pub net: Option<Money>,
    pub exchange_rate: Option<Decimal>,
    pub source: Option<String>,
    pub payout_id: Option<String>,
    pub available_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Pending,
    InTransit,
    Paid,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payout {
    pub amount: Money,
    pub status: PayoutStatus,
    pub arrival_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankDeposit {
    pub amount: Money,
    pub account: String,
    pub description: String,
}

impl Body {
    pub fn kind(&self) -> RecordKind {
        match self {
            Body::StorefrontOrder(_) => RecordKind::StorefrontOrder,
            Body::StorefrontTransaction(_) => RecordKind::StorefrontTransaction,
            Body::Fulfillment(_) => RecordKind::Fulfillment,
            Body::Invoice(_) => RecordKind::Invoice,
            Body::CreditMemo(_) => RecordKind::CreditMemo,
            Body::JournalEntry(_) => RecordKind::JournalEntry,
            Body::ProcessorPayment(_) => RecordKind::ProcessorPayment,
            Body::BalanceTransaction(_) => RecordKind::BalanceTransaction,
            Body::Payout(_) => RecordKind::Payout,
            Body::BankDeposit(_) => RecordKind::BankDeposit,
        }
    }
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        self.body.kind()
    }

    pub fn key(&self) -> RecordKey {
        RecordKey {
            source_system: self.source_system.clone(),
            kind: self.kind(),
            source_id: self.source_id.clone(),
        }
    }

    /// The record's headline figure, stored beside the payload so reports
    /// can sum without parsing JSON. A journal's is its total debits; a
    /// fulfilment carries no money.
    pub fn headline_amount(&self) -> Option<Money> {
        match &self.body {
            Body::StorefrontOrder(b) => Some(b.total),
            Body::StorefrontTransaction(b) => Some(b.amount),
            Body::Fulfillment(_) => None,
            Body::Invoice(b) => Some(b.total),
            Body::CreditMemo(b) => Some(b.total),
            Body::JournalEntry(b) => Some(Money::new(b.total_debits(), b.currency)),
            Body::ProcessorPayment(b) => Some(b.amount),
            Body::BalanceTransaction(b) => Some(b.amount),
            Body::Payout(b) => Some(b.amount),
            Body::BankDeposit(b) => Some(b.amount),
        }
    }

    /// SHA-256 of the canonical form of the content (see `canonical`):
    /// "10.00" and "10.0" are the same content, and so is a record stored
    /// before an optional field was added. Storage compares a stored
    /// payload with `canonical::hash_payload`.
    /// The version's time is not content: the same figures sent again with
    /// a later `source_update_time` are a duplicate, not a new version.
    pub fn content_hash(&self) -> [u8; 32] {
        match serde_json::to_value(self) {
            Ok(v) => super::canonical::hash_record_payload(&v),
            // Records are plain data with string keys: serialising cannot
            // fail, and if it ever did the record would still get a hash
            // of its debug form rather than a panic.
            Err(_) => {
                debug_assert!(false, "a record failed to serialise");
                sha2::Sha256::digest(format!("{self:?}").as_bytes()).into()
            }
        }
    }

    /// The external ids that identify this record's money as its order's:
    /// its own id, the processor ids it carries, what it references. Another
    /// record that names one of these belongs to the same order.
    pub fn order_ref_ids(&self) -> Vec<&str> {
        let mut ids = vec![self.source_id.as_str()];
        ids.extend(self.references.iter().map(|r| r.id.as_str()));
        match &self.body {
            Body::StorefrontOrder(o) => {
                ids.extend(
                    o.tenders
                        .iter()
                        .filter_map(|t| t.processor_reference.as_deref()),
                );
            }
            Body::StorefrontTransaction(t) => ids.extend(t.processor_reference.as_deref()),
            Body::ProcessorPayment(p) => {
                ids.extend(p.payment_intent_id.as_deref());
                ids.extend(p.charge_id.as_deref());
                ids.extend(p.balance_transaction_id.as_deref());
            }
            Body::BalanceTransaction(b) => ids.extend(b.source.as_deref()),
            _ => {}
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// For a record of no single order: the ids it points at that can tie
    /// it to orders (a journal's line references, a balance transaction's
    /// source charge or refund). Payouts and deposits span many orders and
    /// are tied by cash application, not here.
    pub fn pointer_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = match &self.body {
            Body::JournalEntry(j) => j
                .lines
                .iter()
                .filter_map(|l| l.reference.as_deref())
                .collect(),
            Body::BalanceTransaction(b) => b.source.as_deref().into_iter().collect(),
            Body::Payout(_) | Body::BankDeposit(_) => return vec![],
            _ => vec![],
        };
        ids.extend(
            self.references
                .iter()
                .filter(|r| !matches!(r.kind, RefKind::Payout | RefKind::BankDeposit))
                .map(|r| r.id.as_str()),
        );
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// All ids this record carries of the given kind, its own included.
    pub fn ids_of(&self, kind: RefKind) -> impl Iterator<Item = &str> {
        self.references
            .iter()
            .filter(move |r| r.kind == kind)
            .map(|r| r.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::*;

    #[test]
    fn every_kind_reads_back_as_stored() {
        let all = every_kind();
        let kinds: std::collections::BTreeSet<_> = all.iter().map(Record::kind).collect();
        assert_eq!(
            kinds.len(),
            RecordKind::ALL.len(),
            "a kind is missing from the sample"
        );
        for r in all {
            let stored = serde_json::to_value(&r).unwrap();
            let back: Record =
                serde_json::from_value(stored).unwrap_or_else(|e| panic!("{:?}: {e}", r.kind()));
            assert_eq!(back, r);
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::parse(k.as_str()), Some(k));
        }
        for h in Handoff::ALL {
            assert_eq!(Handoff::parse(h.as_str()), Some(h));
        }
    }
}
