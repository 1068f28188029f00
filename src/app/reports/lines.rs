//! A figure's drill-down: the records or exceptions it sums as of a
//! knowledge time, a page at a time.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::resolve_as_of;
use crate::app::App;
use crate::domain::matching::ExceptionType;
use crate::domain::report::diff::{Fact, FactSource};
use crate::domain::report::sheet::{LEDGER_BALANCES, exception_figure};
use crate::domain::report::{Figure, GhostCategory, Period, contributions};
use crate::error::{Error, Result};
use crate::storage::report_facts;

/// Where a page of lines resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesAfter {
    Record(DateTime<Utc>, i64),
    Exception(Uuid),
    Entry(i64),
}

/// What a figure name drills into.
enum Source {
    Records(Figure),
    Exceptions(Vec<ExceptionType>),
    /// A ledger balance: (account role, sign).
    Entries(&'static str, i8),
}

fn source(figure: &str) -> Result<Source> {
    if let Some(f) = Figure::parse(figure) {
        return Ok(Source::Records(f));
    }
    if let Some(c) = GhostCategory::parse(figure) {
        return Ok(Source::Exceptions(c.types().to_vec()));
    }
    if let Some(t) = figure
        .strip_prefix("exceptions.")
        .and_then(ExceptionType::parse)
    {
        return Ok(Source::Exceptions(vec![t]));
    }
    if let Some((_, account, sign)) = LEDGER_BALANCES.iter().find(|(f, _, _)| *f == figure) {
        return Ok(Source::Entries(account, *sign));
    }
    Err(Error::invalid(
        "figure",
        format!(
            "{figure:?} has no lines to list: expected a record figure (storefront.*, processor.*, \
             erp.*, bank.*), exceptions.TYPE, ghost.CATEGORY or a ledger balance"
        ),
    ))
}

impl App {
    /// One page of what `figure` sums for the period as of `as_of`.
    pub async fn report_lines(
        &self,
        merchant: &str,
        period: &Period,
        figure: &str,
        as_of: Option<DateTime<Utc>>,
        after: Option<LinesAfter>,
        limit: usize,
    ) -> Result<(DateTime<Utc>, Vec<Fact>, Option<LinesAfter>)> {
        let source = source(figure)?;
        let mut conn = self.store.conn().await?;
        let as_of = resolve_as_of(&mut conn, "as_of", as_of).await?;
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        match source {
            Source::Records(f) => {
                let after = match after {
                    None => None,
                    Some(LinesAfter::Record(t, id)) => Some((t, id)),
                    Some(_) => {
                        return Err(Error::invalid("page_token", "issued for another figure"));
                    }
                };
                let rows = report_facts::current_versions(
                    &mut conn,
                    merchant,
                    f.record_kind().as_str(),
                    period.start,
                    period.end,
                    as_of,
                    after,
                    limit_sql,
                )
                .await?;
                let next = (rows.len() == limit)
                    .then(|| {
                        rows.last()
                            .map(|(t, v)| LinesAfter::Record(*t, v.record_id))
                    })
                    .flatten();
                let mut lines = vec![];
                for (_, v) in rows {
                    let r = &v.record;
                    let cs = contributions(r)
                        .map_err(|e| Error::corrupt("a stored record", e.to_string()))?;
                    for c in cs.into_iter().filter(|c| c.figure == f) {
                        lines.push(Fact {
                            known_at: v.receive_time,
                            source: FactSource::Record,
                            name: format!("merchants/{merchant}/records/{}", v.record_id),
                            figure: figure.to_string(),
                            currency: c.currency.code().to_string(),
                            amount: c.amount,
                            count: c.count,
                            description: format!(
                                "{} {} from {}",
                                r.kind().as_str(),
                                r.source_id,
                                r.source_system
                            ),
                        });
                    }
                }
                Ok((as_of, lines, next))
            }
            Source::Entries(account, sign) => {
                let after = match after {
                    None => 0,
                    Some(LinesAfter::Entry(id)) => id,
                    Some(_) => {
                        return Err(Error::invalid("page_token", "issued for another figure"));
                    }
                };
                let rows = report_facts::entries_upto(
                    &mut conn,
                    merchant,
                    account,
                    period.ledger_end_date(),
                    as_of,
                    after,
                    limit_sql,
                )
                .await?;
                let next = (rows.len() == limit)
                    .then(|| rows.last().map(|e| LinesAfter::Entry(e.entry_id)))
                    .flatten();
                let lines = rows
                    .into_iter()
                    .map(|e| Fact {
                        known_at: e.booked_at,
                        source: FactSource::JournalEntry,
                        name: format!("merchants/{merchant}/journalEntries/{}", e.external_id),
                        figure: figure.to_string(),
                        currency: e.currency_code,
                        amount: if sign < 0 { -e.amount } else { e.amount },
                        count: e.lines,
                        description: format!("booked on {account}"),
                    })
                    .collect();
                Ok((as_of, lines, next))
            }
            Source::Exceptions(types) => {
                let after = match after {
                    None => None,
                    Some(LinesAfter::Exception(id)) => Some(id),
                    Some(_) => {
                        return Err(Error::invalid("page_token", "issued for another figure"));
                    }
                };
                let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
                let rows = report_facts::exceptions_open_at(
                    &mut conn,
                    merchant,
                    &names,
                    period.start,
                    period.end,
                    as_of,
                    after,
                    limit_sql,
                )
                .await?;
                let next = (rows.len() == limit)
                    .then(|| rows.last().map(|e| LinesAfter::Exception(e.exception_id)))
                    .flatten();
                let lines = rows
                    .into_iter()
                    .map(|e| Fact {
                        known_at: e.known_at,
                        source: FactSource::Exception,
                        name: format!("merchants/{merchant}/exceptions/{}", e.exception_id),
                        figure: ExceptionType::parse(&e.exception_type)
                            .map(exception_figure)
                            .unwrap_or_else(|| e.exception_type.clone()),
                        currency: e.currency_code,
                        amount: e.amount,
                        count: e.count.into(),
                        description: format!("unresolved {} exception", e.exception_type),
                    })
                    .collect();
                Ok((as_of, lines, next))
            }
        }
    }
}
