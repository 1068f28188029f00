//! expectations: the deadline of every open handoff (what should arrive
//! next for an order, by when), read by the sweeper through the
//! (merchant_id, due_time) index of unraised ones, never by a scan of
//! orders.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::Conn;
use super::statement::{Bind, statement};
use crate::error::Result;

/// An open handoff of an order, as the write path finds it.
pub struct Open {
    pub order_id: String,
    pub handoff: &'static str,
    pub expected_kind: &'static str,
    pub lag_seconds: i64,
    pub at_risk: Option<serde_json::Value>,
}

/// What a sync changed: (order, handoff) of the expectations it removed
/// (met) and of those it opened (new, not merely updated).
#[derive(Debug, Default)]
pub struct Synced {
    pub met: Vec<(String, String)>,
    pub opened: Vec<(String, String)>,
}

#[derive(QueryableByName)]
struct Changed {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    handoff: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    new: bool,
}

/// Makes the expectations of `orders` exactly `open`: new ones get their
/// deadline from now (a deadline once set stays), met ones are removed.
pub async fn sync(
    mut conn: &Conn,
    merchant: &str,
    orders: &[String],
    open: &[Open],
) -> Result<Synced> {
    let delete = statement(
        "DELETE FROM expectations e
         WHERE e.merchant_id = $1 AND e.order_id = ANY($2)
           AND NOT EXISTS (SELECT 1 FROM UNNEST($3::text[], $4::text[]) AS o(order_id, handoff)
                           WHERE o.order_id = e.order_id AND o.handoff = e.handoff)
         RETURNING e.order_id, e.handoff, false AS new",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .bind::<Array<Text>, _>(open.iter().map(|o| o.order_id.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(open.iter().map(|o| o.handoff).collect::<Vec<_>>())
    .load::<Changed>(&mut conn);
    let pairs = |rows: Vec<Changed>| rows.into_iter().map(|c| (c.order_id, c.handoff)).collect();
    if open.is_empty() {
        let met = delete.await?;
        return Ok(Synced {
            met: pairs(met),
            opened: vec![],
        });
    }
    // xmax = 0: the row was inserted by this statement, not updated.
    let upsert = statement(
        "INSERT INTO expectations AS x (merchant_id, order_id, handoff, expected_kind, due_time, at_risk)
         SELECT $1, o.order_id, o.handoff, o.kind, now() + make_interval(secs => o.lag), o.at_risk
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[])
           AS o(order_id, handoff, kind, lag, at_risk)
         ON CONFLICT (merchant_id, order_id, handoff) DO UPDATE SET at_risk = EXCLUDED.at_risk
         RETURNING x.order_id, x.handoff, (x.xmax = 0) AS new",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(open.iter().map(|o| o.order_id.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(open.iter().map(|o| o.handoff).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(open.iter().map(|o| o.expected_kind).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(open.iter().map(|o| o.lag_seconds).collect::<Vec<_>>())
    .bind::<Array<Nullable<Jsonb>>, _>(open.iter().map(|o| o.at_risk.clone()).collect::<Vec<_>>())
    .load::<Changed>(&mut conn);
    // Sent together, one round trip (the delete spares the rows upserted).
    let (met, written) = futures::try_join!(delete, upsert)?;
    Ok(Synced {
        met: pairs(met),
        opened: pairs(written.into_iter().filter(|c| c.new).collect()),
    })
}

/// The event times of `orders` as stored (for orders a caller did not merge).
pub async fn order_event_times(
    mut conn: &Conn,
    merchant: &str,
    orders: &[String],
) -> Result<Vec<(String, DateTime<Utc>)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        order_id: String,
        #[diesel(sql_type = Timestamptz)]
        event_time: DateTime<Utc>,
    }
    let rows: Vec<Row> = statement(
        "SELECT order_id, event_time FROM transactions WHERE merchant_id = $1 AND order_id = ANY($2)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.order_id, r.event_time))
        .collect())
}

#[derive(QueryableByName)]
struct MerchantRow {
    #[diesel(sql_type = Text)]
    merchant_id: String,
}

/// Merchants with an expectation past due, by a loose index scan (one
/// probe per merchant, not a read of every row).
pub async fn merchants_due(conn: &mut Conn) -> Result<Vec<String>> {
    let sql = if super::citus::installed(conn).await? {
        "SELECT DISTINCT merchant_id FROM expectations WHERE NOT raised AND due_time <= now()"
    } else {
        MERCHANTS_DUE
    };
    let rows: Vec<MerchantRow> = statement(sql).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.merchant_id).collect())
}

const MERCHANTS_DUE: &str = "WITH RECURSIVE m(merchant_id) AS (
             SELECT min(merchant_id) FROM expectations WHERE NOT raised
             UNION ALL
             SELECT (SELECT min(e.merchant_id) FROM expectations e
                     WHERE NOT e.raised AND e.merchant_id > m.merchant_id)
             FROM m WHERE m.merchant_id IS NOT NULL)
         SELECT m.merchant_id FROM m WHERE m.merchant_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM expectations e WHERE e.merchant_id = m.merchant_id
                       AND NOT e.raised AND e.due_time <= now())";

/// An expectation past its deadline, claimed by one sweeper.
#[derive(Debug, Clone, QueryableByName)]
pub struct Due {
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Text)]
    pub handoff: String,
    #[diesel(sql_type = Text)]
    pub expected_kind: String,
    #[diesel(sql_type = Timestamptz)]
    pub due_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub at_risk: Option<serde_json::Value>,
}

/// Claims up to `limit` of the merchant's past-due expectations and marks
/// them raised; rows another sweeper or a write holds are skipped (SKIP
/// LOCKED), so two sweepers never raise one twice.
pub async fn claim_due(conn: &mut Conn, merchant: &str, limit: i64) -> Result<Vec<Due>> {
    Ok(statement(
        "UPDATE expectations e SET raised = true
         FROM (SELECT order_id, handoff FROM expectations
               WHERE merchant_id = $1 AND NOT raised AND due_time <= now()
               ORDER BY due_time LIMIT $2
               FOR UPDATE SKIP LOCKED) d
         WHERE e.merchant_id = $1 AND e.order_id = d.order_id AND e.handoff = d.handoff
         RETURNING e.order_id, e.handoff, e.expected_kind, e.due_time, e.at_risk",
    )
    .bind::<Text, _>(merchant)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}
