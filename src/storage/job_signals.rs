//! job_signals: "run this job (again)", appended by every writer
//! (`jobs::enqueue`, migration 000026). The worker folds them into ready
//! jobs before each batch it claims (`app::cash::batch`). Every statement
//! filters by merchant_id.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::jobs::{Asked, make_ready};
use super::statement::{Bind, Found, statement};
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
/// opens no fold transaction when there are none.
pub async fn any(conn: &mut AsyncPgConnection, merchant: &str) -> Result<bool> {
    let row: Found =
        statement("SELECT EXISTS (SELECT 1 FROM job_signals WHERE merchant_id = $1) AS found")
            .bind::<Text, _>(merchant)
            .get_result(conn)
            .await?;
    Ok(row.found)
}

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
