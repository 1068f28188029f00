//! TransactionService: the canonical transaction of an order and where its
//! reconciliation stands.

use tonic::{Request, Response, Status};

use crate::api::convert::{self, exception, transaction};
use crate::api::names::{parse_parent, parse_transaction, transaction_name};
use crate::api::pagination::{self, time_range};
use crate::domain::transaction::ReconciliationState;
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::transaction_service_server::TransactionService;
use crate::storage::{Store, TransactionFilter};

#[derive(Clone)]
pub struct TransactionApi {
    store: Store,
}

impl TransactionApi {
    pub fn new(store: Store) -> Self {
        TransactionApi { store }
    }
}

fn state_filter(v: i32) -> Result<Option<ReconciliationState>> {
    match pb::ReconciliationState::try_from(v) {
        Ok(pb::ReconciliationState::Unspecified) => Ok(None),
        Ok(pb::ReconciliationState::Pending) => Ok(Some(ReconciliationState::Pending)),
        Ok(pb::ReconciliationState::Matched) => Ok(Some(ReconciliationState::Matched)),
        Ok(pb::ReconciliationState::Exception) => Ok(Some(ReconciliationState::Exception)),
        Err(_) => Err(Error::invalid("state", format!("unknown value {v}"))),
    }
}

#[tonic::async_trait]
impl TransactionService for TransactionApi {
    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::GetTransactionResponse>, Status> {
        let (merchant, order_id) = parse_transaction("name", &request.get_ref().name)?;
        let row = self.store.get_transaction(&merchant, &order_id).await?;
        Ok(Response::new(pb::GetTransactionResponse {
            transaction: Some(transaction(&merchant, &row.transaction)),
        }))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let req = request.into_inner();
        let merchant = parse_parent("parent", &req.parent)?;
        let limit = pagination::page_size(req.page_size)?;
        let (start_time, end_time) = time_range(req.start_time.as_ref(), req.end_time.as_ref())?;
        let filter = TransactionFilter {
            state: state_filter(req.state)?,
            start_time,
            end_time,
        };
        let fingerprint = format!(
            "{}|{:?}|{:?}|{:?}",
            merchant, filter.state, start_time, end_time
        );
        let after = pagination::decode(&req.page_token, &fingerprint)?;
        let page = self
            .store
            .list_transactions(&merchant, &filter, after.as_ref(), limit)
            .await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: page
                .items
                .iter()
                .map(|r| transaction(&merchant, &r.transaction))
                .collect(),
            next_page_token: page
                .next
                .map(|c| pagination::encode(&c, &fingerprint))
                .unwrap_or_default(),
        }))
    }

    async fn get_reconciliation_status(
        &self,
        request: Request<pb::GetReconciliationStatusRequest>,
    ) -> Result<Response<pb::GetReconciliationStatusResponse>, Status> {
        let (merchant, order_id) = parse_transaction("name", &request.get_ref().name)?;
        let row = self.store.get_transaction(&merchant, &order_id).await?;
        let open = self
            .store
            .unresolved_exceptions(&merchant, &order_id)
            .await?;
        Ok(Response::new(pb::GetReconciliationStatusResponse {
            transaction: transaction_name(&merchant, &order_id),
            state: convert::state(row.state) as i32,
            reasons: row.transaction.reasons.clone(),
            exceptions: open.iter().map(|e| exception(&merchant, e)).collect(),
            update_time: Some(convert::timestamp(row.transaction.update_time)),
        }))
    }
}
