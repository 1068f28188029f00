//! The facts behind a report's figures: record versions, exception
//! changes and journal lines, by knowledge time (what a diff lists) and by
//! period as of a knowledge time (a figure's drill-down).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{
    Array, BigInt, Date, Integer, Jsonb, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Conn;
use super::statement::{Bind, statement};
use crate::domain::record::Record;
use crate::error::{Error, Result};

/// A stored record version, with the version it superseded (if any).
pub struct VersionFact {
    pub record_id: i64,
    pub receive_time: DateTime<Utc>,
    pub record: Record,
    pub superseded: Option<(i64, Record)>,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    record_id: i64,
    #[diesel(sql_type = Timestamptz)]
    receive_time: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Nullable<BigInt>)]
    old_id: Option<i64>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    old_payload: Option<serde_json::Value>,
}

fn parse(payload: serde_json::Value) -> Result<Record> {
    serde_json::from_value(payload).map_err(|e| Error::corrupt("a stored record", e))
}

impl TryFrom<VersionRow> for VersionFact {
    type Error = Error;
    fn try_from(r: VersionRow) -> Result<VersionFact> {
        let superseded = match (r.old_id, r.old_payload) {
            (Some(id), Some(p)) => Some((id, parse(p)?)),
            _ => None,
        };
        Ok(VersionFact {
            record_id: r.record_id,
            receive_time: r.receive_time,
            record: parse(r.payload)?,
            superseded,
        })
    }
}

/// Versions stored by `ids` (new records and versions of one submission),
/// each with the version it superseded.
pub async fn versions_by_id(
    mut conn: &Conn,
    merchant: &str,
    ids: &[i64],
) -> Result<Vec<VersionFact>> {
    let rows: Vec<VersionRow> = statement(
        "SELECT r.record_id, r.receive_time, r.payload, o.record_id AS old_id, o.payload AS old_payload
         FROM record_log r
         LEFT JOIN record_log o ON r.outcome = 'updated' AND o.merchant_id = r.merchant_id
                               AND o.record_id = r.original_id
         WHERE r.merchant_id = $1 AND r.record_id = ANY($2)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<BigInt>, _>(ids)
    .load(&mut conn)
    .await?;
    rows.into_iter().map(VersionFact::try_from).collect()
}

/// Versions stored with `after` < receive_time <= `until`, in knowledge order.
pub async fn versions_between(
    conn: &mut Conn,
    merchant: &str,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<VersionFact>> {
    let rows: Vec<VersionRow> = statement(
        "SELECT r.record_id, r.receive_time, r.payload, o.record_id AS old_id, o.payload AS old_payload
         FROM record_log r
         LEFT JOIN record_log o ON r.outcome = 'updated' AND o.merchant_id = r.merchant_id
                               AND o.record_id = r.original_id
         WHERE r.merchant_id = $1 AND r.receive_time > $2 AND r.receive_time <= $3
           AND r.outcome IN ('accepted', 'updated')
         ORDER BY r.receive_time, r.record_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Timestamptz, _>(after)
    .bind::<Timestamptz, _>(until)
    .load(conn)
    .await?;
    rows.into_iter().map(VersionFact::try_from).collect()
}

/// Where a page of a figure's records resumes: (source id, source system,
/// record id), the order of the record log's versions index.
pub type RecordKeyAfter = (String, String, i64);

/// The versions of `kind` current at `as_of` whose event time is in
/// [start, end), in the versions index's order after `after`. A period's
/// records are a filter on that index (no index by event time: the record
/// log's write path pays for every index, and drill-down is rare).
#[allow(clippy::too_many_arguments)]
pub async fn current_versions(
    conn: &mut Conn,
    merchant: &str,
    kind: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    as_of: DateTime<Utc>,
    after: Option<RecordKeyAfter>,
    limit: i64,
) -> Result<Vec<(RecordKeyAfter, VersionFact)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        source_id: String,
        #[diesel(sql_type = Text)]
        source_system: String,
        #[diesel(embed)]
        v: VersionRow,
    }
    let (after_source, after_system, after_id) = after.unwrap_or_default();
    let rows: Vec<Row> = statement(
        "SELECT r.source_id, r.source_system, r.record_id, r.receive_time, r.payload,
                NULL::bigint AS old_id, NULL::jsonb AS old_payload
         FROM record_log r
         WHERE r.merchant_id = $1 AND r.kind = $2 AND r.outcome IN ('accepted', 'updated')
           AND r.event_time >= $3 AND r.event_time < $4 AND r.receive_time <= $5
           AND (r.source_id, r.source_system, r.record_id) > ($6, $7, $8)
           AND NOT EXISTS (
               SELECT 1 FROM record_log n
               WHERE n.merchant_id = r.merchant_id AND n.kind = r.kind
                 AND n.source_id = r.source_id AND n.source_system = r.source_system
                 AND n.outcome IN ('accepted', 'updated')
                 AND n.record_id > r.record_id AND n.receive_time <= $5)
         ORDER BY r.source_id, r.source_system, r.record_id
         LIMIT $9",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(kind)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Timestamptz, _>(as_of)
    .bind::<Text, _>(after_source)
    .bind::<Text, _>(after_system)
    .bind::<BigInt, _>(after_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let key = (r.source_id, r.source_system, r.v.record_id);
            Ok((key, VersionFact::try_from(r.v)?))
        })
        .collect()
}

/// A change of an exception's count in a report (+1 opened, -1 resolved),
/// or its at-risk amount summed as of a time.
#[derive(Debug, Clone, QueryableByName)]
pub struct ExceptionFact {
    #[diesel(sql_type = SqlUuid)]
    pub exception_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub known_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub exception_type: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Integer)]
    pub count: i32,
}

/// Exception changes learned in (`after`, `until`] for the period.
pub async fn exceptions_between(
    conn: &mut Conn,
    merchant: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ExceptionFact>> {
    Ok(statement(
        "SELECT exception_id, known_at, type AS exception_type, currency_code, amount, count
         FROM exception_report_log
         WHERE merchant_id = $1 AND event_time >= $2 AND event_time < $3
           AND known_at > $4 AND known_at <= $5
         ORDER BY known_at, seq",
    )
    .bind::<Text, _>(merchant)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Timestamptz, _>(after)
    .bind::<Timestamptz, _>(until)
    .load(conn)
    .await?)
}

/// The exceptions of `types` unresolved at `as_of` for the period, with
/// their amount at risk then, by id after `after`.
#[allow(clippy::too_many_arguments)]
pub async fn exceptions_open_at(
    conn: &mut Conn,
    merchant: &str,
    types: &[&str],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    as_of: DateTime<Utc>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExceptionFact>> {
    Ok(statement(
        "SELECT exception_id, max(known_at) AS known_at, type AS exception_type, currency_code,
                sum(amount) AS amount, sum(count)::integer AS count
         FROM exception_report_log
         WHERE merchant_id = $1 AND type = ANY($2) AND event_time >= $3 AND event_time < $4
           AND known_at <= $5 AND exception_id > $6
         GROUP BY exception_id, type, currency_code
         HAVING sum(count) > 0
         ORDER BY exception_id
         LIMIT $7",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(types)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Timestamptz, _>(as_of)
    .bind::<SqlUuid, _>(after.unwrap_or(Uuid::nil()))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// One journal entry's net on one account (debits - credits).
#[derive(Debug, Clone, QueryableByName)]
pub struct EntryFact {
    #[diesel(sql_type = BigInt)]
    pub entry_id: i64,
    #[diesel(sql_type = Text)]
    pub external_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub booked_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = BigInt)]
    pub lines: i64,
}

/// Entries booked in (`after`, `until`], effective before `end_date`, on `accounts`.
pub async fn entries_between(
    conn: &mut Conn,
    merchant: &str,
    accounts: &[&str],
    end_date: NaiveDate,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<EntryFact>> {
    Ok(statement(
        "SELECT e.entry_id, e.external_id, e.booked_at, l.account, l.currency_code,
                sum(l.debit - l.credit) AS amount, count(*) AS lines
         FROM journal_entries e JOIN journal_lines l USING (merchant_id, entry_id)
         WHERE e.merchant_id = $1 AND l.account = ANY($2) AND e.effective_date < $3
           AND e.booked_at > $4 AND e.booked_at <= $5
         GROUP BY e.entry_id, e.external_id, e.booked_at, l.account, l.currency_code
         ORDER BY e.booked_at, e.entry_id, l.account, l.currency_code",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(accounts)
    .bind::<Date, _>(end_date)
    .bind::<Timestamptz, _>(after)
    .bind::<Timestamptz, _>(until)
    .load(conn)
    .await?)
}

/// Stored versions with record id up to `upto`, in (receive_time,
/// record_id) order after `after`; `at`: only those received at that time.
pub async fn versions_in_order(
    conn: &mut Conn,
    merchant: &str,
    upto: i64,
    after: Option<(DateTime<Utc>, i64)>,
    at: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<VersionFact>> {
    let (t, id) = after.unwrap_or((DateTime::<Utc>::UNIX_EPOCH, 0));
    let rows: Vec<VersionRow> = statement(
        "SELECT r.record_id, r.receive_time, r.payload, o.record_id AS old_id, o.payload AS old_payload
         FROM record_log r
         LEFT JOIN record_log o ON r.outcome = 'updated' AND o.merchant_id = r.merchant_id
                               AND o.record_id = r.original_id
         WHERE r.merchant_id = $1 AND r.record_id <= $2 AND r.outcome IN ('accepted', 'updated')
           AND (r.receive_time, r.record_id) > ($3, $4)
           AND ($5::timestamptz IS NULL OR r.receive_time = $5)
         ORDER BY r.receive_time, r.record_id
         LIMIT $6",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(upto)
    .bind::<Timestamptz, _>(t)
    .bind::<BigInt, _>(id)
    .bind::<Nullable<Timestamptz>, _>(at)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    rows.into_iter().map(VersionFact::try_from).collect()
}

/// Entries booked by `as_of`, effective before `end_date`, with their net
/// on `account`, by entry id after `after`.
pub async fn entries_upto(
    conn: &mut Conn,
    merchant: &str,
    account: &str,
    end_date: NaiveDate,
    as_of: DateTime<Utc>,
    after: i64,
    limit: i64,
) -> Result<Vec<EntryFact>> {
    Ok(statement(
        "SELECT e.entry_id, e.external_id, e.booked_at, l.account, l.currency_code,
                sum(l.debit - l.credit) AS amount, count(*) AS lines
         FROM journal_lines l JOIN journal_entries e USING (merchant_id, entry_id)
         WHERE l.merchant_id = $1 AND l.account = $2 AND e.effective_date < $3
           AND e.booked_at <= $4 AND l.entry_id > $5
         GROUP BY e.entry_id, e.external_id, e.booked_at, l.account, l.currency_code
         ORDER BY e.entry_id
         LIMIT $6",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(account)
    .bind::<Date, _>(end_date)
    .bind::<Timestamptz, _>(as_of)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}
