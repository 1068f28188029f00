//! A payout that failed after it was paid: its bookings mirrored, its
//! applications taken back off the invoices, its payments reversed in their
//! orders' cash, and the exceptions about what it booked settled, in the
//! job's one transaction.

use chrono::NaiveDate;

use super::{load_orders, plan_error, stored_events};
use crate::domain::cash_application::payout_fee;
use crate::domain::cash_application::plan::{
    PayoutTxn, RESIDUAL_RULE, payout_orders, plan_failure,
};
use crate::error::Result;
use crate::storage::{Conn, deposits, ledger, ledger_entries};

/// What a payout's own exceptions say of its bookings (fees swept but never
/// journaled, money left on clearing) no longer holds once they are
/// mirrored: settled by the rules, each with its history. Its orders'
/// exceptions stay: the money they are about is still theirs.
const SETTLED_BY_REVERSAL: [&str; 2] = [payout_fee::RULE, RESIDUAL_RULE];

pub(super) async fn reverse_payout(
    conn: &mut Conn,
    merchant: &str,
    payout_id: &str,
    date: NaiveDate,
    txns: &[PayoutTxn],
) -> Result<()> {
    let booked = ledger_entries::payout_entries(conn, merchant, payout_id).await?;
    let applied = ledger_entries::payout_applications(conn, merchant, payout_id).await?;
    // The processor payments it applied: keyed as cash application keyed them.
    let payments: Vec<(String, String)> = txns
        .iter()
        .filter(|t| matches!(t.txn.category.as_str(), "charge" | "payment"))
        .filter_map(|t| {
            let id = t.source.clone().unwrap_or_else(|| t.txn.id.clone());
            Some((t.order_id.clone()?, id))
        })
        .collect();
    let (_, orders) = load_orders(conn, merchant, &payout_orders(txns), None, None).await?;
    let plan = plan_failure(
        merchant, payout_id, date, &booked, &applied, &payments, &orders,
    )
    .map_err(|e| plan_error(&format!("payouts/{payout_id}"), e))?;
    ledger::insert_events(conn, merchant, &[&plan.events], &stored_events(&orders)).await?;
    let applied = [(&plan.applications[..], Some(payout_id))];
    ledger::record_invoices(conn, merchant, &[], &applied).await?;
    ledger_entries::mark_reversed(conn, merchant, payout_id).await?;
    deposits::resolve_rules(conn, merchant, &SETTLED_BY_REVERSAL, payout_id).await?;
    ledger::insert_entries(conn, merchant, &plan.entries, Some(payout_id)).await
}
