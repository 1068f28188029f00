//! Period reports' sums: adding record deltas, summing a period as of a
//! knowledge time, the settled knowledge horizon, and period closes. The
//! other writers' deltas are added by triggers (migration
//! 2026-12-06-000020_period_reports).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Date, Integer, Nullable, Numeric, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;

use super::Conn;
use super::statement::{Bind, statement};
use crate::domain::report::Line;
use crate::error::{Error, Result};

/// One delta of a figure: (event bucket, figure, currency or "", amount, count).
pub type Delta = (DateTime<Utc>, String, String, Decimal, i64);

/// Adds deltas known now (this transaction's start). Deltas of one key
/// are summed first: one statement may not touch a row twice.
pub async fn add(mut conn: &Conn, merchant: &str, deltas: Vec<Delta>) -> Result<()> {
    let mut merged: BTreeMap<(DateTime<Utc>, String, String), (Decimal, i64)> = BTreeMap::new();
    for (bucket, figure, currency, amount, count) in deltas {
        let e = merged.entry((bucket, figure, currency)).or_default();
        e.0 =
            e.0.checked_add(amount)
                .ok_or_else(|| Error::Internal("a report delta overflows".into()))?;
        e.1 += count;
    }
    merged.retain(|_, (a, n)| !a.is_zero() || *n != 0);
    if merged.is_empty() {
        return Ok(());
    }
    let mut cols = (vec![], vec![], vec![], vec![], vec![]);
    for ((b, f, c), (a, n)) in merged {
        cols.0.push(b);
        cols.1.push(f);
        cols.2.push(c);
        cols.3.push(a);
        cols.4.push(n);
    }
    statement(
        "INSERT INTO report_deltas AS d (merchant_id, event_bucket, known_at, figure,
                 currency_code, amount, count)
         SELECT $1, t.b, now(), t.f, t.c, t.a, t.n
         FROM UNNEST($2::timestamptz[], $3::text[], $4::text[], $5::numeric[], $6::bigint[])
           AS t(b, f, c, a, n)
         ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
             SET amount = d.amount + EXCLUDED.amount, count = d.count + EXCLUDED.count",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Timestamptz>, _>(cols.0)
    .bind::<Array<Text>, _>(cols.1)
    .bind::<Array<Text>, _>(cols.2)
    .bind::<Array<Numeric>, _>(cols.3)
    .bind::<Array<BigInt>, _>(cols.4)
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct SumRow {
    #[diesel(sql_type = Text)]
    figure: String,
    #[diesel(sql_type = Text)]
    currency_code: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

impl From<SumRow> for Line {
    fn from(r: SumRow) -> Line {
        Line {
            figure: r.figure,
            currency: r.currency_code,
            amount: r.amount,
            count: r.count,
        }
    }
}

/// The period's figures as known at `as_of` (inclusive).
pub async fn sums(
    conn: &mut Conn,
    merchant: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Result<Vec<Line>> {
    let rows: Vec<SumRow> = statement(
        "SELECT figure, currency_code, sum(amount) AS amount, sum(count)::bigint AS count
         FROM report_deltas
         WHERE merchant_id = $1 AND event_bucket >= $2 AND event_bucket < $3 AND known_at <= $4
         GROUP BY figure, currency_code",
    )
    .bind::<Text, _>(merchant)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Timestamptz, _>(as_of)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(Line::from).collect())
}

/// What the period's figures moved by between two knowledge times
/// (`after` < known_at <= `until`), per figure.
pub async fn moves(
    conn: &mut Conn,
    merchant: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    prefix: &str,
) -> Result<Vec<Line>> {
    let rows: Vec<SumRow> = statement(
        "SELECT figure, currency_code, sum(amount) AS amount, sum(count)::bigint AS count
         FROM report_deltas
         WHERE merchant_id = $1 AND event_bucket >= $2 AND event_bucket < $3
           AND known_at > $4 AND known_at <= $5 AND starts_with(figure, $6)
         GROUP BY figure, currency_code",
    )
    .bind::<Text, _>(merchant)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Timestamptz, _>(after)
    .bind::<Timestamptz, _>(until)
    .bind::<Text, _>(prefix)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(Line::from).collect())
}

/// Tally's ledger balances (debits minus credits) by account role, of
/// entries effective before `end_date` and booked by `as_of`.
pub async fn ledger_sums(
    conn: &mut Conn,
    merchant: &str,
    end_date: NaiveDate,
    as_of: DateTime<Utc>,
) -> Result<Vec<Line>> {
    let rows: Vec<SumRow> = statement(
        "SELECT account AS figure, currency_code, sum(amount) AS amount, sum(lines)::bigint AS count
         FROM report_ledger_deltas
         WHERE merchant_id = $1 AND effective_date < $2 AND known_at <= $3
         GROUP BY account, currency_code",
    )
    .bind::<Text, _>(merchant)
    .bind::<Date, _>(end_date)
    .bind::<Timestamptz, _>(as_of)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(Line::from).collect())
}

#[derive(QueryableByName)]
struct TimeRow {
    #[diesel(sql_type = Timestamptz)]
    t: DateTime<Utc>,
}

/// The latest knowledge time every fact of is committed: just before the
/// oldest client transaction still open (a fact's knowledge time is its
/// transaction's start), else now. A report as of a later time could
/// still change when those transactions commit.
///
/// Only client backends count: every fact is written by one, and a
/// background process's `xact_start` need not be a time it started
/// anything. Citus's maintenance daemon never sets its statement time, so
/// its transactions show a start from its last wake-up or earlier: counted,
/// they moved the horizon back by up to seconds, and a report's own as-of
/// time was later refused as unsettled.
pub async fn horizon(conn: &mut Conn) -> Result<DateTime<Utc>> {
    let mut rows: Vec<TimeRow> = statement(HORIZON).load(conn).await?;
    rows.pop()
        .map(|r| r.t)
        .ok_or_else(|| Error::Internal("the knowledge horizon query returned no row".into()))
}

/// [`horizon`]'s statement.
pub const HORIZON: &str = "SELECT least(statement_timestamp(),
              (SELECT min(xact_start) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND backend_type = 'client backend' AND xact_start IS NOT NULL))
        - interval '1 microsecond' AS t";

/// One entry of a period's close history.
#[derive(Debug, Clone, QueryableByName)]
pub struct CloseRow {
    #[diesel(sql_type = Integer)]
    pub close_no: i32,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub closed_as_of: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    pub actor: String,
    #[diesel(sql_type = Text)]
    pub note: String,
    #[diesel(sql_type = Timestamptz)]
    pub create_time: DateTime<Utc>,
}

/// A period's closes and reopens, oldest first.
pub async fn close_history(conn: &mut Conn, merchant: &str, period: &str) -> Result<Vec<CloseRow>> {
    Ok(statement(
        "SELECT close_no, action, closed_as_of, actor, note, create_time FROM period_closes
         WHERE merchant_id = $1 AND period = $2 ORDER BY close_no",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(period)
    .load(conn)
    .await?)
}

/// Appends a close or reopen as entry `close_no`; false when another
/// writer took that number first (the caller's etag is stale).
pub async fn append_close(
    conn: &mut Conn,
    merchant: &str,
    period: &str,
    close_no: i32,
    closed_as_of: Option<DateTime<Utc>>,
    actor: &str,
    note: &str,
) -> Result<bool> {
    let n = statement(
        "INSERT INTO period_closes (merchant_id, period, close_no, action, closed_as_of, actor, note)
         VALUES ($1, $2, $3, CASE WHEN $4::timestamptz IS NULL THEN 'reopened' ELSE 'closed' END,
                 $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(period)
    .bind::<Integer, _>(close_no)
    .bind::<Nullable<Timestamptz>, _>(closed_as_of)
    .bind::<Text, _>(actor)
    .bind::<Text, _>(note)
    .execute(conn)
    .await?;
    Ok(n == 1)
}
