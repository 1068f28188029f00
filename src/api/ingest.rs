//! IngestService: SubmitRecords and StreamRecords. Thin: validate, hand the
//! batch to the ingest use case, render the outcomes.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::Instrument;

use crate::api::auth;
use crate::api::convert::timestamp;
use crate::api::limits;
use crate::api::names::{exception_name, parse_parent, transaction_name};
use crate::api::status::{ERROR_DOMAIN, invalid_argument, to_rpc_status};
use crate::api::validate::text::{self, Text};
use crate::api::validate::{self, MAX_BATCH};
use crate::app::stream::Chunk as StoredChunk;
use crate::app::{App, Method, Outcome, RecordOutcome, Submission, Submitted};
use crate::domain::access::Principal;
use crate::error::{Error, FieldViolation, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::ingest_service_server::IngestService;

#[derive(Clone)]
pub struct IngestApi {
    app: App,
}

impl IngestApi {
    pub fn new(app: App) -> Self {
        IngestApi { app }
    }
}

/// Checks what concerns the whole request: the merchant (and that the
/// caller may submit for it: the ingest family's one merchant check), the
/// request_id, the batch size.
fn check_envelope(
    caller: Option<&Principal>,
    parent: &str,
    request_id: &str,
    count: usize,
) -> Result<(String, Option<String>)> {
    let merchant = auth::allow(caller, parse_parent("parent", parent)?)?;
    if request_id.len() > 128
        || request_id.contains(char::is_whitespace)
        || text::check(request_id, Text::Id, 128).is_err()
    {
        return Err(Error::invalid(
            "request_id",
            "at most 128 visible characters (a UUID is recommended)",
        ));
    }
    if count == 0 {
        return Err(Error::invalid("records", "at least one record is required"));
    }
    if count > MAX_BATCH {
        return Err(Error::invalid(
            "records",
            format!("at most {MAX_BATCH} records per request, got {count}; split the batch"),
        ));
    }
    Ok((
        merchant,
        (!request_id.is_empty()).then(|| request_id.to_string()),
    ))
}

fn request_hash(parent: &str, records: &[pb::Record]) -> [u8; 32] {
    use prost::Message;
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for r in records {
        // Length-prefixed so two different batches can never encode alike.
        let bytes = r.encode_to_vec();
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

fn result(merchant: &str, o: &Outcome) -> pb::RecordResult {
    let (outcome, error) = match o.outcome {
        RecordOutcome::Accepted => (pb::RecordOutcome::Accepted, None),
        RecordOutcome::Updated => (pb::RecordOutcome::Updated, None),
        RecordOutcome::Duplicate => (pb::RecordOutcome::Duplicate, None),
        RecordOutcome::Stale => {
            let status = Status::with_error_details(
                Code::FailedPrecondition,
                format!(
                    "record {} is older (by source_update_time) than the version stored; it was logged and ignored",
                    o.source_id
                ),
                ErrorDetails::with_error_info(
                    "STALE_VERSION",
                    ERROR_DOMAIN,
                    std::collections::HashMap::new(),
                ),
            );
            (pb::RecordOutcome::Stale, Some(to_rpc_status(&status)))
        }
        RecordOutcome::Conflict => {
            let status = Status::with_error_details(
                Code::AlreadyExists,
                format!(
                    "record {} already exists with different content; the original is kept and an exception was raised",
                    o.source_id
                ),
                ErrorDetails::with_error_info(
                    "RECORD_CONFLICT",
                    ERROR_DOMAIN,
                    std::collections::HashMap::new(),
                ),
            );
            (pb::RecordOutcome::Conflict, Some(to_rpc_status(&status)))
        }
    };
    pb::RecordResult {
        index: o.index as i32,
        source_id: o.source_id.clone(),
        outcome: outcome as i32,
        transaction: o
            .order_id
            .as_deref()
            .map(|id| transaction_name(merchant, id))
            .unwrap_or_default(),
        receive_time: Some(timestamp(o.receive_time)),
        error,
        exception: o
            .exception_id
            .map(|id| exception_name(merchant, &id))
            .unwrap_or_default(),
    }
}

/// A stream record that failed validation: its own result, not a failed
/// stream.
fn rejected(index: usize, source_id: &str, violations: &[FieldViolation]) -> pb::RecordResult {
    pb::RecordResult {
        index: index as i32,
        // Echoed as sent, but no longer than a source id may be: a rejected
        // record's id may be the very thing that was too long.
        source_id: source_id.chars().take(255).collect(),
        outcome: pb::RecordOutcome::Rejected as i32,
        error: Some(to_rpc_status(&invalid_argument(
            "INVALID_RECORD",
            violations,
        ))),
        ..Default::default()
    }
}

/// A stream chunk, validated: what to store, and what to answer for the
/// records that were refused.
struct Chunk {
    merchant: String,
    request_id: Option<String>,
    echo_request_id: String,
    request_hash: [u8; 32],
    records: Vec<crate::domain::record::Record>,
    /// Position in the chunk of each record in `records`.
    positions: Vec<usize>,
    rejected: Vec<pb::RecordResult>,
}

impl Chunk {
    fn prepare(caller: Option<&Principal>, req: pb::StreamRecordsRequest) -> Result<Chunk> {
        let (merchant, request_id) =
            check_envelope(caller, &req.parent, &req.request_id, req.records.len())?;
        let mut chunk = Chunk {
            request_hash: request_hash(&req.parent, &req.records),
            merchant,
            request_id,
            echo_request_id: req.request_id.clone(),
            records: vec![],
            positions: vec![],
            rejected: vec![],
        };
        for (i, r) in req.records.iter().enumerate() {
            let mut violations = vec![];
            match validate::record(i, r, &mut violations) {
                Some(rec) if violations.is_empty() => {
                    chunk.positions.push(i);
                    chunk.records.push(rec);
                }
                _ => chunk.rejected.push(rejected(i, &r.source_id, &violations)),
            }
        }
        Ok(chunk)
    }

    fn respond(&self, outcomes: &[Outcome]) -> pb::StreamRecordsResponse {
        let mut results: Vec<pb::RecordResult> = outcomes
            .iter()
            .map(|o| {
                let mut r = result(&self.merchant, o);
                // Outcomes index the chunk's valid records; a stored reply
                // matches them (its request hash did).
                debug_assert!(o.index < self.positions.len(), "outcome beyond the chunk");
                r.index = self.positions.get(o.index).copied().unwrap_or(o.index) as i32;
                r
            })
            .chain(self.rejected.iter().cloned())
            .collect();
        results.sort_by_key(|r| r.index);
        pb::StreamRecordsResponse {
            request_id: self.echo_request_id.clone(),
            results,
        }
    }

    /// A stored or fresh answer, rendered; a replay is logged.
    fn answer(&self, submitted: Submitted) -> pb::StreamRecordsResponse {
        match submitted {
            Submitted::Fresh(outcomes) => self.respond(&outcomes),
            Submitted::Replayed(outcomes) => {
                tracing::info!(merchant = %self.merchant, "replayed a retried stream chunk");
                self.respond(&outcomes)
            }
        }
    }
}

/// How many stream messages that are already waiting are stored together
/// (in transactions of at most `MAX_BATCH` records).
const MAX_CHUNKS_PER_COMMIT: usize = 64;
// A stream's commit holds at most what one SubmitRecords call may.
const _: () = assert!(crate::app::stream::MAX_RECORDS_PER_COMMIT == MAX_BATCH);

impl IngestApi {
    /// Stores chunks that arrived together (the use case decides how they
    /// are batched and committed) and renders each chunk's answer.
    async fn store_chunks(&self, chunks: &[Chunk]) -> Vec<Result<pb::StreamRecordsResponse>> {
        let stored: Vec<StoredChunk<'_>> = chunks
            .iter()
            .map(|c| StoredChunk {
                merchant: &c.merchant,
                request_id: c.request_id.as_deref(),
                request_hash: c.request_hash,
                records: &c.records,
            })
            .collect();
        self.app
            .submit_chunks(&stored)
            .await
            .into_iter()
            .zip(chunks)
            .map(|(r, c)| r.map(|s| c.answer(s)))
            .collect()
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::StreamRecordsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn submit_records(
        &self,
        request: Request<pb::SubmitRecordsRequest>,
    ) -> Result<Response<pb::SubmitRecordsResponse>, Status> {
        let caller = auth::principal(&request).cloned();
        let req = request.into_inner();
        let (merchant, request_id) = check_envelope(
            caller.as_ref(),
            &req.parent,
            &req.request_id,
            req.records.len(),
        )?;
        let mut violations = vec![];
        let records: Vec<_> = req
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| validate::record(i, r, &mut violations))
            .collect();
        if !violations.is_empty() {
            // All or nothing: see the proto for why.
            return Err(Error::InvalidArgument {
                reason: "INVALID_RECORDS",
                violations,
            }
            .into());
        }
        let sub = Submission {
            merchant_id: &merchant,
            method: Method::SubmitRecords,
            request_id: request_id.as_deref(),
            request_hash: request_hash(&req.parent, &req.records),
            records: records.iter().collect(),
        };
        let render = |outcomes: &[Outcome]| pb::SubmitRecordsResponse {
            results: outcomes.iter().map(|o| result(&merchant, o)).collect(),
        };
        let response = match self.app.submit(&sub).await? {
            Submitted::Fresh(outcomes) => render(&outcomes),
            Submitted::Replayed(outcomes) => {
                tracing::info!(%merchant, request_id = %req.request_id, "replayed a retried request");
                render(&outcomes)
            }
        };
        Ok(Response::new(response))
    }

    type StreamRecordsStream = ResultStream;

    async fn stream_records(
        &self,
        request: Request<Streaming<pb::StreamRecordsRequest>>,
    ) -> Result<Response<Self::StreamRecordsStream>, Status> {
        // Every message names its merchant: each is checked.
        let caller = auth::principal(&request).cloned();
        let inbound = request.into_inner();
        let api = self.clone();
        // A small buffer: a client that stops reading results stops being
        // read from, instead of growing our memory.
        let (tx, rx) = mpsc::channel(4);
        let work = async move {
            // Messages already waiting are stored together (one commit), so a
            // client streaming small chunks is not bound by one disk flush
            // per chunk; each chunk still gets its own response, in order.
            let mut inbound = inbound.ready_chunks(MAX_CHUNKS_PER_COMMIT);
            while let Some(group) = inbound.next().await {
                let mut chunks = vec![];
                let mut failure = None;
                for message in group {
                    // An oversized message is RESOURCE_EXHAUSTED and ends the stream.
                    match limits::inbound(message)
                        .and_then(|m| Chunk::prepare(caller.as_ref(), m).map_err(Status::from))
                    {
                        Ok(c) => chunks.push(c),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                for reply in api.store_chunks(&chunks).await {
                    let failed = reply.is_err();
                    if tx.send(reply.map_err(Status::from)).await.is_err() || failed {
                        return;
                    }
                }
                if let Some(e) = failure {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        };
        // The stream's work stays in the call's span, and so in its trace.
        tokio::spawn(work.instrument(tracing::Span::current()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
