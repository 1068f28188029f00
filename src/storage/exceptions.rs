//! exceptions: problems for people. Writing what was detected, resolving
//! what is no longer found, and reading the queue.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{
    Array, BigInt, Jsonb, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::listing::{Cursor, Listing, Page, Param, TimeWindow, in_index_order, page};
use super::statement::{Bind, planned_each_run, statement};
use crate::domain::currency::Currency;
use crate::domain::matching::ExceptionType;
use crate::domain::money::Money;
use crate::domain::record::Handoff;
use crate::error::{Error, Result};

/// Where a person's work on an exception stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionState {
    Open,
    Acknowledged,
    Resolved,
}

impl ExceptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionState::Open => "open",
            ExceptionState::Acknowledged => "acknowledged",
            ExceptionState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ExceptionState::Open,
            ExceptionState::Acknowledged,
            ExceptionState::Resolved,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One exception to write, derived or from a conflict.
pub struct NewException {
    pub id: Uuid,
    pub order_id: Option<String>,
    pub exception_type: ExceptionType,
    pub handoff: Handoff,
    pub rule: String,
    pub subject: String,
    pub summary: String,
    pub details: serde_json::Value,
}

/// Writes exceptions; one detected again keeps its identity.
pub async fn upsert(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    rows: &[NewException],
) -> Result<Vec<String>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    // A derived exception that comes back after it was resolved reopens; one
    // a person already acknowledged keeps its state.
    // Returns the type of each exception opened: new, or reopened (`prior`
    // sees the rows as they were before this statement).
    const SQL: &str = "
        WITH prior AS (
            SELECT exception_id, state FROM exceptions
            WHERE merchant_id = $1 AND exception_id = ANY($2::uuid[])
        ), up AS (
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
                               THEN EXCLUDED.update_time ELSE exceptions.update_time END
        RETURNING exception_id, type
        )
        SELECT up.type AS exception_type FROM up LEFT JOIN prior USING (exception_id)
        WHERE prior.exception_id IS NULL OR prior.state = 'resolved'";
    Ok(statement(SQL)
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
        .load::<TypeRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.exception_type)
        .collect())
}

#[derive(QueryableByName)]
struct TypeRow {
    #[diesel(sql_type = Text)]
    exception_type: String,
}

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// Order by order, an index probe of exceptions_by_order each (`OFFSET 0`
/// keeps the planner from turning it into a scan of the merchant's
/// exceptions when its statistics are behind).
pub const CONFLICTED_ORDERS: &str = "
    SELECT o.order_id FROM (SELECT DISTINCT UNNEST($2::text[])) AS o(order_id)
    WHERE EXISTS (
        SELECT 1 FROM (
          SELECT e.state, e.type FROM exceptions e
          WHERE e.merchant_id = $1 AND e.order_id = o.order_id
          OFFSET 0) e
        WHERE e.state <> 'resolved' AND e.type = 'record_conflict')";

/// The orders among `orders` with an unresolved record conflict.
pub async fn conflicted_orders(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<BTreeSet<String>> {
    Ok(statement(CONFLICTED_ORDERS)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(orders)
        .load::<OrderRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.order_id)
        .collect())
}

/// The unresolved exceptions of these types on these orders, outside
/// `keep`: an index probe of exceptions_by_order per order, whatever the
/// statistics say (as in [`CONFLICTED_ORDERS`]). The order's exceptions are
/// judged after the probe's `OFFSET 0`: with `state <> 'resolved'` beside
/// it, a plan made on empty tables took the partial unresolved-exceptions
/// index, bound by the merchant alone, and kept it as they grew.
pub const RESOLVABLE: &str = "
    SELECT e.exception_id FROM (SELECT DISTINCT UNNEST($2::text[])) AS o(order_id)
    CROSS JOIN LATERAL (
        SELECT e.exception_id, e.state, e.type FROM exceptions e
        WHERE e.merchant_id = $1 AND e.order_id = o.order_id
        OFFSET 0) e
    WHERE e.state <> 'resolved' AND e.type = ANY($3) AND NOT (e.exception_id = ANY($4))";

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    exception_id: Uuid,
}

/// [`resolve_others`]' update, by key. Sent unnamed, planned at each run
/// with its ids: kept, a generic plan made on empty tables reads the
/// merchant's open exceptions through a partial index instead (as
/// `deposits::RESOLVE_BY_RULES` did).
pub const RESOLVE_BY_KEY: &str = "
    UPDATE exceptions SET state = 'resolved', resolve_time = now(), update_time = now()
    WHERE merchant_id = $1 AND exception_id = ANY($2) AND state <> 'resolved'
    RETURNING type AS exception_type";

/// Resolves the exceptions of these types on these orders that are not in
/// `keep`. They are found first, order by order; the update then names
/// them by key, and runs only when there is something to resolve (an
/// `UPDATE` joined to the orders would be planned from the merchant's
/// statistics, and could scan all its exceptions).
pub async fn resolve_others(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    orders: &[String],
    types: &[&str],
    keep: &[Uuid],
) -> Result<Vec<String>> {
    // Returns the type of each exception resolved.
    let ids: Vec<Uuid> = statement(RESOLVABLE)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(orders)
        .bind::<Array<Text>, _>(types)
        .bind::<Array<SqlUuid>, _>(keep)
        .load::<IdRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.exception_id)
        .collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(planned_each_run(RESOLVE_BY_KEY)
        .bind::<Text, _>(merchant)
        .bind::<Array<SqlUuid>, _>(ids)
        .load::<TypeRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.exception_type)
        .collect())
}

#[derive(Debug, Clone)]
pub struct ExceptionRow {
    pub exception_id: Uuid,
    pub order_id: Option<String>,
    pub exception_type: ExceptionType,
    pub handoff: Handoff,
    pub state: ExceptionState,
    pub rule: String,
    pub summary: String,
    pub details: serde_json::Value,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub resolve_time: Option<DateTime<Utc>>,
    /// Who works it, by when, its etag, how it ended, the money in doubt.
    pub work: Workflow,
}

/// An exception's workflow columns (see migration 000005).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workflow {
    pub owner: Option<String>,
    pub due_time: Option<DateTime<Utc>>,
    pub version: i64,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    pub at_risk: Option<Money>,
}

#[derive(QueryableByName)]
pub(crate) struct ExRow {
    #[diesel(sql_type = SqlUuid)]
    exception_id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    order_id: Option<String>,
    #[diesel(sql_type = Text)]
    r#type: String,
    #[diesel(sql_type = Text)]
    handoff: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    rule: String,
    #[diesel(sql_type = Text)]
    summary: String,
    #[diesel(sql_type = Jsonb)]
    details: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    create_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    update_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    resolve_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    owner: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    due_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Nullable<Text>)]
    resolved_by: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    resolution_note: Option<String>,
    #[diesel(sql_type = Nullable<Numeric>)]
    at_risk_amount: Option<Decimal>,
    #[diesel(sql_type = Nullable<Text>)]
    at_risk_currency: Option<String>,
}

impl ExRow {
    pub(crate) fn into_row(self) -> Result<ExceptionRow> {
        Ok(ExceptionRow {
            exception_id: self.exception_id,
            order_id: self.order_id,
            exception_type: ExceptionType::parse(&self.r#type).ok_or_else(|| {
                Error::corrupt("an exception", format!("unknown type {}", self.r#type))
            })?,
            handoff: Handoff::parse(&self.handoff).ok_or_else(|| {
                Error::corrupt("an exception", format!("unknown handoff {}", self.handoff))
            })?,
            state: ExceptionState::parse(&self.state).ok_or_else(|| {
                Error::corrupt("an exception", format!("unknown state {}", self.state))
            })?,
            rule: self.rule,
            summary: self.summary,
            details: self.details,
            create_time: self.create_time,
            update_time: self.update_time,
            resolve_time: self.resolve_time,
            work: Workflow {
                owner: self.owner,
                due_time: self.due_time,
                version: self.version,
                resolved_by: self.resolved_by,
                resolution_note: self.resolution_note,
                at_risk: match (self.at_risk_amount, self.at_risk_currency.as_deref()) {
                    (Some(amount), Some(code)) => {
                        Currency::from_code(code).map(|currency| Money { amount, currency })
                    }
                    _ => None,
                },
            },
        })
    }
}

pub(crate) const EXCEPTION_COLUMNS: &str = "exception_id, order_id, type, handoff, state, rule, summary, details, \
                                 create_time, update_time, resolve_time, owner, due_time, version, \
                                 resolved_by, resolution_note, at_risk_amount, at_risk_currency";

#[derive(Debug, Clone, Default)]
pub struct ExceptionFilter {
    pub exception_type: Option<ExceptionType>,
    pub handoff: Option<Handoff>,
    pub state: Option<ExceptionState>,
    pub window: TimeWindow,
    pub owner: Option<String>,
    pub order_id: Option<String>,
    /// Largest amount at risk first (none last), instead of newest first.
    pub by_risk: bool,
}

/// The unresolved exceptions of one order, oldest first. Found by the order
/// (exceptions_by_order) and then sorted: asked for in `create_time` order
/// directly, a planner without statistics walks the merchant's whole
/// exceptions_by_time index to skip the sort of one row. The state is
/// judged after the probe: beside it, a plan made on empty tables took the
/// partial unresolved-exceptions index, bound by the merchant alone.
pub fn unresolved_sql() -> String {
    format!(
        "SELECT * FROM (
             SELECT {EXCEPTION_COLUMNS} FROM exceptions
             WHERE merchant_id = $1 AND order_id = $2
             OFFSET 0) e
         WHERE state <> 'resolved'
         ORDER BY create_time, exception_id"
    )
}

/// The sort key of the amount-at-risk order: exceptions without a figure
/// sort last (-1 is below every absolute difference).
const RISK_KEY: &str = "coalesce(at_risk_amount, -1)";

/// The exceptions of one order that are not resolved, oldest first.
pub async fn unresolved(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    order_id: &str,
) -> Result<Vec<ExceptionRow>> {
    let rows: Vec<ExRow> = statement(unresolved_sql())
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(order_id)
        .load(conn)
        .await?;
    rows.into_iter().map(ExRow::into_row).collect()
}

fn list_query(filter: &ExceptionFilter, after: Option<&Cursor>, merchant: &str) -> Result<Listing> {
    let mut q = Listing::new(
        &format!("SELECT {EXCEPTION_COLUMNS} FROM exceptions"),
        merchant,
    );
    if let Some(t) = filter.exception_type {
        q.and("type =", Param::Text(t.as_str().into()));
    }
    if let Some(h) = filter.handoff {
        q.and("handoff =", Param::Text(h.as_str().into()));
    }
    if let Some(st) = filter.state {
        q.and("state =", Param::Text(st.as_str().into()));
    }
    if let Some(o) = &filter.owner {
        q.and("owner =", Param::Text(o.clone()));
    }
    if let Some(o) = &filter.order_id {
        q.and("order_id =", Param::Text(o.clone()));
    }
    q.window("create_time", &filter.window);
    let malformed = || Error::invalid("page_token", "malformed page token");
    if let Some(c) = after {
        if filter.by_risk {
            // The id holds "amount|uuid"; both are checked before binding.
            let (amount, id) = c.id.split_once('|').ok_or_else(malformed)?;
            amount.parse::<Decimal>().map_err(|_| malformed())?;
            Uuid::parse_str(id).map_err(|_| malformed())?;
            q.and_with(
                &format!(
                    "({RISK_KEY}, exception_id) < (split_part({{}}, '|', 1)::numeric, \
                     split_part({{}}, '|', 2)::uuid)"
                ),
                Param::Text(c.id.clone()),
            );
        } else {
            let id = Uuid::parse_str(&c.id).map_err(|_| malformed())?;
            q.after("create_time, exception_id", c.time, Param::Uuid(id));
        }
    }
    Ok(q)
}

const LIST_ORDER: &str = "create_time DESC, exception_id DESC";

/// Newest first, or largest amount at risk first.
fn list_order(filter: &ExceptionFilter) -> String {
    if filter.by_risk {
        format!("{RISK_KEY} DESC, exception_id DESC")
    } else {
        LIST_ORDER.to_string()
    }
}

/// The text [`list`] runs for this filter (for plan tests): `$1` the
/// merchant, then type, handoff, state, the window's ends and the cursor,
/// each when given.
pub fn list_sql(filter: &ExceptionFilter, after: Option<&Cursor>, limit: usize) -> Result<String> {
    Ok(list_query(filter, after, "")?.page_sql(&list_order(filter), limit))
}

/// One page. Call it inside a transaction: it follows the index whatever
/// the statistics ([`super::INDEX_ORDER`]).
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    filter: &ExceptionFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<ExceptionRow>> {
    let q = list_query(filter, after, merchant)?;
    in_index_order(conn).await?;
    let rows: Vec<ExRow> = q.page(&list_order(filter), limit).load(conn).await?;
    let (rows, next) = page(rows, limit, |r| Cursor {
        time: r.create_time,
        id: if filter.by_risk {
            let amount = r.at_risk_amount.unwrap_or(Decimal::NEGATIVE_ONE);
            format!("{amount}|{}", r.exception_id)
        } else {
            r.exception_id.to_string()
        },
    });
    Ok(Page {
        items: rows
            .into_iter()
            .map(ExRow::into_row)
            .collect::<Result<_>>()?,
        next,
    })
}

#[derive(QueryableByName)]
struct EvidenceRow {
    #[diesel(sql_type = SqlUuid)]
    exception_id: Uuid,
    #[diesel(sql_type = Jsonb)]
    details: serde_json::Value,
}

/// [`person_resolved`]'s statement.
pub const PERSON_RESOLVED: &str = "
    SELECT exception_id, details FROM exceptions
    WHERE merchant_id = $1 AND exception_id = ANY($2) AND state = 'resolved'
      AND resolved_by IS DISTINCT FROM 'rules'";

/// Of `ids`, those a person resolved (not the rules), with the evidence
/// they were resolved on.
pub async fn person_resolved(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    ids: &[Uuid],
) -> Result<std::collections::BTreeMap<Uuid, serde_json::Value>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(statement(PERSON_RESOLVED)
        .bind::<Text, _>(merchant)
        .bind::<Array<SqlUuid>, _>(ids)
        .load::<EvidenceRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| (r.exception_id, r.details))
        .collect())
}
