//! job_signals: "run this job (again)", appended by every writer
//! (`jobs::enqueue`, migration 000026). The worker folds them into ready
//! jobs before each batch it claims (`app::cash::batch`). Every statement
//! filters by merchant_id.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::statement::{Bind, Found, Statement, planned_each_run, statement};
use crate::error::Result;

/// Appends a signal per (kind, subject), inside the caller's transaction: a
/// plain insert into a table with no unique key but its own sequence, which
/// waits on nobody.
pub async fn signal(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    jobs: &[(String, String)],
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    statement(
        "INSERT INTO job_signals (merchant_id, kind, subject_id)
         SELECT $1, k, s FROM unnest($2::text[], $3::text[]) AS x(k, s)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(jobs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(jobs.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the merchant has signals to fold: one cheap probe, so a batch
/// opens no fold transaction when there are none. The first row in key
/// order makes it a probe of the primary key under any statistics (not in
/// an `EXISTS`, which drops the order and the limit): written as a bare
/// `EXISTS`, the connection's generic plan became a sequential scan
/// expecting an early match, and for a merchant with no signals read all of
/// another's 1.1 million (85-150 ms before every batch, at 1,000,000
/// orders stored).
pub async fn any(conn: &mut AsyncPgConnection, merchant: &str) -> Result<bool> {
    let row: Found = statement(ANY)
        .bind::<Text, _>(merchant)
        .get_result(conn)
        .await?;
    Ok(row.found)
}

/// [`any`]'s statement.
pub const ANY: &str = "SELECT count(*) > 0 AS found FROM (
    SELECT 1 FROM job_signals WHERE merchant_id = $1 ORDER BY seq LIMIT 1) AS s";

#[derive(QueryableByName)]
struct Signal {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject_id: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// Folds up to `limit` of the merchant's signals (oldest first, skipping
/// those another fold holds) into ready jobs, in a short transaction of its
/// own; returns how many signals were consumed. A signalled job is made
/// ready as a writer makes it ([`make_ready`]); one still held keeps its
/// signals for the next fold, as its holder may have read its facts before
/// they committed. An insert that meets a row another transaction is
/// inserting (a worker's job enqueueing follow-up work) waits for it at
/// most `lock_timeout` and then gives up for this pass: the fold never
/// holds a worker up, nor deadlocks with one.
pub async fn fold(conn: &mut AsyncPgConnection, merchant: &str, limit: i64) -> Result<usize> {
    conn.transaction(async |conn| {
        statement("SET LOCAL lock_timeout = '200ms'")
            .execute(conn)
            .await?;
        let signals: Vec<Signal> = statement(
            "SELECT seq, kind, subject_id, created_at FROM job_signals
             WHERE merchant_id = $1 ORDER BY seq LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind::<Text, _>(merchant)
        .bind::<BigInt, _>(limit.max(1))
        .load(conn)
        .await?;
        if signals.is_empty() {
            return Ok(0);
        }
        let asked: Vec<Asked> = signals
            .iter()
            .map(|s| (s.kind.clone(), s.subject_id.clone(), s.created_at))
            .collect();
        let held = make_ready(conn, merchant, &asked).await?;
        let consumed: Vec<i64> = signals
            .iter()
            .filter(|s| !held.contains(&(s.kind.clone(), s.subject_id.clone())))
            .map(|s| s.seq)
            .collect();
        statement("DELETE FROM job_signals WHERE merchant_id = $1 AND seq = ANY($2)")
            .bind::<Text, _>(merchant)
            .bind::<Array<BigInt>, _>(&consumed)
            .execute(conn)
            .await?;
        Ok(consumed.len())
    })
    .await
}

/// [`make_ready`]'s bump of existing jobs nobody holds, parked ones
/// included (new facts may be what they lacked): rows found by key and
/// locked `SKIP LOCKED`, then updated by ctid (a TID scan, whatever the
/// statistics say). A row a worker claimed, or completed in a batch still
/// open, is locked, so skipped. Due at its latest signal's time: when it
/// was asked for, as if the writer had made it ready itself.
pub const BUMP_FREE: &str = "UPDATE jobs j SET generation = j.generation + 1, state = 'ready',
        attempts = 0, run_after = f.at, updated_at = now()
    FROM (
      SELECT l.ctid AS tid, x.at FROM (
        SELECT k, s, max(at) AS at FROM unnest($2::text[], $3::text[], $4::timestamptz[])
          AS u(k, s, at) GROUP BY k, s) x
      CROSS JOIN LATERAL (
        SELECT ctid FROM jobs
        WHERE merchant_id = $1 AND kind = x.k AND subject_id = x.s
        FOR UPDATE SKIP LOCKED) l) f
    WHERE j.merchant_id = $1 AND j.ctid = f.tid
    RETURNING j.kind, j.subject_id";

/// [`make_ready`]'s probe of the jobs that exist (visible, held or not).
pub const EXISTING: &str = "SELECT j.kind, j.subject_id
    FROM (SELECT DISTINCT k, s FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS u(k, s, at))
      AS x(kind, subject_id)
    CROSS JOIN LATERAL (
      SELECT kind, subject_id FROM jobs
      WHERE merchant_id = $1 AND kind = x.kind AND subject_id = x.subject_id) j";

/// [`make_ready`]'s insert of jobs no row exists for, due at their latest
/// signal's time. `DO NOTHING`: a row
/// inserted meanwhile by a transaction that committed is left to the next
/// fold; one still being inserted is waited for (the fold's
/// `lock_timeout` bounds that).
pub const INSERT_ABSENT: &str = "INSERT INTO jobs (merchant_id, kind, subject_id, run_after)
    SELECT $1, k, s, max(at) FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS x(k, s, at)
    GROUP BY k, s ORDER BY k, s
    ON CONFLICT (merchant_id, kind, subject_id) DO NOTHING
    RETURNING kind, subject_id";

#[derive(QueryableByName)]
struct KindSubject {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject_id: String,
}

/// A job asked for: (kind, subject) and when.
pub type Asked = (String, String, DateTime<Utc>);

/// Makes these jobs ready without waiting on a worker: bumped where they
/// exist and nobody holds them, inserted where no row exists, each due at
/// the latest time it was asked for. Returns the (kind, subject) pairs it
/// did neither for (held, or inserted elsewhere meanwhile): their signals
/// stay for the next fold.
pub async fn make_ready(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    asked: &[Asked],
) -> Result<BTreeSet<(String, String)>> {
    // Sorted, so concurrent folds insert in the same order.
    let mut left: Vec<Asked> = asked.to_vec();
    left.sort();
    let bumped = pairs_of(conn, planned_each_run(BUMP_FREE), merchant, &left).await?;
    left.retain(|(k, s, _)| !bumped.contains(&(k.clone(), s.clone())));
    let held = pairs_of(conn, statement(EXISTING), merchant, &left).await?;
    left.retain(|(k, s, _)| !held.contains(&(k.clone(), s.clone())));
    let inserted = pairs_of(conn, statement(INSERT_ABSENT), merchant, &left).await?;
    left.retain(|(k, s, _)| !inserted.contains(&(k.clone(), s.clone())));
    Ok(held
        .into_iter()
        .chain(left.into_iter().map(|(k, s, _)| (k, s)))
        .collect())
}

/// The (kind, subject) pairs `query` returns for `asked` (`$2`, `$3`, `$4`).
async fn pairs_of(
    conn: &mut AsyncPgConnection,
    query: Statement,
    merchant: &str,
    asked: &[Asked],
) -> Result<BTreeSet<(String, String)>> {
    if asked.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<KindSubject> = query
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(asked.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(asked.iter().map(|(_, s, _)| s.as_str()).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(asked.iter().map(|(_, _, t)| *t).collect::<Vec<_>>())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.subject_id)).collect())
}
