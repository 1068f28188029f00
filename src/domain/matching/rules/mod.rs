//! The rule families. Each reads the order's facts through `Context` and
//! returns findings (or, for `pending`, what is still expected).

pub(crate) mod payment;
pub(crate) mod pending;
pub(crate) mod record;
pub(crate) mod sequence;
pub(crate) mod totals;

use crate::domain::facts::select::{current_order, kind_records};
use crate::domain::policy::MatchPolicy;
use crate::domain::record::{Record, RecordKind, StorefrontOrder};
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
        }
    }

    pub fn ordered_units(&self) -> i64 {
        self.order
            .map(|(_, o)| units(o.line_items.iter().map(|l| l.quantity)))
            .unwrap_or(0)
    }

    pub fn shipped_units(&self) -> i64 {
        units(self.tx.fulfillments.iter().map(|f| f.quantity))
    }

    /// Some units shipped, not all: totals are compared only once complete
    /// (an order shipping in parts is invoiced and captured in parts).
    pub fn partly_shipped(&self) -> bool {
        let ordered = self.ordered_units();
        !self.fulfilments.is_empty() && ordered > 0 && self.shipped_units() < ordered
    }
}
