//! record_log: every record as received, append-only. Inserting a batch,
//! looking up the accepted row of keys, and reading an order's records back
//! (its own, and those linked to it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bytea, Jsonb, Nullable, Numeric, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::{Body, Record, RecordKey, RecordKind};
use crate::domain::transaction::StoredRecord;
use crate::error::{Error, Result};

/// The accepted row of a key: what a resubmission is judged against.
#[derive(QueryableByName)]
pub struct AcceptedRow {
    #[diesel(sql_type = Text)]
    pub source_system: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub source_id: String,
    #[diesel(sql_type = BigInt)]
    pub record_id: i64,
    #[diesel(sql_type = Bytea)]
    pub content_hash: Vec<u8>,
    #[diesel(sql_type = Nullable<Text>)]
    pub order_id: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub receive_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub currency_code: Option<String>,
    #[diesel(sql_type = Nullable<Numeric>)]
    pub amount: Option<Decimal>,
}

impl AcceptedRow {
    /// The headline amount as logged, where it has one.
    pub fn headline(&self) -> Option<Money> {
        match (&self.currency_code, self.amount) {
            (Some(c), Some(a)) => Currency::from_code(c).map(|c| Money::new(a, c)),
            _ => None,
        }
    }

    pub fn key(&self) -> Option<RecordKey> {
        Some(RecordKey {
            source_system: self.source_system.clone(),
            kind: RecordKind::parse(&self.kind)?,
            source_id: self.source_id.clone(),
        })
    }
}

/// Columns of record_log, one Vec per column, for an UNNEST insert.
#[derive(Default)]
pub struct LogColumns {
    source_system: Vec<String>,
    kind: Vec<String>,
    source_id: Vec<String>,
    order_id: Vec<Option<String>>,
    outcome: Vec<String>,
    original_id: Vec<Option<i64>>,
    content_hash: Vec<Vec<u8>>,
    payload: Vec<serde_json::Value>,
    currency_code: Vec<Option<String>>,
    amount: Vec<Option<Decimal>>,
    debit_total: Vec<Option<Decimal>>,
    credit_total: Vec<Option<Decimal>>,
    event_time: Vec<DateTime<Utc>>,
    trace_id: Vec<Option<String>>,
    span_id: Vec<Option<String>>,
}

/// The trace a record arrived in and its own span (lowercase hex), when
/// tracing is on.
pub type TraceIds = Option<(String, String)>;

impl LogColumns {
    pub fn push(
        &mut self,
        r: &Record,
        hash: &[u8; 32],
        outcome: &str,
        original: Option<i64>,
        trace: TraceIds,
    ) {
        self.source_system.push(r.source_system.clone());
        self.kind.push(r.kind().as_str().to_string());
        self.source_id.push(r.source_id.clone());
        self.order_id.push(r.order_id.clone());
        self.outcome.push(outcome.to_string());
        self.original_id.push(original);
        self.content_hash.push(hash.to_vec());
        self.payload
            .push(serde_json::to_value(r).expect("records always serialise"));
        let headline = r.headline_amount();
        self.currency_code
            .push(headline.map(|m| m.currency.code().to_string()));
        self.amount.push(headline.map(|m| m.amount));
        let (d, c) = match &r.body {
            Body::JournalEntry(j) => (Some(j.total_debits()), Some(j.total_credits())),
            _ => (None, None),
        };
        self.debit_total.push(d);
        self.credit_total.push(c);
        self.event_time.push(r.event_time);
        let (trace_id, span_id) = trace.unzip();
        self.trace_id.push(trace_id);
        self.span_id.push(span_id);
    }

    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }

    /// Inserts every row; accepted rows that lose a race for their key are
    /// skipped, and only the rows actually written come back.
    pub async fn insert(
        self,
        conn: &mut AsyncPgConnection,
        merchant: &str,
        request_id: Option<&str>,
    ) -> Result<Vec<AcceptedRow>> {
        const SQL: &str = "
            INSERT INTO record_log (merchant_id, source_system, kind, source_id, order_id, outcome,
                original_id, content_hash, payload, currency_code, amount, debit_total, credit_total,
                event_time, trace_id, span_id, request_id)
            SELECT $1, t.* , $15
            FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                $8::bytea[], $9::jsonb[], $10::text[], $11::numeric[], $12::numeric[], $13::numeric[],
                $14::timestamptz[], $16::text[], $17::text[])
              AS t(source_system, kind, source_id, order_id, outcome, original_id, content_hash,
                payload, currency_code, amount, debit_total, credit_total, event_time, trace_id,
                span_id)
            ON CONFLICT (merchant_id, source_system, kind, source_id) WHERE outcome = 'accepted'
              DO NOTHING
            RETURNING source_system, kind, source_id, record_id, content_hash, order_id, receive_time,
                event_time, currency_code, amount";
        Ok(statement(SQL)
            .bind::<Text, _>(merchant)
            .bind::<Array<Text>, _>(self.source_system)
            .bind::<Array<Text>, _>(self.kind)
            .bind::<Array<Text>, _>(self.source_id)
            .bind::<Array<Nullable<Text>>, _>(self.order_id)
            .bind::<Array<Text>, _>(self.outcome)
            .bind::<Array<Nullable<BigInt>>, _>(self.original_id)
            .bind::<Array<Bytea>, _>(self.content_hash)
            .bind::<Array<Jsonb>, _>(self.payload)
            .bind::<Array<Nullable<Text>>, _>(self.currency_code)
            .bind::<Array<Nullable<Numeric>>, _>(self.amount)
            .bind::<Array<Nullable<Numeric>>, _>(self.debit_total)
            .bind::<Array<Nullable<Numeric>>, _>(self.credit_total)
            .bind::<Array<Timestamptz>, _>(self.event_time)
            .bind::<Nullable<Text>, _>(request_id)
            .bind::<Array<Nullable<Text>>, _>(self.trace_id)
            .bind::<Array<Nullable<Text>>, _>(self.span_id)
            .load(conn)
            .await?)
    }
}

/// The accepted rows of these keys, where they exist.
pub async fn fetch_accepted(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    keys: &[&RecordKey],
) -> Result<Vec<AcceptedRow>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    Ok(statement(
        "SELECT r.source_system, r.kind, r.source_id, r.record_id, r.content_hash, r.order_id,
                r.receive_time, r.event_time, r.currency_code, r.amount
         FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(source_system, kind, source_id)
         JOIN record_log r ON r.merchant_id = $1 AND r.outcome = 'accepted'
          AND r.source_system = k.source_system AND r.kind = k.kind AND r.source_id = k.source_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(
        keys.iter()
            .map(|k| k.source_system.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.kind.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.source_id.clone()).collect::<Vec<_>>())
    .load(conn)
    .await?)
}

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
pub async fn load_records(
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
        let record: Record = serde_json::from_value(row.payload)
            .map_err(|e| Error::corrupt(format!("a stored record of order {}", row.order_id), e))?;
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
