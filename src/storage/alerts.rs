//! alert_deliveries: the outbox of exception alerts (one per exception,
//! written by the exceptions trigger). A claim is a lease, not a lock held
//! open: one statement picks due rows with SKIP LOCKED and pushes their
//! `next_attempt` past the POST's timeout, and commits; the result of the
//! POST is recorded afterwards. A worker that dies mid-POST leaves the row
//! to be claimed again once the lease ends.

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
    let sql = if super::citus::installed(conn).await? {
        "SELECT DISTINCT merchant_id FROM alert_deliveries
         WHERE state = 'pending' AND next_attempt <= now()"
    } else {
        MERCHANTS_DUE
    };
    let rows: Vec<MerchantRow> = statement(sql).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.merchant_id).collect())
}

const MERCHANTS_DUE: &str = "WITH RECURSIVE m(merchant_id) AS (
             SELECT min(merchant_id) FROM alert_deliveries WHERE state = 'pending'
             UNION ALL
             SELECT (SELECT min(a.merchant_id) FROM alert_deliveries a
                     WHERE a.state = 'pending' AND a.merchant_id > m.merchant_id)
             FROM m WHERE m.merchant_id IS NOT NULL)
         SELECT m.merchant_id FROM m WHERE m.merchant_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM alert_deliveries a WHERE a.merchant_id = m.merchant_id
                       AND a.state = 'pending' AND a.next_attempt <= now())";

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
    /// The stored span of the newest traced record of the exception's
    /// order: the record whose arrival (or whose wait) raised it.
    #[diesel(sql_type = Nullable<Text>)]
    pub trace_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub span_id: Option<String>,
}

/// Claims up to `limit` due alerts of a merchant for `lease_ms`: until
/// then no other worker picks them. Autocommitted: no transaction stays
/// open while the caller POSTs.
pub async fn claim(conn: &mut Conn, merchant: &str, limit: i64, lease_ms: i64) -> Result<Vec<Due>> {
    Ok(statement(
        "WITH due AS (
             SELECT a.exception_id FROM alert_deliveries a
             WHERE a.merchant_id = $1 AND a.state = 'pending' AND a.next_attempt <= now()
             ORDER BY a.next_attempt LIMIT $2
             FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE alert_deliveries a
             SET next_attempt = now() + make_interval(secs => $3::double precision / 1000)
             FROM due WHERE a.merchant_id = $1 AND a.exception_id = due.exception_id
             RETURNING a.exception_id, a.webhook_uri, a.attempts)
         SELECT c.exception_id, c.webhook_uri, c.attempts, e.type, e.handoff, e.order_id,
                e.summary, e.owner, e.at_risk_amount, e.at_risk_currency, t.trace_id, t.span_id
         FROM claimed c
         JOIN exceptions e ON e.merchant_id = $1 AND e.exception_id = c.exception_id
         LEFT JOIN LATERAL (
             SELECT r.trace_id, r.span_id FROM record_log r
             WHERE r.merchant_id = $1 AND r.order_id = e.order_id AND r.is_current
               AND r.trace_id IS NOT NULL
             ORDER BY r.record_id DESC LIMIT 1) t ON true",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(lease_ms)
    .load(conn)
    .await?)
}

/// Records an attempt: delivered, or failed with its error and the time
/// of the next try. A row delivered already stays delivered (a late
/// failure of a claim whose lease ran out changes nothing).
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
            deliver_time = CASE WHEN $3::text IS NULL THEN $5 END,
            last_error = $3,
            next_attempt = now() + make_interval(secs => $4::double precision / 1000)
         WHERE merchant_id = $1 AND exception_id = $2 AND state = 'pending'",
    )
    .bind::<Text, _>(merchant)
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Text>, _>(error)
    .bind::<BigInt, _>(retry_in_ms)
    // A parameter, not now(): Citus refuses now() inside CASE.
    .bind::<diesel::sql_types::Timestamptz, _>(chrono::Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}
