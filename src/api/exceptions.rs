//! ExceptionService: the queue of problems for people to work.

use tonic::{Request, Response, Status};

use crate::api::convert::{exception, known};
use crate::api::pagination::ListScope;
use crate::app::App;
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::exception_service_server::ExceptionService;
use crate::storage::exceptions::ExceptionFilter;

#[derive(Clone)]
pub struct ExceptionApi {
    app: App,
}

impl ExceptionApi {
    pub fn new(app: App) -> Self {
        ExceptionApi { app }
    }
}

#[tonic::async_trait]
impl ExceptionService for ExceptionApi {
    async fn list_exceptions(
        &self,
        request: Request<pb::ListExceptionsRequest>,
    ) -> Result<Response<pb::ListExceptionsResponse>, Status> {
        let req = request.into_inner();
        let scope = ListScope::of(&req)?;
        let filter = ExceptionFilter {
            exception_type: known("type", req.r#type)?,
            handoff: known("handoff", req.handoff)?,
            state: known("state", req.state)?,
            window: scope.window,
        };
        let page_start = scope.resume(&filter)?;
        let page = self
            .app
            .list_exceptions(
                &scope.merchant,
                &filter,
                page_start.after.as_ref(),
                scope.limit,
            )
            .await?;
        Ok(Response::new(pb::ListExceptionsResponse {
            exceptions: page
                .items
                .iter()
                .map(|e| exception(&scope.merchant, e))
                .collect(),
            next_page_token: page_start.next_token(page.next),
        }))
    }
}
