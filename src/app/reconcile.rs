//! Reconcile: re-merge and re-match the orders a submission touched, write
//! their exceptions (and resolve what the rules no longer find), and store
//! the one evaluation reads show.

use uuid::Uuid;

use chrono::{DateTime, Utc};
use opentelemetry::KeyValue;

use crate::domain::matching::{
    ExceptionType, Finding, Observation, evaluate_as_of, record_subject,
};
use crate::domain::policy::MatchPolicy;
use crate::domain::record::{Record, RecordKey};
use crate::domain::transaction::{ReconciliationState, StoredRecord, Transaction};
use crate::error::Result;
use crate::storage::record_log::AcceptedRow;
use crate::storage::{Conn, contracts, exceptions, rechecks, record_log, transactions};
use crate::telemetry;

/// Names exception ids: the same detection always gets the same id.
const EXCEPTION_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a3e_7d1b_4f3c_9a57_2e8d_b0c4_1a99);

pub(crate) fn exception_id(merchant: &str, parts: &[&str]) -> Uuid {
    let mut name = merchant.to_string();
    for p in parts {
        name.push('\u{1f}');
        name.push_str(p);
    }
    Uuid::new_v5(&EXCEPTION_NAMESPACE, name.as_bytes())
}

/// A finding's identity is its rule and subject, not its order: a
/// record-level problem found before the record's order was known and
/// again after is one exception.
pub(crate) fn from_finding(
    merchant: &str,
    order_id: Option<&str>,
    f: &Finding,
) -> exceptions::NewException {
    exceptions::NewException {
        id: exception_id(merchant, &[&f.rule, &f.subject]),
        order_id: order_id.map(str::to_string),
        exception_type: f.exception_type,
        handoff: f.handoff,
        rule: f.rule.clone(),
        subject: f.subject.clone(),
        summary: f.summary.clone(),
        details: serde_json::json!({
            "observations": f.observations,
            "difference": f.difference,
        }),
    }
}

/// Opens (or updates) what detection found, a person's resolutions left
/// standing ([`respect_people`]), each exception opened counted; returns
/// the exceptions as stored.
pub(crate) async fn open_found(
    conn: &mut Conn,
    merchant: &str,
    found: Vec<exceptions::NewException>,
) -> Result<Vec<exceptions::NewException>> {
    let found = respect_people(conn, merchant, found).await?;
    let opened = exceptions::upsert(conn, merchant, &found).await?;
    telemetry::metrics::global().exceptions_opened(&opened);
    Ok(found)
}

/// A fault a person resolved is theirs: the rules finding it again on the
/// same evidence leave it resolved (the person judged exactly that); on
/// changed evidence it is a new occurrence, an exception of its own (named
/// by the evidence), so the person's decision and its history stand.
pub(crate) async fn respect_people(
    conn: &Conn,
    merchant: &str,
    found: Vec<exceptions::NewException>,
) -> Result<Vec<exceptions::NewException>> {
    let ids: Vec<Uuid> = found.iter().map(|e| e.id).collect();
    let resolved = exceptions::person_resolved(conn, merchant, &ids).await?;
    if resolved.is_empty() {
        return Ok(found);
    }
    let mut out = Vec::with_capacity(found.len());
    for mut e in found {
        match resolved.get(&e.id) {
            Some(judged) if *judged == e.details => continue,
            Some(_) => {
                let evidence = hex::encode(crate::domain::canonical::hash_payload(&e.details));
                e.id = exception_id(merchant, &[&e.rule, &e.subject, "occurrence", &evidence]);
            }
            None => {}
        }
        out.push(e);
    }
    // An occurrence a person resolved in turn is left alone the same way.
    let occurrences: Vec<Uuid> = out.iter().map(|e| e.id).collect();
    let resolved = exceptions::person_resolved(conn, merchant, &occurrences).await?;
    out.retain(|e| resolved.get(&e.id) != Some(&e.details));
    Ok(out)
}

/// A record whose key is taken by other content: both sides, and one
/// exception per distinct conflicting content.
pub(crate) fn conflict(
    merchant: &str,
    original: &AcceptedRow,
    r: &Record,
    hash: &[u8; 32],
) -> exceptions::NewException {
    let new_hash = hex::encode(hash);
    let subject = record_subject(r);
    let kept = Observation {
        source_system: original.source_system.clone(),
        kind: r.kind(),
        source_ids: vec![original.source_id.clone()],
        amount: original.headline(),
        event_time: Some(original.event_time),
    };
    let arrived = Observation {
        source_system: r.source_system.clone(),
        kind: r.kind(),
        source_ids: vec![r.source_id.clone()],
        amount: r.headline_amount(),
        event_time: Some(r.event_time),
    };
    exceptions::NewException {
        id: exception_id(merchant, &["conflict", &subject, &new_hash]),
        order_id: original.order_id.clone().or_else(|| r.order_id.clone()),
        exception_type: ExceptionType::RecordConflict,
        handoff: r.kind().handoff(),
        rule: "record_conflict".into(),
        summary: format!(
            "{} {} from {} arrived again with different content; the original received {} is kept",
            r.kind().as_str(),
            r.source_id,
            r.source_system,
            original.receive_time.to_rfc3339()
        ),
        subject,
        details: serde_json::json!({
            "observations": [kept, arrived],
            "original_record_id": original.record_id,
            "original_content_hash": hex::encode(&original.content_hash),
            "conflicting_content_hash": new_hash,
        }),
    }
}

/// One order's evaluation, as reads show it: the merged transaction with the
/// state and reasons of the same evaluation (an unresolved conflict holds the
/// order in EXCEPTION whatever the rules say), and when to match it again
/// though nothing arrives. Lags run to `now`, the caller's clock.
pub(crate) fn assess(
    policy: &MatchPolicy,
    order_id: &str,
    records: &[StoredRecord],
    conflicted: bool,
    now: DateTime<Utc>,
) -> (Transaction, Vec<Finding>, Option<DateTime<Utc>>) {
    let mut eval = evaluate_as_of(policy, order_id, records, Some(now));
    let recheck = eval.recheck_at();
    if conflicted {
        eval.transaction.state = ReconciliationState::Exception;
        eval.transaction
            .reasons
            .insert(0, "a record arrived again with different content".into());
    }
    (eval.transaction, eval.findings, recheck)
}

/// Re-merges `orders` from the log, matches them, and writes their
/// exceptions and evaluation. The caller holds the order locks. `fresh`:
/// the records this submission accepted (their handoff lags are measured,
/// and returned by key for the records' spans).
#[tracing::instrument(name = "reconcile", skip_all, fields(
    otel.name = "tally.reconcile",
    tally.merchant = merchant,
    tally.orders = orders.len(),
))]
pub(crate) async fn reconcile(
    conn: &Conn,
    merchant: &str,
    orders: &[String],
    fresh: &[RecordKey],
) -> Result<Vec<(RecordKey, chrono::TimeDelta)>> {
    if orders.is_empty() {
        return Ok(vec![]);
    }
    let mut lags = vec![];
    // Independent reads, pipelined: one round trip. The contracts as they
    // stand now: their tolerance and lag judge this evaluation, their max
    // lags set the new deadlines.
    let (by_order, conflicted, contracts) = futures::try_join!(
        record_log::load_records(conn, merchant, orders),
        exceptions::conflicted_orders(conn, merchant, orders),
        contracts::load(conn, merchant, false),
    )?;
    let policy = super::handoffs::match_policy(&contracts);

    let mut found = vec![];
    let mut rechecks = vec![];
    let now = Utc::now();
    let mut merged = Vec::with_capacity(by_order.len());
    // A span per order matched, under the current (reconcile) span.
    let children = telemetry::spans::Children::of_current(merchant);
    for (order_id, records) in &by_order {
        let mut span = children.as_ref().map(|c| {
            c.start(
                "tally.match",
                vec![
                    KeyValue::new("tally.order_id", order_id.clone()),
                    KeyValue::new("tally.records", records.len() as i64),
                ],
            )
        });
        let (transaction, findings, recheck) = assess(
            &policy,
            order_id,
            records,
            conflicted.contains(order_id),
            now,
        );
        rechecks.extend(recheck.map(|due| (order_id.clone(), due)));
        if let Some(span) = &mut span {
            span.set("tally.state", transaction.state.as_str());
            span.set("tally.findings", findings.len() as i64);
        }
        lags.extend(telemetry::metrics::global().observe_handoff_lags(records, fresh));
        found.extend(
            findings
                .iter()
                .map(|f| from_finding(merchant, Some(order_id), f)),
        );
        merged.push(transaction);
    }
    // Written before the exceptions (sent first): a new exception takes its
    // event time (for period reports) from its order's row. The read of a
    // person's resolutions goes with it.
    let (_, found) = futures::try_join!(
        transactions::upsert(conn, merchant, &merged),
        respect_people(conn, merchant, found),
    )?;
    // What the rules no longer find has been settled by later records.
    let derived: Vec<&str> = ExceptionType::ALL
        .into_iter()
        .filter(|t| t.is_derived())
        .map(|t| t.as_str())
        .collect();
    let keep: Vec<Uuid> = found.iter().map(|e| e.id).collect();
    let matched = merged
        .iter()
        .filter(|t| t.state == ReconciliationState::Matched)
        .map(|t| t.order_id.as_str())
        .collect();
    let event_times = merged
        .iter()
        .map(|t| (t.order_id.clone(), t.event_time))
        .collect();
    // Pipelined, sent in this order: the exceptions found, then the others
    // resolved; independent of both, the rechecks (comparisons a contract's
    // lag holds back are decided at their deadline) and the deadlines of
    // the orders' open handoffs (and late ones now met).
    let (opened, resolved, (), ()) = futures::try_join!(
        exceptions::upsert(conn, merchant, &found),
        exceptions::resolve_others(conn, merchant, orders, &derived, &keep),
        rechecks::sync(conn, merchant, orders, &rechecks),
        super::handoffs::track(
            conn,
            merchant,
            orders,
            &by_order,
            &contracts,
            &matched,
            &event_times,
        ),
    )?;
    // Counted as the statements run: an attempt rolled back to be retried
    // (a lost race, rare) is counted again.
    telemetry::metrics::global().exceptions_opened(&opened);
    telemetry::metrics::global().exceptions_resolved(&resolved);
    Ok(lags)
}
