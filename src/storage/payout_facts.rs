//! A payout as the worker derives it: its records as they stand (the current
//! versions of the payout and of the balance transactions naming it), the
//! payouts earlier versions named, its row (state, basis, round, reason) and
//! its booking history. SQL only.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::cash_application::payout_state::{BookingAction, PayoutState};
use crate::domain::money::Money;
use crate::domain::record::Record;
use crate::error::{Error, Result};

/// A payout's row as the worker writes it.
pub struct PayoutRow<'a> {
    pub payout_id: &'a str,
    /// Its expected arrival at the bank (deposits are searched around it).
    pub date: NaiveDate,
    pub state: PayoutState,
    pub amount: Money,
    pub gross: Decimal,
    pub fees: Decimal,
    pub net: Decimal,
    pub missing: Decimal,
    pub residual: Decimal,
    /// The facts its bookings stand on (`payout_state::basis`).
    pub basis: Option<&'a str>,
    /// The round its bookings (now or next) are keyed with.
    pub round: u32,
    /// Why it stands where it stands, in words.
    pub reason: String,
    /// What this write adds to its booking history, if anything.
    pub booking: Option<Booking>,
}

/// One line of a payout's booking history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booking {
    pub action: BookingAction,
    /// The newest record version its facts were read at.
    pub cause_record_id: i64,
    /// How many entries it booked.
    pub entries: usize,
}

pub async fn upsert_payout(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    p: &PayoutRow<'_>,
) -> Result<()> {
    super::payout_batch::upsert(conn, merchant, std::slice::from_ref(p)).await
}

/// A payout's row as the worker reads it before deciding what to book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayout {
    pub state: PayoutState,
    pub basis: Option<String>,
    pub round: u32,
}

impl StoredPayout {
    pub(super) fn read(state: &str, basis: Option<String>, round: Option<i32>) -> Result<Self> {
        Ok(StoredPayout {
            state: PayoutState::from_key(state)
                .ok_or_else(|| Error::corrupt("a stored payout state", state.to_string()))?,
            basis,
            round: u32::try_from(round.unwrap_or(0))
                .map_err(|e| Error::corrupt("a stored payout round", e))?,
        })
    }
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Text>)]
    basis: Option<String>,
    #[diesel(sql_type = Integer)]
    round: i32,
}

pub async fn stored_payout(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Option<StoredPayout>> {
    let rows: Vec<StateRow> = statement(
        "SELECT state, basis, round FROM payouts WHERE merchant_id = $1 AND payout_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .next()
        .map(|r| StoredPayout::read(&r.state, r.basis, Some(r.round)))
        .transpose()
}

/// What a payout's balance transactions bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub gross: Decimal,
    pub fees: Decimal,
    pub net: Decimal,
}

/// Marks a payout parked (its job failed too often), whether or not it had a
/// row yet, with the figures its transactions bring when they add up.
pub async fn park_payout(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
    figures: Option<Figures>,
) -> Result<()> {
    let zero = Decimal::ZERO;
    let f = figures.unwrap_or(Figures {
        gross: zero,
        fees: zero,
        net: zero,
    });
    statement(
        "INSERT INTO payouts (merchant_id, payout_id, state, currency_code, amount, gross, fees, net)
         SELECT $1, $2, 'parked', currency_code, amount, $3, $4, $5 FROM record_log
         WHERE merchant_id = $1 AND is_current AND outcome IN ('accepted', 'updated')
           AND kind = 'payout' AND source_id = $2
           AND currency_code IS NOT NULL AND amount IS NOT NULL
         ORDER BY record_id LIMIT 1
         ON CONFLICT (merchant_id, payout_id) DO UPDATE SET state = 'parked', updated_at = excluded.updated_at,
             gross = excluded.gross, fees = excluded.fees, net = excluded.net
           WHERE payouts.state <> 'applied'",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .bind::<diesel::sql_types::Numeric, _>(f.gross)
    .bind::<diesel::sql_types::Numeric, _>(f.fees)
    .bind::<diesel::sql_types::Numeric, _>(f.net)
    .execute(conn)
    .await?;
    Ok(())
}

/// A payout's booking history, oldest first, each with the record version
/// that caused it.
pub async fn payout_bookings(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Vec<BookingRow>> {
    let rows: Vec<BookingRow> = statement(
        "SELECT b.action, b.round, b.entries, b.booked_at, r.source_system, r.source_id,
             r.payload ->> 'source_update_time' AS source_update_time, r.receive_time
         FROM payout_bookings b
         JOIN record_log r ON r.merchant_id = b.merchant_id AND r.record_id = b.cause_record_id
         WHERE b.merchant_id = $1 AND b.payout_id = $2 ORDER BY b.booking_no",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    for r in &rows {
        if BookingAction::from_key(&r.action).is_none() {
            return Err(Error::corrupt("a payout booking", r.action.clone()));
        }
    }
    Ok(rows)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct BookingRow {
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Integer)]
    pub round: i32,
    #[diesel(sql_type = Integer)]
    pub entries: i32,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub booked_at: chrono::DateTime<chrono::Utc>,
    /// The record version that caused it: its key, and when it changed at
    /// its source (if sent with a time) and reached Tally.
    #[diesel(sql_type = Text)]
    pub source_system: String,
    #[diesel(sql_type = Text)]
    pub source_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub source_update_time: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub receive_time: chrono::DateTime<chrono::Utc>,
}

#[derive(QueryableByName)]
struct PayloadRow {
    #[diesel(sql_type = BigInt)]
    record_id: i64,
    /// `payload::text`, decoded straight into a `Record` (no `serde_json::Value`).
    #[diesel(sql_type = Text)]
    payload: String,
}

fn records(rows: Vec<PayloadRow>) -> Result<Vec<Record>> {
    rows.into_iter()
        .map(|r| serde_json::from_str(&r.payload).map_err(|e| Error::corrupt("a stored record", e)))
        .collect()
}

/// The current version of the payout record with this id and the current
/// versions of the balance transactions that name it (in the order they were
/// received), with the newest record version among them.
pub async fn payout_records(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<PayoutFactRecords> {
    let payout: Vec<PayloadRow> = statement(
        // `outcome IN (...)` (implied by is_current) lets the planner use
        // record_log_versions, keyed by kind and id; the current-record key
        // leads with source_system, which a payout id does not give.
        "SELECT record_id, payload::text AS payload FROM record_log
         WHERE merchant_id = $1 AND is_current
           AND outcome IN ('accepted', 'updated') AND kind = 'payout' AND source_id = $2
         ORDER BY record_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    let txns: Vec<PayloadRow> = statement(PAYOUT_TXNS)
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(payout_id)
        .load(conn)
        .await?;
    let newest_record = payout
        .iter()
        .chain(txns.iter())
        .map(|r| r.record_id)
        .max()
        .unwrap_or(0);
    let in_payout = payout.iter().any(|r| r.record_id == newest_record);
    let (payouts, txns) = (records(payout)?, records(txns)?);
    // Rows come in record id order: the newest of a list is its last.
    let newest = if in_payout {
        payouts.last()
    } else {
        txns.last()
    };
    let cause = newest.map(|r| {
        let when = r
            .source_update_time
            .map(|t| format!(" as of {}", t.to_rfc3339()))
            .unwrap_or_default();
        format!("{}/{}{when}", r.source_system, r.source_id)
    });
    Ok(PayoutFactRecords {
        payouts,
        txns,
        newest_record,
        cause: cause.unwrap_or_default(),
    })
}

/// A payout's balance transactions, current versions only
/// (record_log_payout_txns is partial on is_current): a transaction that
/// learned or changed its payout in a later version belongs to the payout
/// that version names.
pub const PAYOUT_TXNS: &str = "
    SELECT record_id, payload::text AS payload FROM record_log
    WHERE merchant_id = $1 AND is_current AND kind = 'balance_transaction'
      AND payload -> 'body' ->> 'payout_id' = $2
    ORDER BY record_id";

/// [`payouts_named_before`]'s statement: the versions' index by kind and id.
pub const PAYOUTS_NAMED_BEFORE: &str = "
    SELECT DISTINCT payload -> 'body' ->> 'payout_id' AS payout_id FROM record_log
    WHERE merchant_id = $1 AND kind = 'balance_transaction' AND source_id = ANY($2)
      AND outcome IN ('accepted', 'updated') AND NOT is_current
      AND payload -> 'body' ->> 'payout_id' IS NOT NULL";

/// A payout's records as they stand.
pub struct PayoutFactRecords {
    pub payouts: Vec<Record>,
    pub txns: Vec<Record>,
    pub newest_record: i64,
    /// The newest record version among them, named for people
    /// (`stripe/po_1 as of 2026-11-05T08:00:00+00:00`).
    pub cause: String,
}

/// The payouts that earlier versions of these balance transactions named
/// (the versions' key: kind and source id).
pub async fn payouts_named_before(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    txn_ids: &[&str],
) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        payout_id: String,
    }
    let rows: Vec<Row> = statement(PAYOUTS_NAMED_BEFORE)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(txn_ids)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.payout_id).collect())
}

/// The balance transactions among these whose earlier versions named a
/// payout other than `me` whose own job is due now: money such a moved
/// transaction brought may still stand under the payout it left, until that
/// payout is derived again.
pub async fn moved_from_due(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    txn_ids: &[&str],
    me: &str,
) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        source_id: String,
    }
    let rows: Vec<Row> = statement(
        "SELECT DISTINCT r.source_id
         FROM record_log r
         JOIN jobs j ON j.merchant_id = r.merchant_id AND j.kind = 'apply_payout'
                    AND j.subject_id = r.payload -> 'body' ->> 'payout_id'
         WHERE r.merchant_id = $1 AND r.kind = 'balance_transaction' AND r.source_id = ANY($2)
           AND r.outcome IN ('accepted', 'updated') AND NOT r.is_current
           AND r.payload -> 'body' ->> 'payout_id' <> $3
           AND j.state = 'ready' AND j.run_after <= now()",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(txn_ids)
    .bind::<Text, _>(me)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.source_id).collect())
}

/// The payouts the current versions of these records (balance transactions
/// among them) name.
pub async fn payouts_of_records(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    record_ids: &[i64],
) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        payout_id: String,
    }
    let rows: Vec<Row> = statement(
        "SELECT DISTINCT payload -> 'body' ->> 'payout_id' AS payout_id FROM record_log
         WHERE merchant_id = $1 AND record_id = ANY($2) AND is_current
           AND kind = 'balance_transaction' AND payload -> 'body' ->> 'payout_id' IS NOT NULL",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<BigInt>, _>(record_ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.payout_id).collect())
}
