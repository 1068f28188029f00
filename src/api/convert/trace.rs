//! GetHandoffTrace's answer: the audit's steps as proto.

use super::timestamp;
use crate::api::names::{exception_name, transaction_name};
use crate::app::trace::HandoffTrace;
use crate::domain::handoff::contract_id;
use crate::domain::handoff::trace::{StepStatus, TraceRecord};
use crate::proto::tally::v1 as pb;

fn duration(d: chrono::Duration) -> prost_types::Duration {
    // Whole milliseconds: the audit's times come from timestamps.
    let ms = d.num_milliseconds();
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn status(s: StepStatus) -> pb::HandoffTraceStatus {
    match s {
        StepStatus::NotStarted => pb::HandoffTraceStatus::NotStarted,
        StepStatus::Waiting => pb::HandoffTraceStatus::Waiting,
        StepStatus::OnTime => pb::HandoffTraceStatus::OnTime,
        StepStatus::Late => pb::HandoffTraceStatus::Late,
        StepStatus::Unsent => pb::HandoffTraceStatus::Unsent,
    }
}

fn record(r: &TraceRecord) -> pb::HandoffTraceRecord {
    pb::HandoffTraceRecord {
        source_system: r.source_system.clone(),
        kind: r.kind.as_str().to_string(),
        source_id: r.source_id.clone(),
        event_time: Some(timestamp(r.event_time)),
        receive_time: Some(timestamp(r.receive_time)),
        trace_id: r.trace_id.clone().unwrap_or_default(),
        span_id: r.span_id.clone().unwrap_or_default(),
        payload_digest: r
            .digest
            .map(|d| format!("sha256:{}", hex::encode(d)))
            .unwrap_or_default(),
    }
}

pub fn handoff_trace(merchant: &str, order_id: &str, t: &HandoffTrace) -> pb::HandoffTrace {
    let steps: Vec<pb::HandoffTraceStep> = t
        .steps
        .iter()
        .map(|s| pb::HandoffTraceStep {
            handoff: pb::Handoff::from(s.handoff) as i32,
            handoff_contract: format!(
                "merchants/{merchant}/handoffContracts/{}",
                contract_id(s.handoff)
            ),
            status: status(s.status) as i32,
            sent: s.sent.as_ref().map(record),
            received: s.received.as_ref().map(record),
            lag: s.lag.map(duration),
            max_lag: Some(duration(s.max_lag)),
            lagging: s.lagging,
            exceptions: t
                .exceptions
                .get(&s.handoff)
                .into_iter()
                .flatten()
                .map(|e| exception_name(merchant, &e.exception_id))
                .collect(),
        })
        .collect();
    pb::HandoffTrace {
        transaction: transaction_name(merchant, order_id),
        lagging_handoff: t
            .steps
            .iter()
            .find(|s| s.lagging)
            .map(|s| contract_id(s.handoff).to_string())
            .unwrap_or_default(),
        steps,
    }
}
