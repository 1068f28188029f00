//! Charges of a payout that name no order, tied to open invoices by amount
//! and date (`domain::cash_application::orphans`).
//!
//! The candidates are read, the orders of the match locked, then the
//! candidates read and matched again under those locks (an invoice's open
//! amount changes only under its order's lock): a match that moved in
//! between is retried later rather than applied on stale figures.

use std::collections::BTreeMap;

use super::StoredByOrder;
use crate::domain::cash_application::orphans::{
    MAX_CANDIDATES, Orphans, as_applied, is_orphan_charge, match_orphans, window,
};
use crate::domain::cash_application::plan::PayoutTxn;
use crate::error::Result;
use crate::storage::{Conn, ledger_entries, open_invoices, record_log};

/// The payout's transactions with matched orphan charges split per order,
/// and `stored` with the records of the orders they now pay; None when one
/// of those orders is busy or the match moved. `reversing`: the payout
/// (applied, now failed) whose orphans are split as they were applied.
pub(super) async fn tie(
    conn: &mut Conn,
    merchant: &str,
    txns: Vec<PayoutTxn>,
    mut stored: StoredByOrder,
    reversing: Option<&str>,
) -> Result<Option<(Orphans, StoredByOrder)>> {
    if !txns.iter().any(is_orphan_charge) {
        let txns = Orphans {
            txns,
            ..Orphans::default()
        };
        return Ok(Some((txns, stored)));
    }
    if let Some(payout_id) = reversing {
        let applied = ledger_entries::payout_applications(conn, merchant, payout_id).await?;
        let split = as_applied(txns, &applied).map_err(|e| super::plan_error("payouts", e))?;
        let orders: Vec<String> = split.orders.iter().cloned().collect();
        if !super::lock_orders(conn, merchant, &orders).await? {
            return Ok(None);
        }
        stored.extend(record_log::load_records(conn, merchant, &orders).await?);
        return Ok(Some((split, stored)));
    }
    let first = matched(conn, merchant, txns.clone()).await?;
    let orders: Vec<String> = first
        .orders
        .iter()
        .filter(|o| !stored.contains_key(*o))
        .cloned()
        .collect();
    if !super::lock_orders(conn, merchant, &orders).await? {
        return Ok(None);
    }
    let settled = matched(conn, merchant, txns).await?;
    if settled.orders != first.orders {
        return Ok(None);
    }
    stored.extend(record_log::load_records(conn, merchant, &orders).await?);
    Ok(Some((settled, stored)))
}

async fn matched(conn: &mut Conn, merchant: &str, txns: Vec<PayoutTxn>) -> Result<Orphans> {
    let mut open = BTreeMap::new();
    for t in txns.iter().filter(|t| is_orphan_charge(t)) {
        let limit = MAX_CANDIDATES as i64 + 1;
        let currency = t.txn.amount.currency;
        let rows =
            open_invoices::in_window(conn, merchant, currency, window(t.date), limit).await?;
        open.insert(t.txn.id.clone(), rows);
    }
    match_orphans(txns, &open).map_err(|e| super::plan_error("payouts", e))
}
