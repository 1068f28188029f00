//! jobs: the generic work queue. A row exists while there is work to do for
//! (merchant, kind, subject). Every statement filters by merchant_id, so a
//! claim stays on one shard when the table is distributed by merchant.
//!
//! A worker claims a row with `FOR UPDATE SKIP LOCKED` and holds the row lock
//! for the whole transaction that does the work; finishing deletes the row in
//! that transaction. A worker that dies mid-job (even by SIGKILL) loses its
//! connection, PostgreSQL rolls its transaction back and frees the row for
//! the next worker: nothing is lost, nothing is done twice.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::statement::{Bind, Found, planned_each_run, statement};
use crate::error::Result;

/// A claimed job.
#[derive(Debug, Clone, QueryableByName)]
pub struct Job {
    #[diesel(sql_type = Text)]
    pub merchant_id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub subject_id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// It failed before (perhaps parked, then woken by a new fact): its last
    /// error is kept until it completes.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub failed_before: bool,
}

/// A job as listed for people (parked jobs, backlog).
#[derive(Debug, Clone, QueryableByName)]
pub struct JobRow {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub subject_id: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub run_after: DateTime<Utc>,
}

/// Asks for (kind, subject) to run, inside the caller's transaction: the
/// records that make the work ready commit together with the request. The
/// worker folds it into a ready job before its next claim
/// ([`super::job_signals::fold`]); a job that exists already counts one
/// more arrival (`generation`) and, if parked, is given a fresh start: new
/// facts may be what it was missing.
///
/// It is a plain append to `job_signals`, with no unique key: a writer
/// never waits on a worker. Any write to `jobs` itself can: an upsert waits
/// on the row lock of a claimed job, and even `INSERT ... DO NOTHING` waits
/// on a worker that has completed (deleted) that job earlier in its
/// still-open batch. Either held ingest up for the length of a batch.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kind: &str,
    subjects: &[String],
) -> Result<()> {
    let mut jobs: Vec<(String, String)> = subjects
        .iter()
        .map(|s| (kind.to_string(), s.clone()))
        .collect();
    jobs.sort();
    jobs.dedup();
    super::job_signals::signal(conn, merchant, &jobs).await
}

#[derive(QueryableByName)]
struct MerchantRow {
    #[diesel(sql_type = Text)]
    merchant_id: String,
}

/// Merchants with work due or job signals to fold: only to decide where
/// to claim next (the claim itself filters by merchant).
pub async fn merchants_with_work(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<String>> {
    let sql = if super::citus::installed(conn).await? {
        WITH_WORK_CITUS
    } else {
        WITH_WORK
    };
    let rows: Vec<MerchantRow> = statement(sql).bind::<BigInt, _>(limit).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.merchant_id).collect())
}

/// [`merchants_with_work`] on plain PostgreSQL. The merchants with signals
/// are found by a loose scan of the primary key, one probe a merchant: a
/// `DISTINCT` read every signal, 1.1 million before each worker pass when a
/// merchant's backlog had built up while no worker ran.
pub const WITH_WORK: &str = "WITH RECURSIVE s(m) AS (
        SELECT min(merchant_id) FROM job_signals
      UNION ALL
        SELECT (SELECT min(merchant_id) FROM job_signals WHERE merchant_id > s.m)
        FROM s WHERE s.m IS NOT NULL)
    (SELECT DISTINCT merchant_id FROM jobs WHERE state = 'ready' AND run_after <= now())
    UNION (SELECT m FROM s WHERE m IS NOT NULL) LIMIT $1";

/// [`merchants_with_work`] on Citus, which runs a recursive CTE only within
/// one merchant: a plain read of every shard, each answering for its own.
const WITH_WORK_CITUS: &str =
    "(SELECT DISTINCT merchant_id FROM jobs WHERE state = 'ready' AND run_after <= now())
     UNION (SELECT DISTINCT merchant_id FROM job_signals) LIMIT $1";

/// Claims the merchant's oldest due job nobody holds, if any. Must run inside
/// the transaction that does the work: the row lock is the claim.
pub async fn claim(conn: &mut AsyncPgConnection, merchant: &str) -> Result<Option<Job>> {
    Ok(claim_batch(conn, merchant, 1).await?.pop())
}

/// Claims up to `limit` of the merchant's due jobs nobody holds, oldest
/// first; among jobs made ready at the same instant, kinds in descending
/// order (a payout before the orders it pays, so it can take their jobs
/// over). Must run inside the transaction that does the work.
pub async fn claim_batch(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    limit: i64,
) -> Result<Vec<Job>> {
    Ok(statement(
        "SELECT merchant_id, kind, subject_id, attempts, last_error IS NOT NULL AS failed_before
         FROM jobs
         WHERE merchant_id = $1 AND state = 'ready' AND run_after <= now()
         ORDER BY run_after, kind DESC, subject_id
         LIMIT $2
         FOR UPDATE SKIP LOCKED",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(limit.max(1))
    .load(conn)
    .await?)
}

/// A job kind as it may be written into SQL: what the table's CHECK allows
/// (`^[a-z_]{1,40}$`), so it never needs quoting.
fn literal_kind(kind: &str) -> Result<&str> {
    let plain = !kind.is_empty()
        && kind.len() <= 40
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        Ok(kind)
    } else {
        Err(crate::error::Error::Internal(format!(
            "job kind {kind:?} is not [a-z_]{{1,40}}"
        )))
    }
}

/// Claims, for each (kind, limit, after) in turn, up to `limit` due jobs of
/// that kind nobody holds, oldest first, in one statement (one round trip).
/// A job waits while a ready job of kind `after` made ready no later than it
/// is pending (claimed or not): that one may take it over (a payout does its
/// orders' jobs), and claiming both at once would only make them contend.
/// Jobs of `after` made ready later never hold it back, so none starves.
/// Each kind's wait is judged on the queue as the statement found it:
/// claiming does not change a job's state.
pub async fn claim_kinds(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kinds: &[(&str, i64, Option<&str>)],
) -> Result<Vec<Job>> {
    if kinds.is_empty() {
        return Ok(vec![]);
    }
    let sql = claim_sql(kinds)?;
    Ok(statement(sql).bind::<Text, _>(merchant).load(conn).await?)
}

/// The text of [`claim_kinds`]; the merchant is `$1`.
pub fn claim_sql(kinds: &[(&str, i64, Option<&str>)]) -> Result<String> {
    // One arm per kind, the kinds and limits written into the text: they are
    // the caller's constants, so the text is the same at every call, and with
    // the merchant its only parameter the planner keeps one generic plan
    // (with them as array parameters it planned the five arms anew at every
    // bind, twice the cost of running them).
    let mut arms = Vec::with_capacity(kinds.len());
    for (i, (kind, limit, after)) in kinds.iter().enumerate() {
        let kind = literal_kind(kind)?;
        let before_after = match after {
            // Before the oldest pending job of `after`: one bound, so the
            // scan stops there instead of probing every waiting job.
            Some(after) => format!(
                "AND run_after < coalesce(
                   (SELECT min(l.run_after) FROM jobs l
                    WHERE l.merchant_id = $1 AND l.kind = '{}' AND l.state = 'ready'),
                   'infinity')",
                literal_kind(after)?
            ),
            None => String::new(),
        };
        arms.push(format!(
            "SELECT * FROM (
               SELECT merchant_id, kind, subject_id, attempts,
                 last_error IS NOT NULL AS failed_before, {i} AS n, run_after FROM jobs
               WHERE merchant_id = $1 AND kind = '{kind}' AND state = 'ready'
                 AND run_after <= now() {before_after}
               ORDER BY run_after, subject_id
               LIMIT {}
               FOR UPDATE SKIP LOCKED) k{i}",
            (*limit).max(1)
        ));
    }
    Ok(format!(
        "SELECT merchant_id, kind, subject_id, attempts, failed_before FROM ({}) j
         ORDER BY n, run_after, subject_id",
        arms.join(" UNION ALL ")
    ))
}

/// [`absorb`]'s statement. The free rows are locked first (an init plan, once): one primary-key
/// probe per subject, whatever the table's statistics say (`state <>
/// 'parked'`, the same as `= 'ready'` under the CHECK, keeps the
/// planner off `jobs_ready`, which it picked on stale statistics and
/// then filtered the merchant's whole backlog, per subject). The
/// locked rows are then deleted by their ctid: stable, as they are
/// locked by this statement. Without statistics that delete is a TID
/// scan only once the queue is large (from about 10,000 jobs; below,
/// a scan of the merchant's jobs, at most a few ms), so it is planned
/// at each run: a plan kept from when the queue was small would scan
/// it whole per payout in a backlog of any size. The merchant filter
/// stays (on Citus it routes the delete to the merchant's shard; a
/// ctid means nothing on another).
pub const ABSORB: &str = "DELETE FROM jobs
    WHERE merchant_id = $1 AND ctid = ANY(ARRAY(
      SELECT f.ctid FROM (SELECT DISTINCT * FROM unnest($2::text[], $3::text[]))
        AS x(kind, subject_id)
      CROSS JOIN LATERAL (
        SELECT ctid FROM jobs
        WHERE merchant_id = $1 AND kind = x.kind AND subject_id = x.subject_id
          AND state <> 'parked'
        FOR UPDATE SKIP LOCKED) f))
    RETURNING kind, subject_id";

/// Takes over and finishes the ready jobs of `kind` for these subjects that
/// no other transaction holds (claimed or not, due or backing off), because
/// the caller's work, in the same transaction, does theirs. Rows another
/// worker holds are skipped, never waited for. Returns the subjects taken.
pub async fn absorb(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kind: &str,
    subjects: &[String],
) -> Result<Vec<String>> {
    let jobs: Vec<(&str, &str)> = subjects.iter().map(|s| (kind, s.as_str())).collect();
    Ok(absorb_each(conn, merchant, &jobs)
        .await?
        .into_iter()
        .map(|(_, subject)| subject)
        .collect())
}

/// [`absorb`] of jobs of several kinds at once: (kind, subject) pairs;
/// returns those taken.
pub async fn absorb_each(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    jobs: &[(&str, &str)],
) -> Result<Vec<(String, String)>> {
    if jobs.is_empty() {
        return Ok(vec![]);
    }
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Text)]
        subject_id: String,
    }
    let rows: Vec<Taken> = planned_each_run(ABSORB)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(jobs.iter().map(|(k, _)| *k).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(jobs.iter().map(|(_, s)| *s).collect::<Vec<_>>())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.subject_id)).collect())
}

/// Several claimed jobs of one kind are done: gone, in their work's
/// transaction. The caller holds their rows (its claim), so [`absorb`]
/// takes every one of them: found by key and deleted by ctid. (`subject_id
/// = ANY($3)` was planned, without statistics, as a read of the merchant's
/// whole queue of that kind filtered by subject: 18 ms for a batch of 32
/// in a queue of 100,000.)
pub async fn complete_all(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kind: &str,
    subjects: &[String],
) -> Result<()> {
    let done = absorb(conn, merchant, kind, subjects).await?;
    debug_assert_eq!(
        done.len(),
        subjects
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "a claimed job of {merchant} was not ours to complete"
    );
    Ok(())
}

/// The job is done: gone, in the same transaction as its work.
pub async fn complete(conn: &mut AsyncPgConnection, job: &Job) -> Result<()> {
    statement("DELETE FROM jobs WHERE merchant_id = $1 AND kind = $2 AND subject_id = $3")
        .bind::<Text, _>(&job.merchant_id)
        .bind::<Text, _>(&job.kind)
        .bind::<Text, _>(&job.subject_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The work failed (and was rolled back): count the attempt and try again
/// after `delay`, or park the job once it has failed `max_attempts` times.
/// Returns whether it is now parked.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    job: &Job,
    error: &str,
    delay_ms: i64,
    max_attempts: i32,
) -> Result<bool> {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let rows: Vec<State> = statement(
        "UPDATE jobs SET attempts = attempts + 1, last_error = $4, updated_at = now(),
            run_after = now() + make_interval(secs => $5::bigint / 1000.0),
            state = CASE WHEN attempts + 1 >= $6 THEN 'parked' ELSE 'ready' END
         WHERE merchant_id = $1 AND kind = $2 AND subject_id = $3
         RETURNING state",
    )
    .bind::<Text, _>(&job.merchant_id)
    .bind::<Text, _>(&job.kind)
    .bind::<Text, _>(&job.subject_id)
    .bind::<Text, _>(error)
    .bind::<BigInt, _>(delay_ms)
    .bind::<Integer, _>(max_attempts)
    .load(conn)
    .await?;
    Ok(rows.iter().any(|r| r.state == "parked"))
}

/// [`wake_parked_payouts_of`]'s statement.
pub const WAKE_PARKED: &str = "
    WITH parked AS (
      SELECT subject_id FROM jobs
      WHERE merchant_id = $1 AND kind = $2 AND state = 'parked' OFFSET 0),
    named AS (
      SELECT DISTINCT r.payload -> 'body' ->> 'payout_id' AS payout_id
      FROM (SELECT DISTINCT unnest($3::text[])) AS o(order_id)
      CROSS JOIN LATERAL (
        SELECT l.record_id FROM record_links l
        WHERE l.merchant_id = $1 AND l.order_id = o.order_id OFFSET 0) l
      CROSS JOIN LATERAL (
        SELECT r.payload, r.kind, r.is_current FROM record_log r
        WHERE r.merchant_id = $1 AND r.record_id = l.record_id OFFSET 0) r
      WHERE EXISTS (SELECT 1 FROM parked)
        AND r.kind = 'balance_transaction' AND r.is_current)
    UPDATE jobs SET state = 'ready', attempts = 0, run_after = now(),
        generation = generation + 1, updated_at = now()
    WHERE merchant_id = $1 AND kind = $2 AND state = 'parked'
      AND subject_id = ANY(ARRAY(
        SELECT payout_id FROM named WHERE payout_id IN (SELECT subject_id FROM parked)))";

/// Parked jobs of `kind` whose subject is among the payouts that balance
/// transactions linked to these orders name: woken (ready now, attempts
/// reset), as a new fact of one of their orders may be what they lacked.
/// Probes the parked jobs first (few, by `jobs_parked`): nothing else is
/// read when the merchant has none.
pub async fn wake_parked_payouts_of(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kind: &str,
    orders: &[String],
) -> Result<usize> {
    if orders.is_empty() {
        return Ok(0);
    }
    Ok(statement(WAKE_PARKED)
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(kind)
        .bind::<Array<Text>, _>(orders)
        .execute(conn)
        .await?)
}

/// The job could not run now for a reason that is not its fault (its orders
/// are busy): try again after `delay_ms`, without counting an attempt.
pub async fn postpone(conn: &mut AsyncPgConnection, job: &Job, delay_ms: i64) -> Result<()> {
    statement(
        "UPDATE jobs SET run_after = now() + make_interval(secs => $4::bigint / 1000.0)
         WHERE merchant_id = $1 AND kind = $2 AND subject_id = $3",
    )
    .bind::<Text, _>(&job.merchant_id)
    .bind::<Text, _>(&job.kind)
    .bind::<Text, _>(&job.subject_id)
    .bind::<BigInt, _>(delay_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the merchant has a job of `kind` due now (run or waiting to run).
pub async fn any_ready(conn: &mut AsyncPgConnection, merchant: &str, kind: &str) -> Result<bool> {
    let row: Found = statement(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE merchant_id = $1 AND kind = $2
             AND state = 'ready' AND run_after <= now()) AS found",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(kind)
    .get_result(conn)
    .await?;
    Ok(row.found)
}

/// One merchant's jobs of a kind, for people and tests.
pub async fn list(conn: &mut AsyncPgConnection, merchant: &str, kind: &str) -> Result<Vec<JobRow>> {
    Ok(statement(
        "SELECT kind, subject_id, state, attempts, last_error, run_after FROM jobs
         WHERE merchant_id = $1 AND kind = $2 ORDER BY subject_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(kind)
    .load(conn)
    .await?)
}

/// Makes (kind, subject) due at `run_after` (a deadline to look again at), inside the
/// caller's transaction. An existing job keeps the earlier of the two times, so a
/// re-check never pushes back work that is already due.
pub async fn schedule(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kind: &str,
    subject: &str,
    run_after: DateTime<Utc>,
) -> Result<()> {
    statement(
        "INSERT INTO jobs (merchant_id, kind, subject_id, run_after) VALUES ($1, $2, $3, $4)
         ON CONFLICT (merchant_id, kind, subject_id) DO UPDATE
            SET state = 'ready', attempts = 0, updated_at = EXCLUDED.updated_at,
                run_after = least(jobs.run_after, EXCLUDED.run_after)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(subject)
    .bind::<Timestamptz, _>(run_after)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes (kind, subject) due at `run_after` unless such a job exists
/// already (whatever its time or state), inside the caller's transaction.
/// Never waits on, nor locks, a job row another transaction holds: a
/// committed row is left alone (`DO NOTHING` takes no row lock), so
/// scheduling from inside other jobs cannot deadlock with the worker that
/// has claimed that row. (Only a row another transaction is inserting at
/// that moment is waited for, until it commits or rolls back.) The job,
/// run early, looks at its own deadline again.
pub async fn schedule_if_absent(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    kind: &str,
    subjects: &[(&str, DateTime<Utc>)],
) -> Result<()> {
    if subjects.is_empty() {
        return Ok(());
    }
    // Sorted, so concurrent schedulers insert in the same order.
    let mut subjects = subjects.to_vec();
    subjects.sort();
    subjects.dedup_by(|a, b| a.0 == b.0);
    statement(
        "INSERT INTO jobs (merchant_id, kind, subject_id, run_after)
         SELECT $1, $2, s, t FROM unnest($3::text[], $4::timestamptz[]) AS x(s, t) ORDER BY s
         ON CONFLICT (merchant_id, kind, subject_id) DO NOTHING",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(kind)
    .bind::<Array<Text>, _>(subjects.iter().map(|(s, _)| *s).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(subjects.iter().map(|(_, t)| *t).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The merchant's jobs that are work now: due (claimed by a worker or
/// not) or retrying after a failure. A deadline check scheduled for later
/// (never attempted) is not counted, nor a parked job (an exception says
/// so). Signals not yet folded count too: each is a run to come. While
/// this is not zero, what the worker books may still change.
pub async fn pending(conn: &mut AsyncPgConnection, merchant: &str) -> Result<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = statement(
        "SELECT (SELECT count(*) FROM jobs WHERE merchant_id = $1 AND state = 'ready'
                   AND (run_after <= now() OR attempts > 0))
              + (SELECT count(*) FROM job_signals WHERE merchant_id = $1) AS n",
    )
    .bind::<Text, _>(merchant)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

#[cfg(test)]
mod tests {
    use super::literal_kind;

    #[test]
    fn only_plain_kinds_are_written_into_a_claim() {
        assert_eq!(literal_kind("apply_payout").unwrap(), "apply_payout");
        for bad in [
            "",
            "a'b",
            "Apply",
            "apply-order",
            "x; DROP TABLE jobs",
            &"a".repeat(41),
        ] {
            assert!(literal_kind(bad).is_err(), "{bad:?}");
        }
    }
}
