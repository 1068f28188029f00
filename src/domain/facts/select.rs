//! Selectors: the records of one order a rule reads, picked by kind.

use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::{
    Body, PaymentType, ProcessorPayment, Record, RecordKind, StorefrontOrder,
    StorefrontTransaction, TxnKind, TxnStatus,
};
use crate::domain::transaction::StoredRecord;

/// Whether a storefront transaction moved money in.
pub(crate) fn is_capture(kind: TxnKind) -> bool {
    matches!(kind, TxnKind::Capture | TxnKind::Sale)
}

/// The ids a processor payment answers to: its own, its charge's, its
/// payment intent's.
pub(crate) fn processor_ids(r: &Record) -> Vec<&str> {
    let mut v = vec![r.source_id.as_str()];
    if let Body::ProcessorPayment(p) = &r.body {
        v.extend(p.charge_id.as_deref());
        v.extend(p.payment_intent_id.as_deref());
    }
    v
}

/// Successful storefront transactions.
pub(crate) fn sf_txns(
    records: &[StoredRecord],
) -> impl Iterator<Item = (&Record, &StorefrontTransaction)> {
    records.iter().filter_map(|r| match &r.record.body {
        Body::StorefrontTransaction(t) if t.status == TxnStatus::Success => Some((&r.record, t)),
        _ => None,
    })
}

/// Processor payments that are refunds (`refunds`) or that are not.
pub(crate) fn proc_payments(
    records: &[StoredRecord],
    refunds: bool,
) -> impl Iterator<Item = (&Record, &ProcessorPayment)> {
    records.iter().filter_map(move |r| match &r.record.body {
        Body::ProcessorPayment(p) if (p.payment_type == PaymentType::Refund) == refunds => {
            Some((&r.record, p))
        }
        _ => None,
    })
}

pub(crate) fn kind_records(records: &[StoredRecord], kind: RecordKind) -> Vec<&Record> {
    records
        .iter()
        .map(|r| &r.record)
        .filter(|r| r.kind() == kind)
        .collect()
}

/// Records that say money came in: processor payments that are not
/// refunds, and successful storefront captures.
pub(crate) fn capture_records(records: &[StoredRecord]) -> Vec<&Record> {
    records
        .iter()
        .map(|r| &r.record)
        .filter(|r| match &r.body {
            Body::ProcessorPayment(p) => p.payment_type != PaymentType::Refund,
            Body::StorefrontTransaction(t) => t.status == TxnStatus::Success && is_capture(t.kind),
            _ => false,
        })
        .collect()
}

/// The storefront order that is current: the latest by event time, so an
/// order edit submitted as a new record supersedes the original.
pub(crate) fn current_order(records: &[StoredRecord]) -> Option<(&Record, &StorefrontOrder)> {
    records
        .iter()
        .filter_map(|r| match &r.record.body {
            Body::StorefrontOrder(o) => Some((&r.record, o)),
            _ => None,
        })
        .max_by_key(|(r, _)| (r.event_time, r.source_id.clone()))
}

/// The transaction's currency: the order's, else the first money seen.
pub(crate) fn transaction_currency(records: &[StoredRecord]) -> Option<Currency> {
    if let Some((_, o)) = current_order(records) {
        return Some(o.total.currency);
    }
    records
        .iter()
        .find_map(|r| r.record.headline_amount().map(|m| m.currency))
}

/// Debit lines of the order's journals that book one of `ids`, as
/// (journal record, referenced id, debit).
pub(crate) fn journal_lines_for<'a>(
    records: &'a [StoredRecord],
    ids: &[&str],
) -> Vec<(&'a Record, &'a str, Money)> {
    let mut out = vec![];
    for sr in records {
        let Body::JournalEntry(j) = &sr.record.body else {
            continue;
        };
        debug_assert!(j.check().is_ok(), "a stored journal balances: {j:?}");
        for l in &j.lines {
            if let Some(reference) = l.reference.as_ref().filter(|r| ids.contains(&r.as_str()))
                && !l.debit.is_zero()
            {
                let debit = Money::new(l.debit, j.currency);
                out.push((&sr.record, reference.as_str(), debit));
            }
        }
    }
    out
}
