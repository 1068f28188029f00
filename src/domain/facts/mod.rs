//! The facts a rule reads about one order: which records say what
//! (`select`), sums that keep currencies apart (`sums`), and the payment
//! figures with each payment counted once. Facts depend on records only;
//! the transaction and the rules depend on them, never the reverse.

mod fees;
pub(crate) mod select;
pub mod sums;

use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::{TenderType, TxnKind};
use crate::domain::transaction::StoredRecord;

pub use fees::{Fees, UnconvertedFee, fees};
pub use sums::CurrencyTotals;

use select::{current_order, is_capture, journal_lines_for, proc_payments, processor_ids, sf_txns};
pub(crate) use sums::sum_in;

/// Payment figures, each payment counted once.
#[derive(Debug, Clone, Default)]
pub struct PaymentFacts {
    pub storefront_captured: Option<Money>,
    pub storefront_refunded: Option<Money>,
    pub processor_captured: Option<Money>,
    pub processor_refunded: Option<Money>,
    /// The processor's figure where it reported a payment, the storefront's
    /// otherwise; plus, when the storefront sent no captures at all, the
    /// order's non-card tenders, which settle at checkout without a
    /// processor.
    pub captured: Option<Money>,
    pub journaled: Option<Money>,
}

impl PaymentFacts {
    pub fn gather(records: &[StoredRecord], currency: Option<Currency>) -> PaymentFacts {
        let sf_caps: Vec<_> = sf_txns(records)
            .filter(|(_, t)| is_capture(t.kind))
            .collect();
        let sf_refs = sf_txns(records).filter(|(_, t)| t.kind == TxnKind::Refund);
        let pc: Vec<_> = proc_payments(records, false).collect();
        let pr = proc_payments(records, true);
        let known: Vec<&str> = pc.iter().flat_map(|(r, _)| processor_ids(r)).collect();
        let journal_debits: Vec<Money> = journal_lines_for(records, &known)
            .into_iter()
            .map(|(_, _, m)| m)
            .collect();
        let captured = if pc.is_empty() && sf_caps.is_empty() {
            None
        } else {
            sum_in(currency, captured_items(records, &known).iter())
        };
        PaymentFacts {
            storefront_captured: sum_in(currency, sf_caps.iter().map(|(_, t)| &t.amount)),
            storefront_refunded: sum_in(currency, sf_refs.map(|(_, t)| &t.amount)),
            processor_captured: sum_in(currency, pc.iter().map(|(_, p)| &p.amount)),
            processor_refunded: sum_in(currency, pr.map(|(_, p)| &p.amount)),
            captured,
            journaled: sum_in(currency, journal_debits.iter()),
        }
    }
}

/// Every payment in once: the processor's captures, storefront captures
/// the processor did not report (by `known` processor ids), and the
/// order's non-card tenders when the storefront sent no captures.
fn captured_items(records: &[StoredRecord], known: &[&str]) -> Vec<Money> {
    let mut items: Vec<Money> = proc_payments(records, false)
        .map(|(_, p)| p.amount)
        .collect();
    let sf_caps: Vec<_> = sf_txns(records)
        .filter(|(_, t)| is_capture(t.kind))
        .collect();
    let unreported = sf_caps.iter().filter(|(_, t)| {
        t.processor_reference
            .as_deref()
            .is_none_or(|p| !known.contains(&p))
    });
    items.extend(unreported.map(|(_, t)| t.amount));
    if sf_caps.is_empty()
        && let Some((_, o)) = current_order(records)
    {
        let settled_at_checkout = o
            .tenders
            .iter()
            .filter(|t| t.tender_type != TenderType::Card && t.processor_reference.is_none());
        items.extend(settled_at_checkout.map(|t| t.amount));
    }
    items
}
