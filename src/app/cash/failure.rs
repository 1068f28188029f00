//! Taking back what a payout booked, when the facts it was booked from no
//! longer stand (it failed, its amount changed, a balance transaction moved
//! in or out): its live entries mirrored, its applications taken back off
//! the invoices, its payments and refunds reversed in their orders' cash, and
//! the exceptions about what it booked settled, in the job's one transaction.
//! The caller then books what the facts call for now, in the next round.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::{load_orders, lock_orders, plan_error, raise};
use crate::domain::cash_application::payout_fee;
use crate::domain::cash_application::plan::{
    Booked, PayoutTxn, RESIDUAL_RULE, UNIDENTIFIED_RULE, live_entries, plan_failure,
};
use crate::domain::currency::Currency;
use crate::domain::ledger::journal::SourceKind;
use crate::error::Result;
use crate::storage::{Conn, deposits, ledger, ledger_entries};

/// What a payout's own exceptions say of its bookings (fees swept but never
/// journaled, money left on clearing) no longer holds once they are
/// mirrored: resolved by the rules, each with its history. Its orders'
/// exceptions stay: the money they are about is still theirs.
const SETTLED_BY_REVERSAL: [&str; 2] = [payout_fee::RULE, RESIDUAL_RULE];

/// The payout being taken back: `txns` are its balance transactions as they
/// stand now (tied to their orders), `why` what the mirrors' memos say
/// ("failed", "changed").
pub(super) struct Reversal<'a> {
    pub payout_id: &'a str,
    pub date: NaiveDate,
    pub txns: &'a [PayoutTxn],
    pub why: &'a str,
    /// The payout's currency: an order known only by the money it was paid
    /// (no storefront order or invoice yet) is taken to be in it, as when
    /// the payout was applied.
    pub currency: Currency,
}

/// Reverses what the payout booked; the number of entries booked, or None
/// when one of its orders is busy (nothing written: the job runs again).
pub(super) async fn reverse_payout(
    conn: &mut Conn,
    merchant: &str,
    r: &Reversal<'_>,
) -> Result<Option<usize>> {
    let payout_id = r.payout_id;
    let entries = ledger_entries::payout_entries(conn, merchant, payout_id).await?;
    let live = live_entries(payout_id, &entries);
    // The orders its bookings touched, and those its transactions name now.
    let mut orders: BTreeSet<String> = live
        .iter()
        .flat_map(|e| e.source_refs())
        .filter(|s| s.kind == SourceKind::Order)
        .map(|s| s.id.clone())
        .collect();
    orders.extend(r.txns.iter().filter_map(|t| t.order_id.clone()));
    let orders: Vec<String> = orders.into_iter().collect();
    if !lock_orders(conn, merchant, &orders).await? {
        return Ok(None);
    }
    let applied = ledger_entries::payout_applications(conn, merchant, payout_id).await?;
    // The processor money it applied, by the processor's ids (the plan finds
    // the id each stands under in its order's cash).
    let of = |categories: &[&str]| -> Vec<(String, String)> {
        r.txns
            .iter()
            .filter(|t| categories.contains(&t.txn.category.as_str()))
            .filter_map(|t| {
                let id = t.source.as_ref().unwrap_or(&t.txn.id);
                Some((t.order_id.clone()?, id.clone()))
            })
            .collect()
    };
    let (payments, refunds) = (of(&["charge", "payment"]), of(&["refund"]));
    let (_, facts) = load_orders(conn, merchant, &orders, Some(r.currency), None).await?;
    let booked = Booked {
        entries: &entries,
        applied: &applied,
        payments: &payments,
        refunds: &refunds,
    };
    let plan = plan_failure(merchant, payout_id, r.date, &booked, r.why, &facts)
        .map_err(|e| plan_error(&format!("payouts/{payout_id}"), e))?;
    ledger::insert_events(
        conn,
        merchant,
        &[&plan.events],
        &super::stored_events(&facts),
    )
    .await?;
    let applied = [(&plan.applications[..], Some(payout_id))];
    ledger::record_invoices(conn, merchant, &[], &applied).await?;
    deposits::resolve_rules(conn, merchant, &SETTLED_BY_REVERSAL, payout_id).await?;
    raise(conn, merchant, &plan.problems).await?;
    for (rule, subject) in &plan.resolved {
        deposits::resolve_rules(conn, merchant, &[rule], subject).await?;
    }
    // What its plan found of its transactions is found again, or not, by
    // what is booked next: the money it could not place, by transaction.
    let mut txn_ids: BTreeSet<&str> = r.txns.iter().map(|t| t.txn.id.as_str()).collect();
    txn_ids.extend(
        live.iter()
            .flat_map(|e| e.source_refs())
            .filter(|s| s.kind == SourceKind::BalanceTransaction)
            .map(|s| s.id.as_str()),
    );
    let txn_ids: Vec<&str> = txn_ids.into_iter().collect();
    deposits::resolve_rules_of(conn, merchant, &[UNIDENTIFIED_RULE], &txn_ids).await?;
    let groups = [
        (&plan.entries[..], Some(payout_id)),
        (&plan.order_entries[..], None),
    ];
    ledger::insert_entry_groups(conn, merchant, &groups).await?;
    Ok(Some(plan.entries.len() + plan.order_entries.len()))
}
