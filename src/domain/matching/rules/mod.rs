//! The rule families. Each reads the order's facts through `Context` and
//! returns findings (or, for `pending`, what is still expected).

pub(crate) mod payment;
pub(crate) mod pending;
pub(crate) mod record;
pub(crate) mod refund;
pub(crate) mod sequence;
pub(crate) mod settlement;
pub(crate) mod totals;
pub(crate) mod units;

use chrono::{DateTime, Utc};

use crate::domain::facts::select::{current_order, kind_records};
use crate::domain::policy::MatchPolicy;
use crate::domain::record::{Body, PaymentType, Record, RecordKind, StorefrontOrder};
use crate::domain::transaction::{StoredRecord, Transaction, units};

/// One order's records, merged and sorted by kind, for the rules to read.
pub(crate) struct Context<'a> {
    pub order_id: &'a str,
    pub records: &'a [StoredRecord],
    pub tx: &'a Transaction,
    pub policy: &'a MatchPolicy,
    pub order: Option<(&'a Record, &'a StorefrontOrder)>,
    pub invoices: Vec<&'a Record>,
    pub credit_memos: Vec<&'a Record>,
    pub fulfilments: Vec<&'a Record>,
    pub payments: Vec<&'a Record>,
    /// The time lags run to: the newest record's event time, or a later
    /// "as of" the caller gave.
    pub now: DateTime<Utc>,
}

impl<'a> Context<'a> {
    pub fn new(
        order_id: &'a str,
        records: &'a [StoredRecord],
        tx: &'a Transaction,
        policy: &'a MatchPolicy,
    ) -> Self {
        Context {
            order_id,
            records,
            tx,
            policy,
            order: current_order(records),
            invoices: kind_records(records, RecordKind::Invoice),
            credit_memos: kind_records(records, RecordKind::CreditMemo),
            fulfilments: kind_records(records, RecordKind::Fulfillment),
            payments: kind_records(records, RecordKind::ProcessorPayment),
            now: records
                .iter()
                .map(|r| r.record.event_time)
                .max()
                .unwrap_or_default(),
        }
    }

    /// Runs lags to `as_of` when it is later than the newest record.
    pub fn running_to(mut self, as_of: Option<DateTime<Utc>>) -> Self {
        self.now = self.now.max(as_of.unwrap_or_default());
        self
    }

    pub fn ordered_units(&self) -> i64 {
        self.order
            .map(|(_, o)| units(o.line_items.iter().map(|l| l.quantity)))
            .unwrap_or(0)
    }

    pub fn shipped_units(&self) -> i64 {
        units(self.tx.fulfillments.iter().map(|f| f.quantity))
    }

    /// A multicapture still under way: the processor reported captures of
    /// an authorisation (never a one-shot charge), they fall short of the
    /// order, and no shipment says the order is done. Under-capture is
    /// then progress, not a mismatch; an over-capture, a short charge, or
    /// a short capture after shipping still is one.
    pub fn capturing(&self) -> bool {
        let (Some((_, o)), Some(captured)) = (self.order, self.tx.totals.captured) else {
            return false;
        };
        let mut payments = self.payments.iter().filter_map(|r| match &r.body {
            Body::ProcessorPayment(p) if p.payment_type != PaymentType::Refund => Some(p),
            _ => None,
        });
        let only_captures = payments.clone().next().is_some()
            && payments.all(|p| p.payment_type == PaymentType::Capture);
        only_captures
            && self.fulfilments.is_empty()
            && !captured.amount.is_zero()
            && self.policy.tolerance.exceeds(&o.total, &captured)
    }

    /// Some units shipped, not all: totals are compared only once complete
    /// (an order shipping in parts is invoiced and captured in parts).
    pub fn partly_shipped(&self) -> bool {
        let ordered = self.ordered_units();
        !self.fulfilments.is_empty() && ordered > 0 && self.shipped_units() < ordered
    }
}
