//! Bank deposits and the payouts they brought to the bank. SQL only: what
//! matches what is decided in `domain::cash_application::deposit`.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Date, Jsonb, Nullable, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, Found, planned_each_run, statement};
use crate::domain::cash_application::deposit::{DepositFacts, PayoutAtBank};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::Record;
use crate::error::{Error, Result};

#[derive(QueryableByName)]
struct PayloadRow {
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
}

/// The current version of a bank deposit record.
pub async fn deposit_record(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    deposit_id: &str,
) -> Result<Option<Record>> {
    let rows: Vec<PayloadRow> = statement(
        "SELECT payload FROM record_log WHERE merchant_id = $1 AND kind = 'bank_deposit'
           AND source_id = $2 AND is_current ORDER BY record_id DESC LIMIT 1",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(deposit_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .next()
        .map(|r| {
            serde_json::from_value(r.payload).map_err(|e| Error::corrupt("a stored deposit", e))
        })
        .transpose()
}

#[derive(QueryableByName)]
struct PayoutRow {
    #[diesel(sql_type = Text)]
    payout_id: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    currency_code: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Nullable<Date>)]
    payout_date: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Text>)]
    deposit_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    round: i32,
}

fn at_bank(rows: Vec<PayoutRow>) -> Result<Vec<PayoutAtBank>> {
    rows.into_iter()
        .map(|r| {
            let currency = super::stored_currency(&r.currency_code)?;
            Ok(PayoutAtBank {
                net: Money::new(r.amount, currency),
                date: r.payout_date.unwrap_or(NaiveDate::MIN),
                applied: r.state == "applied",
                deposit_id: r.deposit_id,
                payout_id: r.payout_id,
                round: u32::try_from(r.round).map_err(|e| Error::corrupt("a payout round", e))?,
            })
        })
        .collect()
}

const COLUMNS: &str = "payout_id, state, currency_code, amount, payout_date, deposit_id, round";

/// The deposit the bank showed for this payout, if one was matched to it:
/// its id and amount.
pub async fn deposit_of_payout(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Option<(String, Money)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        deposit_id: String,
        #[diesel(sql_type = Text)]
        currency_code: String,
        #[diesel(sql_type = Numeric)]
        amount: Decimal,
    }
    let rows: Vec<Row> = statement(
        "SELECT d.deposit_id, d.currency_code, d.amount
         FROM payouts p JOIN deposits d
           ON d.merchant_id = p.merchant_id AND d.deposit_id = p.deposit_id
         WHERE p.merchant_id = $1 AND p.payout_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .next()
        .map(|r| {
            let currency = super::stored_currency(&r.currency_code)?;
            Ok((r.deposit_id, Money::new(r.amount, currency)))
        })
        .transpose()
}

/// The payouts with these ids, as a deposit naming them sees them.
pub async fn payouts(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    ids: &[String],
) -> Result<Vec<PayoutAtBank>> {
    let rows: Vec<PayoutRow> = statement(format!(
        "SELECT {COLUMNS} FROM payouts WHERE merchant_id = $1 AND payout_id = ANY($2)"
    ))
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(ids)
    .load(conn)
    .await?;
    at_bank(rows)
}

/// Applied payouts not deposited yet, in `currency`, dated in the window. At
/// most `limit`: the caller passes more than it searches, so that a crowded
/// window is reported as such rather than searched over a cut list.
pub async fn open_payouts(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    currency: Currency,
    (from, to): (NaiveDate, NaiveDate),
    limit: i64,
) -> Result<Vec<PayoutAtBank>> {
    let rows: Vec<PayoutRow> = statement(format!(
        "SELECT {COLUMNS} FROM payouts
         WHERE merchant_id = $1 AND state = 'applied' AND deposit_id IS NULL
           AND currency_code = $2 AND payout_date BETWEEN $3 AND $4
         ORDER BY payout_date, payout_id LIMIT $5"
    ))
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(currency.code())
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    at_bank(rows)
}

/// Whether the bank feed has shown a deposit dated on or after `date`: only
/// then is a payout of that date without one a deposit that did not arrive
/// (a merchant that sends no bank feed is told nothing).
pub async fn feed_reaches(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    date: NaiveDate,
) -> Result<bool> {
    let row: Found = statement(
        "SELECT EXISTS (SELECT 1 FROM deposits WHERE merchant_id = $1 AND deposit_date >= $2)
             AS found",
    )
    .bind::<Text, _>(merchant)
    .bind::<Date, _>(date)
    .get_result(conn)
    .await?;
    Ok(row.found)
}

/// Whether an unmatched deposit could be this payout's (dated in the window
/// a deposit matches a payout of `date` in, naming no payout or this one):
/// its exception is the one to work, so the payout's missing deposit is not
/// raised twice. A deposit naming other payouts is theirs, not this one's.
pub async fn unmatched_near(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
    date: NaiveDate,
) -> Result<bool> {
    let (from, to) = crate::domain::cash_application::deposit::deposits_window(date);
    let row: Found = statement(
        "SELECT EXISTS (SELECT 1 FROM deposits WHERE merchant_id = $1 AND state = 'unmatched'
             AND deposit_date BETWEEN $2 AND $3
             AND (payout_ids = '{}' OR $4 = ANY(payout_ids))) AS found",
    )
    .bind::<Text, _>(merchant)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<Text, _>(payout_id)
    .get_result(conn)
    .await?;
    Ok(row.found)
}

/// Applied payouts not deposited, dated on or before `date` (at most
/// `limit`, oldest first): those a deposit of that date shows the feed has
/// passed.
pub async fn undeposited_until(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    date: NaiveDate,
    limit: i64,
) -> Result<Vec<(String, NaiveDate)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        payout_id: String,
        #[diesel(sql_type = Date)]
        payout_date: NaiveDate,
    }
    let rows: Vec<Row> = statement(
        "SELECT payout_id, payout_date FROM payouts
         WHERE merchant_id = $1 AND state = 'applied' AND deposit_id IS NULL
           AND amount > 0 AND payout_date <= $2
         ORDER BY payout_date, payout_id LIMIT $3",
    )
    .bind::<Text, _>(merchant)
    .bind::<Date, _>(date)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.payout_id, r.payout_date))
        .collect())
}

/// Unties the payouts this deposit was matched to: a deposit's job matches
/// it again from its current version (and the payouts as they stand).
/// Returns the payouts untied, with their arrival dates.
pub async fn release(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    deposit_id: &str,
) -> Result<Vec<(String, NaiveDate)>> {
    #[derive(QueryableByName)]
    struct Released {
        #[diesel(sql_type = Text)]
        payout_id: String,
        #[diesel(sql_type = Nullable<Date>)]
        payout_date: Option<NaiveDate>,
    }
    let rows: Vec<Released> = statement(
        "UPDATE payouts SET deposit_id = NULL, updated_at = now()
         WHERE merchant_id = $1 AND deposit_id = $2
         RETURNING payout_id, payout_date",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(deposit_id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.payout_id, r.payout_date.unwrap_or(NaiveDate::MIN)))
        .collect())
}

/// Ties payouts to the deposit; returns how many were still applied and free
/// (a payout failed or taken by another deposit meanwhile is not counted).
pub async fn mark_deposited(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    deposit_id: &str,
    payout_ids: &[String],
) -> Result<usize> {
    Ok(statement(
        "UPDATE payouts SET deposit_id = $2, updated_at = now()
         WHERE merchant_id = $1 AND payout_id = ANY($3) AND state = 'applied'
           AND (deposit_id IS NULL OR deposit_id = $2)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(deposit_id)
    .bind::<Array<Text>, _>(payout_ids)
    .execute(conn)
    .await?)
}

/// Stores the deposit as matched to `matched`, or (None) unmatched; an
/// unmatched deposit keeps the payouts it names (if any), so a payout's
/// missing deposit is told apart from a deposit that is another's.
pub async fn upsert_deposit(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    d: &DepositFacts,
    matched: Option<&[String]>,
) -> Result<()> {
    statement(
        "INSERT INTO deposits (merchant_id, deposit_id, state, currency_code, amount, deposit_date,
             payout_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (merchant_id, deposit_id) DO UPDATE SET state = $3, currency_code = $4,
             amount = $5, deposit_date = $6, payout_ids = $7, updated_at = EXCLUDED.updated_at",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(&d.deposit_id)
    .bind::<Text, _>(if matched.is_some() {
        "matched"
    } else {
        "unmatched"
    })
    .bind::<Text, _>(d.amount.currency.code())
    .bind::<Numeric, _>(d.amount.amount)
    .bind::<Date, _>(d.date)
    .bind::<Array<Text>, _>(matched.unwrap_or(&d.named).to_vec())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Deposits that found no payout yet (oldest ids first, at most `limit`).
pub async fn unmatched(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows: Vec<IdRow> = statement(
        "SELECT deposit_id AS id FROM deposits WHERE merchant_id = $1 AND state = 'unmatched'
         ORDER BY deposit_id LIMIT $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Resolves (by the rules) the open exceptions of these rules on `subject`:
/// the record they waited for arrived.
pub async fn resolve_rules(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    rules: &[&str],
    subject: &str,
) -> Result<()> {
    resolve_rules_of(conn, merchant, rules, &[subject]).await
}

/// The open exceptions of these rules on these subjects (each rule on each
/// subject): a probe of `exceptions_open_by_rule` per pair, fenced from the
/// rest of the statement, whatever the statistics say.
pub const RULED_OPEN: &str = "
    SELECT e.exception_id
    FROM (SELECT DISTINCT r.rule, s.subject
          FROM unnest($2::text[]) AS r(rule), unnest($3::text[]) AS s(subject)) x
    CROSS JOIN LATERAL (
      SELECT exception_id FROM exceptions
      WHERE merchant_id = $1 AND rule = x.rule AND subject = x.subject
        AND state <> 'resolved'
      OFFSET 0) e";

/// Resolves, by the rules, the exceptions found open: by key, each still
/// open when updated (a person's resolution in between stands). Sent
/// unnamed, planned at each run with its ids: a generic plan made on empty
/// tables read the merchant's open exceptions through a partial index
/// instead. It runs only when there is something to resolve.
pub const RESOLVE_BY_RULES: &str = "
    UPDATE exceptions SET state = 'resolved', resolved_by = 'rules', resolve_time = now(),
        update_time = now()
    WHERE merchant_id = $1 AND exception_id = ANY($2) AND state <> 'resolved'";

/// [`resolve_rules`] for several subjects (each of the rules on each). The
/// exceptions are found first (one probe per pair); the update runs only
/// when there is something to resolve, and names them by key.
pub async fn resolve_rules_of(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    rules: &[&str],
    subjects: &[&str],
) -> Result<()> {
    if rules.is_empty() || subjects.is_empty() {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        exception_id: uuid::Uuid,
    }
    let found: Vec<uuid::Uuid> = statement(RULED_OPEN)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(rules)
        .bind::<Array<Text>, _>(subjects)
        .load::<Found>(conn)
        .await?
        .into_iter()
        .map(|f| f.exception_id)
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    planned_each_run(RESOLVE_BY_RULES)
        .bind::<Text, _>(merchant)
        .bind::<Array<diesel::sql_types::Uuid>, _>(found)
        .execute(conn)
        .await?;
    Ok(())
}

/// Which of these journal entries are booked already.
pub async fn booked(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    external_ids: &[String],
) -> Result<BTreeSet<String>> {
    let rows: Vec<IdRow> = statement(
        "SELECT external_id AS id FROM journal_entries
         WHERE merchant_id = $1 AND external_id = ANY($2)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(external_ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
