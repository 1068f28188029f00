//! Reading an order's records back from the log: the one input of both
//! matching (on write) and the canonical transaction (on read).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Jsonb, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::statement::{Bind, statement};
use crate::domain::record::Record;
use crate::domain::transaction::StoredRecord;
use crate::error::{Error, Result};

#[derive(QueryableByName)]
struct LoadedRecord {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    receive_time: DateTime<Utc>,
}

/// Every accepted record of each order: its own, and those tied to it
/// through the ids they name.
pub(crate) async fn load_records(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<BTreeMap<String, Vec<StoredRecord>>> {
    let rows: Vec<LoadedRecord> = statement(
        "SELECT order_id, payload, receive_time FROM record_log
         WHERE merchant_id = $1 AND outcome = 'accepted' AND order_id = ANY($2)
         UNION ALL
         SELECT l.order_id, r.payload, r.receive_time
         FROM record_links l JOIN record_log r USING (merchant_id, record_id)
         WHERE l.merchant_id = $1 AND l.order_id = ANY($2)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .load(conn)
    .await?;
    let mut by_order: BTreeMap<String, Vec<StoredRecord>> = BTreeMap::new();
    for row in rows {
        let record: Record = serde_json::from_value(row.payload).map_err(|e| {
            Error::Internal(format!(
                "a stored record of order {} is unreadable: {e}",
                row.order_id
            ))
        })?;
        by_order
            .entry(row.order_id)
            .or_default()
            .push(StoredRecord {
                record,
                receive_time: row.receive_time,
            });
    }
    Ok(by_order)
}
