//! SQL whose text is fixed, so each connection prepares it once.
//!
//! diesel's `sql_query` marks every statement as unsafe to cache (its text
//! could embed values), so each execution prepares anew: an extra round
//! trip per statement, which is most of the cost of a one-record call. Our
//! statements take every value as a `$n` parameter, so their text is a safe
//! cache key. Values are attached with `.bind`, in `$n` order, as with
//! `sql_query`.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDslSupport;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

#[derive(Debug, Clone)]
pub(crate) struct Statement {
    sql: String,
    prepared: bool,
}

pub(crate) fn statement(sql: impl Into<String>) -> Statement {
    Statement {
        sql: sql.into(),
        prepared: true,
    }
}

/// A statement sent unnamed: planned at each run with its values, for the
/// tables as they are then, never kept (one more round trip). For a
/// statement whose only good plan depends on a table's size, where a plan
/// a connection kept from when the table was small would scan it as it
/// grows (`jobs::absorb`).
pub(crate) fn planned_each_run(sql: impl Into<String>) -> Statement {
    Statement {
        sql: sql.into(),
        prepared: false,
    }
}

/// A statement (or a bound statement) with one more value.
pub(crate) struct Bound<Q, V, ST> {
    query: Q,
    value: V,
    _type: PhantomData<ST>,
}

pub(crate) trait Bind: Sized {
    fn bind<ST, V>(self, value: V) -> Bound<Self, V, ST> {
        Bound {
            query: self,
            value,
            _type: PhantomData,
        }
    }
}

impl Bind for Statement {}
impl<Q, V, ST> Bind for Bound<Q, V, ST> {}

impl QueryFragment<Pg> for Statement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.prepared {
            out.unsafe_to_cache_prepared();
        }
        out.push_sql(&self.sql);
        Ok(())
    }
}

impl<Q, V, ST> QueryFragment<Pg> for Bound<Q, V, ST>
where
    Q: QueryFragment<Pg>,
    V: ToSql<ST, Pg>,
    Pg: HasSqlType<ST>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        // The `$n` is already in the text; only the value is added. (Public
        // with diesel's third-party-backend feature, which diesel-async
        // turns on and Cargo.toml names.)
        out.push_bind_param_value_only(&self.value)
    }
}

// No static id: diesel then keys its statement cache by the SQL text.
impl QueryId for Statement {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, V, ST> QueryId for Bound<Q, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement {
    type SqlType = Untyped;
}

// Since diesel 2.4 / diesel-async 0.10, `RunQueryDsl` (load, execute) is
// offered only to the query types that opt in.
impl RunQueryDslSupport for Statement {}
impl<Q, V, ST> RunQueryDslSupport for Bound<Q, V, ST> {}

impl<Q, V, ST> Query for Bound<Q, V, ST> {
    type SqlType = Untyped;
}

/// The row of a `SELECT EXISTS (...) AS found`.
#[derive(diesel::QueryableByName)]
pub(crate) struct Found {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub found: bool,
}
