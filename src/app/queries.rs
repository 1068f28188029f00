//! Queries: what reads show. A transaction is evaluated whole on read (merge
//! and match, with the order's unresolved conflicts), and its totals, state
//! and reasons all come from that one evaluation, never a merge made now
//! mixed with a state settled at write time. An error on a connection the
//! database dropped under the call is `DatabaseUnavailable`
//! (`storage::explain_failure`).

use std::collections::BTreeSet;

use diesel_async::AsyncConnection;

use super::App;
use super::reconcile::assess;
use crate::domain::transaction::Transaction;
use crate::domain::versions::histories;
use crate::error::{Error, Result};
use crate::storage::exceptions::{self, ExceptionFilter, ExceptionRow};
use crate::storage::transactions::{self, ProjectionRow, TransactionFilter};
use crate::storage::{Conn, Cursor, Page, explained, record_log, record_versions};

/// Where one order's reconciliation stands: its transaction and the
/// exceptions still open on it.
pub struct ReconciliationStatus {
    pub transaction: Transaction,
    pub open_exceptions: Vec<ExceptionRow>,
}

impl App {
    pub async fn get_transaction(&self, merchant: &str, order_id: &str) -> Result<Transaction> {
        let mut conn = self.store.conn().await?;
        let r = get_transaction(&mut conn, merchant, order_id).await;
        explained(&mut conn, r).await
    }

    pub async fn list_transactions(
        &self,
        merchant: &str,
        filter: &TransactionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Transaction>> {
        let mut conn = self.store.conn().await?;
        // A transaction, so the page's planner settings stay with it.
        let r = conn
            .transaction(async |conn| list_transactions(conn, merchant, filter, after, limit).await)
            .await;
        explained(&mut conn, r).await
    }

    pub async fn reconciliation_status(
        &self,
        merchant: &str,
        order_id: &str,
    ) -> Result<ReconciliationStatus> {
        let transaction = self.get_transaction(merchant, order_id).await?;
        let mut conn = self.store.conn().await?;
        let r = exceptions::unresolved(&mut conn, merchant, order_id).await;
        let open_exceptions = explained(&mut conn, r).await?;
        Ok(ReconciliationStatus {
            transaction,
            open_exceptions,
        })
    }

    pub async fn list_exceptions(
        &self,
        merchant: &str,
        filter: &ExceptionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<ExceptionRow>> {
        let mut conn = self.store.conn().await?;
        let r = conn
            .transaction(async |conn| exceptions::list(conn, merchant, filter, after, limit).await)
            .await;
        explained(&mut conn, r).await
    }
}

async fn get_transaction(conn: &mut Conn, merchant: &str, order_id: &str) -> Result<Transaction> {
    let row = transactions::get(conn, merchant, order_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("merchants/{merchant}/transactions/{order_id}")))?;
    Ok(shown(conn, merchant, vec![row]).await?.remove(0))
}

async fn list_transactions(
    conn: &mut Conn,
    merchant: &str,
    filter: &TransactionFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<Transaction>> {
    let page = transactions::list(conn, merchant, filter, after, limit).await?;
    Ok(Page {
        items: shown(conn, merchant, page.items).await?,
        next: page.next,
    })
}

/// The transaction each row shows: one whole evaluation of its records,
/// made now.
async fn shown(
    conn: &mut Conn,
    merchant: &str,
    rows: Vec<ProjectionRow>,
) -> Result<Vec<Transaction>> {
    let orders: Vec<String> = rows.iter().map(|r| r.order_id.clone()).collect();
    let mut records = record_log::load_records(conn, merchant, &orders).await?;
    let conflicted = exceptions::conflicted_orders(conn, merchant, &orders).await?;
    // Judged by the merchant's contracts as they stand, as writes are.
    let contracts = crate::storage::contracts::load(conn, merchant, false).await?;
    let policy = super::handoffs::match_policy(&contracts);
    let now = chrono::Utc::now();
    let mut shown: Vec<Transaction> = rows
        .into_iter()
        .map(|row| {
            let own = records.remove(&row.order_id).unwrap_or_default();
            assess(
                &policy,
                &row.order_id,
                &own,
                conflicted.contains(&row.order_id),
                now,
            )
            .0
        })
        .collect();
    with_histories(conn, merchant, &mut shown).await?;
    Ok(shown)
}

/// Adds the versions of records that changed at their source: the order's
/// own and linked records with more than one version, and the payouts its
/// money went out in. A payout names no order and points at nothing, so no
/// order holds it; the balance transactions that name it do, and this is
/// where its status (in transit, paid, failed) shows.
async fn with_histories(conn: &mut Conn, merchant: &str, shown: &mut [Transaction]) -> Result<()> {
    let orders: Vec<String> = shown.iter().map(|t| t.order_id.clone()).collect();
    let mut changed = record_versions::order_histories(conn, merchant, &orders).await?;
    let payout_ids: BTreeSet<String> = shown
        .iter()
        .flat_map(|t| t.external_ids.payout_ids.iter().cloned())
        .collect();
    let payout_ids: Vec<String> = payout_ids.into_iter().collect();
    let payouts = record_versions::payout_versions(conn, merchant, &payout_ids).await?;
    for t in shown {
        let mut versions = changed.remove(&t.order_id).unwrap_or_default();
        // A payout that names the order is among its own records already:
        // read twice, its history would hold two current versions.
        let held: BTreeSet<_> = versions.iter().map(|v| v.record.key()).collect();
        for id in &t.external_ids.payout_ids {
            versions.extend(
                payouts
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter(|v| !held.contains(&v.record.key()))
                    .cloned(),
            );
        }
        t.record_histories = histories(versions);
    }
    Ok(())
}
