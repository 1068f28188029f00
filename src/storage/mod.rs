//! PostgreSQL: the pool, migrations, and the statements Tally runs. All SQL
//! lives under this module and nothing here decides anything: the use cases
//! in `app` open transactions (`Store::conn` + `AsyncConnection::transaction`)
//! and call these statements, one module per table or concern.

pub mod alerts;
pub mod api_keys;
pub mod citus;
pub mod contracts;
pub mod deposits;
pub mod exception_events;
pub mod exceptions;
pub mod expectations;
pub mod gauges;
pub mod job_signals;
pub mod jobs;
pub mod ledger;
pub mod ledger_entries;
pub mod ledger_reads;
pub mod links;
mod listing;
pub mod locks;
pub mod open_invoices;
pub mod payout_batch;
pub mod payout_facts;
pub mod payout_journals;
pub mod payouts;
pub mod rechecks;
pub mod record_log;
pub mod record_versions;
pub mod report_backfill;
pub mod report_facts;
pub mod reports;
mod statement;
pub mod submissions;
pub mod transactions;

use std::time::Duration;

use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use listing::{Cursor, INDEX_ORDER, Page, TimeWindow, page};

/// The connection a use case runs its statements on, inside the
/// transaction it opened.
pub type Conn = AsyncPgConnection;

use crate::error::{Error, Result};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
/// Session helpers every migration may call: distribute a table by merchant
/// on a Citus coordinator, nothing on plain PostgreSQL (docs/citus.md).
/// Upserts in this module take their times from EXCLUDED (the inserted
/// row's now()), never now() in DO UPDATE SET: Citus refuses any function
/// that is not immutable there.
const CITUS_HELPERS: &str = include_str!("citus.sql");

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pool: Pool<AsyncPgConnection>,
}

impl Store {
    /// Builds the pool. Connections are made lazily, so this succeeds even
    /// while the database is down; health reports that separately.
    pub fn connect(database_url: &str, max_size: usize) -> Result<Store> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Internal(format!("building the connection pool: {e}")))?;
        Ok(Store { pool })
    }

    /// Whether the database answers a query now.
    pub async fn ping(&self) -> Result<()> {
        use deadpool::managed::{PoolError, TimeoutType};
        let mut conn = match self.pool.get().await {
            Ok(c) => c,
            // Every connection is checked out by a call in progress: the
            // database is busy, not gone, and health must not flap under load.
            Err(PoolError::Timeout(TimeoutType::Wait)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }

    /// How many connections are open, idle, and waited for.
    pub fn pool_status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// A connection from the pool; the caller opens its transaction on it.
    pub async fn conn(
        &self,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>> {
        Ok(self.pool.get().await?)
    }
}

/// How long `explain_failure` waits for a connection to answer before
/// taking it for gone.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What an error means once the connection it came on has been asked.
///
/// A server going away under a call in flight sends a FATAL error (57P01
/// admin_shutdown, 57P02, 57P03: `DatabaseInterrupted` by its code) and
/// closes the connection; but what reaches the use case may be a later
/// failure with no SQLSTATE (a rollback that could not be sent, a row half
/// read), which is `Internal` and would tell the caller not to retry. Text
/// never decides (a message is no contract), so the connection is asked
/// instead: an `Internal` error on a connection that no longer answers
/// `SELECT 1` is the database going away, `DatabaseUnavailable` like every
/// call after it. Every other error, and an `Internal` one on a connection
/// that still answers, is left as it is. Costs nothing on success: it runs
/// only on the failure path.
pub async fn explain_failure(conn: &mut Conn, e: Error) -> Error {
    if !matches!(e, Error::Internal(_)) {
        return e;
    }
    let probe = diesel::sql_query("SELECT 1").execute(conn);
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(_)) => e,
        Ok(Err(gone)) => {
            tracing::debug!(error = %gone, "the connection died with the call");
            Error::DatabaseUnavailable {
                source: Box::new(e),
            }
        }
        Err(_) => Error::DatabaseUnavailable {
            source: Box::new(e),
        },
    }
}

/// `explain_failure` for a result: the error, if any, as the connection explains it.
pub async fn explained<T>(conn: &mut Conn, r: Result<T>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => Err(explain_failure(conn, e).await),
    }
}

/// A currency code read back from storage (written by Tally, so an unknown
/// one is corruption, not a caller's mistake).
pub(crate) fn stored_currency(code: &str) -> Result<crate::domain::currency::Currency> {
    crate::domain::currency::Currency::from_code(code)
        .ok_or_else(|| Error::corrupt("a stored currency", code.to_string()))
}

/// Runs pending migrations. Diesel's migration harness is synchronous, so it
/// runs on a blocking thread over an async connection wrapper (no libpq).
pub async fn run_migrations(database_url: &str) -> Result<Vec<String>> {
    let url = database_url.to_string();
    tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
        let mut conn =
            AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).map_err(|e| {
                Error::DatabaseUnavailable {
                    source: Box::new(e),
                }
            })?;
        // The session's helpers the migrations call (Citus distribution).
        diesel::connection::SimpleConnection::batch_execute(&mut conn, CITUS_HELPERS)
            .map_err(|e| Error::Internal(format!("preparing migrations: {e}")))?;
        let on_citus = diesel::RunQueryDsl::get_result::<OnCitus>(
            diesel::sql_query("SELECT pg_temp.tally_on_citus() AS on_citus"),
            &mut conn,
        )
        .map_err(|e| Error::Internal(format!("preparing migrations: {e}")))?
        .on_citus;
        let applied = if on_citus {
            conn.run_pending_migrations(citus::StatementWise(MIGRATIONS))
        } else {
            conn.run_pending_migrations(MIGRATIONS)
        }
        .map_err(|e| Error::Internal(format!("running migrations: {e}")))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

#[derive(diesel::QueryableByName)]
struct OnCitus {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_citus: bool,
}

#[derive(diesel::QueryableByName)]
struct Now {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    now: chrono::DateTime<chrono::Utc>,
}

/// Makes the caller's (just opened) transaction one read-only snapshot,
/// so several reads agree; returns the database's clock.
pub async fn snapshot(conn: &mut Conn) -> Result<chrono::DateTime<chrono::Utc>> {
    statement::statement("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(conn)
        .await?;
    Ok(statement::statement("SELECT now() AS now")
        .get_result::<Now>(conn)
        .await?
        .now)
}
