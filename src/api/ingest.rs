//! IngestService: SubmitRecords and StreamRecords. Thin: validate, hand the
//! batch to storage, render the outcomes.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use crate::api::convert::timestamp;
use crate::api::names::{exception_name, parse_parent, transaction_name};
use crate::api::status::{ERROR_DOMAIN, invalid_argument, to_rpc_status};
use crate::api::validate::{self, MAX_BATCH};
use crate::error::{Error, FieldViolation, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::ingest_service_server::IngestService;
use crate::storage::{Outcome, RecordOutcome, Store, Submission, Submitted};

#[derive(Clone)]
pub struct IngestApi {
    store: Store,
}

impl IngestApi {
    pub fn new(store: Store) -> Self {
        IngestApi { store }
    }
}

/// Checks what concerns the whole request: the merchant, the request_id,
/// the batch size.
fn check_envelope(
    parent: &str,
    request_id: &str,
    count: usize,
) -> Result<(String, Option<String>)> {
    let merchant = parse_parent("parent", parent)?;
    if request_id.len() > 128
        || request_id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
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
        RecordOutcome::Duplicate => (pb::RecordOutcome::Duplicate, None),
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
        source_id: source_id.to_string(),
        outcome: pb::RecordOutcome::Rejected as i32,
        error: Some(to_rpc_status(&invalid_argument(
            "INVALID_RECORD",
            violations,
        ))),
        ..Default::default()
    }
}

impl IngestApi {
    /// One stream chunk: well-formed records are stored, malformed ones are
    /// answered REJECTED.
    async fn chunk(&self, req: pb::StreamRecordsRequest) -> Result<pb::StreamRecordsResponse> {
        let (merchant, request_id) =
            check_envelope(&req.parent, &req.request_id, req.records.len())?;
        let mut rejected_results = vec![];
        let mut records = vec![];
        let mut positions = vec![];
        for (i, r) in req.records.iter().enumerate() {
            let mut violations = vec![];
            match validate::record(i, r, &mut violations) {
                Some(rec) if violations.is_empty() => {
                    positions.push(i);
                    records.push(rec);
                }
                _ => rejected_results.push(rejected(i, &r.source_id, &violations)),
            }
        }
        let respond = |outcomes: &[Outcome]| {
            let mut results: Vec<pb::RecordResult> = outcomes
                .iter()
                .map(|o| {
                    let mut r = result(&merchant, o);
                    r.index = positions[o.index] as i32;
                    r
                })
                .chain(rejected_results.iter().cloned())
                .collect();
            results.sort_by_key(|r| r.index);
            pb::StreamRecordsResponse {
                request_id: req.request_id.clone(),
                results,
            }
        };
        if records.is_empty() {
            return Ok(respond(&[]));
        }
        let sub = Submission {
            merchant_id: &merchant,
            request_id: request_id.as_deref(),
            request_hash: request_hash(&req.parent, &req.records),
            records,
        };
        match self
            .store
            .submit(&sub, |o| respond(o).encode_to_vec())
            .await?
        {
            Submitted::Fresh(outcomes) => Ok(respond(&outcomes)),
            Submitted::Replayed(bytes) => pb::StreamRecordsResponse::decode(bytes.as_slice())
                .map_err(|e| Error::Internal(format!("stored response unreadable: {e}"))),
        }
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::StreamRecordsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn submit_records(
        &self,
        request: Request<pb::SubmitRecordsRequest>,
    ) -> Result<Response<pb::SubmitRecordsResponse>, Status> {
        let req = request.into_inner();
        let (merchant, request_id) =
            check_envelope(&req.parent, &req.request_id, req.records.len())?;
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
            request_id: request_id.as_deref(),
            request_hash: request_hash(&req.parent, &req.records),
            records,
        };
        let render = |outcomes: &[Outcome]| pb::SubmitRecordsResponse {
            results: outcomes.iter().map(|o| result(&merchant, o)).collect(),
        };
        let response = match self
            .store
            .submit(&sub, |o| render(o).encode_to_vec())
            .await?
        {
            Submitted::Fresh(outcomes) => render(&outcomes),
            Submitted::Replayed(bytes) => pb::SubmitRecordsResponse::decode(bytes.as_slice())
                .map_err(|e| Error::Internal(format!("stored response unreadable: {e}")))?,
        };
        Ok(Response::new(response))
    }

    type StreamRecordsStream = ResultStream;

    async fn stream_records(
        &self,
        request: Request<Streaming<pb::StreamRecordsRequest>>,
    ) -> Result<Response<Self::StreamRecordsStream>, Status> {
        let mut inbound = request.into_inner();
        let api = self.clone();
        // A small buffer: a client that stops reading results stops being
        // read from, instead of growing our memory.
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(next) = inbound.next().await {
                let reply = match next {
                    Ok(chunk) => api.chunk(chunk).await.map_err(Status::from),
                    Err(status) => Err(status),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
