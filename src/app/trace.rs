//! GetHandoffTrace: one order's five handoffs, read in one repeatable-read
//! snapshot (records, ledger booking, contracts and exceptions agree) and
//! judged by the pure `domain::handoff::trace`.

use std::collections::BTreeMap;

use diesel_async::AsyncConnection;

use super::App;
use crate::domain::handoff::trace::{Inputs, Step, TraceRecord, audit};
use crate::domain::matching::ExceptionType;
use crate::domain::record::{Handoff, RecordKind};
use crate::error::{Error, Result};
use crate::storage::exceptions::{self, ExceptionRow};
use crate::storage::{Conn, contracts, explained, ledger_reads, record_log, snapshot};

/// The audit, and the unresolved exceptions of each handoff.
pub struct HandoffTrace {
    pub steps: Vec<Step>,
    pub exceptions: BTreeMap<Handoff, Vec<ExceptionRow>>,
}

impl App {
    pub async fn handoff_trace(&self, merchant: &str, order_id: &str) -> Result<HandoffTrace> {
        let mut conn = self.store().conn().await?;
        let r = conn
            .transaction(async |conn| {
                let now = snapshot(conn).await?;
                read(conn, merchant, order_id, now).await
            })
            .await;
        explained(&mut conn, r).await
    }
}

/// `now`: the database's clock, the one receive times were stamped by.
async fn read(
    conn: &mut Conn,
    merchant: &str,
    order_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<HandoffTrace> {
    let rows = record_log::trace_rows(conn, merchant, order_id).await?;
    if rows.is_empty() {
        return Err(Error::not_found(format!(
            "merchants/{merchant}/transactions/{order_id}"
        )));
    }
    let mut records = Vec::with_capacity(rows.len());
    for r in rows {
        let kind = RecordKind::parse(&r.kind)
            .ok_or_else(|| Error::corrupt("a stored record's kind", r.kind.clone()))?;
        let digest: [u8; 32] = r
            .content_hash
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt("a stored content hash", "not 32 bytes"))?;
        records.push(TraceRecord {
            kind,
            source_system: r.source_system,
            source_id: r.source_id,
            event_time: r.event_time,
            receive_time: r.receive_time,
            trace_id: r.trace_id,
            span_id: r.span_id,
            digest: Some(digest),
        });
    }
    let booked = ledger_reads::first_booking(conn, merchant, order_id)
        .await?
        .map(|b| TraceRecord {
            kind: RecordKind::JournalEntry,
            source_system: "tally".into(),
            source_id: b.external_id,
            event_time: b.booked_at,
            receive_time: b.booked_at,
            trace_id: None,
            span_id: None,
            digest: None,
        });
    let max_lag = contracts::load(conn, merchant, false)
        .await?
        .into_iter()
        .map(|(h, c)| (h, c.contract.max_lag))
        .collect();
    let open = exceptions::unresolved(conn, merchant, order_id).await?;
    let late: Vec<Handoff> = open
        .iter()
        .filter(|e| e.exception_type == ExceptionType::LateHandoff)
        .map(|e| e.handoff)
        .collect();
    let steps = audit(&Inputs {
        records: &records,
        booked,
        max_lag: &max_lag,
        late: &late,
        now,
    });
    let mut by_handoff: BTreeMap<Handoff, Vec<ExceptionRow>> = BTreeMap::new();
    for e in open {
        by_handoff.entry(e.handoff).or_default().push(e);
    }
    Ok(HandoffTrace {
        steps,
        exceptions: by_handoff,
    })
}
