//! Planning a payout that failed after it was paid (a later version of the payout record,
//! status failed): everything the payout booked is mirrored (`book_payout_failure`), what it
//! applied to invoices is taken back off them, and each processor payment it applied is
//! reversed in its order's cash, so the order's replayed state matches the ledger again:
//! held cash from the payout that was released to an invoice since is taken back off it,
//! and other held cash flowing into a reopened invoice is booked as released.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use rust_decimal::Decimal;

use super::{AppliedCash, CashEvent, EventKind, OrderBook, OrderFacts, PlanError, release_entry};
use crate::domain::cash_application::order::Application;
use crate::domain::ledger::posting::{Tender, book_payout_failure, book_unapplied_return};
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
    // Only what the payout's own entries applied is undone by mirroring them; held cash that
    // an order's own entry released (even in the payout's job) is dealt with below.
    let own_ids: BTreeSet<&str> = booked.iter().map(|e| e.external_id().as_str()).collect();
    let own: Vec<&AppliedCash> = applied
        .iter()
        .filter(|a| own_ids.contains(a.external_id.as_str()))
        .collect();
    let mut plan = FailurePlan {
        entries,
        events: Vec::new(),
        applications: own
            .iter()
            .map(|a| negated(a, failed_id(&a.external_id)))
            .collect(),
    };
    let mut books: BTreeMap<&str, OrderBook<'_>> = BTreeMap::new();
    for (order, payment) in payments {
        let Some(facts) = orders.get(order) else {
            continue;
        };
        let remaining = remaining(facts, payment)?;
        if remaining.amount.is_zero() {
            continue;
        }
        if !books.contains_key(order.as_str()) {
            books.insert(order, OrderBook::replay(facts)?);
        }
        let Some(book) = books.get_mut(order.as_str()) else {
            continue;
        };
        // Replayed with the reversal, so a plan the order could not take is refused here.
        let ref_id = format!("payout-failed:{payout_id}:{payment}");
        let outcome = book.cash.reverse_payment(payment, remaining)?;
        let mine: Vec<&AppliedCash> = own
            .iter()
            .copied()
            .filter(|a| &a.order_id == order && &a.application.payment_id == payment)
            .collect();
        returned(
            merchant,
            order,
            payment,
            &ref_id,
            date,
            &outcome.from_invoices,
            &mine,
            &mut plan,
        )?;
        released(merchant, order, &ref_id, date, outcome.released, &mut plan)?;
        plan.events.push((
            order.clone(),
            CashEvent {
                kind: EventKind::Reversal,
                ref_id,
                target_id: Some(payment.clone()),
                tender: Tender::Processor,
                date,
                amount: remaining,
            },
        ));
    }
    Ok(plan)
}

fn negated(a: &AppliedCash, external_id: String) -> AppliedCash {
    let mut undone = a.clone();
    undone.application.amount =
        Money::new(-a.application.amount.amount, a.application.amount.currency);
    undone.external_id = external_id;
    undone
}

/// What the reversal takes off an invoice beyond what the payout's own entry applied there
/// was held cash released to it later (by an order's own entry): the mirror gives it back to
/// unapplied cash, so it is taken off the invoice (Dr AR / Cr unapplied), as the order's cash
/// history takes it.
#[allow(clippy::too_many_arguments)]
fn returned(
    merchant: &str,
    order: &str,
    payment: &str,
    trigger: &str,
    date: NaiveDate,
    from_invoices: &[(String, Money)],
    mine: &[&AppliedCash],
    plan: &mut FailurePlan,
) -> Result<(), PlanError> {
    let mut back = Vec::new();
    for (invoice, taken) in from_invoices {
        let direct = mine
            .iter()
            .filter(|a| &a.application.invoice_id == invoice)
            .try_fold(Money::zero(taken.currency), |acc, a| {
                acc.checked_add(&a.application.amount)
            })
            .ok_or(LedgerError::Overflow)?;
        let extra = taken.checked_sub(&direct).ok_or(LedgerError::Overflow)?;
        if extra.amount > Decimal::ZERO {
            back.push((payment.to_string(), invoice.clone(), extra));
        }
    }
    if back.is_empty() {
        return Ok(());
    }
    let entry = book_unapplied_return(merchant, order, trigger, date, &back)?;
    let id = entry.external_id().as_str().to_string();
    for (payment_id, invoice_id, amount) in back {
        plan.applications.push(AppliedCash {
            order_id: order.to_string(),
            application: Application {
                payment_id,
                tender: Tender::Processor,
                invoice_id,
                amount: Money::new(-amount.amount, amount.currency),
                from_unapplied: true,
            },
            external_id: id.clone(),
        });
    }
    plan.entries.push(entry);
    Ok(())
}

/// Other held cash of the order flowing into the invoices the reversal reopened.
fn released(
    merchant: &str,
    order: &str,
    trigger: &str,
    date: NaiveDate,
    released: Vec<Application>,
    plan: &mut FailurePlan,
) -> Result<(), PlanError> {
    if let Some((entry, applied)) = release_entry(merchant, order, trigger, date, released)? {
        plan.applications.extend(applied);
        plan.entries.push(entry);
    }
    Ok(())
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
