//! A payout's balance transactions tied to the orders they pay: by the
//! references they carry, else, for a charge that names no order, by
//! amount and date against the open invoices
//! (`domain::cash_application::orphans`).
//!
//! For the latter the candidates are read, the orders of the match locked,
//! then the candidates read and matched again under those locks (an
//! invoice's open amount changes only under its order's lock): a match
//! that moved in between is retried later rather than applied on stale
//! figures.

use std::collections::BTreeMap;

use super::{StoredByOrder, facts, lock_orders};
use crate::domain::cash_application::completeness::BalanceTxn;
use crate::domain::cash_application::orphans::{
    MAX_CANDIDATES, Orphans, as_applied, is_orphan_charge, match_orphans, window,
};
use crate::domain::cash_application::plan::PayoutTxn;
use crate::domain::record::Record;
use crate::error::Result;
use crate::storage::{Conn, ledger_entries, open_invoices};

/// A payout's balance transactions tied to their orders.
pub(super) struct Tied {
    pub txns: Vec<PayoutTxn>,
    /// As the processor reported them (charges naming no order unsplit).
    pub plain: Vec<BalanceTxn>,
    pub stored: StoredByOrder,
    /// Why a charge naming no order matched no open invoices.
    pub orphan_notes: BTreeMap<String, String>,
}

/// The payout's balance transactions tied to their orders (charges naming
/// none by amount and date, [`tie_orphans`]), with those orders locked; None
/// when another writer holds one of them. `order_of`: the order each of
/// their ids belongs to (`ledger::orders_of_refs`), read by the caller.
pub(super) async fn tied_txns(
    conn: &mut Conn,
    merchant: &str,
    txn_records: &[Record],
    order_of: &BTreeMap<String, String>,
    reversing: Option<&str>,
) -> Result<Option<Tied>> {
    let candidate_orders: Vec<String> = {
        let mut v: Vec<String> = order_of.values().cloned().collect();
        v.extend(txn_records.iter().filter_map(|r| r.order_id.clone()));
        v.sort();
        v.dedup();
        v
    };
    if !lock_orders(conn, merchant, &candidate_orders).await? {
        return Ok(None);
    }
    let converted = facts::any_converted(txn_records);
    let stored = facts::order_records(conn, merchant, &candidate_orders, converted).await?;
    let (txns, plain) = facts::payout_txns(txn_records, order_of, &stored)?;
    let Some((orphans, stored)) =
        tie_orphans(conn, merchant, txns, stored, reversing, converted).await?
    else {
        return Ok(None);
    };
    Ok(Some(Tied {
        txns: orphans.txns,
        plain,
        stored,
        orphan_notes: orphans.notes,
    }))
}

/// The payout's transactions with matched orphan charges split per order,
/// and `stored` with the records of the orders they now pay; None when one
/// of those orders is busy or the match moved. `reversing`: the payout
/// (applied, now failed) whose orphans are split as they were applied.
async fn tie_orphans(
    conn: &mut Conn,
    merchant: &str,
    txns: Vec<PayoutTxn>,
    mut stored: StoredByOrder,
    reversing: Option<&str>,
    converted: bool,
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
        if !lock_orders(conn, merchant, &orders).await? {
            return Ok(None);
        }
        stored.extend(facts::order_records(conn, merchant, &orders, converted).await?);
        return Ok(Some((split, stored)));
    }
    let first = matched(conn, merchant, txns.clone()).await?;
    let orders: Vec<String> = first
        .orders
        .iter()
        .filter(|o| !stored.contains_key(*o))
        .cloned()
        .collect();
    if !lock_orders(conn, merchant, &orders).await? {
        return Ok(None);
    }
    let settled = matched(conn, merchant, txns).await?;
    if settled.orders != first.orders {
        return Ok(None);
    }
    stored.extend(facts::order_records(conn, merchant, &orders, converted).await?);
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
