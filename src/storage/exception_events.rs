//! Working an exception: one row read for update, a change written with
//! who and why, and the history the database appends for every change
//! (migration 000005's triggers), read back for GetException and
//! WatchExceptions.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::exceptions::{EXCEPTION_COLUMNS, ExRow, ExceptionRow, ExceptionState};
use super::statement::{Bind, statement};
use crate::error::Result;

/// One exception, locked for update when `lock`.
pub async fn get(
    conn: &mut Conn,
    merchant: &str,
    id: Uuid,
    lock: bool,
) -> Result<Option<ExceptionRow>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let rows: Vec<ExRow> = statement(format!(
        "SELECT {EXCEPTION_COLUMNS} FROM exceptions WHERE merchant_id = $1 AND exception_id = $2{suffix}"
    ))
    .bind::<Text, _>(merchant)
    .bind::<SqlUuid, _>(id)
    .load(conn)
    .await?;
    rows.into_iter().next().map(ExRow::into_row).transpose()
}

/// Names the person acting, and why, for the rest of the transaction: the
/// history trigger records them (anything else is "rules").
pub async fn act_as(conn: &mut Conn, actor: &str, note: &str) -> Result<()> {
    statement("SELECT 1 FROM (SELECT set_config('tally.actor', $1, true), set_config('tally.note', $2, true)) s")
        .bind::<Text, _>(actor)
        .bind::<Text, _>(note)
        .execute(conn)
        .await?;
    Ok(())
}

/// A person's change: a new state and/or owner (None keeps it), and the
/// resolution note when resolving.
pub async fn change(
    conn: &mut Conn,
    merchant: &str,
    id: Uuid,
    state: Option<ExceptionState>,
    owner: Option<&str>,
    resolution_note: Option<&str>,
) -> Result<()> {
    statement(
        "UPDATE exceptions SET
            state = coalesce($3, state),
            owner = coalesce($4, owner),
            resolution_note = coalesce($5, resolution_note),
            resolve_time = CASE WHEN coalesce($3, state) = 'resolved'
                                THEN coalesce(resolve_time, now()) ELSE NULL END,
            update_time = now()
         WHERE merchant_id = $1 AND exception_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Text>, _>(state.map(|s| s.as_str()))
    .bind::<Nullable<Text>, _>(owner)
    .bind::<Nullable<Text>, _>(resolution_note)
    .execute(conn)
    .await?;
    Ok(())
}

/// One change, as the history holds it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct EventRow {
    #[diesel(sql_type = BigInt)]
    pub sequence: i64,
    #[diesel(sql_type = SqlUuid)]
    pub exception_id: Uuid,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Text)]
    pub actor: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub owner: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub note: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
}

const EVENT_COLUMNS: &str = "sequence, exception_id, action, actor, state, owner, note, event_time";

/// Every change to one exception, oldest first.
pub async fn history(conn: &mut Conn, merchant: &str, id: Uuid) -> Result<Vec<EventRow>> {
    Ok(statement(format!(
        "SELECT {EVENT_COLUMNS} FROM exception_events
         WHERE merchant_id = $1 AND exception_id = $2 ORDER BY sequence"
    ))
    .bind::<Text, _>(merchant)
    .bind::<SqlUuid, _>(id)
    .load(conn)
    .await?)
}

/// The merchant's next events after the one numbered `after` (0: from the
/// start), at most `limit`.
///
/// Sequences are taken when a row is written, not when its transaction
/// commits, so a later sequence can become visible before an earlier one.
/// Events are therefore read only from transactions that have finished
/// (txid below the snapshot's xmin: any transaction still running, or yet
/// to start, has a larger txid), in (txid, sequence) order; a cursor is
/// the last event's sequence and resumes after that event's position.
/// Nothing is missed, nothing is repeated.
pub async fn after(
    conn: &mut Conn,
    merchant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>> {
    Ok(statement(format!(
        "SELECT {EVENT_COLUMNS} FROM exception_events e
         WHERE e.merchant_id = $1
           AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
           AND (e.txid, e.sequence) > coalesce(
                 (SELECT (c.txid, c.sequence) FROM exception_events c
                  WHERE c.merchant_id = $1 AND c.sequence = $2),
                 ('0'::xid8, 0::bigint))
         ORDER BY e.txid, e.sequence
         LIMIT $3"
    ))
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}
