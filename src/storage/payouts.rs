//! Follow-ups on a payout after it was applied: the refund a late credit memo booked (its
//! balance transaction, and which payout left it on clearing), that payout's residual
//! adjusted. SQL only.

use diesel::QueryableByName;
use diesel::sql_types::{Array, Jsonb, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::record::Record;
use crate::error::{Error, Result};

/// An applied payout with money left on processor clearing.
#[derive(Debug, Clone, QueryableByName)]
pub struct OpenResidual {
    #[diesel(sql_type = Text)]
    pub payout_id: String,
    #[diesel(sql_type = Text)]
    pub currency_code: String,
    #[diesel(sql_type = Numeric)]
    pub residual: Decimal,
}

/// The applied payout whose balance transaction settled `refund_id` (its source), when that
/// payout still has a residual on clearing. Locked: two late memos settle it one at a time.
pub async fn residual_of_refund(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    refund_id: &str,
) -> Result<Option<OpenResidual>> {
    let rows: Vec<OpenResidual> = statement(
        "SELECT p.payout_id, p.currency_code, p.residual FROM payouts p
         WHERE p.merchant_id = $1 AND p.state = 'applied' AND p.residual <> 0
           AND p.payout_id IN (
             SELECT r.payload -> 'body' ->> 'payout_id' FROM record_log r
             WHERE r.merchant_id = $1 AND r.is_current
               AND r.kind = 'balance_transaction'
               AND (r.payload -> 'body' ->> 'source' = $2 OR r.source_id = $2))
         ORDER BY p.payout_id LIMIT 1
         FOR UPDATE",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(refund_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

pub async fn set_residual(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
    residual: Decimal,
) -> Result<()> {
    statement(
        "UPDATE payouts SET residual = $3, updated_at = now()
         WHERE merchant_id = $1 AND payout_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .bind::<Numeric, _>(residual)
    .execute(conn)
    .await?;
    Ok(())
}

/// The balance transactions (current versions) that settled these refunds (their source).
pub async fn refund_txns(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    refund_ids: &[String],
) -> Result<Vec<Record>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Jsonb)]
        payload: serde_json::Value,
    }
    let rows: Vec<Row> = statement(
        "SELECT payload FROM record_log WHERE merchant_id = $1 AND is_current
           AND kind = 'balance_transaction' AND payload -> 'body' ->> 'source' = ANY($2)
         ORDER BY record_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(refund_ids)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            serde_json::from_value(r.payload).map_err(|e| Error::corrupt("a stored record", e))
        })
        .collect()
}
