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
use super::statement::{Bind, Found, statement};
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
    if super::citus::installed(conn).await? {
        // The triggers run on the workers, which see a setting only when it
        // is a SET LOCAL that Citus forwards (set_config() is not).
        let sql = format!(
            "SET LOCAL citus.propagate_set_commands = 'local'; \
             SET LOCAL tally.actor = {}; SET LOCAL tally.note = {}",
            literal(actor),
            literal(note)
        );
        diesel_async::SimpleAsyncConnection::batch_execute(conn, &sql).await?;
    }
    Ok(())
}

/// A SQL string literal (standard_conforming_strings: only quotes escape).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
                                THEN coalesce(resolve_time, $6) ELSE NULL END,
            update_time = $6
         WHERE merchant_id = $1 AND exception_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Text>, _>(state.map(|s| s.as_str()))
    .bind::<Nullable<Text>, _>(owner)
    .bind::<Nullable<Text>, _>(resolution_note)
    // The time as a parameter: Citus refuses now() inside CASE or COALESCE
    // (it cannot evaluate it once on the coordinator there).
    .bind::<diesel::sql_types::Timestamptz, _>(chrono::Utc::now())
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

/// Whether event `sequence` is one of the merchant's (and committed).
pub async fn exists(conn: &mut Conn, merchant: &str, sequence: i64) -> Result<bool> {
    let rows: Vec<Found> = statement(
        "SELECT EXISTS (SELECT 1 FROM exception_events
                        WHERE merchant_id = $1 AND sequence = $2) AS found",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(sequence)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().is_some_and(|r| r.found))
}

/// A transaction that may still commit events: one holding the write lock
/// on `exception_events` in this database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Writer {
    /// Its virtual transaction id (unique while the server runs).
    pub vxid: String,
    /// A prepared (two-phase) transaction: its locks moved to another id.
    pub prepared: bool,
}

/// One sample of the node that holds the merchant's events: how far event
/// numbers have been drawn there (every event numbered at most this had
/// its number taken before), then the transactions holding the write lock
/// on `exception_events` there, other than the caller's own. An insert
/// takes that lock before it draws an event number and keeps it until its
/// transaction ends, so a transaction not listed has no event numbered at
/// most `drawn` left uncommitted. Transactions of other databases, and of
/// this one that wrote no event (an idle session holding a txid), are not
/// listed and hold nothing back.
///
/// `None` while the merchant has no committed event: nothing to deliver,
/// and no row to route the probe by. The probe (migration 000025) runs in
/// a router query over one of the merchant's events: on Citus on the
/// worker that holds the merchant's shard, whose sequence draws its event
/// numbers and whose locks its writers hold; on PostgreSQL in place.
pub async fn settling(conn: &mut Conn, merchant: &str) -> Result<Option<(i64, Vec<Writer>)>> {
    #[derive(QueryableByName)]
    struct Probe {
        #[diesel(sql_type = BigInt)]
        drawn: i64,
        #[diesel(sql_type = diesel::sql_types::Array<Text>)]
        vxids: Vec<String>,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Bool>)]
        prepared: Vec<bool>,
    }
    let rows: Vec<Probe> = statement(
        "SELECT p.drawn, p.vxids, p.prepared
           FROM (SELECT 1 FROM exception_events WHERE merchant_id = $1 LIMIT 1) e,
                LATERAL exception_events_probe() p",
    )
    .bind::<Text, _>(merchant)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|p| {
        let writers = p
            .vxids
            .into_iter()
            .zip(p.prepared)
            .map(|(vxid, prepared)| Writer { vxid, prepared })
            .collect();
        (p.drawn, writers)
    }))
}

/// The merchant's events numbered after `after` and at most `upto`, in
/// number order, at most `limit`. `upto` is a bound below which every
/// number drawn is settled (committed or rolled back: see
/// `app::exceptions::Watch`), so reading in number order skips nothing.
pub async fn after(
    conn: &mut Conn,
    merchant: &str,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<EventRow>> {
    Ok(statement(format!(
        "SELECT {EVENT_COLUMNS} FROM exception_events
         WHERE merchant_id = $1 AND sequence > $2 AND sequence <= $3
         ORDER BY sequence
         LIMIT $4"
    ))
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(upto)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}
