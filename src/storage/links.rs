//! order_refs, record_refs and record_links: which external ids belong to
//! which order, which ids a record of no single order names, and the links
//! between the two. Callers hold the ref locks of every id they pass, so a
//! concurrent writer of the other side has committed before these run.

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::statement::{Bind, statement};
use crate::error::Result;

#[derive(QueryableByName)]
struct Linked {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = BigInt)]
    record_id: i64,
}

/// Ids known to belong to orders: (ref id, order id).
pub async fn add_order_refs(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    refs: &[(String, String)],
) -> Result<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let (ids, orders): (Vec<&str>, Vec<&str>) =
        refs.iter().map(|(r, o)| (r.as_str(), o.as_str())).unzip();
    statement(
        "INSERT INTO order_refs (merchant_id, ref_id, order_id)
         SELECT DISTINCT $1, * FROM UNNEST($2::text[], $3::text[]) ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<Text>, _>(orders)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Ids records of no single order point at: (ref id, record id).
pub async fn add_record_refs(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    refs: &[(String, i64)],
) -> Result<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let (ids, records): (Vec<&str>, Vec<i64>) =
        refs.iter().map(|(r, id)| (r.as_str(), *id)).unzip();
    statement(
        "INSERT INTO record_refs (merchant_id, ref_id, record_id)
         SELECT DISTINCT $1, * FROM UNNEST($2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<BigInt>, _>(records)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Each id is looked up on both sides with its own index probes (the
/// LATERAL subqueries with `OFFSET 0` cannot be flattened into a join over
/// the merchant's whole tables, whatever the statistics say).
pub const LINK: &str = "
    INSERT INTO record_links (merchant_id, order_id, record_id)
    SELECT DISTINCT $1, o.order_id, rr.record_id
    FROM (SELECT DISTINCT UNNEST($2::text[])) AS k(ref_id)
    CROSS JOIN LATERAL (
        SELECT rr.record_id FROM record_refs rr
        WHERE rr.merchant_id = $1 AND rr.ref_id = k.ref_id OFFSET 0) rr
    CROSS JOIN LATERAL (
        SELECT o.order_id FROM order_refs o
        WHERE o.merchant_id = $1 AND o.ref_id = k.ref_id OFFSET 0) o
    ON CONFLICT DO NOTHING
    RETURNING order_id, record_id";

/// Links every record that names one of `ids` to every order that owns it,
/// whichever side arrived first. Returns the orders that gained a record and
/// the records that gained an order, sorted.
pub async fn link(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    ids: &[String],
) -> Result<(Vec<String>, Vec<i64>)> {
    if ids.is_empty() {
        return Ok((vec![], vec![]));
    }
    let linked: Vec<Linked> = statement(LINK)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(ids)
        .load(&mut conn)
        .await?;
    let mut records: Vec<i64> = linked.iter().map(|r| r.record_id).collect();
    records.sort_unstable();
    records.dedup();
    let mut orders: Vec<String> = linked.into_iter().map(|r| r.order_id).collect();
    orders.sort();
    orders.dedup();
    Ok((orders, records))
}

#[derive(QueryableByName)]
struct RecordOrder {
    #[diesel(sql_type = BigInt)]
    record_id: i64,
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// The orders each of these records is linked to, sorted.
pub async fn orders_of_records(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    record_ids: &[i64],
) -> Result<std::collections::BTreeMap<i64, Vec<String>>> {
    let rows: Vec<RecordOrder> = statement(
        "SELECT record_id, order_id FROM record_links
         WHERE merchant_id = $1 AND record_id = ANY($2) ORDER BY record_id, order_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<BigInt>, _>(record_ids)
    .load(conn)
    .await?;
    let mut out: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for r in rows {
        out.entry(r.record_id).or_default().push(r.order_id);
    }
    Ok(out)
}
