//! Planning a payout: its balance transactions applied to its orders, in order.

use std::collections::BTreeMap;

use super::{
    Books, CashEvent, EventKind, OrderBook, OrderFacts, PayoutFacts, PayoutTxn, Plan, PlanError,
    Problem, apply_payment, catch_up, clearing, live_id, refund_booking, release, share,
};
use crate::domain::cash_application::order::Payment;
use crate::domain::cash_application::payout_state::round_entry;
use crate::domain::ledger::posting::{
    self, Conversion, DisputeBooking, FeeItem, PaymentBooking, Tender,
};
use crate::domain::ledger::{LedgerEntry, LedgerError};
use crate::domain::money::Money;

/// A balance transaction of a payout that names no order it can be applied to.
pub const UNIDENTIFIED_RULE: &str = "cash.unidentified_money";

/// Plans a complete payout. `orders` holds the facts of every order its transactions name.
pub fn plan_payout(
    payout: &PayoutFacts,
    orders: &BTreeMap<String, OrderFacts>,
) -> Result<Plan, PlanError> {
    let merchant = payout.merchant_id.as_str();
    let mut plan = Plan::default();
    let mut books: Books<'_> = BTreeMap::new();
    for (id, facts) in orders {
        let mut book = OrderBook::replay(facts)?;
        catch_up(merchant, &mut book, &mut plan)?;
        books.insert(id.clone(), book);
    }
    let first_payout_entry = plan.entries.len();
    plan.payout_entries_from = first_payout_entry;
    let mut fees: Vec<FeeItem> = Vec::new();
    let mut order_gross: BTreeMap<String, Money> = BTreeMap::new();
    for t in &payout.txns {
        let book = t.order_id.as_ref().and_then(|o| books.get_mut(o));
        let swept = apply_txn(merchant, payout, t, book, &mut plan, &mut order_gross)?;
        if let Some(fee) = swept.filter(|f| !f.amount.is_zero()) {
            fees.push(FeeItem {
                balance_transaction_id: t.txn.id.clone(),
                order_id: t.order_id.clone(),
                fee,
            });
        }
    }
    for book in books.values() {
        book.check_overpayment(&mut plan)?;
    }
    let gross: Vec<(String, Money)> = order_gross.into_iter().collect();
    let sweep = posting::book_fee_sweep(
        merchant,
        &payout.payout_id,
        payout.date,
        payout.amount.currency,
        &fees,
        &gross,
    )?;
    plan.entries.extend(sweep.entry);
    plan.fee_shares = sweep.shares;
    if payout.deposited {
        plan.entries.extend(posting::book_payout_deposit(
            merchant,
            &payout.payout_id,
            payout.date,
            payout.amount,
        )?);
    }
    plan.round = payout.round;
    if payout.round > 0 {
        rekey(merchant, payout, &mut plan)?;
    }
    let payout_entries: Vec<LedgerEntry> = plan.entries[first_payout_entry..].to_vec();
    clearing(&mut plan, &payout_entries, &payout.payout_id)?;
    Ok(plan)
}

/// A payout derived again books entries the round it replaces booked too (its fee
/// sweep, its deposit, keyed by the payout): each of its entries is keyed with the round,
/// and what points at an entry (applications) follows the new key.
fn rekey(merchant: &str, payout: &PayoutFacts, plan: &mut Plan) -> Result<(), PlanError> {
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    let from = plan.payout_entries_from.min(plan.entries.len());
    for entry in &mut plan.entries[from..] {
        let old = entry.external_id().as_str().to_string();
        *entry = round_entry(merchant, entry.clone(), payout.round)?;
        renamed.insert(old, entry.external_id().as_str().to_string());
    }
    for a in &mut plan.applications {
        if let Some(new) = renamed.get(&a.external_id) {
            a.external_id = new.clone();
        }
    }
    Ok(())
}

fn abs(m: Money) -> Money {
    Money::new(m.amount.abs(), m.currency)
}

/// Applies one balance transaction. Returns the fee it adds to the payout's sweep (none for
/// a dispute, whose fee is booked with the dispute).
fn apply_txn(
    merchant: &str,
    payout: &PayoutFacts,
    t: &PayoutTxn,
    book: Option<&mut OrderBook<'_>>,
    plan: &mut Plan,
    order_gross: &mut BTreeMap<String, Money>,
) -> Result<Option<Money>, PlanError> {
    let category = t.txn.category.as_str();
    let base = t.source.as_ref().unwrap_or(&t.txn.id);
    // In the order's currency (presentment), with the conversion when settled in another.
    let (amount, conversion) = match t.presentment {
        Some((p, rate)) if p.currency != t.txn.amount.currency => (
            abs(p),
            Some(Conversion {
                settlement: abs(t.txn.amount),
                rate,
            }),
        ),
        _ => (abs(t.txn.amount), None),
    };
    match (category, book) {
        ("payout" | "payout_reversal", _) => Ok(None),
        ("fee" | "other_adjustment" | "tax", _) => {
            // Money the processor took (or gave back) itself: swept with the fees.
            let taken = t
                .txn
                .fee
                .checked_sub(&t.txn.amount)
                .ok_or(LedgerError::Overflow)?;
            Ok(Some(taken))
        }
        ("dispute" | "dispute_reversal", book) => {
            let won = category == "dispute_reversal";
            // A dispute charges its fee (positive); a won dispute gives it back (negative).
            // A fee of the other sign is not the dispute fee: it goes to the sweep.
            let zero = Money::zero(t.txn.fee.currency);
            let (dispute_fee, other_fee) = match (won, t.txn.fee.amount.is_sign_negative()) {
                (false, false) | (true, true) => (abs(t.txn.fee), zero),
                _ => (zero, t.txn.fee),
            };
            let d = DisputeBooking {
                dispute_id: base.clone(),
                payout_id: payout.payout_id.clone(),
                order_id: book.map(|b| b.facts.order_id.clone()),
                date: t.date,
                amount: abs(t.txn.amount),
                fee: dispute_fee,
            };
            plan.entries.push(if won {
                posting::book_dispute_won(merchant, &d)?
            } else {
                posting::book_dispute(merchant, &d)?
            });
            Ok(Some(other_fee))
        }
        ("charge" | "payment", Some(book)) => {
            // Under a fresh id if what was booked under the processor's was taken back.
            let Some(id) = book.fresh_id(EventKind::Payment, base) else {
                return Ok(Some(t.txn.fee));
            };
            let slot = order_gross
                .entry(book.facts.order_id.clone())
                .or_insert(Money::zero(t.txn.amount.currency));
            *slot = slot
                .checked_add(&abs(t.txn.amount))
                .ok_or(LedgerError::Overflow)?;
            let payment = Payment {
                id,
                tender: Tender::Processor,
                date: t.date,
                amount,
            };
            apply_payment(merchant, book, plan, &payment, conversion)?;
            Ok(Some(t.txn.fee))
        }
        ("partial_capture_reversal", Some(book)) => {
            // It reduces the payment as it stands now, under the id it stands under.
            let target = live_id(&book.facts.events, EventKind::Payment, base)
                .or_else(|| book.knows(EventKind::Payment, base).then(|| base.clone()))
                .unwrap_or_else(|| base.clone());
            if let Some(own) = book.fresh_id(EventKind::Reversal, &t.txn.id) {
                reverse(merchant, book, plan, t, (&own, &target), amount, conversion)?;
            }
            Ok(Some(t.txn.fee))
        }
        ("refund", Some(book)) => {
            if let Some(id) = book.fresh_id(EventKind::Refund, base) {
                refund(merchant, book, plan, t, &id, amount, conversion)?;
            }
            Ok(Some(t.txn.fee))
        }
        (_, _) => {
            let mut summary = format!(
                "balance transaction {} ({category}, {}) of payout {} names no order it can be applied to",
                t.txn.id, t.txn.amount, payout.payout_id
            );
            if let Some(why) = payout.orphan_notes.get(&t.txn.id) {
                summary = format!("{summary}: {why}");
            }
            plan.problems.push(Problem {
                rule: UNIDENTIFIED_RULE,
                subject: t.txn.id.clone(),
                order_id: None,
                summary,
            });
            Ok(Some(t.txn.fee))
        }
    }
}

/// `ids`: the reversal's own id and the payment it reduces (both of the payout's round).
fn reverse(
    merchant: &str,
    book: &mut OrderBook<'_>,
    plan: &mut Plan,
    t: &PayoutTxn,
    (reversal_id, target): (&str, &str),
    amount: Money,
    conversion: Option<Conversion>,
) -> Result<(), PlanError> {
    let order = book.facts.order_id.clone();
    let tender = Tender::Processor;
    let outcome = book.cash.reverse_payment(target, amount)?;
    let entry = posting::book_payment(
        merchant,
        &PaymentBooking {
            payment_id: target.to_string(),
            order_id: order.clone(),
            tender,
            date: t.date,
            amount,
            conversion,
            applications: outcome.from_invoices.clone(),
            unapplied: outcome.from_unapplied,
            reversal_id: Some(reversal_id.to_string()),
        },
    )?;
    plan.entries.push(entry);
    release(
        merchant,
        &order,
        reversal_id,
        t.date,
        outcome.released,
        plan,
    )?;
    let mut e = CashEvent {
        kind: EventKind::Reversal,
        ref_id: reversal_id.to_string(),
        target_id: Some(target.to_string()),
        tender,
        date: t.date,
        amount,
    };
    e.tender = tender;
    book.record(plan, e);
    Ok(())
}

fn refund(
    merchant: &str,
    book: &mut OrderBook<'_>,
    plan: &mut Plan,
    t: &PayoutTxn,
    id: &str,
    amount: Money,
    conversion: Option<Conversion>,
) -> Result<(), PlanError> {
    let outcome = book.cash.apply_refund(&Payment {
        id: id.to_string(),
        tender: Tender::Processor,
        date: t.date,
        amount,
    })?;
    // Each credit memo's share of the refund; the conversion follows the share.
    let total = amount;
    for a in &outcome.applications {
        let conv = match conversion {
            Some(c) => Some(Conversion {
                settlement: share(c.settlement, a.amount, total)?,
                rate: c.rate,
            }),
            None => None,
        };
        let booking = refund_booking(book.facts, a, t.date, conv)?;
        plan.entries.push(posting::book_refund(merchant, &booking)?);
    }
    if !outcome.unmatched.amount.is_zero() {
        // No cash-level exception: it stays on clearing (the payout's residual names it) and
        // matching raises REFUND_NOT_PROPAGATED once the refund lag has passed.
        plan.awaiting_memo.push((id.to_string(), outcome.unmatched));
    }
    let e = CashEvent {
        kind: EventKind::Refund,
        ref_id: id.to_string(),
        target_id: None,
        tender: Tender::Processor,
        date: t.date,
        amount,
    };
    book.record(plan, e);
    Ok(())
}
