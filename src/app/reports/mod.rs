//! Period reports (issue 20): a merchant's figures for a period as of a
//! knowledge time, what moved them between two times, and period closes.
//! Reads sum stored deltas (`storage::reports`); nothing here writes but
//! a close.

pub mod backfill;
pub mod deltas;
mod diff;
pub mod lines;

use chrono::{DateTime, Utc};

use super::App;
use crate::domain::report::sheet::{self, DigestHeader};
use crate::domain::report::{Period, Sheet};
use crate::error::{Error, Result};
use crate::storage::{Conn, reports};

pub use diff::ReportDiff;

/// A close in force: finance's figures are those known at `closed_as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub closed_as_of: DateTime<Utc>,
    pub actor: String,
    pub close_time: DateTime<Utc>,
}

/// A close or a reopen, as a person asks for it.
pub struct CloseChange<'a> {
    /// true: close; false: reopen.
    pub close: bool,
    /// The knowledge time to close at (default: now, settled).
    pub as_of: Option<DateTime<Utc>>,
    /// The state's etag, when the caller read it ("" when not).
    pub etag: &'a str,
    pub actor: &'a str,
    pub note: &'a str,
}

/// A period's close state and its history, with the etag a change must send.
#[derive(Debug, Clone)]
pub struct CloseState {
    pub close: Option<Close>,
    pub history: Vec<reports::CloseRow>,
    pub etag: String,
}

#[derive(Debug, Clone)]
pub struct PeriodReport {
    pub merchant: String,
    pub period: Period,
    /// The knowledge time the report is as of (resolved when not given).
    pub as_of: DateTime<Utc>,
    /// The close in force at `as_of`; `figures` are then as of the close.
    pub close: Option<Close>,
    pub figures: Sheet,
    /// Facts learned after the close, up to `as_of`: never inside `figures`.
    pub post_close: Sheet,
    pub digest: String,
}

/// How a period is keyed in period_closes: its label and zone.
fn period_key(p: &Period) -> String {
    format!("{}@{}", p.label, p.zone.name())
}

impl CloseState {
    fn of(history: Vec<reports::CloseRow>, as_of: Option<DateTime<Utc>>) -> CloseState {
        let in_force = history
            .iter()
            .rfind(|c| as_of.is_none_or(|t| c.create_time <= t));
        let close = in_force.and_then(|c| {
            c.closed_as_of.map(|k| Close {
                closed_as_of: k,
                actor: c.actor.clone(),
                close_time: c.create_time,
            })
        });
        let etag = format!("W/\"{}\"", history.last().map_or(0, |c| c.close_no));
        CloseState {
            close,
            history,
            etag,
        }
    }
}

/// The period's figures (stored and derived) as known at `as_of`.
pub(crate) async fn sheet_at(
    conn: &mut Conn,
    merchant: &str,
    period: &Period,
    as_of: DateTime<Utc>,
) -> Result<Sheet> {
    let lines = reports::sums(conn, merchant, period.start, period.end, as_of).await?;
    let ledger = reports::ledger_sums(conn, merchant, period.ledger_end_date(), as_of).await?;
    let summed =
        |e: crate::domain::report::figures::Overflow| Error::corrupt("a period report's sums", e);
    Sheet::from_lines(lines)
        .and_then(|s| s.with_derived(&ledger))
        .map_err(summed)
}

/// `asked`, or the settled horizon; a time past the horizon could still
/// change, so it is refused.
pub(crate) async fn resolve_as_of(
    conn: &mut Conn,
    field: &str,
    asked: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>> {
    let horizon = reports::horizon(conn).await?;
    match asked {
        None => Ok(horizon),
        Some(t) if t <= horizon => Ok(t),
        Some(t) => Err(Error::invalid(
            field,
            format!(
                "{} is later than what Tally has settled ({}): a report as of it could still change",
                t.to_rfc3339(),
                horizon.to_rfc3339()
            ),
        )),
    }
}

impl App {
    /// The period's report as of `as_of` (default: now, settled). Within a
    /// close in force then, figures are the close's and later facts are
    /// post-close adjustments.
    pub async fn period_report(
        &self,
        merchant: &str,
        period: &Period,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<PeriodReport> {
        let mut conn = self.store.conn().await?;
        let as_of = resolve_as_of(&mut conn, "as_of", as_of).await?;
        let history = reports::close_history(&mut conn, merchant, &period_key(period)).await?;
        let close = CloseState::of(history, Some(as_of)).close;
        let now = sheet_at(&mut conn, merchant, period, as_of).await?;
        let (figures, post_close) = match &close {
            Some(c) if c.closed_as_of < as_of => {
                let closed = sheet_at(&mut conn, merchant, period, c.closed_as_of).await?;
                let post = now
                    .minus(&closed)
                    .map_err(|e| Error::corrupt("a period report's post-close sums", e))?;
                (closed, post)
            }
            _ => (now, Sheet::default()),
        };
        let digest = sheet::digest(
            &DigestHeader {
                merchant,
                period,
                as_of,
                closed_as_of: close.as_ref().map(|c| c.closed_as_of),
            },
            &figures,
            &post_close,
        );
        Ok(PeriodReport {
            merchant: merchant.to_string(),
            period: period.clone(),
            as_of,
            close,
            figures,
            post_close,
            digest,
        })
    }

    /// The period's close state now.
    pub async fn period_close(&self, merchant: &str, period: &Period) -> Result<CloseState> {
        let mut conn = self.store.conn().await?;
        let history = reports::close_history(&mut conn, merchant, &period_key(period)).await?;
        Ok(CloseState::of(history, None))
    }

    /// Closes the period at `as_of` (default: now, settled), or reopens it
    /// (`change.close` false). An etag, when sent, must be the state's current one.
    pub async fn set_period_close(
        &self,
        merchant: &str,
        period: &Period,
        change: CloseChange<'_>,
    ) -> Result<CloseState> {
        let CloseChange {
            close,
            as_of,
            etag,
            actor,
            note,
        } = change;
        let mut conn = self.store.conn().await?;
        let key = period_key(period);
        let state = CloseState::of(
            reports::close_history(&mut conn, merchant, &key).await?,
            None,
        );
        if !etag.is_empty() && etag != state.etag {
            return Err(Error::StaleEtag {
                what: format!("the close of period {}", period.label),
                sent: etag.to_string(),
            });
        }
        let closed_as_of = if close {
            if state.close.is_some() {
                return Err(Error::InvalidState {
                    what: format!("period {} is already closed; reopen it first", period.label),
                });
            }
            Some(resolve_as_of(&mut conn, "as_of", as_of).await?)
        } else {
            if state.close.is_none() {
                return Err(Error::InvalidState {
                    what: format!("period {} is not closed", period.label),
                });
            }
            None
        };
        let next = state.history.last().map_or(1, |c| c.close_no + 1);
        if !reports::append_close(&mut conn, merchant, &key, next, closed_as_of, actor, note)
            .await?
        {
            return Err(Error::StaleEtag {
                what: format!("the close of period {}", period.label),
                sent: state.etag,
            });
        }
        let history = reports::close_history(&mut conn, merchant, &key).await?;
        Ok(CloseState::of(history, None))
    }
}
