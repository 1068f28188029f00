//! transactions: where each order's reconciliation stood when it was last
//! written (state, reasons, currency, times), to filter and page on.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::listing::{Cursor, Listing, Page, Param, TimeWindow, in_index_order, page};
use super::statement::{Bind, statement};
use crate::domain::transaction::{ReconciliationState, Transaction};
use crate::error::Result;

/// Writes each order's state, reasons and times.
pub async fn upsert(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    merged: &[Transaction],
) -> Result<()> {
    if merged.is_empty() {
        return Ok(());
    }
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
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// A projection row as stored.
#[derive(QueryableByName)]
pub struct ProjectionRow {
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Array<Text>)]
    pub reasons: Vec<String>,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
}

const COLUMNS: &str = "order_id, state, reasons, event_time";

#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub state: Option<ReconciliationState>,
    pub window: TimeWindow,
}

/// One order's row, by the primary key (for plan tests too).
pub fn get_sql() -> String {
    format!("SELECT {COLUMNS} FROM transactions WHERE merchant_id = $1 AND order_id = $2")
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    order_id: &str,
) -> Result<Option<ProjectionRow>> {
    let mut rows: Vec<ProjectionRow> = statement(get_sql())
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(order_id)
        .load(conn)
        .await?;
    Ok(rows.pop())
}

fn list_query(filter: &TransactionFilter, after: Option<&Cursor>, merchant: &str) -> Listing {
    let mut q = Listing::new(&format!("SELECT {COLUMNS} FROM transactions"), merchant);
    if let Some(st) = filter.state {
        q.and("state =", Param::Text(st.as_str().into()));
    }
    q.window("event_time", &filter.window);
    if let Some(c) = after {
        q.after("event_time, order_id", c.time, Param::Text(c.id.clone()));
    }
    q
}

const LIST_ORDER: &str = "event_time DESC, order_id DESC";

/// The text [`list`] runs for this filter (for plan tests): `$1` the
/// merchant, then the state, the window's ends and the cursor, each when
/// given.
pub fn list_sql(filter: &TransactionFilter, after: Option<&Cursor>, limit: usize) -> String {
    list_query(filter, after, "").page_sql(LIST_ORDER, limit)
}

/// One page, newest first. Call it inside a transaction: it follows the
/// index whatever the statistics ([`super::INDEX_ORDER`]).
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    filter: &TransactionFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<ProjectionRow>> {
    in_index_order(conn).await?;
    let rows: Vec<ProjectionRow> = list_query(filter, after, merchant)
        .page(LIST_ORDER, limit)
        .load(conn)
        .await?;
    let (items, next) = page(rows, limit, |r| Cursor {
        time: r.event_time,
        id: r.order_id.clone(),
    });
    Ok(Page { items, next })
}
