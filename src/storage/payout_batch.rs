//! Several payouts of one merchant read at once, for applying them together
//! (`app::cash::group`): their records, their balance transactions' and
//! their states in one statement, their rows written in one. SQL only.

use std::collections::BTreeMap;

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Date, Integer, Nullable, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::payout_facts::{PayoutRow, StoredPayout};
use super::statement::{Bind, statement};
use crate::domain::record::{Body, Record};
use crate::error::{Error, Result};

#[derive(QueryableByName)]
struct PartRow {
    /// 0: a payout's own record; 1: a balance transaction it swept.
    #[diesel(sql_type = Integer)]
    part: i32,
    #[diesel(sql_type = BigInt)]
    record_id: i64,
    #[diesel(sql_type = Text)]
    payload: String,
    /// The payout's row's state, on its own records (none: no row yet).
    #[diesel(sql_type = Nullable<Text>)]
    state: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    basis: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    round: Option<i32>,
}

/// A payout's current records (its versions' last is the payout as it
/// stands) and its balance transactions, as `payout_facts::payout_records` reads
/// them for one.
#[derive(Debug, Default)]
pub struct PayoutRecords {
    pub payouts: Vec<Record>,
    pub txns: Vec<Record>,
    /// Its row as it stands, if it has one.
    pub row: Option<StoredPayout>,
    /// The newest of these records' versions (`record_log.record_id`): what
    /// a booking from them names as its cause.
    pub newest_record: i64,
}

/// [`records`]' statement, `$2` the payout ids: per payout, a probe of
/// the index each arm's `payout_facts::payout_records` uses for one payout,
/// fenced (`OFFSET 0`) from the filters applied to what it finds, and of
/// the payouts table's key for its state.
pub const RECORDS: &str = "
    SELECT r.part, r.record_id, r.payload::text AS payload, s.state, s.basis, s.round
    FROM (SELECT DISTINCT unnest($2::text[])) AS x(payout_id)
    CROSS JOIN LATERAL (
      SELECT 0 AS part, record_id, payload FROM (
        SELECT * FROM record_log
        WHERE merchant_id = $1 AND kind = 'payout' AND source_id = x.payout_id
          AND outcome IN ('accepted', 'updated')
        OFFSET 0) p
      WHERE is_current
      UNION ALL
      SELECT 1, record_id, payload FROM record_log
      WHERE merchant_id = $1 AND is_current AND kind = 'balance_transaction'
        AND payload -> 'body' ->> 'payout_id' = x.payout_id) r
    LEFT JOIN LATERAL (
      SELECT state, basis, round FROM payouts WHERE merchant_id = $1 AND payout_id = x.payout_id
      OFFSET 0) s ON r.part = 0
    ORDER BY r.part, r.record_id";

/// [`PayoutRecords`] of each of these payouts, in one statement (each arm
/// served by the index `payout_facts::payout_records` uses for one payout).
pub async fn records(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_ids: &[String],
) -> Result<BTreeMap<String, PayoutRecords>> {
    let rows: Vec<PartRow> = statement(RECORDS)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(payout_ids)
        .load(conn)
        .await?;
    let mut out: BTreeMap<String, PayoutRecords> = BTreeMap::new();
    for row in rows {
        let r: Record =
            serde_json::from_str(&row.payload).map_err(|e| Error::corrupt("a stored record", e))?;
        let (payout_id, list) = match (&r.body, row.part) {
            (Body::Payout(_), 0) => (r.source_id.clone(), 0),
            (Body::BalanceTransaction(b), 1) => match &b.payout_id {
                Some(p) => (p.clone(), 1),
                None => {
                    return Err(Error::corrupt(
                        "a payout's balance transaction",
                        "no payout",
                    ));
                }
            },
            _ => return Err(Error::corrupt("a payout's record", "of another kind")),
        };
        let entry = out.entry(payout_id).or_default();
        entry.newest_record = entry.newest_record.max(row.record_id);
        if list == 0 {
            if let Some(state) = row.state.as_deref() {
                entry.row = Some(StoredPayout::read(state, row.basis, row.round)?);
            }
            entry.payouts.push(r);
        } else {
            entry.txns.push(r);
        }
    }
    Ok(out)
}

/// Writes these payouts' rows (new, or as they stand now), and the booking
/// each one records in its history, in one statement.
pub async fn upsert(
    conn: &AsyncPgConnection,
    merchant: &str,
    rows: &[PayoutRow<'_>],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&PayoutRow) -> rust_decimal::Decimal| rows.iter().map(f).collect::<Vec<_>>();
    let round = |r: &PayoutRow| i32::try_from(r.round).unwrap_or(i32::MAX);
    statement(
        "WITH t AS (
           SELECT * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[],
             $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::date[],
             $12::text[], $13::int[], $14::text[], $15::text[], $16::bigint[], $17::int[])
           AS t(payout_id, state, currency_code, amount, gross, fees, net, missing, residual,
             payout_date, basis, round, reason, action, cause, entries)),
         up AS (
           INSERT INTO payouts (merchant_id, payout_id, state, currency_code, amount, gross, fees,
               net, missing, residual, applied_at, payout_date, basis, round, reason)
           SELECT $1, t.payout_id, t.state, t.currency_code, t.amount, t.gross, t.fees, t.net,
               t.missing, t.residual, CASE WHEN t.state = 'applied' THEN now() END, t.payout_date,
               t.basis, t.round, t.reason
           FROM t
           ON CONFLICT (merchant_id, payout_id) DO UPDATE SET state = excluded.state,
               currency_code = excluded.currency_code, payout_date = excluded.payout_date,
               amount = excluded.amount, gross = excluded.gross, fees = excluded.fees,
               net = excluded.net, missing = excluded.missing, residual = excluded.residual,
               applied_at = CASE WHEN excluded.state = 'applied' THEN excluded.applied_at
                   ELSE payouts.applied_at END,
               basis = excluded.basis, round = excluded.round, reason = excluded.reason,
               updated_at = excluded.updated_at)
         INSERT INTO payout_bookings (merchant_id, payout_id, booking_no, action, cause_record_id,
             round, entries)
         SELECT $1, t.payout_id,
             1 + COALESCE((SELECT max(b.booking_no) FROM payout_bookings b
                           WHERE b.merchant_id = $1 AND b.payout_id = t.payout_id), 0),
             t.action, t.cause, t.round, t.entries
         FROM t WHERE t.action IS NOT NULL",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.payout_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.state.key()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.amount.currency.code())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Numeric>, _>(col(|r| r.amount.amount))
    .bind::<Array<Numeric>, _>(col(|r| r.gross))
    .bind::<Array<Numeric>, _>(col(|r| r.fees))
    .bind::<Array<Numeric>, _>(col(|r| r.net))
    .bind::<Array<Numeric>, _>(col(|r| r.missing))
    .bind::<Array<Numeric>, _>(col(|r| r.residual))
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.date).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.basis).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(round).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.booking.map(|b| b.action.key()))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<BigInt>>, _>(
        rows.iter()
            .map(|r| r.booking.map(|b| b.cause_record_id))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Integer>>, _>(
        rows.iter()
            .map(|r| {
                r.booking
                    .map(|b| i32::try_from(b.entries).unwrap_or(i32::MAX))
            })
            .collect::<Vec<_>>(),
    )
    .execute(&mut { conn })
    .await?;
    Ok(())
}
