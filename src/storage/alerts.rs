//! alert_deliveries: the outbox of exception alerts (one per exception,
//! written by the exceptions trigger), claimed with SKIP LOCKED.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Numeric, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::statement::{Bind, statement};
use crate::error::Result;

#[derive(QueryableByName)]
struct MerchantRow {
    #[diesel(sql_type = Text)]
    merchant_id: String,
}

/// Merchants with an alert due, one index probe per merchant.
pub async fn merchants_due(conn: &mut Conn) -> Result<Vec<String>> {
    let rows: Vec<MerchantRow> = statement(
        "WITH RECURSIVE m(merchant_id) AS (
             SELECT min(merchant_id) FROM alert_deliveries WHERE state = 'pending'
             UNION ALL
             SELECT (SELECT min(a.merchant_id) FROM alert_deliveries a
                     WHERE a.state = 'pending' AND a.merchant_id > m.merchant_id)
             FROM m WHERE m.merchant_id IS NOT NULL)
         SELECT m.merchant_id FROM m WHERE m.merchant_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM alert_deliveries a WHERE a.merchant_id = m.merchant_id
                       AND a.state = 'pending' AND a.next_attempt <= now())",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.merchant_id).collect())
}

/// An alert to send, with what it says.
#[derive(Debug, Clone, QueryableByName)]
pub struct Due {
    #[diesel(sql_type = SqlUuid)]
    pub exception_id: Uuid,
    #[diesel(sql_type = Text)]
    pub webhook_uri: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Text)]
    pub r#type: String,
    #[diesel(sql_type = Text)]
    pub handoff: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub order_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub summary: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub owner: Option<String>,
    #[diesel(sql_type = Nullable<Numeric>)]
    pub at_risk_amount: Option<rust_decimal::Decimal>,
    #[diesel(sql_type = Nullable<Text>)]
    pub at_risk_currency: Option<String>,
}

/// Claims up to `limit` due alerts of a merchant, locked until the
/// caller's transaction ends: another loop skips them.
pub async fn claim(conn: &mut Conn, merchant: &str, limit: i64) -> Result<Vec<Due>> {
    Ok(statement(
        "SELECT a.exception_id, a.webhook_uri, a.attempts, e.type, e.handoff, e.order_id,
                e.summary, e.owner, e.at_risk_amount, e.at_risk_currency
         FROM alert_deliveries a
         JOIN exceptions e ON e.merchant_id = a.merchant_id AND e.exception_id = a.exception_id
         WHERE a.merchant_id = $1 AND a.state = 'pending' AND a.next_attempt <= now()
         ORDER BY a.next_attempt LIMIT $2
         FOR UPDATE OF a SKIP LOCKED",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Records an attempt: delivered, or failed with its error and the time
/// of the next try.
pub async fn record(
    conn: &mut Conn,
    merchant: &str,
    id: Uuid,
    error: Option<&str>,
    retry_in_ms: i64,
) -> Result<()> {
    statement(
        "UPDATE alert_deliveries SET attempts = attempts + 1,
            state = CASE WHEN $3::text IS NULL THEN 'delivered' ELSE 'pending' END,
            deliver_time = CASE WHEN $3::text IS NULL THEN now() END,
            last_error = $3,
            next_attempt = now() + make_interval(secs => $4::double precision / 1000)
         WHERE merchant_id = $1 AND exception_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Text>, _>(error)
    .bind::<BigInt, _>(retry_in_ms)
    .execute(conn)
    .await?;
    Ok(())
}
