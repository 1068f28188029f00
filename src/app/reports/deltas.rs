//! What a submission's new records and versions add to period reports:
//! each version's contributions, minus those of the version it superseded,
//! known in the submission's own transaction.

use crate::domain::record::Record;
use crate::domain::report::{self, Contribution};
use crate::error::{Error, Result};
use crate::storage::{Conn, report_facts, reports};

/// The deltas of one version: `sign` +1 for what it brings, -1 for what a
/// superseded version no longer counts.
pub fn version_deltas(r: &Record, sign: i8) -> Result<Vec<reports::Delta>> {
    let bucket = report::bucket(r.event_time);
    let contributions = report::contributions(r)
        .map_err(|e| Error::invalid(format!("record {}", r.source_id), e.to_string()))?;
    Ok(contributions
        .into_iter()
        .map(|c: Contribution| {
            let (amount, count) = if sign < 0 {
                (-c.amount, -c.count)
            } else {
                (c.amount, c.count)
            };
            (
                bucket,
                c.figure.name().to_string(),
                c.currency.code().to_string(),
                amount,
                count,
            )
        })
        .collect())
}

/// Adds the deltas of records stored now: `stored` are (record id, record),
/// `updated` the ids among them that superseded a version.
pub(crate) async fn count_stored(
    conn: &mut Conn,
    merchant: &str,
    stored: &[(i64, &Record)],
    updated: &[i64],
) -> Result<()> {
    let mut deltas = vec![];
    for (_, r) in stored {
        deltas.extend(version_deltas(r, 1)?);
    }
    if !updated.is_empty() {
        for v in report_facts::versions_by_id(conn, merchant, updated).await? {
            if let Some((_, old)) = &v.superseded {
                deltas.extend(version_deltas(old, -1)?);
            }
        }
    }
    reports::add(conn, merchant, deltas).await
}
