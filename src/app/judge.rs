//! Settling a submission's records against the log: each record is a new
//! key (ACCEPTED), a later version of its key (UPDATED), the same content
//! (DUPLICATE), an earlier version (STALE), or other content for the same
//! version (CONFLICT).
//!
//! Concurrency: a key has one current row (a partial unique index). A new
//! key is inserted with ON CONFLICT DO NOTHING; a later version first turns
//! off the current row's flag with a conditional UPDATE, which waits for a
//! concurrent writer of the same row and then skips it if that writer
//! superseded it first. A record that lost either race is judged again
//! against the version the winner committed (a fresh statement sees it), so
//! however many writers race on one key, exactly one version is current
//! and it is the latest by `source_update_time`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ingest::{Outcome, RecordOutcome, Submission};
use super::reconcile::conflict;
use crate::domain::canonical::hash_record_payload;
use crate::domain::record::{Record, RecordKey};
use crate::domain::versions::{self, Verdict};
use crate::error::{Error, Result};
use crate::storage::record_log::{self, AcceptedRow, LogColumns, TraceIds};
use crate::storage::{Conn, exceptions, links, record_versions};

/// How many times one record is judged again after losing a race for its
/// key before the attempt gives up (and is retried whole).
const MAX_RACES: usize = 32;

/// The verdict on each record of a submission.
pub(super) struct Judged {
    pub outcomes: Vec<Outcome>,
    /// Duplicates, stale versions and conflicts, logged for the audit trail.
    pub repeats: LogColumns,
    pub conflicts: Vec<exceptions::NewException>,
    /// Orders whose records changed: of new records and new versions (and
    /// of the versions they superseded), and of conflicts.
    pub touched: BTreeSet<String>,
    /// Orders that lost a record to a new version naming another order.
    pub left: BTreeSet<String>,
    /// Records stored as a key's current version, by record id.
    pub stored: Vec<(i64, usize)>,
}

/// What a submission's settling knows so far.
struct State {
    /// The current version of each key, as last seen.
    current: HashMap<RecordKey, AcceptedRow>,
    /// Stored versions' content hashes recomputed the current way.
    canonical: HashMap<i64, [u8; 32]>,
    /// Each record's outcome, once settled.
    by_index: Vec<Option<Outcome>>,
    settled: Judged,
}

pub(super) async fn judge(
    conn: &mut Conn,
    merchant: &str,
    sub: &Submission<'_>,
    hashes: &[[u8; 32]],
    trace: &[TraceIds],
) -> Result<Judged> {
    let n = sub.records.len();
    // The i-th arrival of each key in the batch is settled in round i, as
    // if the batch were sent one record at a time. Almost every batch is
    // one round.
    let mut rounds: Vec<Vec<usize>> = vec![];
    let mut seen: HashMap<RecordKey, usize> = HashMap::new();
    for (i, r) in sub.records.iter().enumerate() {
        let k = seen.entry(r.key()).or_insert(0);
        if rounds.len() <= *k {
            rounds.push(vec![]);
        }
        rounds[*k].push(i);
        *k += 1;
    }
    // Look first: a retried batch is all duplicates, and a lookup is far
    // cheaper than a speculative insert per row.
    let keys: BTreeSet<RecordKey> = seen.into_keys().collect();
    let mut st = State {
        current: fetch(conn, merchant, keys.iter()).await?,
        canonical: HashMap::new(),
        by_index: vec![None; n],
        settled: Judged {
            outcomes: vec![],
            repeats: LogColumns::default(),
            conflicts: vec![],
            touched: BTreeSet::new(),
            left: BTreeSet::new(),
            stored: vec![],
        },
    };
    for round in rounds {
        let mut pending = round;
        for _ in 0..MAX_RACES {
            if pending.is_empty() {
                break;
            }
            let lost =
                settle_round(conn, merchant, sub, (hashes, trace), &pending, &mut st).await?;
            if !lost.is_empty() {
                let keys: BTreeSet<RecordKey> =
                    lost.iter().map(|&i| sub.records[i].key()).collect();
                let fresh = fetch(conn, merchant, keys.iter()).await?;
                for k in keys {
                    match fresh.get(&k) {
                        Some(row) => st.current.insert(k, clone_row(row)),
                        None => st.current.remove(&k),
                    };
                }
            }
            pending = lost;
        }
        if !pending.is_empty() {
            return Err(Error::ConcurrentUpdate {
                source: "a record's key kept changing under concurrent submissions".into(),
            });
        }
    }
    let mut s = st.settled;
    s.outcomes = st
        .by_index
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or_else(|| Error::Internal(format!("record {i} was not settled"))))
        .collect::<Result<_>>()?;
    attach_conflicts(conn, merchant, &mut s).await?;
    // One exception per distinct conflicting content.
    s.conflicts.sort_by_key(|c| c.id);
    s.conflicts.dedup_by_key(|c| c.id);
    Ok(s)
}

async fn fetch<'k>(
    conn: &mut Conn,
    merchant: &str,
    keys: impl Iterator<Item = &'k RecordKey>,
) -> Result<HashMap<RecordKey, AcceptedRow>> {
    let keys: Vec<&RecordKey> = keys.collect();
    let mut out = HashMap::new();
    for row in record_log::fetch_accepted(conn, merchant, &keys).await? {
        if let Some(k) = row.key() {
            out.insert(k, row);
        }
    }
    Ok(out)
}

fn clone_row(r: &AcceptedRow) -> AcceptedRow {
    AcceptedRow {
        source_system: r.source_system.clone(),
        kind: r.kind.clone(),
        source_id: r.source_id.clone(),
        record_id: r.record_id,
        content_hash: r.content_hash.clone(),
        order_id: r.order_id.clone(),
        receive_time: r.receive_time,
        event_time: r.event_time,
        currency_code: r.currency_code.clone(),
        amount: r.amount,
        source_update_time: r.source_update_time,
    }
}

/// Whether a stored version holds the same content as a record with this
/// hash. Rows written before the canonical hash hold the SHA-256 of their
/// serde JSON: where the stored hash differs, the stored payload is hashed
/// the current way before the content is called different.
async fn same_content(
    conn: &mut Conn,
    merchant: &str,
    rows: &[(&AcceptedRow, [u8; 32])],
    canonical: &mut HashMap<i64, [u8; 32]>,
) -> Result<Vec<bool>> {
    let unknown: Vec<i64> = rows
        .iter()
        .filter(|(row, h)| row.content_hash != h && !canonical.contains_key(&row.record_id))
        .map(|(row, _)| row.record_id)
        .collect();
    for (id, payload) in record_versions::payloads(conn, merchant, &unknown).await? {
        canonical.insert(id, hash_record_payload(&payload));
    }
    Ok(rows
        .iter()
        .map(|(row, h)| row.content_hash == h || canonical.get(&row.record_id) == Some(h))
        .collect())
}

/// Settles `pending` (one arrival per key) against the current versions;
/// returns the records that lost a race for their key and must be judged
/// again.
async fn settle_round(
    conn: &mut Conn,
    merchant: &str,
    sub: &Submission<'_>,
    (hashes, trace): (&[[u8; 32]], &[TraceIds]),
    pending: &[usize],
    st: &mut State,
) -> Result<Vec<usize>> {
    let State {
        current,
        canonical,
        by_index,
        settled: s,
    } = st;
    let existing: Vec<usize> = pending
        .iter()
        .copied()
        .filter(|&i| current.contains_key(&sub.records[i].key()))
        .collect();
    let compared: Vec<(&AcceptedRow, [u8; 32])> = existing
        .iter()
        .map(|&i| (&current[&sub.records[i].key()], hashes[i]))
        .collect();
    let same = same_content(conn, merchant, &compared, canonical).await?;

    let mut inserts = LogColumns::default();
    let mut inserted: Vec<(usize, RecordOutcome)> = vec![];
    let mut updates: Vec<(usize, i64)> = vec![];
    for (&i, same) in existing.iter().zip(same) {
        let r = sub.records[i];
        let row = &current[&r.key()];
        match versions::judge(same, r.source_update_time, row.source_update_time) {
            Verdict::Update => updates.push((i, row.record_id)),
            verdict => {
                let arrival = (r, &hashes[i], trace[i].clone());
                by_index[i] = Some(repeat(merchant, i, arrival, row, verdict, s))
            }
        }
    }
    for &i in pending {
        if !current.contains_key(&sub.records[i].key()) {
            let outcome = RecordOutcome::Accepted;
            inserts.push(
                sub.records[i],
                &hashes[i],
                outcome.as_str(),
                None,
                trace[i].clone(),
            );
            inserted.push((i, outcome));
        }
    }
    let mut lost = vec![];
    let olds: Vec<i64> = updates.iter().map(|(_, id)| *id).collect();
    let flipped: BTreeSet<i64> = record_versions::supersede(conn, merchant, &olds)
        .await?
        .into_iter()
        .collect();
    for (i, old) in updates {
        if flipped.contains(&old) {
            let outcome = RecordOutcome::Updated;
            inserts.push(
                sub.records[i],
                &hashes[i],
                outcome.as_str(),
                Some(old),
                trace[i].clone(),
            );
            inserted.push((i, outcome));
        } else {
            lost.push(i);
        }
    }
    if inserts.is_empty() {
        return Ok(lost);
    }
    let mut written: HashMap<RecordKey, AcceptedRow> = HashMap::new();
    for row in inserts.insert(conn, merchant, sub.request_id).await? {
        if let Some(k) = row.key() {
            written.insert(k, row);
        }
    }
    for (i, outcome) in inserted {
        let r = sub.records[i];
        let Some(row) = written.remove(&r.key()) else {
            if outcome == RecordOutcome::Updated {
                // The superseded row is ours (we hold its lock), so no one
                // can have taken the key: never leave it without a version.
                return Err(Error::Internal(format!(
                    "a new version of {:?} was not stored",
                    r.key()
                )));
            }
            // A concurrent submission stored this key first.
            lost.push(i);
            continue;
        };
        if outcome == RecordOutcome::Updated {
            let previous = &current[&r.key()];
            if previous.order_id != row.order_id {
                s.left.extend(previous.order_id.clone());
            }
        }
        s.touched.extend(r.order_id.clone());
        s.stored.push((row.record_id, i));
        by_index[i] = Some(outcome_of(i, r, outcome, &row, None));
        current.insert(r.key(), row);
    }
    s.touched.extend(s.left.iter().cloned());
    Ok(lost)
}

/// A record that changes nothing: a duplicate, a stale version, or a
/// conflict (which raises an exception). Logged; returns its outcome.
fn repeat(
    merchant: &str,
    i: usize,
    (r, hash, trace): (&Record, &[u8; 32], TraceIds),
    row: &AcceptedRow,
    verdict: Verdict,
    s: &mut Judged,
) -> Outcome {
    let outcome = match verdict {
        Verdict::Duplicate => RecordOutcome::Duplicate,
        Verdict::Stale => RecordOutcome::Stale,
        Verdict::Conflict | Verdict::Update => RecordOutcome::Conflict,
    };
    s.repeats
        .push(r, hash, outcome.as_str(), Some(row.record_id), trace);
    let mut exception_id = None;
    if outcome == RecordOutcome::Conflict {
        let e = conflict(merchant, row, r, hash);
        exception_id = Some(e.id);
        s.touched.extend(e.order_id.clone());
        s.conflicts.push(e);
    }
    outcome_of(i, r, outcome, row, exception_id)
}

fn outcome_of(
    i: usize,
    r: &Record,
    outcome: RecordOutcome,
    row: &AcceptedRow,
    exception_id: Option<uuid::Uuid>,
) -> Outcome {
    Outcome {
        index: i,
        source_id: r.source_id.clone(),
        outcome,
        order_id: row.order_id.clone(),
        receive_time: row.receive_time,
        exception_id,
    }
}

/// A conflict on a record of no single order (a journal, a balance
/// transaction) concerns the orders it is linked to: the exception belongs
/// to the first of them, and every one of them is reconciled (and reads
/// EXCEPTION while the conflict is open), instead of an exception of no
/// order that leaves them MATCHED.
async fn attach_conflicts(conn: &mut Conn, merchant: &str, s: &mut Judged) -> Result<()> {
    let orphans: Vec<i64> = s
        .conflicts
        .iter()
        .filter(|c| c.order_id.is_none())
        .filter_map(|c| c.details.get("original_record_id")?.as_i64())
        .collect();
    if orphans.is_empty() {
        return Ok(());
    }
    let linked: BTreeMap<i64, Vec<String>> =
        links::orders_of_records(conn, merchant, &orphans).await?;
    for c in s.conflicts.iter_mut().filter(|c| c.order_id.is_none()) {
        let original = c.details.get("original_record_id").and_then(|v| v.as_i64());
        if let Some(orders) = original.and_then(|id| linked.get(&id)) {
            c.order_id = orders.first().cloned();
            s.touched.extend(orders.iter().cloned());
        }
    }
    Ok(())
}
