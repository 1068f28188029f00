//! ExceptionService: the queue of problems for people to work.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::convert::handoffs::event;
use crate::api::convert::{exception, known};
use crate::api::names::{parse_parent, parse_transaction};
use crate::api::pagination::ListScope;
use crate::app::App;
use crate::app::exceptions::{Action, ExceptionDetail};
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::exception_service_server::ExceptionService;
use crate::storage::exceptions::ExceptionFilter;

/// The request metadata naming the person who acts (the history's "who").
pub const ACTOR_HEADER: &str = "x-tally-actor";

/// How often a watcher looks for new events, and how many it reads at once.
const WATCH_POLL: Duration = Duration::from_millis(200);
const WATCH_BATCH: i64 = 500;

/// Splits "merchants/{m}/exceptions/{uuid}".
fn parse_exception(field: &str, name: &str) -> Result<(String, Uuid)> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "'{name}' is not an exception name: expected merchants/{{merchant}}/exceptions/{{uuid}}"
            ),
        )
    };
    let (parent, id) = name.rsplit_once("/exceptions/").ok_or_else(bad)?;
    let merchant = parse_parent(field, parent).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((merchant, id))
}

fn actor<T>(request: &Request<T>) -> Result<String> {
    let v = request
        .metadata()
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if v.is_empty() || v.len() > 128 || v == "rules" {
        return Err(Error::invalid(
            ACTOR_HEADER,
            "request metadata x-tally-actor must name the person acting (1-128 characters, not \"rules\")",
        ));
    }
    Ok(v.to_string())
}

fn detail(merchant: &str, d: &ExceptionDetail) -> pb::Exception {
    let mut e = exception(merchant, &d.exception);
    e.history = d.history.iter().map(|h| event(merchant, h)).collect();
    e
}

fn etag(e: &str) -> Option<&str> {
    (!e.is_empty()).then_some(e)
}

impl ExceptionApi {
    async fn work<T>(
        &self,
        request: &Request<T>,
        name: &str,
        action: Action,
        etag_sent: &str,
        note: &str,
    ) -> Result<pb::Exception> {
        let who = actor(request)?;
        let (merchant, id) = parse_exception("name", name)?;
        if note.len() > 4096 {
            return Err(Error::invalid("note", "at most 4096 bytes"));
        }
        let d = self
            .app
            .work_exception(&merchant, id, &who, &action, etag(etag_sent), note)
            .await?;
        Ok(detail(&merchant, &d))
    }
}

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
            owner: (!req.owner.is_empty()).then(|| req.owner.clone()),
            order_id: match req.transaction.as_str() {
                "" => None,
                t => {
                    let (m, o) = parse_transaction("transaction", t)?;
                    if m != scope.merchant {
                        return Err(
                            Error::invalid("transaction", "not of the parent merchant").into()
                        );
                    }
                    Some(o)
                }
            },
            by_risk: match req.order_by.trim() {
                "" | "create_time desc" => false,
                "amount_at_risk desc" => true,
                other => {
                    return Err(Error::invalid(
                        "order_by",
                        format!(
                            "'{other}': expected \"create_time desc\" or \"amount_at_risk desc\""
                        ),
                    )
                    .into());
                }
            },
        };
        let page_start = scope.resume(&filter)?;
        // A type the proto defines that no rule raises yet (the ghost-revenue
        // kinds): nothing has it, and it must not read as "any type".
        if req.r#type != 0 && filter.exception_type.is_none() {
            return Ok(Response::new(pb::ListExceptionsResponse::default()));
        }
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

    async fn get_exception(
        &self,
        request: Request<pb::GetExceptionRequest>,
    ) -> Result<Response<pb::GetExceptionResponse>, Status> {
        let (merchant, id) = parse_exception("name", &request.get_ref().name)?;
        let d = self.app.get_exception(&merchant, id).await?;
        Ok(Response::new(pb::GetExceptionResponse {
            exception: Some(detail(&merchant, &d)),
        }))
    }

    async fn acknowledge_exception(
        &self,
        request: Request<pb::AcknowledgeExceptionRequest>,
    ) -> Result<Response<pb::AcknowledgeExceptionResponse>, Status> {
        let r = request.get_ref();
        let e = self
            .work(&request, &r.name, Action::Acknowledge, &r.etag, &r.note)
            .await?;
        Ok(Response::new(pb::AcknowledgeExceptionResponse {
            exception: Some(e),
        }))
    }

    async fn assign_exception(
        &self,
        request: Request<pb::AssignExceptionRequest>,
    ) -> Result<Response<pb::AssignExceptionResponse>, Status> {
        let r = request.get_ref();
        let owner = r.owner.trim();
        if owner.is_empty() || owner.len() > 128 {
            return Err(Error::invalid("owner", "expected 1-128 characters").into());
        }
        let action = Action::Assign {
            owner: owner.to_string(),
        };
        let e = self
            .work(&request, &r.name, action, &r.etag, &r.note)
            .await?;
        Ok(Response::new(pb::AssignExceptionResponse {
            exception: Some(e),
        }))
    }

    async fn resolve_exception(
        &self,
        request: Request<pb::ResolveExceptionRequest>,
    ) -> Result<Response<pb::ResolveExceptionResponse>, Status> {
        let r = request.get_ref();
        if r.note.trim().is_empty() {
            return Err(Error::invalid("note", "say what was done about it").into());
        }
        let e = self
            .work(&request, &r.name, Action::Resolve, &r.etag, &r.note)
            .await?;
        Ok(Response::new(pb::ResolveExceptionResponse {
            exception: Some(e),
        }))
    }

    type WatchExceptionsStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchExceptionsResponse, Status>> + Send>>;

    async fn watch_exceptions(
        &self,
        request: Request<pb::WatchExceptionsRequest>,
    ) -> Result<Response<Self::WatchExceptionsStream>, Status> {
        let r = request.into_inner();
        let merchant = parse_parent("parent", &r.parent)?;
        if r.after_sequence < 0 {
            return Err(Error::invalid("after_sequence", "must not be negative").into());
        }
        let app = self.app.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut cursor = r.after_sequence;
            loop {
                match app.exception_events(&merchant, cursor, WATCH_BATCH).await {
                    Ok(events) => {
                        let idle = events.is_empty();
                        for e in events {
                            cursor = e.sequence;
                            let msg = pb::WatchExceptionsResponse {
                                event: Some(event(&merchant, &e)),
                            };
                            if tx.send(Ok(msg)).await.is_err() {
                                return; // the watcher left
                            }
                        }
                        if idle {
                            tokio::select! {
                                _ = tokio::time::sleep(WATCH_POLL) => {}
                                _ = tx.closed() => return,
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
