//! Keyset-paged list queries with only the filters asked for, so the
//! planner can pick the index that fits. Every list leads with the merchant.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_query;
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::statement::statement;
use crate::error::Result;

/// Planner settings for the rest of the transaction: no sorting. A page is
/// `ORDER BY <an index's columns> LIMIT n`, and an index scan in that order
/// stops after n rows; but for a merchant whose rows arrived since the last
/// ANALYZE the planner expects a handful of rows, and reads all of them
/// (a bitmap scan) to sort them instead. With sorting ruled out, the
/// ordered index scan is the only plan left, whatever the statistics.
/// Local to the transaction (`set_config(.., true)`): the caller opens one.
pub const INDEX_ORDER: &str = "SELECT set_config('enable_sort', 'off', true), \
                               set_config('enable_incremental_sort', 'off', true)";

/// Makes the pages read later in this transaction follow their index.
pub(crate) async fn in_index_order(conn: &mut AsyncPgConnection) -> Result<()> {
    statement(INDEX_ORDER).execute(conn).await?;
    Ok(())
}

/// Where a page starts: the sort key of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: DateTime<Utc>,
    pub id: String,
}

/// A [start, end) window on a list's time column; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// One page, and where the next starts when there is one (the sort key of
/// the page's last row: a [`Cursor`], or a list's own key).
pub struct Page<T, K = Cursor> {
    pub items: Vec<T>,
    pub next: Option<K>,
}

pub(crate) enum Param {
    Text(String),
    Time(DateTime<Utc>),
    Uuid(Uuid),
}

/// A merchant's list query with only the filters asked for, so the planner
/// can pick the index that fits, paged by keyset.
pub(crate) struct Listing {
    sql: String,
    binds: Vec<Param>,
}

impl Listing {
    pub(crate) fn new(select: &str, merchant: &str) -> Listing {
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
    pub(crate) fn and(&mut self, condition: &str, b: Param) {
        let p = self.placeholder(b);
        self.sql.push_str(&format!(" AND {condition} {p}"));
    }

    /// A condition in which `{}` stands for the bound value.
    pub(crate) fn and_with(&mut self, template: &str, b: Param) {
        let p = self.placeholder(b);
        self.sql
            .push_str(&format!(" AND {}", template.replace("{}", &p)));
    }

    /// Rows of `column` inside the window.
    pub(crate) fn window(&mut self, column: &str, w: &TimeWindow) {
        if let Some(t) = w.start {
            self.and(&format!("{column} >="), Param::Time(t));
        }
        if let Some(t) = w.end {
            self.and(&format!("{column} <"), Param::Time(t));
        }
    }

    /// Rows after the cursor, for a `time DESC, id DESC` order.
    pub(crate) fn after(&mut self, columns: &str, time: DateTime<Utc>, id: Param) {
        let (t, i) = (self.placeholder(Param::Time(time)), self.placeholder(id));
        self.sql.push_str(&format!(" AND ({columns}) < ({t}, {i})"));
    }

    /// The statement's text once ordered and limited as [`Listing::page`]
    /// does it (for plan tests).
    pub(crate) fn page_sql(mut self, order_by: &str, limit: usize) -> String {
        self.order(order_by, limit);
        self.sql
    }

    fn order(&mut self, order_by: &str, limit: usize) {
        self.sql
            .push_str(&format!(" ORDER BY {order_by} LIMIT {}", limit + 1));
    }

    /// Asks for one row more than the page, to tell whether another exists.
    pub(crate) fn page(
        mut self,
        order_by: &str,
        limit: usize,
    ) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        self.order(order_by, limit);
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
pub fn page<R, K>(mut rows: Vec<R>, limit: usize, cursor: impl Fn(&R) -> K) -> (Vec<R>, Option<K>) {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    };
    (rows, next)
}
