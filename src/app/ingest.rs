//! Ingest: one submission (a batch, or chunks of a stream) in one database
//! transaction. Judges each record new, a new version, duplicate, stale or
//! conflict (`settle`), raises
//! conflict exceptions, links records of no single order, reconciles the
//! touched orders, and answers retried request_ids with the stored reply.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::App;
use super::judge::judge;
use super::reconcile::{from_finding, reconcile};
use crate::domain::matching::record_findings;
use crate::domain::record::Record;
use crate::error::{Error, Result};
use crate::storage::locks::{self, LockKey};
use crate::storage::record_log::TraceIds;
use crate::storage::submissions::{self, Claim};
use crate::storage::{Conn, exceptions, links};
use crate::telemetry;

/// Which call a submission came through: a request_id answers only the
/// method it was first used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    SubmitRecords,
    StreamRecords,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::SubmitRecords => "submit_records",
            Method::StreamRecords => "stream_records",
        }
    }
}

/// A validated batch of one merchant's records.
pub struct Submission<'a> {
    pub merchant_id: &'a str,
    pub method: Method,
    pub request_id: Option<&'a str>,
    /// Fingerprint of the whole request, to tell a retry from a reuse of
    /// its request_id for something else.
    pub request_hash: [u8; 32],
    pub records: Vec<&'a Record>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    Accepted,
    /// A later version of a stored record: now its current version.
    Updated,
    Duplicate,
    /// An earlier version than the stored current one: logged, ignored.
    Stale,
    Conflict,
}

impl RecordOutcome {
    /// The outcome as record_log stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Accepted => "accepted",
            RecordOutcome::Updated => "updated",
            RecordOutcome::Duplicate => "duplicate",
            RecordOutcome::Stale => "stale",
            RecordOutcome::Conflict => "conflict",
        }
    }
}

/// What happened to one record of a submission. Stored (as JSON) as the
/// reply of a request_id, so it stays free of any wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub index: usize,
    pub source_id: String,
    pub outcome: RecordOutcome,
    /// The order of the record's current version (the original, for a
    /// duplicate, stale version or conflict).
    pub order_id: Option<String>,
    /// When the current version was received (this record, if it was
    /// stored; else the version it was judged against).
    pub receive_time: DateTime<Utc>,
    pub exception_id: Option<Uuid>,
}

/// The outcomes of a fresh submission, or those stored for a request
/// already answered.
#[derive(Debug)]
pub enum Submitted {
    Fresh(Vec<Outcome>),
    Replayed(Vec<Outcome>),
}

/// How many times a submission that lost a race or was interrupted runs again.
const RETRIES: usize = 4;

impl App {
    /// Stores a submission atomically. Idempotent per record key and, with a
    /// request_id, per request and method.
    pub async fn submit(&self, sub: &Submission<'_>) -> Result<Submitted> {
        let mut results = self.submit_group(std::slice::from_ref(sub)).await?;
        Ok(results.remove(0))
    }

    /// Stores several submissions in one transaction, in order, as if each
    /// were submitted alone but for sharing one commit: a stream of small
    /// chunks pays for one disk flush per group, not per chunk. Any error
    /// rolls back the whole group. Retries by itself when it loses a race.
    #[tracing::instrument(name = "ingest", skip_all, fields(
        otel.name = "tally.ingest",
        tally.merchant = subs.first().map(|s| s.merchant_id),
        tally.records = subs.iter().map(|s| s.records.len()).sum::<usize>(),
    ))]
    pub async fn submit_group(&self, subs: &[Submission<'_>]) -> Result<Vec<Submitted>> {
        // Orders found late in an attempt that lost a lock race are locked
        // up front in the next, in the global order, so it cannot lose again
        // on them.
        let mut prelock: BTreeSet<String> = BTreeSet::new();
        let mut attempt = 0;
        loop {
            let mut conn = self.store.conn().await?;
            let result = conn
                .transaction(async |conn| {
                    let mut out = Vec::with_capacity(subs.len());
                    for sub in subs {
                        out.push(submit_in_tx(conn, sub, &prelock).await?);
                    }
                    Ok::<_, Attempt>(out)
                })
                .await;
            match result {
                Ok(out) => {
                    for (sub, s) in subs.iter().zip(&out) {
                        if let Submitted::Fresh(outcomes) = s {
                            log_outcomes(sub.merchant_id, outcomes);
                            for o in outcomes {
                                telemetry::metrics::global().record_ingested(
                                    sub.records[o.index].kind().as_str(),
                                    o.outcome.as_str(),
                                );
                            }
                        }
                    }
                    return Ok(out);
                }
                Err(Attempt::Busy(orders)) if attempt < RETRIES => prelock.extend(orders),
                // Lost a race (40001, a deadlock), or ended by the database
                // for a reason that passes (a cancelled statement, a full
                // lock table): the server rolled it back, so running it
                // again doubles nothing.
                Err(Attempt::Failed(e)) if e.is_retryable() && attempt < RETRIES => {
                    tracing::debug!(attempt, error = %e, "retrying a submission");
                }
                Err(Attempt::Busy(_)) => {
                    return Err(Error::ConcurrentUpdate {
                        source: "orders stayed locked by concurrent submissions".into(),
                    });
                }
                // A connection the database dropped mid-call is UNAVAILABLE.
                Err(Attempt::Failed(e)) => {
                    return Err(crate::storage::explain_failure(&mut conn, e).await);
                }
            }
            attempt += 1;
        }
    }
}

/// One line per stored batch: what an operator needs to see a retry storm
/// or a burst of conflicts without reading payloads.
fn log_outcomes(merchant: &str, outcomes: &[Outcome]) {
    let count = |o: RecordOutcome| outcomes.iter().filter(|x| x.outcome == o).count();
    let conflicts = count(RecordOutcome::Conflict);
    if conflicts > 0 {
        tracing::warn!(%merchant, conflicts, "records arrived again with different content");
    }
    tracing::info!(
        %merchant,
        records = outcomes.len(),
        accepted = count(RecordOutcome::Accepted),
        updated = count(RecordOutcome::Updated),
        duplicates = count(RecordOutcome::Duplicate),
        stale = count(RecordOutcome::Stale),
        conflicts,
        "stored a batch"
    );
}

/// Why an attempt ended without committing.
enum Attempt {
    /// Orders reached late were locked by another writer: run again with
    /// them locked up front.
    Busy(Vec<String>),
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

impl From<diesel::result::Error> for Attempt {
    fn from(e: diesel::result::Error) -> Self {
        Attempt::Failed(e.into())
    }
}

/// Answers a request_id already used: the stored outcomes if it is the same
/// request through the same method, else ALREADY_EXISTS.
fn replay(sub: &Submission<'_>, request_id: &str, claim: Claim) -> Result<Submitted> {
    let Claim::Taken {
        request_hash,
        method,
        reply,
    } = claim
    else {
        unreachable!("only a taken claim is replayed")
    };
    if method != sub.method.as_str() {
        return Err(Error::RequestIdReused {
            request_id: request_id.into(),
            how: format!("on {method}, not {}", sub.method.as_str()),
        });
    }
    if request_hash != sub.request_hash {
        return Err(Error::RequestIdReused {
            request_id: request_id.into(),
            how: "for a different request".into(),
        });
    }
    let reply = reply.ok_or_else(|| Error::corrupt("a stored reply", "missing"))?;
    let outcomes =
        serde_json::from_value(reply).map_err(|e| Error::corrupt("a stored reply", e))?;
    Ok(Submitted::Replayed(outcomes))
}

/// The locks a submission needs once it knows what it accepted: the orders
/// of its new records and versions (and of versions they moved away from),
/// of its conflicts (and any a lost race named), and every
/// id a new record can be linked through (an order's record ids, payment
/// intents, charges; a journal's or balance transaction's pointer ids), so a
/// journal and its charge's order written at once serialise and the second
/// links to the first. Taken after the insert: the unique index already
/// serialises writers of one key, and a batch of duplicates locks nothing.
fn locks_for(
    new_records: &[(i64, &Record)],
    conflicts: &[exceptions::NewException],
    prelock: &BTreeSet<String>,
    left: &BTreeSet<String>,
) -> (BTreeSet<String>, Vec<LockKey>) {
    let mut orders: BTreeSet<String> = prelock.clone();
    orders.extend(left.iter().cloned());
    orders.extend(conflicts.iter().filter_map(|c| c.order_id.clone()));
    let mut refs: BTreeSet<String> = BTreeSet::new();
    for (_, r) in new_records {
        match &r.order_id {
            Some(o) => {
                orders.insert(o.clone());
                refs.extend(r.order_ref_ids().into_iter().map(String::from));
            }
            None => refs.extend(r.pointer_ids().into_iter().map(String::from)),
        }
        // A journal naming a payout serialises with that payout's application.
        refs.extend(super::cash::fee_lock_ids(r));
    }
    let keys = orders
        .iter()
        .cloned()
        .map(LockKey::Order)
        .chain(refs.into_iter().map(LockKey::Ref))
        .collect();
    (orders, keys)
}

async fn submit_in_tx(
    conn: &mut Conn,
    sub: &Submission<'_>,
    prelock: &BTreeSet<String>,
) -> Result<Submitted, Attempt> {
    let merchant = sub.merchant_id;
    if let Some(request_id) = sub.request_id {
        let claim = submissions::claim(
            conn,
            merchant,
            request_id,
            sub.method.as_str(),
            &sub.request_hash,
        )
        .await?;
        if !matches!(claim, Claim::Fresh) {
            return Ok(replay(sub, request_id, claim)?);
        }
    }
    let hashes: Vec<[u8; 32]> = sub.records.iter().map(|r| r.content_hash()).collect();
    // Each record's span, and its ids stored with the record (none when
    // traces are off).
    let mut spans = telemetry::spans::record_spans(merchant, sub.records.iter().copied());
    let trace: Vec<TraceIds> = spans.iter().map(|s| s.ids()).collect();
    let judged = judge(conn, merchant, sub, &hashes, &trace).await?;
    // A balance transaction's new version may name another payout than the
    // one its earlier version was booked under: both are derived again.
    let moved: Vec<&str> = judged
        .outcomes
        .iter()
        .filter(|o| o.outcome == RecordOutcome::Updated)
        .map(|o| sub.records[o.index])
        .filter(|r| matches!(r.body, crate::domain::record::Body::BalanceTransaction(_)))
        .map(|r| r.source_id.as_str())
        .collect();
    for o in &judged.outcomes {
        spans[o.index].set("tally.outcome", o.outcome.as_str());
    }
    let new_records: Vec<(i64, &Record)> = judged
        .stored
        .iter()
        .map(|&(id, i)| (id, sub.records[i]))
        .collect();
    // What the new records and versions add to period reports, known with them.
    let updated: Vec<i64> = judged
        .stored
        .iter()
        .filter(|(_, i)| {
            judged
                .outcomes
                .iter()
                .any(|o| o.index == *i && o.outcome == RecordOutcome::Updated)
        })
        .map(|(id, _)| *id)
        .collect();
    let (locked, keys) = locks_for(&new_records, &judged.conflicts, prelock, &judged.left);
    // The report deltas, then the locks: pipelined, one round trip.
    let shared: &Conn = conn;
    futures::try_join!(
        super::reports::deltas::count_stored(shared, merchant, &new_records, &updated),
        locks::lock_all(shared, merchant, &keys),
    )?;

    if !judged.repeats.is_empty() {
        judged
            .repeats
            .insert(conn, merchant, sub.request_id)
            .await?;
    }
    // A person's resolution stands on the same evidence, here as for an
    // order's faults (`open_found`).
    super::reconcile::open_found(conn, merchant, judged.conflicts).await?;
    let mut touched = judged.touched;
    // Records of no single order: their own figures are checked now, and
    // they join the orders whose ids they name.
    let standalone: Vec<_> = new_records
        .iter()
        .filter(|(_, r)| r.order_id.is_none())
        .flat_map(|(_, r)| record_findings(r))
        .map(|f| from_finding(merchant, None, &f))
        .collect();
    super::reconcile::open_found(conn, merchant, standalone).await?;
    let (linked, relinked) = link(conn, merchant, &new_records).await?;
    touched.extend(linked);

    // Orders reached only through links were not locked with the rest:
    // waiting for them while holding other locks could deadlock, so they
    // are taken only if free, else the attempt runs again with them locked
    // with the rest.
    let late: Vec<String> = touched.difference(&locked).cloned().collect();
    let late_keys: Vec<LockKey> = late.iter().cloned().map(LockKey::Order).collect();
    if !locks::try_lock_all(conn, merchant, &late_keys).await? {
        return Err(Attempt::Busy(late));
    }
    let touched: Vec<String> = touched.into_iter().collect();
    let fresh_keys: Vec<_> = new_records.iter().map(|(_, r)| r.key()).collect();
    let lags = reconcile(conn, merchant, &touched, &fresh_keys).await?;
    // Each record's lag behind its predecessor, on its span (seconds).
    if telemetry::enabled() && !lags.is_empty() {
        let index: std::collections::HashMap<_, _> = sub
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key(), i))
            .collect();
        for (key, lag) in lags {
            if let Some(&i) = index.get(&key) {
                spans[i].set("tally.lag", lag.num_milliseconds() as f64 / 1000.0);
            }
        }
    }
    // Cash application work made ready by these records, committed with them
    // so nothing is missed.
    let arrived = super::cash::Arrivals {
        new_records: &new_records,
        moved_txns: &moved,
        relinked: &relinked,
        orders: &touched,
    };
    super::cash::enqueue_for(conn, merchant, &arrived).await?;

    if let Some(request_id) = sub.request_id {
        let reply = serde_json::to_value(&judged.outcomes).expect("outcomes always serialise");
        submissions::store_reply(conn, merchant, request_id, reply).await?;
    }
    Ok(Submitted::Fresh(judged.outcomes))
}

/// Records the ids that tie records to orders and links records of no single
/// order to the orders whose ids they name. The caller holds the ref locks of
/// every such id. Returns the orders that gained a record.
/// Links the new records; returns the orders that gained a record, and the
/// records stored before these that gained an order (a balance transaction
/// whose charge's order arrived only now).
async fn link(
    conn: &Conn,
    merchant: &str,
    new_records: &[(i64, &Record)],
) -> Result<(Vec<String>, Vec<i64>)> {
    let (mut order_refs, mut record_refs) = (vec![], vec![]);
    for (record_id, r) in new_records {
        match &r.order_id {
            Some(order_id) => order_refs.extend(
                r.order_ref_ids()
                    .into_iter()
                    .map(|id| (id.to_string(), order_id.clone())),
            ),
            None => record_refs.extend(
                r.pointer_ids()
                    .into_iter()
                    .map(|id| (id.to_string(), *record_id)),
            ),
        }
    }
    let mut ids: Vec<String> = order_refs
        .iter()
        .map(|(id, _)| id.clone())
        .chain(record_refs.iter().map(|(id, _)| id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    // The refs, then the links they make: pipelined, one round trip (the
    // link statement runs after the inserts and sees their rows).
    let ((), (), (orders, mut records)) = futures::try_join!(
        links::add_order_refs(conn, merchant, &order_refs),
        links::add_record_refs(conn, merchant, &record_refs),
        links::link(conn, merchant, &ids),
    )?;
    records.retain(|id| !new_records.iter().any(|(new, _)| new == id));
    Ok((orders, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(method: Method) -> Submission<'static> {
        Submission {
            merchant_id: "acme",
            method,
            request_id: Some("r1"),
            request_hash: [7; 32],
            records: vec![],
        }
    }

    fn taken(method: Method, hash: [u8; 32]) -> Claim {
        Claim::Taken {
            request_hash: hash.to_vec(),
            method: method.as_str().to_string(),
            reply: Some(serde_json::json!([])),
        }
    }

    #[test]
    fn a_request_id_replays_only_its_own_request_and_method() {
        let same = replay(
            &sub(Method::SubmitRecords),
            "r1",
            taken(Method::SubmitRecords, [7; 32]),
        );
        assert!(matches!(same, Ok(Submitted::Replayed(o)) if o.is_empty()));
        let other_method = replay(
            &sub(Method::StreamRecords),
            "r1",
            taken(Method::SubmitRecords, [7; 32]),
        );
        assert!(matches!(other_method, Err(Error::RequestIdReused { .. })));
        let other_request = replay(
            &sub(Method::SubmitRecords),
            "r1",
            taken(Method::SubmitRecords, [8; 32]),
        );
        assert!(matches!(other_request, Err(Error::RequestIdReused { .. })));
    }
}
