//! Queries: what reads show. A transaction is shown as it was evaluated when
//! its order was last written (the stored snapshot), so its totals, state
//! and reasons are always one evaluation, the same one its exceptions and
//! the list filters come from.

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

/// The transaction each row shows: its snapshot, or for a row written before
/// snapshots existed, a whole evaluation made now (never a merge made now
/// with a state settled then).
async fn shown(
    conn: &mut Conn,
    merchant: &str,
    rows: Vec<ProjectionRow>,
) -> Result<Vec<Transaction>> {
    let legacy: Vec<String> = rows
        .iter()
        .filter(|r| r.snapshot.is_none())
        .map(|r| r.order_id.clone())
        .collect();
    let mut records = if legacy.is_empty() {
        Default::default()
    } else {
        record_log::load_records(conn, merchant, &legacy).await?
    };
    let conflicted = if legacy.is_empty() {
        Default::default()
    } else {
        exceptions::conflicted_orders(conn, merchant, &legacy).await?
    };
    rows.into_iter()
        .map(|row| match row.snapshot {
            Some(snapshot) => {
                let t: Transaction = serde_json::from_value(snapshot).map_err(|e| {
                    Error::corrupt(format!("the snapshot of order {}", row.order_id), e)
                })?;
                debug_assert_eq!(
                    t.state.as_str(),
                    row.state,
                    "snapshot and state column differ"
                );
                Ok(t)
            }
            None => {
                let own = records.remove(&row.order_id).unwrap_or_default();
                Ok(assess(&row.order_id, &own, conflicted.contains(&row.order_id)).0)
            }
        })
        .collect()
}
