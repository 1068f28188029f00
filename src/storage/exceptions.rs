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

use super::listing::{Cursor, Listing, Page, Param, TimeWindow, page};
use super::statement::{Bind, statement};
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

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = Text)]
    order_id: String,
}

/// The orders among `orders` with an unresolved record conflict.
pub async fn conflicted_orders(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<BTreeSet<String>> {
    Ok(statement(
        "SELECT DISTINCT order_id FROM exceptions
         WHERE merchant_id = $1 AND order_id = ANY($2) AND state <> 'resolved' AND type = 'record_conflict'",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .load::<OrderRow>(conn)
    .await?
    .into_iter()
    .map(|r| r.order_id)
    .collect())
}

/// Resolves the exceptions of these types on these orders that are not in
/// `keep`.
pub async fn resolve_others(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
    types: &[&str],
    keep: &[Uuid],
) -> Result<()> {
    statement(
        "UPDATE exceptions SET state = 'resolved', resolve_time = now(), update_time = now()
         WHERE merchant_id = $1 AND order_id = ANY($2) AND state <> 'resolved'
           AND type = ANY($3) AND NOT (exception_id = ANY($4))",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(orders)
    .bind::<Array<Text>, _>(types)
    .bind::<Array<SqlUuid>, _>(keep)
    .execute(conn)
    .await?;
    Ok(())
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

/// The sort key of the amount-at-risk order: exceptions without a figure
/// sort last (-1 is below every absolute difference).
const RISK_KEY: &str = "coalesce(at_risk_amount, -1)";

/// The exceptions of one order that are not resolved, oldest first.
pub async fn unresolved(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    order_id: &str,
) -> Result<Vec<ExceptionRow>> {
    let rows: Vec<ExRow> = statement(format!(
        "SELECT {EXCEPTION_COLUMNS} FROM exceptions
         WHERE merchant_id = $1 AND order_id = $2 AND state <> 'resolved'
         ORDER BY create_time, exception_id"
    ))
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(order_id)
    .load(conn)
    .await?;
    rows.into_iter().map(ExRow::into_row).collect()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    filter: &ExceptionFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<ExceptionRow>> {
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
    let order = if filter.by_risk {
        format!("{RISK_KEY} DESC, exception_id DESC")
    } else {
        "create_time DESC, exception_id DESC".to_string()
    };
    let rows: Vec<ExRow> = q.page(&order, limit).load(conn).await?;
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
