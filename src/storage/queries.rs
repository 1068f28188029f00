//! The read path: point reads and keyset-paged lists, each served by an
//! index that leads with the merchant.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Store;
use super::records::load_records;
use super::statement::{Bind, statement};
use crate::domain::matching::ExceptionType;
use crate::domain::record::Handoff;
use crate::domain::transaction::{ReconciliationState, Transaction, merge};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct TransactionRow {
    pub transaction: Transaction,
    pub state: ReconciliationState,
}

#[derive(QueryableByName)]
struct TxRow {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Array<Text>)]
    reasons: Vec<String>,
    #[diesel(sql_type = Timestamptz)]
    event_time: DateTime<Utc>,
}

const TX_COLUMNS: &str = "order_id, state, reasons, event_time";

/// Merges each projection row's records into its canonical transaction,
/// with the state and reasons the write path settled on.
async fn with_transactions(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    rows: Vec<TxRow>,
) -> Result<Vec<TransactionRow>> {
    let orders: Vec<String> = rows.iter().map(|r| r.order_id.clone()).collect();
    let mut records = load_records(conn, merchant, &orders).await?;
    rows.into_iter()
        .map(|row| {
            let state = ReconciliationState::parse(&row.state)
                .ok_or_else(|| Error::Internal(format!("unknown state {}", row.state)))?;
            let mut transaction = merge(
                &row.order_id,
                &records.remove(&row.order_id).unwrap_or_default(),
            );
            transaction.state = state;
            transaction.reasons = row.reasons;
            Ok(TransactionRow { transaction, state })
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct ExceptionRow {
    pub exception_id: Uuid,
    pub order_id: Option<String>,
    pub exception_type: ExceptionType,
    pub handoff: Handoff,
    pub state: String,
    pub rule: String,
    pub summary: String,
    pub details: serde_json::Value,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub resolve_time: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct ExRow {
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
}

impl ExRow {
    fn into_row(self) -> Result<ExceptionRow> {
        Ok(ExceptionRow {
            exception_id: self.exception_id,
            order_id: self.order_id,
            exception_type: ExceptionType::parse(&self.r#type).ok_or_else(|| {
                Error::Internal(format!("unknown exception type {}", self.r#type))
            })?,
            handoff: Handoff::parse(&self.handoff)
                .ok_or_else(|| Error::Internal(format!("unknown handoff {}", self.handoff)))?,
            state: self.state,
            rule: self.rule,
            summary: self.summary,
            details: self.details,
            create_time: self.create_time,
            update_time: self.update_time,
            resolve_time: self.resolve_time,
        })
    }
}

const EXCEPTION_COLUMNS: &str = "exception_id, order_id, type, handoff, state, rule, summary, details, \
                                 create_time, update_time, resolve_time";

/// Where a page starts: the sort key of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: DateTime<Utc>,
    pub id: String,
}

#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub state: Option<ReconciliationState>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct ExceptionFilter {
    pub exception_type: Option<ExceptionType>,
    pub handoff: Option<Handoff>,
    pub state: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// One page, and the cursor of the next when there is one.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl Store {
    pub async fn get_transaction(&self, merchant: &str, order_id: &str) -> Result<TransactionRow> {
        let mut conn = self.conn().await?;
        let rows: Vec<TxRow> = statement(format!(
            "SELECT {TX_COLUMNS} FROM transactions WHERE merchant_id = $1 AND order_id = $2"
        ))
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(order_id)
        .load(&mut conn)
        .await?;
        if rows.is_empty() {
            return Err(Error::NotFound(format!(
                "merchants/{merchant}/transactions/{order_id}"
            )));
        }
        Ok(with_transactions(&mut conn, merchant, rows)
            .await?
            .remove(0))
    }

    pub async fn list_transactions(
        &self,
        merchant: &str,
        filter: &TransactionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<TransactionRow>> {
        let mut q = Listing::new(&format!("SELECT {TX_COLUMNS} FROM transactions"), merchant);
        if let Some(st) = filter.state {
            q.and("state =", Param::Text(st.as_str().into()));
        }
        if let Some(t) = filter.start_time {
            q.and("event_time >=", Param::Time(t));
        }
        if let Some(t) = filter.end_time {
            q.and("event_time <", Param::Time(t));
        }
        if let Some(c) = after {
            q.after("event_time, order_id", c.time, Param::Text(c.id.clone()));
        }
        let mut conn = self.conn().await?;
        let rows: Vec<TxRow> = q
            .page("event_time DESC, order_id DESC", limit)
            .load(&mut conn)
            .await?;
        let (rows, next) = page(rows, limit, |r| Cursor {
            time: r.event_time,
            id: r.order_id.clone(),
        });
        Ok(Page {
            items: with_transactions(&mut conn, merchant, rows).await?,
            next,
        })
    }

    /// The exceptions of one order that are not resolved, oldest first.
    pub async fn unresolved_exceptions(
        &self,
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
        .load(&mut self.conn().await?)
        .await?;
        rows.into_iter().map(ExRow::into_row).collect()
    }

    pub async fn list_exceptions(
        &self,
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
        if let Some(st) = &filter.state {
            q.and("state =", Param::Text(st.clone()));
        }
        if let Some(t) = filter.start_time {
            q.and("create_time >=", Param::Time(t));
        }
        if let Some(t) = filter.end_time {
            q.and("create_time <", Param::Time(t));
        }
        if let Some(c) = after {
            let id = Uuid::parse_str(&c.id)
                .map_err(|_| Error::invalid("page_token", "malformed page token"))?;
            q.after("create_time, exception_id", c.time, Param::Uuid(id));
        }
        let rows: Vec<ExRow> = q
            .page("create_time DESC, exception_id DESC", limit)
            .load(&mut self.conn().await?)
            .await?;
        let (rows, next) = page(rows, limit, |r| Cursor {
            time: r.create_time,
            id: r.exception_id.to_string(),
        });
        Ok(Page {
            items: rows
                .into_iter()
                .map(ExRow::into_row)
                .collect::<Result<_>>()?,
            next,
        })
    }
}

enum Param {
    Text(String),
    Time(DateTime<Utc>),
    Uuid(Uuid),
}

/// A merchant's list query with only the filters asked for, so the planner
/// can pick the index that fits, paged by keyset.
struct Listing {
    sql: String,
    binds: Vec<Param>,
}

impl Listing {
    fn new(select: &str, merchant: &str) -> Listing {
        Listing {
            sql: format!("{select} WHERE merchant_id = $1"),
            binds: vec![Param::Text(merchant.into())],
        }
    }

    fn placeholder(&mut self, b: Param) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    /// `condition` is a column and an operator: "state =".
    fn and(&mut self, condition: &str, b: Param) {
        let p = self.placeholder(b);
        self.sql.push_str(&format!(" AND {condition} {p}"));
    }

    /// Rows after the cursor, for a `time DESC, id DESC` order.
    fn after(&mut self, columns: &str, time: DateTime<Utc>, id: Param) {
        let (t, i) = (self.placeholder(Param::Time(time)), self.placeholder(id));
        self.sql.push_str(&format!(" AND ({columns}) < ({t}, {i})"));
    }

    /// Asks for one row more than the page, to tell whether another exists.
    fn page(mut self, order_by: &str, limit: usize) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        self.sql
            .push_str(&format!(" ORDER BY {order_by} LIMIT {}", limit + 1));
        let mut q = sql_query(self.sql).into_boxed::<Pg>();
        for b in self.binds {
            q = match b {
                Param::Text(v) => q.bind::<Text, _>(v),
                Param::Time(v) => q.bind::<Timestamptz, _>(v),
                Param::Uuid(v) => q.bind::<SqlUuid, _>(v),
            };
        }
        q
    }
}

/// Fetching one row more than asked tells whether another page exists
/// without a COUNT.
fn page<R>(
    mut rows: Vec<R>,
    limit: usize,
    cursor: impl Fn(&R) -> Cursor,
) -> (Vec<R>, Option<Cursor>) {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    };
    (rows, next)
}
