//! Planning a payout that failed after it was paid (a later version of the payout record,
//! status failed): everything the payout booked is mirrored (`book_payout_failure`), what it
//! applied to invoices is taken back off them, and each processor payment it applied is
//! reversed in its order's cash, so the order's replayed state matches the ledger again:
//! held cash from the payout that was released to an invoice since is taken back off it,
//! and other held cash flowing into a reopened invoice is booked as released.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use rust_decimal::Decimal;

use super::{
    AppliedCash, CashEvent, EventKind, OrderBook, OrderFacts, PAYOUT_REVERSAL_PREFIX, Plan,
    PlanError, Problem, late_conversion, live_id, refund_booking, release_entry,
};
use crate::domain::cash_application::order::{Application, RefundApplication};
use crate::domain::ledger::accounts::AccountRole;
use crate::domain::ledger::journal::SourceKind;
use crate::domain::ledger::posting::{
    PAYMENT_MEMO, Tender, book_payout_failure, book_refund, book_unapplied_return,
    failure_mirror_id,
};
use crate::domain::ledger::{ExternalId, LedgerEntry, LedgerError};
use crate::domain::money::Money;

#[derive(Debug, Clone, Default)]
pub struct FailurePlan {
    /// Mirrors of the payout's live entries: the payout's own.
    pub entries: Vec<LedgerEntry>,
    /// What its orders' cash books on the way (held cash flowing into reopened invoices,
    /// refunds booked late mirrored, waiting refunds booked): the orders' own, so a later
    /// reversal of the payout does not take them back as if they were its.
    pub order_entries: Vec<LedgerEntry>,
    pub events: Vec<(String, CashEvent)>,
    /// The payout's applications, negated.
    pub applications: Vec<AppliedCash>,
    /// Its orders' overpayments as the reversal leaves them: raised (still held) or
    /// settled (rule, subject).
    pub problems: Vec<Problem>,
    pub resolved: Vec<(&'static str, String)>,
}

/// What a payout's reversal is given: its entries and applications as stored, and the
/// processor money it is known to have applied, as (order, id) pairs of its booked round.
pub struct Booked<'a> {
    /// Every entry naming the payout, mirrors of earlier rounds included.
    pub entries: &'a [LedgerEntry],
    pub applied: &'a [AppliedCash],
    pub payments: &'a [(String, String)],
    pub refunds: &'a [(String, String)],
}

/// Reverses what the payout's live bookings did: `why` ("failed", "changed") goes in the
/// mirrors' memos.
pub fn plan_failure(
    merchant: &str,
    payout_id: &str,
    date: NaiveDate,
    booked: &Booked<'_>,
    why: &str,
    orders: &BTreeMap<String, OrderFacts>,
) -> Result<FailurePlan, PlanError> {
    let live = live_entries(payout_id, booked.entries);
    let entries = book_payout_failure(payout_id, date, &live, why)?;
    let failed_id = |original: &str| {
        ExternalId::derive(merchant, "payout-failed", &[payout_id, original])
            .as_str()
            .to_string()
    };
    // Only what the payout's own entries applied is undone by mirroring them; held cash that
    // an order's own entry released (even in the payout's job) is dealt with below.
    let own_ids: BTreeSet<&str> = live.iter().map(|e| e.external_id().as_str()).collect();
    let own: Vec<&AppliedCash> = booked
        .applied
        .iter()
        .filter(|a| own_ids.contains(a.external_id.as_str()))
        .collect();
    let mut plan = FailurePlan {
        entries,
        order_entries: Vec::new(),
        events: Vec::new(),
        applications: own
            .iter()
            .map(|a| negated(a, failed_id(&a.external_id)))
            .collect(),
        problems: Vec::new(),
        resolved: Vec::new(),
    };
    let (payments, refunds) = money_of(&live, booked);
    // Each by the id it stands under in its order's cash, once.
    let standing = |money: OrderMoney, kind: EventKind| {
        money
            .into_iter()
            .filter_map(|(order, id)| {
                let events = &orders.get(&order)?.events;
                Some((order, live_id(events, kind, &id)?))
            })
            .collect::<BTreeSet<_>>()
    };
    let payments = standing(payments, EventKind::Payment);
    let refunds = standing(refunds, EventKind::Refund);
    let mut books: BTreeMap<String, OrderBook<'_>> = BTreeMap::new();
    for (order, payment) in &payments {
        let kinds = (EventKind::Payment, EventKind::Reversal);
        let Some((book, remaining)) = standing_book(&mut books, orders, order, payment, kinds)?
        else {
            continue;
        };
        // Replayed with the reversal, so a plan the order could not take is refused here.
        let ref_id = format!("{PAYOUT_REVERSAL_PREFIX}{payout_id}:{payment}");
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
            reversal_event(EventKind::Reversal, ref_id, payment, date, remaining),
        ));
    }
    for (order, refund) in &refunds {
        let kinds = (EventKind::Refund, EventKind::RefundReversal);
        let Some((book, remaining)) = standing_book(&mut books, orders, order, refund, kinds)?
        else {
            continue;
        };
        let ref_id = format!("{PAYOUT_REVERSAL_PREFIX}{payout_id}:{refund}");
        let outcome = book.cash.reverse_refund(refund, remaining)?;
        // The refund's own entries are mirrored above; what of it was booked late (its
        // credit memo came after the payout) is an order's entry, mirrored here.
        for a in &outcome.undone {
            let own = own_refund(&live, a)?;
            let late = a.amount.checked_sub(&own).ok_or(LedgerError::Overflow)?;
            if late.amount <= Decimal::ZERO {
                continue;
            }
            let part = RefundApplication {
                amount: late,
                ..a.clone()
            };
            let conversion = late_conversion(book.facts, &part)?;
            let booked = book_refund(
                merchant,
                &refund_booking(book.facts, &part, date, conversion)?,
            )?;
            let id = ExternalId::derive(
                merchant,
                "payout-failed",
                &[payout_id, booked.external_id().as_str(), &ref_id],
            );
            let memo = format!("Payout {payout_id} {why}: reverses {}", booked.memo());
            plan.order_entries.push(booked.reversal(id, date, memo)?);
        }
        // Refunds that were waiting for a credit memo and now fit in the room it leaves
        // are booked against it.
        for a in outcome.released {
            let conversion = late_conversion(book.facts, &a)?;
            let booking = refund_booking(book.facts, &a, date, conversion)?;
            plan.order_entries.push(book_refund(merchant, &booking)?);
        }
        plan.events.push((
            order.clone(),
            reversal_event(EventKind::RefundReversal, ref_id, refund, date, remaining),
        ));
    }
    // Cash the payout held on a fully invoiced order is gone with it.
    for book in books.values() {
        let mut checked = Plan::default();
        book.check_overpayment(&mut checked)?;
        plan.problems.extend(checked.problems);
        plan.resolved.extend(checked.resolved);
    }
    Ok(plan)
}

/// The order's cash (replayed once per reversal plan) and what is left of processor money
/// `id` in it, when something is; `kinds`: how it was applied and how taken back.
fn standing_book<'b, 'f>(
    books: &'b mut BTreeMap<String, OrderBook<'f>>,
    orders: &'f BTreeMap<String, OrderFacts>,
    order: &str,
    id: &str,
    (applied, reversed): (EventKind, EventKind),
) -> Result<Option<(&'b mut OrderBook<'f>, Money)>, PlanError> {
    let Some(facts) = orders.get(order) else {
        return Ok(None);
    };
    let left = remaining(facts, id, applied, reversed)?;
    if left.amount.is_zero() {
        return Ok(None);
    }
    if !books.contains_key(order) {
        books.insert(order.to_string(), OrderBook::replay(facts)?);
    }
    Ok(books.get_mut(order).map(|b| (b, left)))
}

fn reversal_event(
    kind: EventKind,
    ref_id: String,
    target: &str,
    date: NaiveDate,
    amount: Money,
) -> CashEvent {
    CashEvent {
        kind,
        ref_id,
        target_id: Some(target.to_string()),
        tender: Tender::Processor,
        date,
        amount,
    }
}

/// What the payout's own live entries booked of one refund against one credit memo (the
/// returns, tax and shipping they debit).
fn own_refund(live: &[LedgerEntry], a: &RefundApplication) -> Result<Money, LedgerError> {
    let names = |e: &LedgerEntry, kind: SourceKind, id: &str| {
        e.source_refs().iter().any(|s| s.kind == kind && s.id == id)
    };
    let mut total = Money::zero(a.amount.currency);
    for e in live.iter().filter(|e| {
        names(e, SourceKind::Refund, &a.refund_id)
            && names(e, SourceKind::CreditMemo, &a.credit_memo_id)
    }) {
        for l in e.lines() {
            let goods = matches!(
                l.account,
                AccountRole::SalesReturns
                    | AccountRole::SalesTaxPayable
                    | AccountRole::ShippingIncome
            );
            if goods && l.debit.currency == total.currency {
                total = total.checked_add(&l.debit).ok_or(LedgerError::Overflow)?;
            }
        }
    }
    Ok(total)
}

/// The payout's entries that stand: neither a mirror of another nor mirrored since (a
/// payout derived again has earlier rounds and their mirrors among its entries).
pub fn live_entries(payout_id: &str, entries: &[LedgerEntry]) -> Vec<LedgerEntry> {
    let ids: BTreeSet<&str> = entries.iter().map(|e| e.external_id().as_str()).collect();
    let mirrors: BTreeSet<String> = entries
        .iter()
        .map(|e| failure_mirror_id(payout_id, e).as_str().to_string())
        .collect();
    entries
        .iter()
        .filter(|e| {
            !mirrors.contains(e.external_id().as_str())
                && !ids.contains(failure_mirror_id(payout_id, e).as_str())
        })
        .cloned()
        .collect()
}

/// (order, id) pairs of processor money.
type OrderMoney = BTreeSet<(String, String)>;

/// The processor payments and refunds the payout's live entries booked (a payment entry
/// names its capture and order, a refund entry its refund and order), with those the
/// caller knows of from its balance transactions: one that moved to another payout since
/// is found by its entry, one held without an entry (a refund waiting for its credit memo)
/// by its transaction.
fn money_of(live: &[LedgerEntry], booked: &Booked<'_>) -> (OrderMoney, OrderMoney) {
    let mut payments: BTreeSet<(String, String)> = booked.payments.iter().cloned().collect();
    let mut refunds: BTreeSet<(String, String)> = booked.refunds.iter().cloned().collect();
    for e in live {
        let of = |kind: SourceKind| {
            e.source_refs()
                .iter()
                .find(|r| r.kind == kind)
                .map(|r| r.id.clone())
        };
        let Some(order) = of(SourceKind::Order) else {
            continue;
        };
        if e.memo().starts_with(PAYMENT_MEMO) {
            if let Some(capture) = of(SourceKind::Capture) {
                payments.insert((order, capture));
            }
        } else if let Some(refund) = of(SourceKind::Refund) {
            refunds.insert((order, refund));
        }
    }
    (payments, refunds)
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
    plan.order_entries.push(entry);
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
        plan.order_entries.push(entry);
    }
    Ok(())
}

/// What is left of a payment (or refund) after the reversals already applied to it.
fn remaining(
    facts: &OrderFacts,
    id: &str,
    applied: EventKind,
    reversed: EventKind,
) -> Result<Money, LedgerError> {
    let mut left = Money::zero(facts.currency);
    for e in &facts.events {
        let target = e.target_id.as_deref().unwrap_or(&e.ref_id);
        left = if e.kind == applied && e.ref_id == id {
            left.checked_add(&e.amount)
        } else if e.kind == reversed && target == id {
            left.checked_sub(&e.amount)
        } else {
            Some(left)
        }
        .ok_or(LedgerError::Overflow)?;
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::posting::book_payout_deposit;
    use crate::domain::ledger::test_support::{day, m};

    fn event(kind: EventKind, id: &str, target: Option<&str>) -> CashEvent {
        CashEvent {
            kind,
            ref_id: id.into(),
            target_id: target.map(str::to_string),
            tender: Tender::Processor,
            date: day(1),
            amount: m("10.00 USD"),
        }
    }

    #[test]
    fn money_taken_back_with_its_payout_stands_again_under_the_next_id() {
        let booked = vec![event(EventKind::Payment, "ch_1", None)];
        assert_eq!(
            live_id(&booked, EventKind::Payment, "ch_1").as_deref(),
            Some("ch_1")
        );
        let mut taken = booked.clone();
        taken.push(event(
            EventKind::Reversal,
            "payout-failed:po_1:ch_1",
            Some("ch_1"),
        ));
        assert_eq!(live_id(&taken, EventKind::Payment, "ch_1"), None);
        taken.push(event(EventKind::Payment, "ch_1@r1", None));
        assert_eq!(
            live_id(&taken, EventKind::Payment, "ch_1").as_deref(),
            Some("ch_1@r1")
        );
        // A partial-capture reversal is not a payout's: the payment still stands.
        let mut reduced = booked;
        reduced.push(event(EventKind::Reversal, "txn_pcr", Some("ch_1")));
        assert_eq!(
            live_id(&reduced, EventKind::Payment, "ch_1").as_deref(),
            Some("ch_1")
        );
    }

    #[test]
    fn live_entries_leave_out_mirrors_and_what_they_mirror() {
        let deposit = book_payout_deposit("acme", "po_1", day(2), m("96.80 USD"))
            .unwrap()
            .unwrap();
        let again =
            crate::domain::cash_application::payout_state::round_entry("acme", deposit.clone(), 1)
                .unwrap();
        let mirrored =
            book_payout_failure("po_1", day(3), std::slice::from_ref(&deposit), "failed").unwrap();
        let all = [vec![deposit], mirrored, vec![again.clone()]].concat();
        let live = live_entries("po_1", &all);
        assert_eq!(live, vec![again]);
    }
}
