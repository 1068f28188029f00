//! Planning one unit of cash application (pure): given the facts the worker loaded, what to
//! book. The same facts always give the same plan (entries carry stable external ids), so a
//! retried or re-claimed job writes exactly what the first attempt would have.
//!
//! An order's cash state is rebuilt by replaying its stored `CashEvent`s into an
//! `OrderCash`; new invoices and credit memos are caught up (booked, and held cash applied
//! to them); then the payout's balance transactions are applied in order; the fees are
//! swept in one entry; the deposit is booked; processor clearing is checked.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::completeness::{BalanceTxn, PayoutBridge};
use super::order::{Application, CashError, Document, OrderCash, Payment};
use crate::domain::cash_application::payout_state::round_id;
use crate::domain::currency::Currency;
use crate::domain::ledger::posting::{
    self, Conversion, FeeShare, InvoiceBooking, PaymentBooking, Tender,
};
use crate::domain::ledger::{ClearingCheck, LedgerEntry, LedgerError, check_clearing};
use crate::domain::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Invoice,
    Payment,
    Reversal,
    CreditMemo,
    Refund,
    /// A refund taken back off its credit memos: its payout was reversed.
    RefundReversal,
}

impl EventKind {
    pub fn key(self) -> &'static str {
        match self {
            EventKind::Invoice => "invoice",
            EventKind::Payment => "payment",
            EventKind::Reversal => "reversal",
            EventKind::CreditMemo => "credit_memo",
            EventKind::Refund => "refund",
            EventKind::RefundReversal => "refund_reversal",
        }
    }

    pub fn from_key(key: &str) -> Option<EventKind> {
        use EventKind::*;
        [
            Invoice,
            Payment,
            Reversal,
            CreditMemo,
            Refund,
            RefundReversal,
        ]
        .into_iter()
        .find(|k| k.key() == key)
    }
}

/// One fact already applied to an order, stored in application order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashEvent {
    pub kind: EventKind,
    pub ref_id: String,
    /// The payment a reversal reduces.
    pub target_id: Option<String>,
    pub tender: Tender,
    pub date: NaiveDate,
    pub amount: Money,
}

/// What the worker knows of one order.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    pub order_id: String,
    pub currency: Currency,
    pub events: Vec<CashEvent>,
    /// Every invoice of the order as received (booked or not yet).
    pub invoices: Vec<InvoiceBooking>,
    pub credit_memos: Vec<Document>,
    /// Storefront tenders applied from liability accounts (gift card, store credit).
    pub tenders: Vec<Payment>,
    /// The storefront order's total: once its invoices add up to it, the order is invoiced
    /// in full and cash still held on it is an overpayment.
    pub order_total: Option<Money>,
    /// Invoices whose parts cannot make an entry (a tax or discount in another currency
    /// than the total, stored before ingest refused it): raised, never skipped silently.
    pub unbookable_invoices: Vec<String>,
    /// Per credit memo, the tax and shipping it credits (the rest is returned goods).
    pub memo_parts: BTreeMap<String, MemoParts>,
    /// Per refund already applied, how the processor settled it (its whole settlement
    /// amount and rate) when in another currency: a refund booked late, when its credit
    /// memo arrives, is converted at the processor's rate like any other.
    pub refund_settlements: BTreeMap<String, Conversion>,
}

/// What a credit memo credits besides returned goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoParts {
    pub tax: Money,
    pub shipping: Money,
}

/// A balance transaction of the payout, with what it was tied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutTxn {
    pub txn: BalanceTxn,
    pub source: Option<String>,
    pub order_id: Option<String>,
    pub date: NaiveDate,
    /// The presentment amount and the processor's rate, when settled in another currency.
    pub presentment: Option<(Money, Decimal)>,
}

#[derive(Debug, Clone)]
pub struct PayoutFacts {
    pub merchant_id: String,
    pub payout_id: String,
    pub amount: Money,
    pub date: NaiveDate,
    /// Whether the money reached the bank (not failed or canceled).
    pub deposited: bool,
    pub txns: Vec<PayoutTxn>,
    pub bridge: PayoutBridge,
    /// Why a charge naming no order matched no open invoices (by balance transaction id).
    pub orphan_notes: BTreeMap<String, String>,
    /// How many times the payout was derived again before this booking
    /// (`payout_state::round_id`): 0 for its first.
    pub round: u32,
}

/// Money moved to an invoice, as stored in cash_applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCash {
    pub order_id: String,
    pub application: Application,
    pub external_id: String,
}

/// Something for a person: raised as an exception, never silently written off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub rule: &'static str,
    pub subject: String,
    pub order_id: Option<String>,
    pub summary: String,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub entries: Vec<LedgerEntry>,
    /// New events per order, in the order they were applied.
    pub events: Vec<(String, CashEvent)>,
    pub applications: Vec<AppliedCash>,
    pub invoices: Vec<InvoiceBooking>,
    pub fee_shares: Vec<FeeShare>,
    /// Processor clearing left by the payout's entries, per currency (debit positive).
    pub residual: Vec<Money>,
    pub problems: Vec<Problem>,
    /// (rule, subject) of exceptions this plan settles: the record they waited for arrived.
    pub resolved: Vec<(&'static str, String)>,
    /// Refunds (id, amount) no credit memo covers yet: they stay on processor clearing, so
    /// the payout's residual names them. Past the refund lag, matching's
    /// REFUND_NOT_PROPAGATED (`refund_not_credited`) is the exception for them.
    pub awaiting_memo: Vec<(String, Money)>,
    /// Refunds booked late, when their credit memo arrived: (refund id, the entry's effect on
    /// processor clearing, debit positive), so the payout that left them on clearing can
    /// have its residual reduced and, at zero, its exception settled.
    pub late_refunds: Vec<(String, Vec<Money>)>,
    /// Entries before this index are the orders' own (invoices booked, held cash released
    /// on catching up); from it on they are the payout's, which a failure mirrors.
    pub payout_entries_from: usize,
    /// The payout's round its entries are keyed with (0 for an order's own plan).
    pub round: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Cash(#[from] CashError),
}

/// One order's cash, rebuilt from its events, and what this plan adds to it.
struct OrderBook<'a> {
    facts: &'a OrderFacts,
    cash: OrderCash,
    known: BTreeSet<(&'static str, String)>,
    /// The overpayment as the stored events left it, to tell when this plan settles it.
    overpaid_before: Option<Money>,
}

impl<'a> OrderBook<'a> {
    fn replay(facts: &'a OrderFacts) -> Result<Self, PlanError> {
        let mut book = OrderBook {
            facts,
            cash: OrderCash::new(&facts.order_id, facts.currency),
            known: BTreeSet::new(),
            overpaid_before: None,
        };
        for e in &facts.events {
            book.known.insert((e.kind.key(), e.ref_id.clone()));
            let doc = || Document {
                id: e.ref_id.clone(),
                date: e.date,
                total: e.amount,
            };
            let pay = || Payment {
                id: e.ref_id.clone(),
                tender: e.tender,
                date: e.date,
                amount: e.amount,
            };
            match e.kind {
                EventKind::Invoice => drop(book.cash.add_invoice(&doc())?),
                EventKind::Payment => drop(book.cash.apply_payment(&pay())?),
                EventKind::Reversal => {
                    let target = e.target_id.as_deref().unwrap_or(&e.ref_id);
                    drop(book.cash.reverse_payment(target, e.amount)?)
                }
                EventKind::CreditMemo => drop(book.cash.add_credit_memo(&doc())?),
                EventKind::Refund => drop(book.cash.apply_refund(&pay())?),
                EventKind::RefundReversal => {
                    let target = e.target_id.as_deref().unwrap_or(&e.ref_id);
                    drop(book.cash.reverse_refund(target, e.amount)?)
                }
            }
        }
        book.overpaid_before = book.overpaid()?;
        Ok(book)
    }

    /// Cash held once the order's invoices reach its total: an overpayment.
    fn overpaid(&self) -> Result<Option<Money>, PlanError> {
        let Some(total) = self.facts.order_total else {
            return Ok(None);
        };
        let position = self.cash.position()?;
        let invoiced = position
            .invoices
            .iter()
            .try_fold(Money::zero(self.facts.currency), |acc, (_, t, _)| {
                acc.checked_add(t)
            })
            .ok_or(LedgerError::Overflow)?;
        let in_full = total.currency == invoiced.currency && invoiced.amount >= total.amount;
        Ok(self.cash.overpayment(in_full)?)
    }

    /// Raises the overpayment (naming the amount held) or settles it once nothing is held.
    fn check_overpayment(&self, plan: &mut Plan) -> Result<(), PlanError> {
        let order = &self.facts.order_id;
        match (self.overpaid()?, &self.overpaid_before) {
            (Some(held), _) => {
                let position = self.cash.position()?;
                plan.problems.push(Problem {
                    rule: OVERPAYMENT_RULE,
                    subject: order.clone(),
                    order_id: Some(order.clone()),
                    summary: format!(
                        "order {order} is invoiced in full ({} of {} captured applied) and {held} more was paid: it stays as unapplied cash",
                        position.applied, position.captured
                    ),
                })
            }
            (None, Some(_)) => plan.resolved.push((OVERPAYMENT_RULE, order.clone())),
            (None, None) => {}
        }
        Ok(())
    }

    fn knows(&self, kind: EventKind, id: &str) -> bool {
        self.known.contains(&(kind.key(), id.to_string()))
    }

    /// The id to book processor money under that the processor calls `base`: `base`
    /// itself the first time, `base@r1`, `base@r2`... once what was booked under the
    /// earlier ids was taken back with its payout; None while money booked under one of
    /// them stands (booked already: exactly once).
    fn fresh_id(&self, kind: EventKind, base: &str) -> Option<String> {
        (0..).map(|round| round_id(base, round)).find_map(|id| {
            if !self.knows(kind, &id) {
                Some(Some(id))
            } else if retired(&self.facts.events, kind, &id) {
                None
            } else {
                Some(None)
            }
        })?
    }

    fn record(&mut self, plan: &mut Plan, event: CashEvent) {
        self.known.insert((event.kind.key(), event.ref_id.clone()));
        plan.events.push((self.facts.order_id.clone(), event));
    }
}

/// Books what an order's new invoices, credit memos and tenders need: each invoice's entry,
/// then held cash applied to it (unapplied -> AR), then tenders from their liability
/// accounts. The whole of an order-level job, and the first step of a payout's.
fn catch_up(merchant: &str, book: &mut OrderBook<'_>, plan: &mut Plan) -> Result<(), PlanError> {
    let order = book.facts.order_id.clone();
    let mut invoices: Vec<&InvoiceBooking> = book.facts.invoices.iter().collect();
    invoices.sort_by(|a, b| (a.date, &a.invoice_id).cmp(&(b.date, &b.invoice_id)));
    for inv in invoices {
        if book.knows(EventKind::Invoice, &inv.invoice_id) {
            continue;
        }
        let entry = match posting::book_invoice(merchant, inv) {
            Ok(e) => e,
            Err(e) => {
                plan.problems.push(Problem {
                    rule: "ledger.invoice_unbookable",
                    subject: inv.invoice_id.clone(),
                    order_id: Some(order.clone()),
                    summary: format!("invoice {} cannot be booked: {e}", inv.invoice_id),
                });
                continue;
            }
        };
        plan.entries.push(entry);
        plan.invoices.push(inv.clone());
        let doc = Document {
            id: inv.invoice_id.clone(),
            date: inv.date,
            total: inv.total,
        };
        let released = book.cash.add_invoice(&doc)?;
        book.record(
            plan,
            event(
                EventKind::Invoice,
                &doc.id,
                Tender::Processor,
                inv.date,
                inv.total,
            ),
        );
        release(merchant, &order, &inv.invoice_id, inv.date, released, plan)?;
    }
    for id in &book.facts.unbookable_invoices {
        if !book.knows(EventKind::Invoice, id) {
            plan.problems.push(Problem {
                rule: "ledger.invoice_unbookable",
                subject: id.clone(),
                order_id: Some(order.clone()),
                summary: format!(
                    "invoice {id} cannot be booked: its discount, tax, shipping or lines are not in its total's currency"
                ),
            });
        }
    }
    for memo in &book.facts.credit_memos {
        if !book.knows(EventKind::CreditMemo, &memo.id) {
            // Refunds that were waiting for this memo are booked against it now.
            for a in book.cash.add_credit_memo(memo)? {
                let conversion = late_conversion(book.facts, &a)?;
                let booking = refund_booking(book.facts, &a, memo.date, conversion)?;
                let entry = posting::book_refund(merchant, &booking)?;
                let effect = match check_clearing([&entry])? {
                    ClearingCheck::Zero => vec![],
                    ClearingCheck::Residual(r) => r,
                };
                plan.late_refunds.push((a.refund_id.clone(), effect));
                plan.entries.push(entry);
            }
            book.record(
                plan,
                event(
                    EventKind::CreditMemo,
                    &memo.id,
                    Tender::Processor,
                    memo.date,
                    memo.total,
                ),
            );
        }
    }
    for tender in &book.facts.tenders {
        if !book.knows(EventKind::Payment, &tender.id) {
            apply_payment(merchant, book, plan, tender, None)?;
        }
    }
    Ok(())
}

fn event(kind: EventKind, id: &str, tender: Tender, date: NaiveDate, amount: Money) -> CashEvent {
    CashEvent {
        kind,
        ref_id: id.to_string(),
        target_id: None,
        tender,
        date,
        amount,
    }
}

/// Held cash applied to an invoice: one unapplied -> AR entry.
fn release(
    merchant: &str,
    order: &str,
    trigger: &str,
    date: NaiveDate,
    released: Vec<Application>,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    if let Some((entry, applied)) = release_entry(merchant, order, trigger, date, released)? {
        plan.applications.extend(applied);
        plan.entries.push(entry);
    }
    Ok(())
}

/// The unapplied -> AR entry that books held cash released to invoices
/// (by an invoice arriving, or a reversal reopening one), with each
/// application named by it; None when nothing was released.
fn release_entry(
    merchant: &str,
    order: &str,
    trigger: &str,
    date: NaiveDate,
    released: Vec<Application>,
) -> Result<Option<(LedgerEntry, Vec<AppliedCash>)>, PlanError> {
    if released.is_empty() {
        return Ok(None);
    }
    let triples: Vec<_> = released
        .iter()
        .map(|a| (a.payment_id.clone(), a.invoice_id.clone(), a.amount))
        .collect();
    let entry = posting::book_unapplied_release(merchant, order, trigger, date, &triples)?;
    let id = entry.external_id().as_str().to_string();
    let applied = released
        .into_iter()
        .map(|a| AppliedCash {
            order_id: order.to_string(),
            application: a,
            external_id: id.clone(),
        })
        .collect();
    Ok(Some((entry, applied)))
}

fn apply_payment(
    merchant: &str,
    book: &mut OrderBook<'_>,
    plan: &mut Plan,
    payment: &Payment,
    conversion: Option<Conversion>,
) -> Result<(), PlanError> {
    let order = book.facts.order_id.clone();
    let outcome = book.cash.apply_payment(payment)?;
    let entry = posting::book_payment(
        merchant,
        &PaymentBooking {
            payment_id: payment.id.clone(),
            order_id: order.clone(),
            tender: payment.tender,
            date: payment.date,
            amount: payment.amount,
            conversion,
            applications: outcome
                .applications
                .iter()
                .map(|a| (a.invoice_id.clone(), a.amount))
                .collect(),
            unapplied: outcome.unapplied,
            reversal_id: None,
        },
    )?;
    for a in outcome.applications {
        plan.applications.push(AppliedCash {
            order_id: order.clone(),
            application: a,
            external_id: entry.external_id().as_str().to_string(),
        });
    }
    plan.entries.push(entry);
    let mut e = event(
        EventKind::Payment,
        &payment.id,
        payment.tender,
        payment.date,
        payment.amount,
    );
    e.tender = payment.tender;
    book.record(plan, e);
    Ok(())
}

/// An order-level job: an invoice or credit memo arrived, so book it and apply held cash.
pub fn plan_order(merchant: &str, facts: &OrderFacts) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut book = OrderBook::replay(facts)?;
    catch_up(merchant, &mut book, &mut plan)?;
    book.check_overpayment(&mut plan)?;
    Ok(plan)
}

/// Money paid beyond an order invoiced in full.
pub const OVERPAYMENT_RULE: &str = "cash.overpayment";

#[path = "plan_payout.rs"]
mod payout;
pub use payout::{UNIDENTIFIED_RULE, plan_payout};

#[path = "plan_refund.rs"]
mod refund;
use refund::{late_conversion, refund_booking, share};

#[path = "plan_ids.rs"]
mod ids;
use ids::retired;
pub use ids::{PAYOUT_REVERSAL_PREFIX, live_id};

#[path = "plan_failure.rs"]
mod failure;
pub use failure::{Booked, FailurePlan, live_entries, plan_failure};

/// Clearing over the payout's entries; a residual is an exception naming the amount.
fn clearing(
    plan: &mut Plan,
    payout_entries: &[LedgerEntry],
    payout_id: &str,
) -> Result<(), PlanError> {
    if let ClearingCheck::Residual(residual) = check_clearing(payout_entries)? {
        plan.problems.push(Problem {
            rule: RESIDUAL_RULE,
            subject: payout_id.to_string(),
            order_id: None,
            summary: residual_summary(payout_id, &residual, &plan.awaiting_memo),
        });
        plan.residual = residual;
    }
    Ok(())
}

/// The exception for money left on processor clearing by a payout.
pub const RESIDUAL_RULE: &str = "ledger.clearing_residual";

/// Names the residual and, when refunds wait for their credit memos, which refunds explain
/// it (booked, and the residual reduced, when the memo arrives).
pub fn residual_summary(
    payout_id: &str,
    residual: &[Money],
    awaiting: &[(String, Money)],
) -> String {
    let list: Vec<String> = residual.iter().map(|m| m.to_string()).collect();
    let mut s = format!(
        "payout {payout_id} leaves {} on processor clearing (debit positive)",
        list.join(", ")
    );
    if !awaiting.is_empty() {
        let refunds: Vec<String> = awaiting.iter().map(|(id, m)| format!("{id} {m}")).collect();
        s.push_str(&format!(
            "; refunds with no credit memo yet: {} (booked when their memo arrives)",
            refunds.join(", ")
        ));
    }
    s
}

/// Orders of a payout, in a fixed order, for the worker to load and lock.
pub fn payout_orders(txns: &[PayoutTxn]) -> Vec<String> {
    let set: BTreeSet<String> = txns.iter().filter_map(|t| t.order_id.clone()).collect();
    set.into_iter().collect()
}

type Books<'a> = BTreeMap<String, OrderBook<'a>>;
