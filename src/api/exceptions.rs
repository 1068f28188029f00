//! ExceptionService: the queue of problems for people to work.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::api::auth;
use crate::api::convert::handoffs::event;
use crate::api::convert::{exception, known};
use crate::api::names::{parse_exception, parse_parent, parse_transaction};
use crate::api::pagination::ListScope;
use crate::api::validate::fields::{self, ETAG_MAX, NOTE_MAX, OWNER_MAX};
use crate::api::validate::text::{self, Text, shown};
use crate::app::App;
use crate::app::exceptions::{Action, ExceptionDetail};
use crate::domain::access::Scope;
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::exception_service_server::ExceptionService;
use crate::storage::exceptions::ExceptionFilter;

/// The request metadata naming the person who acts (the history's "who").
///
/// gRPC metadata values are ASCII, so a name is sent as `x-tally-actor` in
/// printable ASCII ("alice"), or, for any name at all ("José Núñez"), as
/// `x-tally-actor-bin`: gRPC's binary metadata, the name's UTF-8 bytes
/// (base64 on the wire, which gRPC libraries do by themselves). A raw UTF-8
/// `x-tally-actor` value, which some tools send, is read as UTF-8 too. If
/// both are sent they must agree. The name is 1-128 characters of
/// printable Unicode held to the rules of ids (no control or invisible
/// characters, no whitespace but inner plain spaces); "rules", in any
/// case, is the rule engine's and refused.
pub const ACTOR_HEADER: &str = "x-tally-actor";
/// `ACTOR_HEADER` as gRPC binary metadata: the name's UTF-8 bytes.
pub const ACTOR_BIN_HEADER: &str = "x-tally-actor-bin";

/// How often a watcher looks for new events, and how many it reads at once.
const WATCH_POLL: Duration = Duration::from_millis(200);
const WATCH_BATCH: i64 = 500;

/// Who acts, for the history: without authentication, the person the
/// caller names (as before keys existed); with it, the key's name, refined
/// to "{person} via {key}" when the key may act for people (`act_as`, a UI
/// behind single sign-on) and names one. A person named by a key without
/// `act_as` is refused rather than silently dropped.
pub(crate) fn actor<T>(request: &Request<T>) -> Result<String> {
    let Some(p) = auth::principal(request) else {
        return person(request);
    };
    let m = request.metadata();
    let names_one = m.get(ACTOR_HEADER).is_some() || m.get_bin(ACTOR_BIN_HEADER).is_some();
    match (names_one, p.has(Scope::ActAs)) {
        (false, _) => Ok(p.name.clone()),
        (true, true) => Ok(format!("{} via {}", person(request)?, p.name)),
        (true, false) => Err(Error::PermissionDenied {
            what: format!(
                "{ACTOR_HEADER} names a person, which needs a key with the 'act_as' scope; \
                 without it the actor is the key's name"
            ),
        }),
    }
}

/// The person named in the request metadata.
fn person<T>(request: &Request<T>) -> Result<String> {
    let m = request.metadata();
    let bad = |field: &str, why: &str| {
        Error::invalid(
            field,
            format!(
                "request metadata {field} must name the person acting (1-{OWNER_MAX} printable \
                 characters, UTF-8 in {ACTOR_BIN_HEADER} when not ASCII, not \"rules\"): {why}"
            ),
        )
    };
    let plain = match m.get(ACTOR_HEADER) {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| bad(ACTOR_HEADER, "not UTF-8"))?
                .to_string(),
        ),
    };
    let binary = match m.get_bin(ACTOR_BIN_HEADER) {
        None => None,
        Some(v) => {
            let bytes = v
                .to_bytes()
                .map_err(|_| bad(ACTOR_BIN_HEADER, "not base64"))?;
            Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad(ACTOR_BIN_HEADER, "not UTF-8"))?,
            )
        }
    };
    let (field, name) = match (plain, binary) {
        (None, None) => return Err(bad(ACTOR_HEADER, "missing")),
        (Some(p), None) => (ACTOR_HEADER, p),
        (None, Some(b)) => (ACTOR_BIN_HEADER, b),
        (Some(p), Some(b)) if p == b => (ACTOR_BIN_HEADER, b),
        (Some(_), Some(_)) => {
            return Err(bad(ACTOR_HEADER, "differs from x-tally-actor-bin"));
        }
    };
    if name.is_empty() {
        return Err(bad(field, "empty"));
    }
    text::check(&name, Text::Id, OWNER_MAX).map_err(|why| bad(field, &why))?;
    if name.to_lowercase() == "rules" {
        return Err(bad(field, "\"rules\" is the rule engine's name"));
    }
    Ok(name)
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
        let (merchant, id) = parse_exception("name", name)?;
        let merchant = auth::tenant(request, merchant)?;
        let who = actor(request)?;
        fields::id("etag", etag_sent, ETAG_MAX)?;
        fields::prose("note", note, NOTE_MAX)?;
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
        let scope = ListScope::of(&request)?;
        let req = request.into_inner();
        fields::id("owner", &req.owner, OWNER_MAX)?;
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
                            "{}: expected \"create_time desc\" or \"amount_at_risk desc\"",
                            shown(other)
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
        let merchant = auth::tenant(&request, merchant)?;
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
        fields::required_id("owner", &r.owner, OWNER_MAX)?;
        let action = Action::Assign {
            owner: r.owner.clone(),
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
        fields::prose("note", &r.note, NOTE_MAX)?;
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
        let merchant = auth::tenant(&request, parse_parent("parent", &request.get_ref().parent)?)?;
        let r = request.into_inner();
        if r.after_sequence < 0 {
            return Err(Error::invalid("after_sequence", "must not be negative").into());
        }
        let mut watch = self
            .app
            .watch_exceptions(&merchant, r.after_sequence)
            .await?;
        let app = self.app.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                match app.next_events(&mut watch, WATCH_BATCH).await {
                    Ok(events) => {
                        let idle = events.is_empty();
                        for e in events {
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
