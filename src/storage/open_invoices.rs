//! Open invoices by date: the candidates a charge naming no order is matched
//! against. Merchant-scoped, read through the partial index `invoices_open`.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Date, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::cash_application::orphans::OpenInvoice;
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::error::Result;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    invoice_id: String,
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Date)]
    invoice_date: NaiveDate,
    #[diesel(sql_type = Numeric)]
    open: Decimal,
}

/// Up to `limit` invoices in `currency` dated in `[earliest, latest]` with
/// money still owed, oldest first (the caller asks one more than it will
/// search, to tell "too many").
pub async fn in_window(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    currency: Currency,
    (earliest, latest): (NaiveDate, NaiveDate),
    limit: i64,
) -> Result<Vec<OpenInvoice>> {
    let rows: Vec<Row> = statement(
        "SELECT invoice_id, order_id, invoice_date, total - applied AS open FROM invoices
         WHERE merchant_id = $1 AND applied < total AND invoice_date BETWEEN $2 AND $3
           AND currency_code = $4
         ORDER BY invoice_date, invoice_id LIMIT $5",
    )
    .bind::<Text, _>(merchant)
    .bind::<Date, _>(earliest)
    .bind::<Date, _>(latest)
    .bind::<Text, _>(currency.code())
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OpenInvoice {
            invoice_id: r.invoice_id,
            order_id: r.order_id,
            date: r.invoice_date,
            open: Money::new(r.open, currency),
        })
        .collect())
}
