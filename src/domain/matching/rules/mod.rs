//! The rule families. Each reads the order's facts through `Context` and
//! returns findings (or, for `pending`, what is still expected).

pub(crate) mod contract_fields;
pub(crate) mod discount;
pub(crate) mod fee;
pub(crate) mod fx;
pub(crate) mod multicapture;
pub(crate) mod payment;
pub(crate) mod pending;
pub(crate) mod record;
pub(crate) mod refund;
pub(crate) mod rounding;
pub(crate) mod sequence;
pub(crate) mod settlement;
pub(crate) mod totals;
pub(crate) mod units;

use chrono::{DateTime, Duration, Utc};

use crate::domain::currency::Currency;
use crate::domain::facts::select::{current_order, kind_records};
use crate::domain::policy::MatchPolicy;
use crate::domain::record::{Body, PaymentType, Record, RecordKind, StorefrontOrder};
use crate::domain::transaction::{Figures, StoredRecord, Totals, units};

/// A comparison held back by a contract's lag: the order is pending, not
/// in exception, until `due`; then the rule decides. The caller re-checks
/// the order at `due` (the domain has no clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub rule: &'static str,
    pub reason: String,
    pub due: DateTime<Utc>,
}

/// One order's records, merged and sorted by kind, for the rules to read.
pub(crate) struct Context<'a> {
    pub order_id: &'a str,
    pub records: &'a [StoredRecord],
    /// The order's currency and figures (`Figures`), as merged.
    pub currency: Option<Currency>,
    pub totals: &'a Totals,
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
        figures: &'a Figures,
        policy: &'a MatchPolicy,
    ) -> Self {
        Context {
            order_id,
            records,
            currency: figures.currency,
            totals: &figures.totals,
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
        units(self.fulfilments.iter().map(|r| match &r.body {
            Body::Fulfillment(f) => units(f.lines.iter().map(|l| l.quantity)),
            _ => 0,
        }))
    }

    /// When a lag that starts at `r` runs out: from the record's event
    /// time, or from when Tally received it if that is later (as a late
    /// handoff's deadline is set on receipt: a backfill of old records is
    /// not judged late before it could have been seen). None when the
    /// deadline is beyond the calendar: it never runs out.
    pub fn deadline(&self, r: &Record, lag: Duration) -> Option<DateTime<Utc>> {
        let received = self
            .records
            .iter()
            .find(|sr| std::ptr::eq(&sr.record, r))
            .map(|sr| sr.receive_time);
        received
            .map_or(r.event_time, |t| t.max(r.event_time))
            .checked_add_signed(lag)
    }

    /// Whether `due` has come by the context's time.
    pub fn passed(&self, due: Option<DateTime<Utc>>) -> bool {
        due.is_some_and(|d| d <= self.now)
    }

    /// A multicapture still under way: the processor reported captures of
    /// an authorisation (never a one-shot charge) and they fall short of
    /// the order; and either nothing has shipped, or the order shipped in
    /// full and the remaining captures are still within the contract's
    /// lag (`multicapture::deadline`). Under-capture is then progress, not
    /// a mismatch; an over-capture, a short charge, or a short capture
    /// past the lag still is one.
    pub fn capturing(&self) -> bool {
        self.short_captures()
            && (self.fulfilments.is_empty()
                || (!self.partly_shipped() && !self.passed(multicapture::deadline(self))))
    }

    /// Only captures of an authorisation so far, short of the order.
    pub fn short_captures(&self) -> bool {
        let (Some((_, o)), Some(captured)) = (self.order, self.totals.captured) else {
            return false;
        };
        let mut payments = self.payments.iter().filter_map(|r| match &r.body {
            Body::ProcessorPayment(p) if p.payment_type != PaymentType::Refund => Some(p),
            _ => None,
        });
        let only_captures = payments.clone().next().is_some()
            && payments.all(|p| p.payment_type == PaymentType::Capture);
        only_captures
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
