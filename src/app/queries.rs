//! Queries: what reads show. A transaction is evaluated whole on read (merge
//! and match, with the order's unresolved conflicts), and its totals, state
//! and reasons all come from that one evaluation, never a merge made now
//! mixed with a state settled at write time.

use super::App;
use super::reconcile::assess;
use crate::domain::transaction::Transaction;
use crate::error::{Error, Result};
use crate::storage::exceptions::{self, ExceptionFilter, ExceptionRow};
use crate::storage::transactions::{self, ProjectionRow, TransactionFilter};
use crate::storage::{Conn, Cursor, Page, record_log};

/// Where one order's reconciliation stands: its transaction and the
/// exceptions still open on it.
pub struct ReconciliationStatus {
    pub transaction: Transaction,
    pub open_exceptions: Vec<ExceptionRow>,
}

impl App {
    pub async fn get_transaction(&self, merchant: &str, order_id: &str) -> Result<Transaction> {
        let mut conn = self.store.conn().await?;
        let row = transactions::get(&mut conn, merchant, order_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("merchants/{merchant}/transactions/{order_id}"))
            })?;
        Ok(shown(&mut conn, merchant, vec![row]).await?.remove(0))
    }

    pub async fn list_transactions(
        &self,
        merchant: &str,
        filter: &TransactionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Transaction>> {
        let mut conn = self.store.conn().await?;
        let page = transactions::list(&mut conn, merchant, filter, after, limit).await?;
        Ok(Page {
            items: shown(&mut conn, merchant, page.items).await?,
            next: page.next,
        })
    }

    pub async fn reconciliation_status(
        &self,
        merchant: &str,
        order_id: &str,
    ) -> Result<ReconciliationStatus> {
        let transaction = self.get_transaction(merchant, order_id).await?;
        let mut conn = self.store.conn().await?;
        let open_exceptions = exceptions::unresolved(&mut conn, merchant, order_id).await?;
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
        exceptions::list(&mut conn, merchant, filter, after, limit).await
    }
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
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = records.remove(&row.order_id).unwrap_or_default();
            assess(
                &policy,
                &row.order_id,
                &own,
                conflicted.contains(&row.order_id),
            )
            .0
        })
        .collect())
}
