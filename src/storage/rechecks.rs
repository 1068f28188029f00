//! rechecks: when an order must be matched again though no record arrives
//! (a comparison held back by a contract's lag runs out), read by the
//! sweeper through the (merchant_id, due_time) index, never a scan of
//! orders.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::Conn;
use super::statement::{Bind, statement};
use crate::error::Result;

/// Makes the rechecks of `orders` exactly `due` (order, deadline): orders
/// with nothing held lose theirs.
pub async fn sync(
    mut conn: &Conn,
    merchant: &str,
    orders: &[String],
    due: &[(String, DateTime<Utc>)],
) -> Result<()> {
    let (ids, times): (Vec<String>, Vec<DateTime<Utc>>) = due.iter().cloned().unzip();
    let delete = statement(
        "DELETE FROM rechecks WHERE merchant_id = $1 AND order_id = ANY($2)
           AND NOT (order_id = ANY($3))",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .bind::<Array<Text>, _>(&ids)
    .execute(&mut conn);
    if ids.is_empty() {
        delete.await?;
        return Ok(());
    }
    let upsert = statement(
        "INSERT INTO rechecks (merchant_id, order_id, due_time)
         SELECT $1, o.order_id, o.due FROM UNNEST($2::text[], $3::timestamptz[]) AS o(order_id, due)
         ON CONFLICT (merchant_id, order_id) DO UPDATE SET due_time = EXCLUDED.due_time",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Timestamptz>, _>(&times)
    .execute(&mut conn);
    // Sent together, one round trip (the delete spares the rows upserted).
    futures::try_join!(delete, upsert)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    merchant_id: String,
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// Up to `limit` due rechecks, oldest deadline first, as (merchant,
/// order); one index probe per merchant (a loose index scan).
pub async fn due(conn: &mut Conn, limit: i64) -> Result<Vec<(String, String)>> {
    let sql = if super::citus::installed(conn).await? {
        // Every shard's due rows, the oldest first, `limit` in all (the
        // loose scan below takes up to `limit` per merchant): either bound
        // keeps one sweep short, and the next sweep takes the rest.
        "SELECT merchant_id, order_id FROM rechecks WHERE due_time <= now()
         ORDER BY due_time LIMIT $1"
    } else {
        DUE
    };
    let rows: Vec<Row> = statement(sql).bind::<BigInt, _>(limit).load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.merchant_id, r.order_id))
        .collect())
}

const DUE: &str = "WITH RECURSIVE m(merchant_id) AS (
             SELECT min(merchant_id) FROM rechecks
             UNION ALL
             SELECT (SELECT min(r.merchant_id) FROM rechecks r WHERE r.merchant_id > m.merchant_id)
             FROM m WHERE m.merchant_id IS NOT NULL)
         SELECT d.merchant_id, d.order_id FROM m CROSS JOIN LATERAL (
             SELECT r.merchant_id, r.order_id FROM rechecks r
             WHERE r.merchant_id = m.merchant_id AND r.due_time <= now()
             ORDER BY r.due_time LIMIT $1) d
         WHERE m.merchant_id IS NOT NULL";

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// Removes the rechecks of `orders` that are still due and returns their
/// orders. The caller holds the orders' locks, so a write that moved a
/// deadline meanwhile is seen here and its order left alone.
pub async fn take(conn: &mut Conn, merchant: &str, orders: &[String]) -> Result<Vec<String>> {
    Ok(statement(
        "DELETE FROM rechecks WHERE merchant_id = $1 AND order_id = ANY($2) AND due_time <= now()
         RETURNING order_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .load::<OrderRow>(conn)
    .await?
    .into_iter()
    .map(|r| r.order_id)
    .collect())
}
