//! What an order still waits for: one expectation per open handoff (a step
//! arrived, the step after it has not). The deadline sweeper raises
//! LATE_HANDOFF for expectations past due; an expectation that is no
//! longer open has been met, and its late exception resolves.

use std::collections::BTreeSet;

use crate::domain::record::{Handoff, RecordKind};

/// A handoff whose next record has not arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expectation {
    pub handoff: Handoff,
    /// The step that arrived and opened it.
    pub sent_by: RecordKind,
    /// The record that would close it (for a person: "what to look for").
    pub expected: RecordKind,
}

fn any(kinds: &BTreeSet<RecordKind>, of: &[RecordKind]) -> bool {
    of.iter().any(|k| kinds.contains(k))
}

/// The open handoffs of an order whose records are of `kinds`. A step's
/// record closes the handoff into it whether or not the step before
/// arrived (a capture at checkout precedes its invoice). A `matched` order
/// (its reconciliation complete) is then due in reporting: the ERP's
/// general ledger must book it (a journal entry naming its money) within
/// the reconciliation-to-reporting contract's lag.
pub fn open_handoffs(kinds: &BTreeSet<RecordKind>, matched: bool) -> Vec<Expectation> {
    use RecordKind as K;
    let cash = [
        K::Payout,
        K::BalanceTransaction,
        K::BankDeposit,
        K::JournalEntry,
    ];
    let steps: [(&[K], &[K], Handoff, K); 4] = [
        (
            &[K::StorefrontOrder],
            &[K::Fulfillment],
            Handoff::OrderToFulfillment,
            K::Fulfillment,
        ),
        (
            &[K::Fulfillment],
            &[K::Invoice],
            Handoff::FulfillmentToInvoice,
            K::Invoice,
        ),
        (
            &[K::Invoice],
            &[K::ProcessorPayment],
            Handoff::InvoiceToPayment,
            K::ProcessorPayment,
        ),
        (
            &[K::ProcessorPayment],
            &cash,
            Handoff::PaymentToCashApplication,
            K::Payout,
        ),
    ];
    let mut open: Vec<Expectation> = steps
        .into_iter()
        .filter(|(from, to, _, _)| any(kinds, from) && !any(kinds, to))
        .map(|(from, _, handoff, expected)| Expectation {
            handoff,
            sent_by: from[0],
            expected,
        })
        .collect();
    if matched && !kinds.contains(&K::JournalEntry) {
        open.push(Expectation {
            handoff: Handoff::ReconciliationToReporting,
            sent_by: if kinds.contains(&K::ProcessorPayment) {
                K::ProcessorPayment
            } else {
                K::StorefrontOrder
            },
            expected: K::JournalEntry,
        });
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecordKind as K;

    fn open(kinds: &[K]) -> Vec<Handoff> {
        open_handoffs(&kinds.iter().copied().collect(), false)
            .into_iter()
            .map(|e| e.handoff)
            .collect()
    }

    #[test]
    fn each_step_opens_the_next_handoff_until_it_arrives() {
        assert_eq!(open(&[]), vec![]);
        assert_eq!(
            open(&[K::StorefrontOrder]),
            vec![Handoff::OrderToFulfillment]
        );
        assert_eq!(
            open(&[K::StorefrontOrder, K::Fulfillment]),
            vec![Handoff::FulfillmentToInvoice]
        );
        assert_eq!(
            open(&[K::StorefrontOrder, K::Fulfillment, K::Invoice]),
            vec![Handoff::InvoiceToPayment]
        );
        assert_eq!(
            open(&[
                K::StorefrontOrder,
                K::Fulfillment,
                K::Invoice,
                K::ProcessorPayment
            ]),
            vec![Handoff::PaymentToCashApplication]
        );
        assert_eq!(
            open(&[
                K::StorefrontOrder,
                K::Fulfillment,
                K::Invoice,
                K::ProcessorPayment,
                K::Payout
            ]),
            vec![]
        );
    }

    #[test]
    fn a_capture_at_checkout_waits_for_fulfilment_and_payout_only() {
        assert_eq!(
            open(&[K::StorefrontOrder, K::ProcessorPayment]),
            vec![
                Handoff::OrderToFulfillment,
                Handoff::PaymentToCashApplication
            ]
        );
    }

    #[test]
    fn a_matched_order_waits_for_the_ledger_to_report_it() {
        let kinds: BTreeSet<K> = [
            K::StorefrontOrder,
            K::Fulfillment,
            K::Invoice,
            K::ProcessorPayment,
            K::Payout,
        ]
        .into();
        let open = open_handoffs(&kinds, true);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].handoff, Handoff::ReconciliationToReporting);
        assert_eq!(open[0].expected, K::JournalEntry);
        assert_eq!(open[0].sent_by, K::ProcessorPayment);
        // Not yet matched: nothing to report. Booked: met.
        assert!(open_handoffs(&kinds, false).is_empty());
        let mut booked = kinds.clone();
        booked.insert(K::JournalEntry);
        assert!(open_handoffs(&booked, true).is_empty());
    }
}
