//! Charges that name no order, matched to open invoices by amount and date (pure).
//!
//! A balance transaction whose charge Tally cannot tie to an order (a charge made by hand in
//! the processor's dashboard, a B2B payment of several invoices at once) is still money
//! someone owes a reason for. It is matched with the exact subset search over the merchant's
//! open invoices in a window around its date, and applied only when exactly one combination
//! of their open amounts makes it to the cent: then it is split into one payment per order,
//! its fee shared by largest remainder, every cent conserved. Anything else leaves it on
//! clearing, named by an exception that says why (the combinations that fit, or none).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::completeness::BalanceTxn;
use super::plan::{AppliedCash, PayoutTxn, PlanError};
use super::subset::{Candidate, SubsetMatch, SubsetQuery, find_exact_subsets, window_around};
use crate::domain::allocation::allocate_money;
use crate::domain::ledger::LedgerError;
use crate::domain::money::Money;

/// Days before the charge an invoice it pays may be dated (net-30 terms).
pub const WINDOW_BEFORE_DAYS: u64 = 30;
/// Days after: captured at checkout, invoiced at shipment.
pub const WINDOW_AFTER_DAYS: u64 = 7;
/// Open invoices searched exactly, at most; more in the window is an exception.
pub const MAX_CANDIDATES: usize = 20;

/// An invoice with money still owed, as the search sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInvoice {
    pub invoice_id: String,
    pub order_id: String,
    pub date: NaiveDate,
    /// Total less what is applied; positive.
    pub open: Money,
}

/// The payout's transactions with matched orphans split per order.
#[derive(Debug, Clone, Default)]
pub struct Orphans {
    pub txns: Vec<PayoutTxn>,
    /// Why each orphan left unmatched was (balance transaction id -> reason).
    pub notes: BTreeMap<String, String>,
    /// The orders matched charges now pay.
    pub orders: BTreeSet<String>,
}

/// Whether `t` is a charge that names no order (and needs no conversion: a charge settled
/// in another currency cannot be compared with invoices to the cent).
pub fn is_orphan_charge(t: &PayoutTxn) -> bool {
    t.order_id.is_none()
        && matches!(t.txn.category.as_str(), "charge" | "payment")
        && t.presentment.is_none()
        && t.txn.amount.amount.is_sign_positive()
}

/// Invoices dated in `[earliest, latest]` are candidates for a charge of `date`.
pub fn window(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    window_around(date, WINDOW_BEFORE_DAYS, WINDOW_AFTER_DAYS)
}

/// Matches every orphan charge of `txns` against `open[txn id]`, its candidates (at most
/// [`MAX_CANDIDATES`] + 1 are needed to tell "too many"), in date and id order so the answer
/// never depends on arrival order; an invoice one charge took is no candidate for the next,
/// nor is one of an order the payout's other transactions pay.
pub fn match_orphans(
    txns: Vec<PayoutTxn>,
    open: &BTreeMap<String, Vec<OpenInvoice>>,
) -> Result<Orphans, PlanError> {
    let mut order: Vec<usize> = (0..txns.len())
        .filter(|&i| is_orphan_charge(&txns[i]))
        .collect();
    order.sort_by(|&a, &b| (txns[a].date, &txns[a].txn.id).cmp(&(txns[b].date, &txns[b].txn.id)));
    // An order the payout's own transactions name is being paid by them: its invoices
    // are no candidates (they would be paid twice).
    let named: BTreeSet<&str> = txns.iter().filter_map(|t| t.order_id.as_deref()).collect();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut parts: BTreeMap<usize, Vec<PayoutTxn>> = BTreeMap::new();
    let mut out = Orphans::default();
    for i in order {
        let t = &txns[i];
        let candidates: Vec<&OpenInvoice> = open
            .get(&t.txn.id)
            .into_iter()
            .flatten()
            .filter(|c| !taken.contains(&c.invoice_id) && !named.contains(c.order_id.as_str()))
            .collect();
        match search(t, &candidates) {
            Ok(ids) => {
                let chosen: Vec<&OpenInvoice> = candidates
                    .iter()
                    .copied()
                    .filter(|c| ids.contains(&c.invoice_id))
                    .collect();
                taken.extend(ids);
                let split = split(t, &chosen)?;
                out.orders
                    .extend(split.iter().filter_map(|p| p.order_id.clone()));
                parts.insert(i, split);
            }
            Err(reason) => {
                out.notes.insert(t.txn.id.clone(), reason);
            }
        }
    }
    for (i, t) in txns.into_iter().enumerate() {
        match parts.remove(&i) {
            Some(split) => out.txns.extend(split),
            None => out.txns.push(t),
        }
    }
    Ok(out)
}

/// For a payout being reversed: its orphan charges split as they were applied, read back
/// from its applications (payment ids `{charge}/{order}`), not matched again (the invoices
/// they paid are no longer open). A charge whose applications do not make it stays whole.
pub fn as_applied(txns: Vec<PayoutTxn>, applied: &[AppliedCash]) -> Result<Orphans, PlanError> {
    let mut out = Orphans::default();
    for t in txns {
        if !is_orphan_charge(&t) {
            out.txns.push(t);
            continue;
        }
        let base = t.source.clone().unwrap_or_else(|| t.txn.id.clone());
        let paid: Vec<OpenInvoice> = applied
            .iter()
            .filter(|a| a.application.payment_id == format!("{base}/{}", a.order_id))
            .map(|a| OpenInvoice {
                invoice_id: a.application.invoice_id.clone(),
                order_id: a.order_id.clone(),
                date: t.date,
                open: a.application.amount,
            })
            .collect();
        let total = paid
            .iter()
            .try_fold(Money::zero(t.txn.amount.currency), |s, p| {
                s.checked_add(&p.open)
            });
        if paid.is_empty() || total != Some(t.txn.amount) {
            out.txns.push(t);
            continue;
        }
        let chosen: Vec<&OpenInvoice> = paid.iter().collect();
        let split = split(&t, &chosen)?;
        out.orders
            .extend(split.iter().filter_map(|p| p.order_id.clone()));
        out.txns.extend(split);
    }
    Ok(out)
}

/// The invoice ids of the unique fit, or why there is none.
fn search(t: &PayoutTxn, candidates: &[&OpenInvoice]) -> Result<Vec<String>, String> {
    let (earliest, latest) = window(t.date);
    let mut query = SubsetQuery::new(t.txn.amount, earliest, latest);
    query.max_candidates = MAX_CANDIDATES;
    let pool: Vec<Candidate> = candidates
        .iter()
        .filter(|c| (earliest..=latest).contains(&c.date))
        .map(|c| Candidate {
            id: c.invoice_id.clone(),
            amount: c.open,
            date: c.date,
        })
        .collect();
    let within = format!("open invoices dated {earliest} to {latest}");
    match find_exact_subsets(&query, &pool) {
        Ok(SubsetMatch::Unique(ids)) => Ok(ids),
        Ok(SubsetMatch::NoMatch) => Err(format!(
            "no combination of the {} {within} makes {}",
            pool.len(),
            t.txn.amount
        )),
        Ok(SubsetMatch::Ambiguous {
            combinations,
            truncated,
        }) => {
            let listed: Vec<String> = combinations
                .iter()
                .map(|c| format!("[{}]", c.join(" + ")))
                .collect();
            Err(format!(
                "several combinations of {within} make {}, so none is applied: {}{}",
                t.txn.amount,
                listed.join(", "),
                if truncated { ", ..." } else { "" }
            ))
        }
        Err(e) => Err(format!("{e} ({within}); not searched")),
    }
}

/// One part per order of the chosen invoices: its open amount, a share of the fee by
/// largest remainder, and its own payment id (`{charge}/{order}`), so each order's payment
/// is booked and known once.
fn split(t: &PayoutTxn, chosen: &[&OpenInvoice]) -> Result<Vec<PayoutTxn>, PlanError> {
    let mut by_order: BTreeMap<&str, Money> = BTreeMap::new();
    for c in chosen {
        let slot = by_order
            .entry(c.order_id.as_str())
            .or_insert(Money::zero(c.open.currency));
        *slot = slot.checked_add(&c.open).ok_or(LedgerError::Overflow)?;
    }
    let amounts: Vec<Money> = by_order.values().copied().collect();
    let fees = allocate_money(t.txn.fee, &amounts).map_err(|_| LedgerError::Overflow)?;
    let base = t.source.clone().unwrap_or_else(|| t.txn.id.clone());
    let mut parts = Vec::with_capacity(amounts.len());
    for ((order, amount), fee) in by_order.into_iter().zip(fees) {
        let net = amount.checked_sub(&fee).ok_or(LedgerError::Overflow)?;
        parts.push(PayoutTxn {
            txn: BalanceTxn {
                id: t.txn.id.clone(),
                category: t.txn.category.clone(),
                amount,
                fee,
                net,
            },
            source: Some(format!("{base}/{order}")),
            order_id: Some(order.to_string()),
            date: t.date,
            presentment: None,
        });
    }
    // Every cent of the charge, its fee and its net is in exactly one part.
    for (whole, part) in [
        (
            t.txn.amount,
            parts.iter().map(|p| p.txn.amount).collect::<Vec<_>>(),
        ),
        (t.txn.fee, parts.iter().map(|p| p.txn.fee).collect()),
        (t.txn.net, parts.iter().map(|p| p.txn.net).collect()),
    ] {
        let sum = part
            .iter()
            .try_fold(Money::zero(whole.currency), |s, m| s.checked_add(m))
            .ok_or(LedgerError::Overflow)?;
        assert_eq!(sum, whole, "a split charge conserves every cent");
    }
    Ok(parts)
}

#[cfg(test)]
#[path = "orphans_tests.rs"]
mod tests;
