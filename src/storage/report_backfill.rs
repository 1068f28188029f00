//! Counting records stored before period reports existed: per merchant,
//! its stored versions up to the last record id at the upgrade, in
//! knowledge order from a cursor, each chunk committed with its cursor.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Numeric, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;

use super::Conn;
use super::report_facts::VersionFact;
use super::statement::{Bind, statement};
use crate::error::Result;

/// A delta of a past knowledge time: (known_at, event bucket, figure,
/// currency, amount, count).
pub type PastDelta = (DateTime<Utc>, DateTime<Utc>, String, String, Decimal, i64);

/// A merchant's backfill, locked for this transaction.
#[derive(QueryableByName)]
pub struct Pending {
    #[diesel(sql_type = Text)]
    pub merchant_id: String,
    #[diesel(sql_type = BigInt)]
    pub upto_record_id: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub after_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    pub after_id: i64,
}

#[derive(QueryableByName)]
struct Merchant {
    #[diesel(sql_type = Text)]
    merchant_id: String,
}

/// One pending backfill no other replica is working on. Which merchants
/// are pending is a plain read across merchants (on Citus, every shard);
/// the row is then locked by merchant, so the lock is a router query (Citus
/// takes FOR UPDATE SKIP LOCKED only on one shard).
pub async fn claim(conn: &mut Conn) -> Result<Option<Pending>> {
    let pending: Vec<Merchant> =
        statement("SELECT merchant_id FROM report_backfills ORDER BY merchant_id")
            .load(conn)
            .await?;
    for m in pending {
        let mut rows: Vec<Pending> = statement(
            "SELECT merchant_id, upto_record_id, after_time, after_id FROM report_backfills
             WHERE merchant_id = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<Text, _>(&m.merchant_id)
        .load(conn)
        .await?;
        if let Some(p) = rows.pop() {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Stored versions up to `p.upto_record_id` after the cursor, in
/// (receive_time, record_id) order; `at`: only those received at that time.
pub async fn versions(
    conn: &mut Conn,
    p: &Pending,
    at: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<VersionFact>> {
    super::report_facts::versions_in_order(
        conn,
        &p.merchant_id,
        p.upto_record_id,
        p.after_time.map(|t| (t, p.after_id)),
        at,
        limit,
    )
    .await
}

/// Writes deltas of past knowledge times: (known_at, bucket, figure,
/// currency, amount, count), each key once (the caller merged them).
pub async fn insert(conn: &mut Conn, merchant: &str, rows: Vec<PastDelta>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (k, b, f, cur, a, n) in rows {
        c.0.push(k);
        c.1.push(b);
        c.2.push(f);
        c.3.push(cur);
        c.4.push(a);
        c.5.push(n);
    }
    statement(
        "INSERT INTO report_deltas (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
         SELECT $1, t.b, t.k, t.f, t.c, t.a, t.n
         FROM UNNEST($2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], $6::numeric[], $7::bigint[])
           AS t(k, b, f, c, a, n)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Timestamptz>, _>(c.0)
    .bind::<Array<Timestamptz>, _>(c.1)
    .bind::<Array<Text>, _>(c.2)
    .bind::<Array<Text>, _>(c.3)
    .bind::<Array<Numeric>, _>(c.4)
    .bind::<Array<BigInt>, _>(c.5)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the cursor, or ends the merchant's backfill (`None`).
pub async fn advance(
    conn: &mut Conn,
    merchant: &str,
    cursor: Option<(DateTime<Utc>, i64)>,
) -> Result<()> {
    match cursor {
        Some((t, id)) => {
            statement(
                "UPDATE report_backfills SET after_time = $2, after_id = $3 WHERE merchant_id = $1",
            )
            .bind::<Text, _>(merchant)
            .bind::<Timestamptz, _>(t)
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await?
        }
        None => {
            statement("DELETE FROM report_backfills WHERE merchant_id = $1")
                .bind::<Text, _>(merchant)
                .execute(conn)
                .await?
        }
    };
    Ok(())
}
