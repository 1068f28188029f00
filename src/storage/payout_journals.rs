//! ERP journals that name a payout, and the applied payouts' fee figures
//! they are checked against. SQL only: what counts as unallocated is
//! decided in `domain::cash_application::payout_fee`.
//!
//! A journal's line references are in `record_refs` already (they tie it to
//! orders); its references of kind payout are kept there too, under a key no
//! order id can be (a control character leads it), so they never tie a
//! journal to the orders a payout spans.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Jsonb, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::money::Money;
use crate::domain::record::Record;
use crate::error::{Error, Result};

/// The `record_refs` key of a journal's reference to payout `id`.
pub fn payout_ref(id: &str) -> String {
    format!("\u{1f}payout\u{1f}{id}")
}

/// Keeps the payouts each journal references: (payout id, record id).
pub async fn add(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    refs: &[(String, i64)],
) -> Result<()> {
    let keyed: Vec<(String, i64)> = refs.iter().map(|(p, r)| (payout_ref(p), *r)).collect();
    super::links::add_record_refs(conn, merchant, &keyed).await
}

#[derive(QueryableByName)]
struct PayloadRow {
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
}

fn records(rows: Vec<PayloadRow>, what: &str) -> Result<Vec<Record>> {
    rows.into_iter()
        .map(|r| serde_json::from_value(r.payload).map_err(|e| Error::corrupt(what, e)))
        .collect()
}

/// The current version of every journal that may name `payout_id` (on a
/// line or by reference), oldest first; the caller checks which do.
pub async fn journals(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Vec<Record>> {
    let ids = [payout_id.to_string()];
    Ok(journals_of(conn, merchant, &ids)
        .await?
        .remove(payout_id)
        .unwrap_or_default())
}

/// [`journals_of`]' statement: `$2` the payouts' ids and reference keys.
/// Each record found is a primary-key probe, fenced (`OFFSET 0`) from the
/// filters on what it finds: as a plain join, a generic plan made on empty
/// tables read the merchant's whole record log per call.
pub const JOURNALS_OF: &str = "
    SELECT r.ref_id, l.record_id, l.payload FROM (
      SELECT DISTINCT r.ref_id, r.record_id FROM record_refs r
      WHERE r.merchant_id = $1 AND r.ref_id = ANY($2)) AS r
    CROSS JOIN LATERAL (
      SELECT l.record_id, l.payload, l.is_current, l.kind FROM record_log l
      WHERE l.merchant_id = $1 AND l.record_id = r.record_id
      OFFSET 0) l
    WHERE l.is_current AND l.kind = 'journal_entry'
    ORDER BY l.record_id";

/// [`journals`] of each of these payouts, in one statement.
pub async fn journals_of(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_ids: &[String],
) -> Result<BTreeMap<String, Vec<Record>>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        ref_id: String,
        #[diesel(sql_type = BigInt)]
        record_id: i64,
        #[diesel(sql_type = Jsonb)]
        payload: serde_json::Value,
    }
    // A journal may name a payout both ways (by id and as a reference).
    let mut of_ref = BTreeMap::new();
    for id in payout_ids {
        of_ref.insert(id.clone(), id.clone());
        of_ref.insert(payout_ref(id), id.clone());
    }
    let rows: Vec<Row> = statement(JOURNALS_OF)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(of_ref.keys().cloned().collect::<Vec<_>>())
        .load(conn)
        .await?;
    let mut seen = BTreeSet::new();
    let mut out: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in rows {
        let Some(payout) = of_ref.get(&r.ref_id) else {
            continue;
        };
        if seen.insert((payout.clone(), r.record_id)) {
            let record = serde_json::from_value(r.payload)
                .map_err(|e| Error::corrupt("a stored journal entry", e))?;
            out.entry(payout.clone()).or_default().push(record);
        }
    }
    Ok(out)
}

/// The current version of the payout record with this id.
pub async fn payout_record(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Option<Record>> {
    let rows: Vec<PayloadRow> = statement(
        "SELECT payload FROM record_log WHERE merchant_id = $1 AND is_current
           AND kind = 'payout' AND source_id = $2 ORDER BY record_id DESC LIMIT 1",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    Ok(records(rows, "a stored payout")?.pop())
}

/// An applied payout's bridge as cash application stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedFigures {
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
}

#[derive(QueryableByName)]
struct FiguresRow {
    #[diesel(sql_type = Text)]
    currency_code: String,
    #[diesel(sql_type = Numeric)]
    gross: Decimal,
    #[diesel(sql_type = Numeric)]
    fees: Decimal,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

/// The payout's figures if it is applied; None otherwise (a waiting
/// payout's fees are not final, and its application checks them).
pub async fn applied(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Option<AppliedFigures>> {
    let rows: Vec<FiguresRow> = statement(
        "SELECT currency_code, gross, fees, amount FROM payouts
         WHERE merchant_id = $1 AND payout_id = $2 AND state = 'applied'",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .next()
        .map(|r| {
            let currency = super::stored_currency(&r.currency_code)?;
            Ok(AppliedFigures {
                gross: Money::new(r.gross, currency),
                fees: Money::new(r.fees, currency),
                net: Money::new(r.amount, currency),
            })
        })
        .transpose()
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    payout_id: String,
}

/// Which of these ids are applied payouts.
pub async fn applied_among(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    ids: &[String],
) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<IdRow> = statement(
        "SELECT payout_id FROM payouts
         WHERE merchant_id = $1 AND payout_id = ANY($2) AND state = 'applied'
         ORDER BY payout_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.payout_id).collect())
}
