//! The write path: one submission (a batch, or a chunk of a stream) in one
//! transaction, with set-based statements whatever the batch size.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{
    Array, Bytea, Jsonb, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Store;
use super::records::load_records;
use super::statement::{Bind, statement};
use crate::domain::currency::Currency;
use crate::domain::matching::{
    ExceptionType, Finding, Observation, evaluate, record_findings, record_subject,
};
use crate::domain::money::Money;
use crate::domain::record::{Body, Handoff, Record, RecordKey, RecordKind};
use crate::domain::transaction::ReconciliationState;
use crate::error::{Error, Result};

/// A validated batch of one merchant's records.
pub struct Submission<'a> {
    pub merchant_id: &'a str,
    pub request_id: Option<&'a str>,
    /// Fingerprint of the whole request, to tell a retry from a reuse of
    /// its request_id for something else.
    pub request_hash: [u8; 32],
    pub records: Vec<&'a Record>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Accepted,
    Duplicate,
    Conflict,
}

impl RecordOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Accepted => "accepted",
            RecordOutcome::Duplicate => "duplicate",
            RecordOutcome::Conflict => "conflict",
        }
    }
}

/// What happened to one record of a submission.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub index: usize,
    pub source_id: String,
    pub outcome: RecordOutcome,
    /// The order of the accepted record (the original, for a duplicate).
    pub order_id: Option<String>,
    /// When the accepted record was received (the original's, for a
    /// duplicate or conflict).
    pub receive_time: DateTime<Utc>,
    pub exception_id: Option<Uuid>,
}

/// The accepted outcomes of a fresh submission, or the stored response of
/// a request already answered.
pub enum Submitted {
    Fresh(Vec<Outcome>),
    Replayed(Vec<u8>),
}

/// Names exception ids: the same detection always gets the same id.
const EXCEPTION_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a3e_7d1b_4f3c_9a57_2e8d_b0c4_1a99);

pub(crate) fn exception_id(merchant: &str, parts: &[&str]) -> Uuid {
    let mut name = merchant.to_string();
    for p in parts {
        name.push('\u{1f}');
        name.push_str(p);
    }
    Uuid::new_v5(&EXCEPTION_NAMESPACE, name.as_bytes())
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    source_system: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    source_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    record_id: i64,
    #[diesel(sql_type = Bytea)]
    content_hash: Vec<u8>,
    #[diesel(sql_type = Nullable<Text>)]
    order_id: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    receive_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    event_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    currency_code: Option<String>,
    #[diesel(sql_type = Nullable<Numeric>)]
    amount: Option<Decimal>,
}

impl KeyRow {
    /// The accepted record as one side of a conflict.
    fn observation(&self, kind: RecordKind) -> Observation {
        let amount = match (&self.currency_code, self.amount) {
            (Some(c), Some(a)) => Currency::from_code(c).map(|c| Money::new(a, c)),
            _ => None,
        };
        Observation {
            source_system: self.source_system.clone(),
            kind,
            source_ids: vec![self.source_id.clone()],
            amount,
            event_time: Some(self.event_time),
        }
    }

    fn key(&self) -> Option<RecordKey> {
        Some(RecordKey {
            source_system: self.source_system.clone(),
            kind: RecordKind::parse(&self.kind)?,
            source_id: self.source_id.clone(),
        })
    }
}

#[derive(QueryableByName)]
struct SubmissionRow {
    #[diesel(sql_type = Bytea)]
    request_hash: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    response: Vec<u8>,
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    request_id: String,
}

#[derive(QueryableByName)]
struct OrderCount {
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// Columns of record_log, one Vec per column, for an UNNEST insert.
#[derive(Default)]
struct LogColumns {
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
}

impl LogColumns {
    fn push(&mut self, r: &Record, hash: &[u8; 32], outcome: RecordOutcome, original: Option<i64>) {
        self.source_system.push(r.source_system.clone());
        self.kind.push(r.kind().as_str().to_string());
        self.source_id.push(r.source_id.clone());
        self.order_id.push(r.order_id.clone());
        self.outcome.push(outcome.as_str().to_string());
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
    }

    fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }

    /// Inserts every row; accepted rows that lose a race for their key are
    /// skipped, and only the rows actually written come back.
    async fn insert(
        self,
        conn: &mut AsyncPgConnection,
        merchant: &str,
        request_id: Option<&str>,
    ) -> Result<Vec<KeyRow>> {
        const SQL: &str = "
            INSERT INTO record_log (merchant_id, source_system, kind, source_id, order_id, outcome,
                original_id, content_hash, payload, currency_code, amount, debit_total, credit_total,
                event_time, request_id)
            SELECT $1, t.* , $15
            FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                $8::bytea[], $9::jsonb[], $10::text[], $11::numeric[], $12::numeric[], $13::numeric[],
                $14::timestamptz[])
              AS t(source_system, kind, source_id, order_id, outcome, original_id, content_hash,
                payload, currency_code, amount, debit_total, credit_total, event_time)
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
            .bind::<Array<Nullable<diesel::sql_types::BigInt>>, _>(self.original_id)
            .bind::<Array<Bytea>, _>(self.content_hash)
            .bind::<Array<Jsonb>, _>(self.payload)
            .bind::<Array<Nullable<Text>>, _>(self.currency_code)
            .bind::<Array<Nullable<Numeric>>, _>(self.amount)
            .bind::<Array<Nullable<Numeric>>, _>(self.debit_total)
            .bind::<Array<Nullable<Numeric>>, _>(self.credit_total)
            .bind::<Array<Timestamptz>, _>(self.event_time)
            .bind::<Nullable<Text>, _>(request_id)
            .load(conn)
            .await?)
    }
}

/// One exception to write, derived or from a conflict.
struct NewException {
    id: Uuid,
    order_id: Option<String>,
    exception_type: ExceptionType,
    handoff: Handoff,
    rule: String,
    subject: String,
    summary: String,
    details: serde_json::Value,
}

impl NewException {
    /// A finding's identity is its rule and subject, not its order: a
    /// record-level problem found before the record's order was known and
    /// again after is one exception.
    fn from_finding(merchant: &str, order_id: Option<&str>, f: &Finding) -> Self {
        NewException {
            id: exception_id(merchant, &[&f.rule, &f.subject]),
            order_id: order_id.map(str::to_string),
            exception_type: f.exception_type,
            handoff: f.handoff,
            rule: f.rule.clone(),
            subject: f.subject.clone(),
            summary: f.summary.clone(),
            details: serde_json::json!({
                "observations": f.observations,
                "difference": f.difference,
            }),
        }
    }
}

impl NewException {
    /// A record whose key is taken by other content: both sides, and one
    /// exception per distinct conflicting content.
    fn conflict(merchant: &str, original: &KeyRow, r: &Record, hash: &[u8; 32]) -> Self {
        let new_hash = hex(hash);
        let subject = record_subject(r);
        NewException {
            id: exception_id(merchant, &["conflict", &subject, &new_hash]),
            order_id: original.order_id.clone().or_else(|| r.order_id.clone()),
            exception_type: ExceptionType::RecordConflict,
            handoff: r.kind().handoff(),
            rule: "record_conflict".into(),
            summary: format!(
                "{} {} from {} arrived again with different content; the original received {} is kept",
                r.kind().as_str(),
                r.source_id,
                r.source_system,
                original.receive_time.to_rfc3339()
            ),
            subject,
            details: serde_json::json!({
                "observations": [original.observation(r.kind()), Observation {
                    source_system: r.source_system.clone(),
                    kind: r.kind(),
                    source_ids: vec![r.source_id.clone()],
                    amount: r.headline_amount(),
                    event_time: Some(r.event_time),
                }],
                "original_record_id": original.record_id,
                "original_content_hash": hex(&original.content_hash),
                "conflicting_content_hash": new_hash,
            }),
        }
    }
}

async fn upsert_exceptions(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    rows: &[NewException],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // A derived exception that comes back after it was resolved reopens; one
    // a person already acknowledged keeps its state.
    const SQL: &str = "
        INSERT INTO exceptions (merchant_id, exception_id, order_id, type, handoff, state, rule,
            subject, summary, details)
        SELECT $1, t.exception_id, t.order_id, t.type, t.handoff, 'open', t.rule, t.subject,
            t.summary, t.details
        FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::jsonb[])
          AS t(exception_id, order_id, type, handoff, rule, subject, summary, details)
        ON CONFLICT (merchant_id, exception_id) DO UPDATE SET
            order_id = COALESCE(exceptions.order_id, EXCLUDED.order_id),
            summary = EXCLUDED.summary,
            details = EXCLUDED.details,
            state = CASE WHEN exceptions.state = 'resolved' THEN 'open' ELSE exceptions.state END,
            resolve_time = CASE WHEN exceptions.state = 'resolved' THEN NULL
                                ELSE exceptions.resolve_time END,
            update_time = CASE WHEN exceptions.state = 'resolved'
                                 OR exceptions.details IS DISTINCT FROM EXCLUDED.details
                               THEN now() ELSE exceptions.update_time END";
    statement(SQL)
        .bind::<Text, _>(merchant)
        .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            rows.iter().map(|r| r.order_id.clone()).collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(
            rows.iter()
                .map(|r| r.exception_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.handoff.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.rule.clone()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.subject.clone()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.summary.clone()).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(rows.iter().map(|r| r.details.clone()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Stores a submission atomically. Idempotent per record key and, with a
    /// request_id, per request. Retries by itself when it loses a deadlock
    /// or serialisation race to a concurrent submission.
    pub async fn submit(
        &self,
        sub: &Submission<'_>,
        encode: impl Fn(&[Outcome]) -> Vec<u8> + Send + Sync,
    ) -> Result<Submitted> {
        let mut results = self
            .submit_group(std::slice::from_ref(sub), |_, o| encode(o))
            .await?;
        Ok(results.remove(0))
    }

    /// Stores several submissions in one transaction, in order, as if each
    /// were submitted alone but for sharing one commit: a stream of small
    /// chunks pays for one disk flush per group, not per chunk. Any error
    /// rolls back the whole group; callers that need per-submission errors
    /// retry its members one by one. `encode` gets the submission's index.
    pub async fn submit_group(
        &self,
        subs: &[Submission<'_>],
        encode: impl Fn(usize, &[Outcome]) -> Vec<u8> + Send + Sync,
    ) -> Result<Vec<Submitted>> {
        let mut attempt = 0;
        loop {
            let mut conn = self.conn().await?;
            let result = conn
                .transaction(async |conn| {
                    let mut out = Vec::with_capacity(subs.len());
                    for (i, sub) in subs.iter().enumerate() {
                        out.push(submit_in_tx(conn, sub, &|o: &[Outcome]| encode(i, o)).await?);
                    }
                    Ok(out)
                })
                .await;
            match result {
                Err(Error::Aborted(msg)) if attempt < 4 => {
                    attempt += 1;
                    tracing::debug!(attempt, %msg, "retrying a submission that lost a race");
                }
                other => return other,
            }
        }
    }
}

/// The accepted rows of these keys, where they exist.
async fn fetch_accepted(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    keys: &[&RecordKey],
) -> Result<Vec<KeyRow>> {
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

/// Serialises writers of the same orders (rows may not exist yet, so row
/// locks cannot do it). Taken in sorted order, so two submissions touching
/// the same orders can never deadlock on them.
async fn lock_orders(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let keys: BTreeSet<String> = orders.iter().map(|o| format!("{merchant}/{o}")).collect();
    statement(
        "SELECT pg_advisory_xact_lock(k) FROM (
           SELECT hashtextextended(x, 0) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS s",
    )
    .bind::<Array<Text>, _>(keys.into_iter().collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn submit_in_tx(
    conn: &mut AsyncPgConnection,
    sub: &Submission<'_>,
    encode: &(impl Fn(&[Outcome]) -> Vec<u8> + Send + Sync),
) -> Result<Submitted> {
    let merchant = sub.merchant_id;

    if let Some(request_id) = sub.request_id {
        // A concurrent twin blocks here until the first commits, then finds
        // its row: retried requests are answered, never re-run.
        let inserted: Vec<Inserted> = statement(
            "INSERT INTO submissions (merchant_id, request_id, request_hash, response)
             VALUES ($1, $2, $3, '') ON CONFLICT DO NOTHING RETURNING request_id",
        )
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(request_id)
        .bind::<Bytea, _>(sub.request_hash.to_vec())
        .load(conn)
        .await?;
        if inserted.is_empty() {
            let row: SubmissionRow = statement(
                "SELECT request_hash, response FROM submissions WHERE merchant_id = $1 AND request_id = $2",
            )
            .bind::<Text, _>(merchant)
            .bind::<Text, _>(request_id)
            .get_result(conn)
            .await?;
            if row.request_hash != sub.request_hash {
                return Err(Error::AlreadyExists(format!(
                    "request_id {request_id} was already used for a different request"
                )));
            }
            return Ok(Submitted::Replayed(row.response));
        }
    }

    let locked: BTreeSet<String> = sub
        .records
        .iter()
        .filter_map(|r| r.order_id.clone())
        .collect();
    lock_orders(conn, merchant, &locked.iter().cloned().collect::<Vec<_>>()).await?;

    // The first occurrence of each key is the candidate; later ones in the
    // same batch are judged against whatever ends up accepted for the key.
    let hashes: Vec<[u8; 32]> = sub.records.iter().map(|r| r.content_hash()).collect();
    let mut first: BTreeMap<RecordKey, usize> = BTreeMap::new();
    for (i, r) in sub.records.iter().enumerate() {
        first.entry(r.key()).or_insert(i);
    }
    // Look first: a retried batch is all duplicates, and a lookup is far
    // cheaper than a speculative insert per row.
    let mut accepted: HashMap<RecordKey, KeyRow> = HashMap::new();
    let keys: Vec<&RecordKey> = first.keys().collect();
    for row in fetch_accepted(conn, merchant, &keys).await? {
        if let Some(k) = row.key() {
            accepted.insert(k, row);
        }
    }
    // Key order is insertion order, so concurrent batches take unique-index
    // locks in the same order and cannot deadlock on them.
    let mut candidates = LogColumns::default();
    for (key, &i) in &first {
        if !accepted.contains_key(key) {
            candidates.push(sub.records[i], &hashes[i], RecordOutcome::Accepted, None);
        }
    }
    let mut fresh: BTreeSet<RecordKey> = BTreeSet::new();
    if !candidates.is_empty() {
        for row in candidates.insert(conn, merchant, sub.request_id).await? {
            if let Some(k) = row.key() {
                fresh.insert(k.clone());
                accepted.insert(k, row);
            }
        }
    }
    // A concurrent submission can accept a key between the look and the
    // insert; its row is committed by now (the insert waited for it).
    let raced: Vec<&RecordKey> = first
        .keys()
        .filter(|k| !accepted.contains_key(*k))
        .collect();
    if !raced.is_empty() {
        for row in fetch_accepted(conn, merchant, &raced).await? {
            if let Some(k) = row.key() {
                accepted.insert(k, row);
            }
        }
    }

    let mut outcomes = Vec::with_capacity(sub.records.len());
    let mut repeats = LogColumns::default();
    let mut conflicts = vec![];
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for (i, r) in sub.records.iter().enumerate() {
        let key = r.key();
        let original = accepted
            .get(&key)
            .ok_or_else(|| Error::Internal(format!("no accepted row for {key:?} after insert")))?;
        let is_new = fresh.contains(&key) && first.get(&key) == Some(&i);
        let outcome = if is_new {
            RecordOutcome::Accepted
        } else if original.content_hash == hashes[i] {
            RecordOutcome::Duplicate
        } else {
            RecordOutcome::Conflict
        };
        let mut exception = None;
        match outcome {
            RecordOutcome::Accepted => touched.extend(r.order_id.clone()),
            RecordOutcome::Duplicate => {
                repeats.push(r, &hashes[i], outcome, Some(original.record_id))
            }
            RecordOutcome::Conflict => {
                repeats.push(r, &hashes[i], outcome, Some(original.record_id));
                let e = NewException::conflict(merchant, original, r, &hashes[i]);
                exception = Some(e.id);
                touched.extend(e.order_id.clone());
                conflicts.push(e);
            }
        }
        outcomes.push(Outcome {
            index: i,
            source_id: r.source_id.clone(),
            outcome,
            order_id: original.order_id.clone(),
            receive_time: original.receive_time,
            exception_id: exception,
        });
    }
    if !repeats.is_empty() {
        repeats.insert(conn, merchant, sub.request_id).await?;
    }
    // Every conflict also has a log row, so the exception is the only record
    // to dedupe: one per distinct conflicting content.
    conflicts.sort_by_key(|c| c.id);
    conflicts.dedup_by_key(|c| c.id);
    upsert_exceptions(conn, merchant, &conflicts).await?;

    let new_records: Vec<(i64, &Record)> = outcomes
        .iter()
        .filter(|o| o.outcome == RecordOutcome::Accepted)
        .filter_map(|o| {
            let r = sub.records[o.index];
            accepted.get(&r.key()).map(|row| (row.record_id, r))
        })
        .collect();
    // Records of no single order: their own figures are checked now, and
    // they join the orders whose ids they name.
    let standalone: Vec<NewException> = new_records
        .iter()
        .filter(|(_, r)| r.order_id.is_none())
        .flat_map(|(_, r)| record_findings(r))
        .map(|f| NewException::from_finding(merchant, None, &f))
        .collect();
    upsert_exceptions(conn, merchant, &standalone).await?;
    touched.extend(link_records(conn, merchant, &new_records).await?);

    // Orders reached only through links or a conflict's original were not
    // locked up front.
    let late: Vec<String> = touched.difference(&locked).cloned().collect();
    lock_orders(conn, merchant, &late).await?;
    let touched: Vec<String> = touched.into_iter().collect();
    refresh_in_tx(conn, merchant, &touched).await?;

    if let Some(request_id) = sub.request_id {
        statement(
            "UPDATE submissions SET response = $3 WHERE merchant_id = $1 AND request_id = $2",
        )
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(request_id)
        .bind::<Bytea, _>(encode(&outcomes))
        .execute(conn)
        .await?;
    }
    Ok(Submitted::Fresh(outcomes))
}

/// Records ids that tie records to orders, and links every record of no
/// single order to the orders whose ids it names, whichever arrived first.
/// Returns the orders that gained a record.
async fn link_records(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    new_records: &[(i64, &Record)],
) -> Result<Vec<String>> {
    let (mut ref_ids, mut ref_orders, mut ptr_ids, mut ptr_records) =
        (vec![], vec![], vec![], vec![]);
    for (record_id, r) in new_records {
        match &r.order_id {
            Some(order_id) => {
                for id in r.order_ref_ids() {
                    ref_ids.push(id);
                    ref_orders.push(order_id.clone());
                }
            }
            None => {
                for id in r.pointer_ids() {
                    ptr_ids.push(id);
                    ptr_records.push(*record_id);
                }
            }
        }
    }
    if !ref_ids.is_empty() {
        statement(
            "INSERT INTO order_refs (merchant_id, ref_id, order_id)
             SELECT DISTINCT $1, * FROM UNNEST($2::text[], $3::text[]) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(&ref_ids)
        .bind::<Array<Text>, _>(&ref_orders)
        .execute(conn)
        .await?;
    }
    if !ptr_ids.is_empty() {
        statement(
            "INSERT INTO record_refs (merchant_id, ref_id, record_id)
             SELECT DISTINCT $1, * FROM UNNEST($2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(&ptr_ids)
        .bind::<Array<diesel::sql_types::BigInt>, _>(&ptr_records)
        .execute(conn)
        .await?;
    }
    let mut ids: Vec<String> = ref_ids.into_iter().chain(ptr_ids).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let linked: Vec<OrderCount> = statement(
        "INSERT INTO record_links (merchant_id, order_id, record_id)
         SELECT DISTINCT rr.merchant_id, o.order_id, rr.record_id
         FROM record_refs rr
         JOIN order_refs o ON o.merchant_id = rr.merchant_id AND o.ref_id = rr.ref_id
         WHERE rr.merchant_id = $1 AND rr.ref_id = ANY($2)
         ON CONFLICT DO NOTHING
         RETURNING order_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(ids)
    .load(conn)
    .await?;
    let mut orders: Vec<String> = linked.into_iter().map(|r| r.order_id).collect();
    orders.sort();
    orders.dedup();
    Ok(orders)
}

/// Re-merges `orders` from the log, matches them, and writes their
/// projection and derived exceptions. The caller holds the order locks.
async fn refresh_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let by_order = load_records(conn, merchant, orders).await?;

    let conflicted: BTreeSet<String> = statement(
        "SELECT DISTINCT order_id FROM exceptions
         WHERE merchant_id = $1 AND order_id = ANY($2) AND state <> 'resolved' AND type = 'record_conflict'",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .load::<OrderCount>(conn)
    .await?
    .into_iter()
    .map(|r| r.order_id)
    .collect();

    let mut exceptions = vec![];
    let mut keep: Vec<Uuid> = vec![];
    let mut merged = Vec::with_capacity(by_order.len());
    for (order_id, records) in &by_order {
        let mut eval = evaluate(order_id, records);
        for f in &eval.findings {
            let e = NewException::from_finding(merchant, Some(order_id), f);
            keep.push(e.id);
            exceptions.push(e);
        }
        if conflicted.contains(order_id) {
            eval.transaction.state = ReconciliationState::Exception;
            eval.transaction
                .reasons
                .insert(0, "a record arrived again with different content".into());
        }
        merged.push(eval.transaction);
    }
    upsert_exceptions(conn, merchant, &exceptions).await?;
    // What the rules no longer find has been settled by later records.
    let derived: Vec<&str> = ExceptionType::ALL
        .into_iter()
        .filter(|t| t.is_derived())
        .map(|t| t.as_str())
        .collect();
    statement(
        "UPDATE exceptions SET state = 'resolved', resolve_time = now(), update_time = now()
         WHERE merchant_id = $1 AND order_id = ANY($2) AND state <> 'resolved'
           AND type = ANY($3) AND NOT (exception_id = ANY($4))",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .bind::<Array<Text>, _>(derived)
    .bind::<Array<SqlUuid>, _>(keep)
    .execute(conn)
    .await?;

    statement(
        "INSERT INTO transactions (merchant_id, order_id, state, currency_code, event_time,
             create_time, update_time, reasons)
         SELECT $1, t.order_id, t.state, t.currency_code, t.event_time, t.create_time,
             t.update_time, string_to_array(t.reasons, chr(31))
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[],
             $6::timestamptz[], $7::timestamptz[], $8::text[])
           AS t(order_id, state, currency_code, event_time, create_time, update_time, reasons)
         ON CONFLICT (merchant_id, order_id) DO UPDATE SET
             state = EXCLUDED.state, currency_code = EXCLUDED.currency_code,
             event_time = EXCLUDED.event_time, create_time = EXCLUDED.create_time,
             update_time = EXCLUDED.update_time, reasons = EXCLUDED.reasons",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(
        merged
            .iter()
            .map(|t| t.order_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(merged.iter().map(|t| t.state.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        merged
            .iter()
            .map(|t| t.currency.map(|c| c.code()))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Timestamptz>, _>(merged.iter().map(|t| t.event_time).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(merged.iter().map(|t| t.create_time).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(merged.iter().map(|t| t.update_time).collect::<Vec<_>>())
    // A 2-D text[] cannot be ragged, so each order's reasons travel as one
    // string joined by the unit separator and are split back in SQL.
    .bind::<Array<Text>, _>(
        merged
            .iter()
            .map(|t| t.reasons.join("\u{1f}"))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
