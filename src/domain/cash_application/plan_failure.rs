//! Planning a payout that failed after it was paid (a later version of the payout record,
//! status failed): everything the payout booked is mirrored (`book_payout_failure`), what it
//! applied to invoices is taken back off them, and each processor payment it applied is
//! reversed in its order's cash, so the order's replayed state matches the ledger again.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{AppliedCash, CashEvent, EventKind, OrderBook, OrderFacts, PlanError};
use crate::domain::ledger::posting::{Tender, book_payout_failure};
use crate::domain::ledger::{ExternalId, JournalEntry, LedgerError};
use crate::domain::money::Money;

#[derive(Debug, Clone, Default)]
pub struct FailurePlan {
    pub entries: Vec<JournalEntry>,
    pub events: Vec<(String, CashEvent)>,
    /// The payout's applications, negated.
    pub applications: Vec<AppliedCash>,
}

/// `booked` are the payout's own entries, `applied` its applications, `payments` the
/// (order, payment id) of each processor payment it applied.
pub fn plan_failure(
    merchant: &str,
    payout_id: &str,
    date: NaiveDate,
    booked: &[JournalEntry],
    applied: &[AppliedCash],
    payments: &[(String, String)],
    orders: &BTreeMap<String, OrderFacts>,
) -> Result<FailurePlan, PlanError> {
    let entries = book_payout_failure(payout_id, date, booked)?;
    let failed_id = |original: &str| {
        ExternalId::derive(merchant, "payout-failed", &[payout_id, original])
            .as_str()
            .to_string()
    };
    let applications = applied
        .iter()
        .map(|a| {
            let mut undone = a.clone();
            undone.application.amount =
                Money::new(-a.application.amount.amount, a.application.amount.currency);
            undone.external_id = failed_id(&a.external_id);
            undone
        })
        .collect();
    let mut events = Vec::new();
    for (order, payment) in payments {
        let Some(facts) = orders.get(order) else {
            continue;
        };
        let remaining = remaining(facts, payment)?;
        if remaining.amount.is_zero() {
            continue;
        }
        // Replayed with the reversal, so a plan the order could not take is refused here.
        let mut book = OrderBook::replay(facts)?;
        book.cash.reverse_payment(payment, remaining)?;
        events.push((
            order.clone(),
            CashEvent {
                kind: EventKind::Reversal,
                ref_id: format!("payout-failed:{payout_id}:{payment}"),
                target_id: Some(payment.clone()),
                tender: Tender::Processor,
                date,
                amount: remaining,
            },
        ));
    }
    Ok(FailurePlan {
        entries,
        events,
        applications,
    })
}

/// What is left of a payment after the reversals already applied to it.
fn remaining(facts: &OrderFacts, payment: &str) -> Result<Money, LedgerError> {
    let mut left = Money::zero(facts.currency);
    for e in &facts.events {
        let target = e.target_id.as_deref().unwrap_or(&e.ref_id);
        left = match e.kind {
            EventKind::Payment if e.ref_id == payment => left.checked_add(&e.amount),
            EventKind::Reversal if target == payment => left.checked_sub(&e.amount),
            _ => Some(left),
        }
        .ok_or(LedgerError::Overflow)?;
    }
    Ok(left)
}
