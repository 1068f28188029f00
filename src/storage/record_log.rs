//! record_log: every record as received. Inserting a batch, looking up the
//! current version of keys, superseding versions, and reading an order's
//! records back (its own, and those linked to it; current versions only)
//! and the history of records that changed at their source.
//!
//! The log is append-only but for one flag: `is_current`, turned off on the
//! version a later one supersedes. A partial unique index allows one
//! current row per key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Jsonb, Nullable, Numeric, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::{Body, Record, RecordKey, RecordKind};
use crate::domain::transaction::StoredRecord;
use crate::error::{Error, Result};

/// The current version of a key: what a resubmission is judged against.
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
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub source_update_time: Option<DateTime<Utc>>,
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
    source_update_time: Vec<Option<DateTime<Utc>>>,
    is_current: Vec<bool>,
    trace_id: Vec<Option<String>>,
    span_id: Vec<Option<String>>,
}

/// The trace a record arrived in and its own span (lowercase hex), when
/// tracing is on.
pub type TraceIds = Option<(String, String)>;

impl LogColumns {
    /// One row; `outcome` "accepted" or "updated" makes it the key's current
    /// version, anything else is the audit trail of an arrival.
    pub fn push(
        &mut self,
        r: &Record,
        hash: &[u8; 32],
        outcome: &str,
        original: Option<i64>,
        trace: TraceIds,
    ) {
        self.is_current
            .push(matches!(outcome, "accepted" | "updated"));
        self.source_update_time.push(r.source_update_time);
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

    /// Inserts every row; current rows that lose a race for their key are
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
                event_time, source_update_time, is_current, trace_id, span_id, request_id)
            SELECT $1, t.* , $17
            FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                $8::bytea[], $9::jsonb[], $10::text[], $11::numeric[], $12::numeric[], $13::numeric[],
                $14::timestamptz[], $15::timestamptz[], $16::bool[], $18::text[], $19::text[])
              AS t(source_system, kind, source_id, order_id, outcome, original_id, content_hash,
                payload, currency_code, amount, debit_total, credit_total, event_time,
                source_update_time, is_current, trace_id, span_id)
            ON CONFLICT (merchant_id, source_system, kind, source_id) WHERE is_current
              DO NOTHING
            RETURNING source_system, kind, source_id, record_id, content_hash, order_id, receive_time,
                event_time, currency_code, amount, source_update_time";
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
            .bind::<Array<Nullable<Timestamptz>>, _>(self.source_update_time)
            .bind::<Array<Bool>, _>(self.is_current)
            .bind::<Nullable<Text>, _>(request_id)
            .bind::<Array<Nullable<Text>>, _>(self.trace_id)
            .bind::<Array<Nullable<Text>>, _>(self.span_id)
            .load(conn)
            .await?)
    }
}

/// The current version of each key: one probe of the unique key index per key,
/// whatever the statistics say. A plain join of the keys to record_log is
/// planned from the merchant's estimated row count, and a merchant that grew
/// since the last ANALYZE got a hash join over all its rows; a LATERAL
/// subquery with LIMIT cannot be flattened into a join, so it can only run
/// once per key, and with every key column bound it can only be an index
/// lookup (docs/design.md, "Plans that do not depend on statistics").
pub const FETCH_ACCEPTED: &str = "
    SELECT r.source_system, r.kind, r.source_id, r.record_id, r.content_hash, r.order_id,
           r.receive_time, r.event_time, r.currency_code, r.amount, r.source_update_time
    FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(source_system, kind, source_id)
    CROSS JOIN LATERAL (
        SELECT * FROM record_log r
        WHERE r.merchant_id = $1 AND r.is_current
          AND r.source_system = k.source_system AND r.kind = k.kind AND r.source_id = k.source_id
        LIMIT 1) r";

/// The current versions of these keys, where they exist. Each call is a
/// statement of its own, so under READ COMMITTED it sees what concurrent
/// writers committed before it started.
pub async fn fetch_accepted(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    keys: &[&RecordKey],
) -> Result<Vec<AcceptedRow>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    Ok(statement(FETCH_ACCEPTED)
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
    /// As text: decoded straight into a `Record`, without building a
    /// `serde_json::Value` first (a payout reads hundreds of them).
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Timestamptz)]
    receive_time: DateTime<Utc>,
}

/// The current version of every record of each order, its own and those
/// linked to it (of the kinds in `$3`, every kind when it is NULL), read
/// order by order: `OFFSET 0` keeps the per-order subquery from being
/// flattened into a join the planner could turn into a scan of the
/// merchant's whole log, so each order is two index probes
/// (record_log_order, record_links' key) and each linked record one probe of
/// record_log's key, whatever the statistics say. The linked record is
/// found by its key alone and judged (current, kind) after its own `OFFSET
/// 0`: with `is_current` beside the key, a plan made on empty tables took the
/// partial current-records index, bound by the merchant alone, and kept it
/// as they grew (`tests/it/plans.rs`).
pub const LOAD_RECORDS: &str = "
    SELECT x.order_id, x.payload::text AS payload, x.receive_time
    FROM (SELECT DISTINCT UNNEST($2::text[])) AS o(order_id)
    CROSS JOIN LATERAL (
        SELECT r.order_id, r.payload, r.receive_time FROM record_log r
        WHERE r.merchant_id = $1 AND r.is_current AND r.order_id = o.order_id
          AND ($3::text[] IS NULL OR r.kind = ANY($3::text[]))
        UNION ALL
        SELECT l.order_id, r.payload, r.receive_time
        FROM record_links l
        CROSS JOIN LATERAL (
            SELECT r.payload, r.receive_time, r.is_current, r.kind FROM record_log r
            WHERE r.merchant_id = $1 AND r.record_id = l.record_id
            OFFSET 0) r
        WHERE l.merchant_id = $1 AND l.order_id = o.order_id AND r.is_current
          AND ($3::text[] IS NULL OR r.kind = ANY($3::text[]))
        OFFSET 0) x";

/// The current version of every record of each order: its own, and those tied to it
/// through the ids they name.
pub async fn load_records(
    conn: &AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<BTreeMap<String, Vec<StoredRecord>>> {
    load_records_of(conn, merchant, orders, None).await
}

/// [`load_records`] of these kinds only (`RecordKind::key`): a reader that
/// needs a few kinds skips decoding the rest (an order's balance
/// transactions, its shipments), which the database then never converts to
/// text or sends.
pub async fn load_records_of(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    orders: &[String],
    kinds: Option<&[&str]>,
) -> Result<BTreeMap<String, Vec<StoredRecord>>> {
    let rows: Vec<LoadedRecord> = statement(LOAD_RECORDS)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(orders)
        .bind::<Nullable<Array<Text>>, _>(kinds)
        .load(&mut conn)
        .await?;
    let mut by_order: BTreeMap<String, Vec<StoredRecord>> = BTreeMap::new();
    for row in rows {
        let record: Record = serde_json::from_str(&row.payload)
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

/// A record as the handoff audit reads it: where and when, never the payload.
#[derive(QueryableByName)]
pub struct TraceRow {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub source_system: String,
    #[diesel(sql_type = Text)]
    pub source_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub receive_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub trace_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub span_id: Option<String>,
    #[diesel(sql_type = Bytea)]
    pub content_hash: Vec<u8>,
}

/// The current version of each record of one order, its own and those
/// linked to it (the same two index probes as [`LOAD_RECORDS`]).
pub async fn trace_rows(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    order_id: &str,
) -> Result<Vec<TraceRow>> {
    Ok(statement(
        "SELECT r.kind, r.source_system, r.source_id, r.event_time, r.receive_time,
                r.trace_id, r.span_id, r.content_hash
         FROM record_log r
         WHERE r.merchant_id = $1 AND r.is_current AND r.order_id = $2
         UNION ALL
         SELECT r.kind, r.source_system, r.source_id, r.event_time, r.receive_time,
                r.trace_id, r.span_id, r.content_hash
         FROM record_links l
         JOIN record_log r ON r.merchant_id = l.merchant_id AND r.record_id = l.record_id
         WHERE l.merchant_id = $1 AND l.order_id = $2 AND r.is_current",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(order_id)
    .load(conn)
    .await?)
}

/// A record's stored span: where a worker span links to.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct SpanRow {
    #[diesel(sql_type = Text)]
    pub trace_id: String,
    #[diesel(sql_type = Text)]
    pub span_id: String,
}

/// The stored spans of the records a job consumes: those of `orders`
/// (own and linked) and, for a payout, the payout and the balance
/// transactions it swept. Empty when nothing was traced.
pub async fn span_contexts(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
    payout_id: Option<&str>,
) -> Result<Vec<SpanRow>> {
    Ok(statement(
        "SELECT DISTINCT trace_id, span_id FROM (
             SELECT r.trace_id, r.span_id FROM record_log r
             WHERE r.merchant_id = $1 AND r.is_current AND r.order_id = ANY($2)
             UNION ALL
             SELECT r.trace_id, r.span_id FROM record_links l
             JOIN record_log r ON r.merchant_id = l.merchant_id AND r.record_id = l.record_id
             WHERE l.merchant_id = $1 AND l.order_id = ANY($2) AND r.is_current
             UNION ALL
             SELECT r.trace_id, r.span_id FROM record_log r
             WHERE r.merchant_id = $1 AND r.outcome = 'accepted'
               AND r.kind = 'payout' AND r.source_id = $3
             UNION ALL
             SELECT r.trace_id, r.span_id FROM record_log r
             WHERE r.merchant_id = $1 AND r.outcome = 'accepted'
               AND r.kind = 'balance_transaction' AND r.payload -> 'body' ->> 'payout_id' = $3
         ) s
         WHERE trace_id IS NOT NULL AND span_id IS NOT NULL
         LIMIT 128",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .bind::<Nullable<Text>, _>(payout_id)
    .load(conn)
    .await?)
}
