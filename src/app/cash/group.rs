//! Several due payouts of one merchant applied together, in one savepoint:
//! read with one statement per table for all of them, planned one by one by
//! the same pure planner, written with one statement per table (the journal
//! insert, which takes the merchant's export counter, once and last); the
//! payouts' own jobs are completed with their orders' in one statement. Under
//! a backlog this spreads each statement's fixed cost (a round trip, a bind,
//! an executor start) over the group; a payout is about twenty statements.
//!
//! Only plain payouts go together: paid and complete, new or waiting until
//! now, in one currency, none converted, each charge naming its order, no
//! order paid by two of them (so no plan depends on another's). The plain
//! ones at the head of the claim order go together; from the first that is
//! not, the rest run one by one after them (`apply_payout`), so claim order
//! is kept. A failure rolls the group's savepoint back and the caller runs
//! them all one by one, so a failing payout is found and counted alone.
//! Either way the entries, applications and events are those applying them
//! one by one writes; only the entries' export order differs (tests check
//! this).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use tracing::Instrument;

use super::{
    APPLY_ORDER, APPLY_PAYOUT, batch, deposit, facts, fees, links, load_orders, lock_orders,
    payout_entries_from, plan_error, raise_and_resolve, residual, stored_events, waiting,
};
use crate::domain::cash_application::completeness::{
    BalanceTxn, Completeness, PayoutBridge, payout_completeness,
};
use crate::domain::cash_application::orphans::is_orphan_charge;
use crate::domain::cash_application::payout_fee::{self, PayoutFees};
use crate::domain::cash_application::payout_state::{self, BookingAction, PayoutState};
use crate::domain::cash_application::plan::{
    PayoutFacts, PayoutTxn, Plan, payout_orders, plan_payout,
};
use crate::domain::record::{Body, PayoutStatus, Record};
use crate::error::Result;
use crate::storage::ledger;
use crate::storage::locks::{self, LockKey};
use crate::storage::payout_batch::{self, PayoutRecords};
use crate::storage::payout_facts::{Booking, PayoutRow};
use crate::storage::{Conn, deposits, jobs};

/// Payouts claimed per batch, to be applied together when plain. A payout
/// is often hundreds of balance transactions; eight keep a group's
/// statements at a few thousand rows.
pub(super) const MAX_PAYOUTS: i64 = 8;

/// A payout planned and ready to be written.
pub(super) struct Applied<'a> {
    pub payout: &'a Record,
    pub payout_id: &'a str,
    pub amount: crate::domain::money::Money,
    /// Its expected arrival at the bank.
    pub date: NaiveDate,
    pub bridge: PayoutBridge,
    /// It had a row as a waiting payout (its incompleteness exception settles now).
    pub was_waiting: bool,
    pub plan: Plan,
    /// The stored spans of the records it consumes.
    pub links: Vec<(String, String)>,
    /// The facts it is booked from, and the newest record version among them.
    pub basis: String,
    pub cause_record_id: i64,
}

/// Writes applied payouts, after `early` (the order jobs they took over,
/// as if those had committed first). What must read first runs a statement
/// at a time: the exceptions the plans raise or settle, the fee checks and
/// settled waits, the deposits to wake. The writes are then sent at once
/// (pipelined: one round trip), one statement per table for all the
/// payouts, and run in the order sent: payout rows, fee shares, events,
/// invoices and
/// applications, and last the journal entries (they take the merchant's
/// export counter, held to commit), per payout its orders' own entries,
/// then the payout's.
pub(super) async fn write_applied(
    conn: &mut Conn,
    merchant: &str,
    early: &Plan,
    applied: &[Applied<'_>],
    numbered: &BTreeMap<String, usize>,
) -> Result<()> {
    let mut plans = vec![(early, None)];
    plans.extend(applied.iter().map(|a| (&a.plan, Some(a.payout_id))));
    raise_and_resolve(conn, merchant, &plans).await?;
    let swept: Vec<PayoutFees> = applied
        .iter()
        .map(|a| PayoutFees {
            payout: a.payout,
            gross: a.bridge.gross,
            fees: a.bridge.fees,
            net: a.amount,
        })
        .collect();
    let tolerance = fees::tolerance(conn, merchant).await?;
    let fees_settled = fees::check_all(conn, merchant, &swept, &tolerance).await?;
    let fees_settled: Vec<&str> = fees_settled.iter().map(String::as_str).collect();
    deposits::resolve_rules_of(conn, merchant, &[payout_fee::RULE], &fees_settled).await?;
    let was_waiting: Vec<&str> = applied
        .iter()
        .filter(|a| a.was_waiting)
        .map(|a| a.payout_id)
        .collect();
    deposits::resolve_rules_of(conn, merchant, &[waiting::INCOMPLETE_RULE], &was_waiting).await?;
    // A deposit that arrived first may have been waiting for these payouts;
    // one that never arrives is an exception at each payout's deadline.
    // Only money sent to the bank is expected there: a payout of refunds
    // and fees (zero or negative) debits the bank, no deposit follows.
    deposit::wake_unmatched(conn, merchant).await?;
    let expected: Vec<(&str, NaiveDate)> = applied
        .iter()
        .filter(|a| a.amount.amount > rust_decimal::Decimal::ZERO)
        .map(|a| (a.payout_id, a.date))
        .collect();
    super::deposit_due::expect_applied(conn, merchant, &expected).await?;

    let rows: Vec<PayoutRow> = applied.iter().map(payout_row).collect();
    let shares: Vec<_> = applied
        .iter()
        .map(|a| (a.payout_id, &a.plan.fee_shares[..]))
        .collect();
    let events: Vec<_> = plans.iter().map(|(p, _)| &p.events[..]).collect();
    let booked: Vec<_> = plans.iter().map(|(p, _)| &p.invoices[..]).collect();
    let paid: Vec<_> = plans
        .iter()
        .map(|(p, payout)| (&p.applications[..], *payout))
        .collect();
    // The orders' entries first, as if their jobs had committed before
    // (those caught up on the way belong to no payout either: a failure of
    // a payout mirrors only what the payout itself booked).
    let mut groups = vec![(&early.entries[..], None)];
    for a in applied {
        let (orders_own, payouts_own) = a.plan.entries.split_at(payout_entries_from(&a.plan, true));
        groups.push((orders_own, None));
        groups.push((payouts_own, Some(a.payout_id)));
    }
    let entries = groups.iter().map(|(e, _)| e.len()).sum();
    let ids: Vec<&str> = applied.iter().map(|a| a.payout_id).collect();
    let links: Vec<(String, String)> = applied.iter().flat_map(|a| a.links.clone()).collect();
    let span = super::journal_span(merchant, Some(&ids.join(",")), entries, &links);
    let c: &Conn = conn;
    futures::try_join!(
        payout_batch::upsert(c, merchant, &rows),
        ledger::insert_fee_shares(c, merchant, &shares),
        ledger::insert_events(c, merchant, &events, numbered),
        ledger::record_invoices(c, merchant, &booked, &paid),
        ledger::insert_entry_groups(c, merchant, &groups).instrument(span),
    )?;
    for a in applied {
        residual::resolve_late_refunds(conn, merchant, &a.plan.late_refunds).await?;
    }
    Ok(())
}

/// An applied payout's row: its bridge, what its entries left on clearing,
/// and the booking its history gains.
fn payout_row<'a>(a: &'a Applied<'_>) -> PayoutRow<'a> {
    let round = a.plan.round;
    let entries = a.plan.entries.len() - payout_entries_from(&a.plan, true);
    PayoutRow {
        payout_id: a.payout_id,
        date: a.date,
        state: PayoutState::Applied,
        basis: Some(&a.basis),
        round,
        reason: String::new(),
        booking: Some(Booking {
            action: if round == 0 {
                BookingAction::Applied
            } else {
                BookingAction::Reapplied
            },
            cause_record_id: a.cause_record_id,
            entries,
        }),
        amount: a.amount,
        gross: a.bridge.gross.amount,
        fees: a.bridge.fees.amount,
        net: a.bridge.net.amount,
        missing: rust_decimal::Decimal::ZERO,
        residual: a
            .plan
            .residual
            .iter()
            .find(|m| m.currency == a.amount.currency)
            .map_or(rust_decimal::Decimal::ZERO, |m| m.amount),
    }
}

/// A payout as read for a group: plain, or it and those after it run one by one.
struct Plain {
    id: String,
    record: Record,
    txns: Vec<Record>,
    was_waiting: bool,
    /// The round its bookings are keyed with (above 0 once it was reversed).
    round: u32,
    newest_record: i64,
}

/// What applying payouts together did.
pub(super) struct Together {
    /// How many of the payouts, from the first in claim order, were applied.
    pub applied: usize,
    /// The order jobs they took over.
    pub absorbed: Vec<String>,
}

/// The group as read and tied, before anything is written: its plain
/// payouts (from the head of the claim order), the first `tied.len()` of
/// them tied to their orders (locked), and those orders' records.
struct Read {
    plain: Vec<Plain>,
    tied: Vec<TiedPlain>,
    currency: crate::domain::currency::Currency,
    stored: super::StoredByOrder,
}

/// Applies the plain payouts at the head of `payout_ids` (claim order)
/// together, when there are two or more; the rest are the caller's to run
/// one by one after them, so the order is kept. None when fewer than two
/// are plain or something they need is busy; nothing has been written then.
pub(super) async fn apply_together(
    conn: &mut Conn,
    merchant: &str,
    payout_ids: &[String],
) -> Result<Option<Together>> {
    let Some(Read {
        plain,
        tied,
        currency,
        stored,
    }) = read_group(conn, merchant, payout_ids).await?
    else {
        return Ok(None);
    };
    let mut orders: Vec<String> = tied.iter().flat_map(|t| t.orders.iter().cloned()).collect();
    orders.sort();
    debug_assert!(
        orders.windows(2).all(|w| w[0] < w[1]),
        "an order paid by two payouts of a group"
    );
    // Plain: from here on every step writes, and any failure rolls the
    // group back for the caller to run its payouts one by one.
    let applied = tied.len();
    let absorbed = take_jobs(conn, merchant, &orders, &plain[..applied]).await?;
    let (_, mut order_facts) =
        load_orders(conn, merchant, &orders, Some(currency), Some(stored)).await?;
    let numbered = stored_events(&order_facts);
    let early = batch::catch_up_first(conn, merchant, &absorbed, &mut order_facts).await?;
    let mut ready = Vec::with_capacity(tied.len());
    for (p, t) in plain.iter().zip(tied) {
        let own = t
            .orders
            .iter()
            .filter_map(|o| Some((o.clone(), order_facts.remove(o)?)))
            .collect();
        let plan =
            plan_payout(&t.facts, &own).map_err(|e| plan_error(&format!("payouts/{}", p.id), e))?;
        ready.push(Applied {
            payout: &p.record,
            payout_id: &p.id,
            amount: t.facts.amount,
            date: t.date,
            was_waiting: p.was_waiting,
            links: links(conn, merchant, &t.orders, Some(&p.id)).await?,
            bridge: t.facts.bridge,
            plan,
            basis: t.basis,
            cause_record_id: p.newest_record,
        });
    }
    write_applied(conn, merchant, &early, &ready, &numbered).await?;
    Ok(Some(Together { applied, absorbed }))
}

/// Reads and ties the plain payouts at the head of `payout_ids`, under
/// their fee locks and their orders' locks; None when fewer than two are
/// plain or a lock is held elsewhere.
async fn read_group(
    conn: &mut Conn,
    merchant: &str,
    payout_ids: &[String],
) -> Result<Option<Read>> {
    let keys: Vec<LockKey> = payout_ids.iter().map(|p| fees::lock_key(p)).collect();
    if !locks::try_lock_all(conn, merchant, &keys).await? {
        return Ok(None);
    }
    let mut records = payout_batch::records(conn, merchant, payout_ids).await?;
    let mut plain = Vec::with_capacity(payout_ids.len());
    for id in payout_ids {
        let Some(p) = plain_payout(id, records.remove(id)) else {
            break;
        };
        plain.push(p);
    }
    // A payout holding a transaction that moved from a payout not yet
    // derived again waits for it (`apply_payout`), so it is not plain.
    let ids: Vec<&str> = plain
        .iter()
        .flat_map(|p| p.txns.iter())
        .map(|r| r.source_id.as_str())
        .collect();
    let moved = crate::storage::payout_facts::moved_from_due(conn, merchant, &ids, "").await?;
    if let Some(at) = plain
        .iter()
        .position(|p| p.txns.iter().any(|r| moved.contains(&r.source_id)))
    {
        plain.truncate(at);
    }
    let Some(currency) = plain.first().and_then(|p| match &p.record.body {
        Body::Payout(b) => Some(b.amount.currency),
        _ => None,
    }) else {
        return Ok(None);
    };
    let all_txns = || plain.iter().flat_map(|p| p.txns.iter());
    let refs: Vec<String> = all_txns().flat_map(facts::lookup_ids).collect();
    let order_of = ledger::orders_of_refs(conn, merchant, &refs).await?;
    let mut candidates: Vec<String> = order_of.values().cloned().collect();
    candidates.extend(all_txns().filter_map(|r| r.order_id.clone()));
    candidates.sort();
    candidates.dedup();
    if !lock_orders(conn, merchant, &candidates).await? {
        return Ok(None);
    }
    let stored = facts::order_records(conn, merchant, &candidates, false).await?;
    let mut tied = Vec::with_capacity(plain.len());
    let mut seen = BTreeSet::new();
    for p in &plain {
        let (txns, bare) = facts::payout_txns(&p.txns, &order_of, &stored)?;
        let Some(mut t) = tie_plain(merchant, p, currency, txns, bare, &mut seen) else {
            break;
        };
        let ties: Vec<Option<String>> = p.txns.iter().map(|r| facts::tie(r, &order_of)).collect();
        t.basis = payout_state::basis(&p.record, &p.txns, &ties);
        tied.push(t);
    }
    if tied.len() < 2 {
        return Ok(None);
    }
    Ok(Some(Read {
        plain,
        tied,
        currency,
        stored,
    }))
}

/// Takes over the pending jobs of these orders (their work is done here,
/// first) and completes the payouts' own (claimed by this transaction), in
/// one statement; the orders taken.
async fn take_jobs(
    conn: &mut Conn,
    merchant: &str,
    orders: &[String],
    payouts: &[Plain],
) -> Result<Vec<String>> {
    let mut wanted: Vec<(&str, &str)> = orders.iter().map(|o| (APPLY_ORDER, o.as_str())).collect();
    wanted.extend(payouts.iter().map(|p| (APPLY_PAYOUT, p.id.as_str())));
    let taken = jobs::absorb_each(conn, merchant, &wanted).await?;
    let (orders, own): (Vec<_>, Vec<_>) = taken.into_iter().partition(|(k, _)| k == APPLY_ORDER);
    if own.len() != payouts.len() {
        return Err(crate::error::Error::Internal(format!(
            "{} of {} claimed payout jobs of {merchant} were not ours to complete",
            payouts.len() - own.len(),
            payouts.len()
        )));
    }
    Ok(orders.into_iter().map(|(_, o)| o).collect())
}

/// The payout as it stands, if it is plain: paid (or in transit), with a
/// record, new or waiting until now. Applied, reversed, parked, failed and
/// converted payouts go one by one.
fn plain_payout(id: &str, records: Option<PayoutRecords>) -> Option<Plain> {
    let PayoutRecords {
        mut payouts,
        txns,
        row,
        newest_record,
    } = records?;
    let state = row.as_ref().map(|r| r.state);
    if !matches!(state, None | Some(PayoutState::Waiting)) {
        return None;
    }
    let was_waiting = state.is_some();
    let round = row.map_or(0, |r| r.round);
    let record = payouts.pop()?;
    let Body::Payout(p) = &record.body else {
        return None;
    };
    if matches!(p.status, PayoutStatus::Failed | PayoutStatus::Canceled)
        || facts::any_converted(&txns)
    {
        return None;
    }
    Some(Plain {
        id: id.to_string(),
        record,
        txns,
        was_waiting,
        round,
        newest_record,
    })
}

/// A plain payout's transactions tied to its orders, and its facts.
struct TiedPlain {
    facts: PayoutFacts,
    orders: Vec<String>,
    date: NaiveDate,
    /// The facts it is booked from (`payout_state::basis`).
    basis: String,
}

/// None unless the payout is complete, in `currency`, every charge names
/// its order, and none of its orders is another's of the group (`seen`).
fn tie_plain(
    merchant: &str,
    p: &Plain,
    currency: crate::domain::currency::Currency,
    txns: Vec<PayoutTxn>,
    bare: Vec<BalanceTxn>,
    seen: &mut BTreeSet<String>,
) -> Option<TiedPlain> {
    let Body::Payout(body) = &p.record.body else {
        return None;
    };
    if body.amount.currency != currency || txns.iter().any(is_orphan_charge) {
        return None;
    }
    let Ok(Completeness::Complete(bridge)) = payout_completeness(body.amount, &bare) else {
        return None;
    };
    let orders = payout_orders(&txns);
    if orders.iter().any(|o| seen.contains(o)) {
        return None;
    }
    seen.extend(orders.iter().cloned());
    let date = body
        .arrival_time
        .map_or_else(|| facts::date(&p.record), |t| t.date_naive());
    let facts = PayoutFacts {
        merchant_id: merchant.to_string(),
        payout_id: p.id.clone(),
        amount: body.amount,
        date: facts::date(&p.record),
        deposited: true,
        txns,
        bridge,
        orphan_notes: BTreeMap::new(),
        round: p.round,
    };
    Some(TiedPlain {
        facts,
        orders,
        date,
        basis: String::new(),
    })
}
