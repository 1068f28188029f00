//! Counts behind the on-call gauges, read at each scrape of `/metrics`:
//! open exceptions by type and owner, and the worker's backlog. Across all
//! merchants (a scrape is about the deployment), each over a partial index
//! or a queue that stays small.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::Conn;
use super::statement::statement;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Count {
    #[diesel(sql_type = Text)]
    pub a: String,
    #[diesel(sql_type = Text)]
    pub b: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// Unresolved exceptions: (type, owner or ""), count.
pub async fn open_exceptions(conn: &mut Conn) -> Result<Vec<Count>> {
    Ok(statement(
        "SELECT type AS a, coalesce(owner, '') AS b, count(*) AS n FROM exceptions
         WHERE state <> 'resolved' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .load(conn)
    .await?)
}

/// Work waiting for the worker: (kind, state), count; a job asked for and
/// not yet folded into `jobs` (a signal) counts as ready, once however many
/// times it was asked for; exception alerts not yet delivered are kind
/// `deliver_alert`.
pub async fn backlog(conn: &mut Conn) -> Result<Vec<Count>> {
    Ok(statement(
        "SELECT kind AS a, state AS b, count(*) AS n FROM (
           SELECT kind, subject_id, state FROM jobs
           UNION SELECT kind, subject_id, 'ready' FROM job_signals) w
         GROUP BY 1, 2
         UNION ALL
         SELECT 'deliver_alert', 'ready', count(*) FROM alert_deliveries WHERE state = 'pending'
         ORDER BY 1, 2",
    )
    .load(conn)
    .await?)
}
