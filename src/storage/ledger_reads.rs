//! Reads of the ledger tables for LedgerService. Every query filters by
//! merchant and pages by a key (keyset), never by offset.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Date, Integer, Nullable, Numeric, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::error::Result;

#[derive(Debug, Clone, QueryableByName)]
pub struct PayoutView {
    #[diesel(sql_type = Text)]
    pub payout_id: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Numeric)]
    pub gross: Decimal,
    #[diesel(sql_type = Numeric)]
    pub fees: Decimal,
    #[diesel(sql_type = Numeric)]
    pub net: Decimal,
    #[diesel(sql_type = Numeric)]
    pub missing: Decimal,
    #[diesel(sql_type = Numeric)]
    pub residual: Decimal,
    #[diesel(sql_type = Text)]
    pub reason: String,
}

const PAYOUT_COLUMNS: &str =
    "payout_id, state, currency_code, amount, gross, fees, net, missing, residual, reason";

pub async fn payout(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    id: &str,
) -> Result<Option<PayoutView>> {
    let rows: Vec<PayoutView> = statement(format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE merchant_id = $1 AND payout_id = $2"
    ))
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

pub async fn payouts(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    state: Option<&str>,
    after: &str,
    limit: i64,
) -> Result<Vec<PayoutView>> {
    Ok(statement(format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE merchant_id = $1 AND ($2::text IS NULL OR state = $2) AND payout_id > $3
         ORDER BY payout_id LIMIT $4"
    ))
    .bind::<Text, _>(merchant)
    .bind::<Nullable<Text>, _>(state)
    .bind::<Text, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ApplicationView {
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Text)]
    pub payment_id: String,
    #[diesel(sql_type = Text)]
    pub invoice_id: String,
    #[diesel(sql_type = Text)]
    pub tender: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Bool)]
    pub from_unapplied: bool,
}

/// Whose applications to read.
#[derive(Debug, Clone, Copy)]
pub enum ApplicationsOf<'a> {
    Payout(&'a str),
    Invoice(&'a str),
}

/// A payout's applications. One fixed statement per filter, and the probe
/// fenced (`OFFSET 0`) from the sort: a generic plan kept from empty tables
/// read every application of the merchant, with an optional filter (`$2 IS
/// NULL OR payout_id = $2`), or in key order to skip the sort.
pub const APPLICATIONS_OF_PAYOUT: &str = "
    SELECT order_id, payment_id, invoice_id, tender, currency_code, amount, from_unapplied
    FROM (SELECT * FROM cash_applications WHERE merchant_id = $1 AND payout_id = $2 OFFSET 0) a
    ORDER BY application_id";

/// An invoice's applications (as [`APPLICATIONS_OF_PAYOUT`]).
pub const APPLICATIONS_OF_INVOICE: &str = "
    SELECT order_id, payment_id, invoice_id, tender, currency_code, amount, from_unapplied
    FROM (SELECT * FROM cash_applications WHERE merchant_id = $1 AND invoice_id = $2 OFFSET 0) a
    ORDER BY application_id";

/// Applications of a payout, or to an invoice, in the order they were made.
pub async fn applications(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    of: ApplicationsOf<'_>,
) -> Result<Vec<ApplicationView>> {
    let (sql, id) = match of {
        ApplicationsOf::Payout(id) => (APPLICATIONS_OF_PAYOUT, id),
        ApplicationsOf::Invoice(id) => (APPLICATIONS_OF_INVOICE, id),
    };
    Ok(statement(sql)
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(id)
        .load(conn)
        .await?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct InvoiceView {
    #[diesel(sql_type = Text)]
    pub invoice_id: String,
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Date)]
    pub invoice_date: NaiveDate,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub total: Decimal,
    #[diesel(sql_type = Numeric)]
    pub applied: Decimal,
}

pub async fn invoice(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    id: &str,
) -> Result<Option<InvoiceView>> {
    let rows: Vec<InvoiceView> = statement(
        "SELECT invoice_id, order_id, invoice_date, currency_code, total, applied FROM invoices
         WHERE merchant_id = $1 AND invoice_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Open invoices, oldest first, after (date, id).
pub async fn open_invoices(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    after: Option<(NaiveDate, String)>,
    limit: i64,
) -> Result<Vec<InvoiceView>> {
    let (date, id) = after.unzip();
    Ok(statement(
        "SELECT invoice_id, order_id, invoice_date, currency_code, total, applied FROM invoices
         WHERE merchant_id = $1 AND applied < total
           AND ($2::date IS NULL OR (invoice_date, invoice_id) > ($2, $3))
         ORDER BY invoice_date, invoice_id LIMIT $4",
    )
    .bind::<Text, _>(merchant)
    .bind::<Nullable<Date>, _>(date)
    .bind::<Nullable<Text>, _>(id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Every open invoice's (date, currency, open), for the ageing totals.
pub async fn open_amounts(
    conn: &mut AsyncPgConnection,
    merchant: &str,
) -> Result<Vec<InvoiceView>> {
    Ok(statement(
        "SELECT invoice_id, order_id, invoice_date, currency_code, total, applied FROM invoices
         WHERE merchant_id = $1 AND applied < total",
    )
    .bind::<Text, _>(merchant)
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct EntryLineView {
    #[diesel(sql_type = BigInt)]
    pub entry_id: i64,
    #[diesel(sql_type = Text)]
    pub external_id: String,
    #[diesel(sql_type = BigInt)]
    pub export_seq: i64,
    #[diesel(sql_type = Date)]
    pub effective_date: NaiveDate,
    #[diesel(sql_type = Text)]
    pub entry_memo: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub payout_id: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub booked_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub line_no: i32,
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub debit: Decimal,
    #[diesel(sql_type = Numeric)]
    pub credit: Decimal,
    #[diesel(sql_type = Text)]
    pub memo: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub payout_id: Option<String>,
    pub order_id: Option<String>,
    pub account: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Entries after the export cursor `after_seq`, in export order, with their
/// lines (one row per line).
pub async fn entries(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    f: &EntryFilter,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<EntryLineView>> {
    Ok(statement(
        "WITH e AS (
           SELECT entry_id, external_id, export_seq, effective_date, memo, payout_id, booked_at
           FROM journal_entries je
           WHERE merchant_id = $1 AND export_seq > $2
             AND ($3::text IS NULL OR payout_id = $3)
             AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM journal_lines l
                  WHERE l.merchant_id = $1 AND l.entry_id = je.entry_id AND l.order_id = $4))
             AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM journal_lines l
                  WHERE l.merchant_id = $1 AND l.entry_id = je.entry_id AND l.account = $5))
             AND ($6::timestamptz IS NULL OR booked_at >= $6)
             AND ($7::timestamptz IS NULL OR booked_at < $7)
           ORDER BY export_seq LIMIT $8)
         SELECT e.entry_id, e.external_id, e.export_seq, e.effective_date, e.memo AS entry_memo,
             e.payout_id, e.booked_at, l.line_no, l.account, l.currency_code, l.debit, l.credit,
             l.memo, l.order_id
         FROM e JOIN journal_lines l ON l.merchant_id = $1 AND l.entry_id = e.entry_id
         ORDER BY e.export_seq, l.line_no",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(after_seq)
    .bind::<Nullable<Text>, _>(f.payout_id.as_deref())
    .bind::<Nullable<Text>, _>(f.order_id.as_deref())
    .bind::<Nullable<Text>, _>(f.account.as_deref())
    .bind::<Nullable<Timestamptz>, _>(f.start)
    .bind::<Nullable<Timestamptz>, _>(f.end)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct BalanceView {
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub balance: Decimal,
}

pub async fn trial_balance(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<Vec<BalanceView>> {
    Ok(statement(
        "SELECT l.account, l.currency_code, sum(l.debit - l.credit) AS balance
         FROM journal_lines l JOIN journal_entries e USING (merchant_id, entry_id)
         WHERE l.merchant_id = $1 AND ($2::timestamptz IS NULL OR e.booked_at <= $2)
         GROUP BY l.account, l.currency_code ORDER BY l.account, l.currency_code",
    )
    .bind::<Text, _>(merchant)
    .bind::<Nullable<Timestamptz>, _>(as_of)
    .load(conn)
    .await?)
}

/// The first journal entry Tally booked with a line for the order: when
/// reporting received it (GetHandoffTrace).
#[derive(QueryableByName)]
pub struct FirstBooking {
    #[diesel(sql_type = Text)]
    pub external_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub booked_at: DateTime<Utc>,
}

pub async fn first_booking(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    order_id: &str,
) -> Result<Option<FirstBooking>> {
    let mut rows: Vec<FirstBooking> = statement(
        "SELECT e.external_id, e.booked_at
         FROM journal_lines l
         JOIN journal_entries e ON e.merchant_id = l.merchant_id AND e.entry_id = l.entry_id
         WHERE l.merchant_id = $1 AND l.order_id = $2
         ORDER BY e.booked_at, e.entry_id LIMIT 1",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(order_id)
    .load(conn)
    .await?;
    Ok(rows.pop())
}
