//! ExceptionService: the queue of problems for people to work.

use tonic::{Request, Response, Status};

use crate::api::convert::{exception, exception_state_name, exception_type_from, handoff_from};
use crate::api::names::parse_parent;
use crate::api::pagination::{self, time_range};
use crate::error::Error;
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::exception_service_server::ExceptionService;
use crate::storage::{ExceptionFilter, Store};

#[derive(Clone)]
pub struct ExceptionApi {
    store: Store,
}

impl ExceptionApi {
    pub fn new(store: Store) -> Self {
        ExceptionApi { store }
    }
}

fn known<T>(field: &str, v: i32, parse: impl Fn(i32) -> Option<T>) -> Result<T, Error> {
    parse(v).ok_or_else(|| Error::invalid(field, format!("unknown value {v}")))
}

#[tonic::async_trait]
impl ExceptionService for ExceptionApi {
    async fn list_exceptions(
        &self,
        request: Request<pb::ListExceptionsRequest>,
    ) -> Result<Response<pb::ListExceptionsResponse>, Status> {
        let req = request.into_inner();
        let merchant = parse_parent("parent", &req.parent)?;
        let limit = pagination::page_size(req.page_size)?;
        let (start_time, end_time) = time_range(req.start_time.as_ref(), req.end_time.as_ref())?;
        let exception_type = known("type", req.r#type, |v| pb::ExceptionType::try_from(v).ok())?;
        let handoff = known("handoff", req.handoff, |v| pb::Handoff::try_from(v).ok())?;
        let state = known("state", req.state, |v| pb::ExceptionState::try_from(v).ok())?;
        let filter = ExceptionFilter {
            exception_type: exception_type_from(exception_type),
            handoff: handoff_from(handoff),
            state: exception_state_name(state).map(str::to_string),
            start_time,
            end_time,
        };
        let fingerprint = format!("{merchant}|{filter:?}");
        let after = pagination::decode(&req.page_token, &fingerprint)?;
        let page = self
            .store
            .list_exceptions(&merchant, &filter, after.as_ref(), limit)
            .await?;
        Ok(Response::new(pb::ListExceptionsResponse {
            exceptions: page.items.iter().map(|e| exception(&merchant, e)).collect(),
            next_page_token: page
                .next
                .map(|c| pagination::encode(&c, &fingerprint))
                .unwrap_or_default(),
        }))
    }
}
