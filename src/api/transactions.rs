//! TransactionService: validate, ask the queries, render.

use tonic::{Request, Response, Status};

use crate::api::auth;
use crate::api::convert::{self, exception, known, transaction};
use crate::api::names::{parse_transaction, transaction_name};
use crate::api::pagination::ListScope;
use crate::app::App;
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::transaction_service_server::TransactionService;
use crate::storage::transactions::TransactionFilter;

#[derive(Clone)]
pub struct TransactionApi {
    app: App,
}

impl TransactionApi {
    pub fn new(app: App) -> Self {
        TransactionApi { app }
    }
}

#[tonic::async_trait]
impl TransactionService for TransactionApi {
    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::GetTransactionResponse>, Status> {
        let (merchant, order_id) = parse_transaction("name", &request.get_ref().name)?;
        let merchant = auth::tenant(&request, merchant)?;
        let t = self.app.get_transaction(&merchant, &order_id).await?;
        Ok(Response::new(pb::GetTransactionResponse {
            transaction: Some(transaction(&merchant, &t)),
        }))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let scope = ListScope::of(&request)?;
        let req = request.into_inner();
        let filter = TransactionFilter {
            state: known("state", req.state)?,
            window: scope.window,
        };
        let page_start = scope.resume(&filter)?;
        let page = self
            .app
            .list_transactions(
                &scope.merchant,
                &filter,
                page_start.after.as_ref(),
                scope.limit,
            )
            .await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: page
                .items
                .iter()
                .map(|t| transaction(&scope.merchant, t))
                .collect(),
            next_page_token: page_start.next_token(page.next),
        }))
    }

    async fn get_reconciliation_status(
        &self,
        request: Request<pb::GetReconciliationStatusRequest>,
    ) -> Result<Response<pb::GetReconciliationStatusResponse>, Status> {
        let (merchant, order_id) = parse_transaction("name", &request.get_ref().name)?;
        let merchant = auth::tenant(&request, merchant)?;
        let s = self.app.reconciliation_status(&merchant, &order_id).await?;
        let t = &s.transaction;
        Ok(Response::new(pb::GetReconciliationStatusResponse {
            transaction: transaction_name(&merchant, &order_id),
            state: pb::ReconciliationState::from(t.state) as i32,
            reasons: t.reasons.clone(),
            exceptions: s
                .open_exceptions
                .iter()
                .map(|e| exception(&merchant, e))
                .collect(),
            update_time: Some(convert::timestamp(t.update_time)),
        }))
    }

    async fn get_handoff_trace(
        &self,
        request: Request<pb::GetHandoffTraceRequest>,
    ) -> Result<Response<pb::GetHandoffTraceResponse>, Status> {
        let (merchant, order_id) = parse_transaction("name", &request.get_ref().name)?;
        let merchant = auth::tenant(&request, merchant)?;
        let t = self.app.handoff_trace(&merchant, &order_id).await?;
        Ok(Response::new(pb::GetHandoffTraceResponse {
            handoff_trace: Some(convert::trace::handoff_trace(&merchant, &order_id, &t)),
        }))
    }
}
