//! The timestamp audit of one order (seed 000: "find the lagging
//! handoff"): for each of the five handoffs, the record that sent it and
//! the one that received it, the lag between them against the contract's
//! maximum, and which handoff is furthest past its maximum. Pure: the
//! caller reads the records, the ledger's booking and the contracts.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::domain::record::{Handoff, RecordKind, Stage};

/// One record as the audit sees it: no payload, only where and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    pub kind: RecordKind,
    pub source_system: String,
    pub source_id: String,
    /// When it happened in its system.
    pub event_time: DateTime<Utc>,
    /// When Tally stored it.
    pub receive_time: DateTime<Utc>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// SHA-256 of the payload as received; None for Tally's own ledger.
    pub digest: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    NotStarted,
    Waiting,
    OnTime,
    Late,
    /// Received with no record of the sending step.
    Unsent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub handoff: Handoff,
    pub status: StepStatus,
    pub sent: Option<TraceRecord>,
    pub received: Option<TraceRecord>,
    /// Received minus sent (event time); while waiting, how long since
    /// Tally received the sending record.
    pub lag: Option<Duration>,
    pub max_lag: Duration,
    pub lagging: bool,
}

/// What the audit needs besides the records.
pub struct Inputs<'a> {
    pub records: &'a [TraceRecord],
    /// The first journal entry Tally's ledger booked for the order: the
    /// receiving side of reconciliation-to-reporting.
    pub booked: Option<TraceRecord>,
    pub max_lag: &'a BTreeMap<Handoff, Duration>,
    /// Handoffs with an unresolved LATE_HANDOFF exception.
    pub late: &'a [Handoff],
    pub now: DateTime<Utc>,
}

/// The stage that sends into each handoff.
fn sending_stage(h: Handoff) -> Stage {
    match h {
        Handoff::OrderToFulfillment => Stage::OrderCapture,
        Handoff::FulfillmentToInvoice => Stage::Fulfillment,
        Handoff::InvoiceToPayment => Stage::Invoice,
        Handoff::PaymentToCashApplication => Stage::PaymentCapture,
        Handoff::ReconciliationToReporting => Stage::CashApplication,
    }
}

/// The five steps, in the order money flows, the lagging one flagged.
pub fn audit(inputs: &Inputs) -> Vec<Step> {
    let mut steps: Vec<Step> = Handoff::ALL.into_iter().map(|h| step(inputs, h)).collect();
    let worst = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status == StepStatus::Late)
        .max_by(|(_, a), (_, b)| overrun(a).cmp(&overrun(b)))
        .map(|(i, _)| i);
    if let Some(i) = worst {
        steps[i].lagging = true;
    }
    steps
}

/// How far past its maximum a step is, comparable across handoffs: the
/// lag as a multiple of the maximum, in thousandths (a 3-day fulfilment
/// against 24 hours is 3000, a 2-hour invoice against 1 hour 2000).
fn overrun(s: &Step) -> i128 {
    let lag = i128::from(s.lag.unwrap_or_default().num_milliseconds());
    let max = i128::from(s.max_lag.num_milliseconds().max(1));
    lag.saturating_mul(1000) / max
}

fn step(inputs: &Inputs, h: Handoff) -> Step {
    let of_stage = |s: Stage| inputs.records.iter().filter(move |r| r.kind.stage() == s);
    let senders: Vec<&TraceRecord> = of_stage(sending_stage(h)).collect();
    let received: Option<TraceRecord> = match h {
        Handoff::ReconciliationToReporting => inputs.booked.clone(),
        _ => receiving_stage(h)
            .and_then(|s| of_stage(s).min_by_key(|r| (r.event_time, r.receive_time)))
            .cloned(),
    };
    // The latest send at or before the receipt; a receipt before every
    // send (a capture at checkout, before its invoice) is measured from
    // the first send, a negative lag.
    let sent = match &received {
        Some(r) => senders
            .iter()
            .filter(|s| s.event_time <= r.event_time)
            .max_by_key(|s| s.event_time)
            .or_else(|| senders.iter().min_by_key(|s| s.event_time)),
        None => senders.iter().max_by_key(|s| s.event_time),
    }
    .map(|s| (*s).clone());
    let max_lag = inputs
        .max_lag
        .get(&h)
        .copied()
        .unwrap_or_else(|| super::builtin(h).max_lag);
    let flagged_late = inputs.late.contains(&h);
    let (status, lag) = match (&sent, &received) {
        (None, None) => (StepStatus::NotStarted, None),
        (None, Some(_)) => (StepStatus::Unsent, None),
        (Some(s), Some(r)) => {
            let lag = r.event_time - s.event_time;
            let status = if lag > max_lag {
                StepStatus::Late
            } else {
                StepStatus::OnTime
            };
            (status, Some(lag))
        }
        (Some(s), None) => {
            let waited = inputs.now - s.receive_time;
            let status = if waited > max_lag || flagged_late {
                StepStatus::Late
            } else {
                StepStatus::Waiting
            };
            (status, Some(waited))
        }
    };
    Step {
        handoff: h,
        status,
        sent,
        received,
        lag,
        max_lag,
        lagging: false,
    }
}

/// The stage whose records receive a handoff (None for reporting, which
/// Tally's ledger receives).
fn receiving_stage(h: Handoff) -> Option<Stage> {
    match h {
        Handoff::OrderToFulfillment => Some(Stage::Fulfillment),
        Handoff::FulfillmentToInvoice => Some(Stage::Invoice),
        Handoff::InvoiceToPayment => Some(Stage::PaymentCapture),
        Handoff::PaymentToCashApplication => Some(Stage::CashApplication),
        Handoff::ReconciliationToReporting => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::at;

    fn rec(kind: RecordKind, minutes: i64) -> TraceRecord {
        TraceRecord {
            kind,
            source_system: "s".into(),
            source_id: format!("{}-{minutes}", kind.as_str()),
            event_time: at(minutes),
            receive_time: at(minutes + 1),
            trace_id: None,
            span_id: None,
            digest: Some([0; 32]),
        }
    }

    fn run(records: &[TraceRecord], late: &[Handoff], now_minutes: i64) -> Vec<Step> {
        let lags: BTreeMap<Handoff, Duration> = Handoff::ALL
            .into_iter()
            .map(|h| (h, super::super::builtin(h).max_lag))
            .collect();
        audit(&Inputs {
            records,
            booked: None,
            max_lag: &lags,
            late,
            now: at(now_minutes),
        })
    }

    fn statuses(steps: &[Step]) -> Vec<StepStatus> {
        steps.iter().map(|s| s.status).collect()
    }

    #[test]
    fn a_late_fulfilment_is_the_lagging_handoff() {
        use RecordKind as K;
        // Fulfilment three days after the order (max 24 h); invoice 90
        // minutes after it (max 1 h): both late, the fulfilment more so.
        let day = 24 * 60;
        let records = [
            rec(K::StorefrontOrder, 0),
            rec(K::ProcessorPayment, 1),
            rec(K::Fulfillment, 3 * day),
            rec(K::Invoice, 3 * day + 90),
        ];
        let steps = run(&records, &[], 3 * day + 100);
        use StepStatus::*;
        assert_eq!(statuses(&steps), [Late, Late, OnTime, Waiting, NotStarted]);
        let lagging: Vec<Handoff> = steps
            .iter()
            .filter(|s| s.lagging)
            .map(|s| s.handoff)
            .collect();
        assert_eq!(lagging, [Handoff::OrderToFulfillment]);
        assert_eq!(steps[0].lag, Some(Duration::days(3)));
        assert_eq!(steps[0].sent.as_ref().unwrap().kind, K::StorefrontOrder);
        assert_eq!(steps[0].received.as_ref().unwrap().kind, K::Fulfillment);
        // A capture at checkout precedes its invoice: measured, negative, on time.
        assert_eq!(steps[2].lag, Some(Duration::minutes(1 - (3 * day + 90))));
        // Waiting since Tally received the capture.
        assert_eq!(steps[3].lag, Some(Duration::minutes(3 * day + 100 - 2)));
    }

    #[test]
    fn a_clean_order_flags_nothing_and_an_open_late_exception_counts() {
        use RecordKind as K;
        let records = [
            rec(K::StorefrontOrder, 0),
            rec(K::Fulfillment, 60),
            rec(K::Invoice, 70),
        ];
        let steps = run(&records, &[], 80);
        assert!(steps.iter().all(|s| !s.lagging));
        assert_eq!(steps[2].status, StepStatus::Waiting);
        let steps = run(&records, &[Handoff::InvoiceToPayment], 80);
        assert_eq!(steps[2].status, StepStatus::Late);
        assert!(steps[2].lagging);
        // A receipt with no send.
        let steps = run(&[rec(K::Fulfillment, 0)], &[], 1);
        assert_eq!(steps[0].status, StepStatus::Unsent);
    }
}
