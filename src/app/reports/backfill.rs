//! Counts the records a database held before period reports existed, as
//! known when they were received: run after migrations by every process
//! (replicas share the work; each chunk commits with its cursor, so a
//! restart resumes). Facts of one knowledge time are always counted in one
//! chunk, so no delta row of a past knowledge time is ever written twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use rust_decimal::Decimal;

use super::deltas::version_deltas;
use crate::error::{Error, Result};
use crate::storage::{Store, report_backfill};

const CHUNK: i64 = 2000;

type Key = (DateTime<Utc>, DateTime<Utc>, String, String);

/// Runs every pending backfill to its end; returns the records counted.
pub async fn run(store: &Store) -> Result<u64> {
    let mut counted = 0u64;
    loop {
        let mut conn = store.conn().await?;
        let step = conn
            .transaction(async |conn| {
                let Some(p) = report_backfill::claim(conn).await? else {
                    return Ok::<_, Error>(None);
                };
                let mut versions = report_backfill::versions(conn, &p, None, CHUNK).await?;
                // A full chunk takes the rest of its last knowledge time too.
                if versions.len() as i64 == CHUNK
                    && let Some(last) = versions.last()
                {
                    let at = last.receive_time;
                    let from = report_backfill::Pending {
                        merchant_id: p.merchant_id.clone(),
                        upto_record_id: p.upto_record_id,
                        after_time: Some(at),
                        after_id: last.record_id,
                    };
                    versions
                        .extend(report_backfill::versions(conn, &from, Some(at), i64::MAX).await?);
                }
                let mut merged: BTreeMap<Key, (Decimal, i64)> = BTreeMap::new();
                for v in &versions {
                    let mut deltas = version_deltas(&v.record, 1)?;
                    if let Some((_, old)) = &v.superseded {
                        deltas.extend(version_deltas(old, -1)?);
                    }
                    for (bucket, figure, currency, amount, count) in deltas {
                        let e = merged
                            .entry((v.receive_time, bucket, figure, currency))
                            .or_default();
                        e.0 = e.0.checked_add(amount).ok_or_else(|| {
                            Error::Internal("a backfilled delta overflows".into())
                        })?;
                        e.1 += count;
                    }
                }
                let rows = merged
                    .into_iter()
                    .filter(|(_, (a, n))| !a.is_zero() || *n != 0)
                    .map(|((k, b, f, c), (a, n))| (k, b, f, c, a, n))
                    .collect();
                report_backfill::insert(conn, &p.merchant_id, rows).await?;
                let cursor = versions.last().map(|v| (v.receive_time, v.record_id));
                report_backfill::advance(conn, &p.merchant_id, cursor).await?;
                Ok(Some((p.merchant_id, versions.len() as u64)))
            })
            .await?;
        match step {
            None => return Ok(counted),
            Some((merchant, n)) => {
                counted += n;
                if n == 0 {
                    tracing::info!(%merchant, "period reports now count every stored record");
                }
            }
        }
    }
}
