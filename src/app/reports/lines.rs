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
use crate::storage::{Conn, report_facts};

/// Where a page of lines resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesAfter {
    /// (source id, source system, record id).
    Record(String, String, i64),
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

/// One page of lines and where the next resumes (none on the last page).
type Page = (Vec<Fact>, Option<LinesAfter>);

fn another_figure() -> Error {
    Error::invalid("page_token", "issued for another figure")
}

/// The cursor after a full page's last row.
fn next_after<T>(rows: &[T], limit: usize, key: impl Fn(&T) -> LinesAfter) -> Option<LinesAfter> {
    (rows.len() == limit)
        .then(|| rows.last().map(key))
        .flatten()
}

/// What the page reads: who, which period, as of when, how many.
struct Ask<'a> {
    merchant: &'a str,
    period: &'a Period,
    figure: &'a str,
    as_of: DateTime<Utc>,
    limit: usize,
}

impl Ask<'_> {
    fn limit_sql(&self) -> i64 {
        i64::try_from(self.limit).unwrap_or(i64::MAX)
    }
}

async fn records(
    conn: &mut Conn,
    a: &Ask<'_>,
    f: Figure,
    after: Option<LinesAfter>,
) -> Result<Page> {
    let after = match after {
        None => None,
        Some(LinesAfter::Record(source, system, id)) => Some((source, system, id)),
        Some(_) => return Err(another_figure()),
    };
    let kind = f.record_kind();
    let rows = report_facts::current_versions(
        conn,
        a.merchant,
        kind.as_str(),
        a.period.start,
        a.period.end,
        a.as_of,
        after,
        a.limit_sql(),
    )
    .await?;
    let next = next_after(&rows, a.limit, |((source, system, id), _)| {
        LinesAfter::Record(source.clone(), system.clone(), *id)
    });
    let mut lines = vec![];
    for (_, v) in rows {
        let r = &v.record;
        let cs = contributions(r).map_err(|e| Error::corrupt("a stored record", e.to_string()))?;
        for c in cs.into_iter().filter(|c| c.figure == f) {
            lines.push(Fact {
                known_at: v.receive_time,
                source: FactSource::Record,
                name: format!("merchants/{}/records/{}", a.merchant, v.record_id),
                figure: a.figure.to_string(),
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
    Ok((lines, next))
}

async fn entries(
    conn: &mut Conn,
    a: &Ask<'_>,
    account: &str,
    sign: i8,
    after: Option<LinesAfter>,
) -> Result<Page> {
    let after = match after {
        None => 0,
        Some(LinesAfter::Entry(id)) => id,
        Some(_) => return Err(another_figure()),
    };
    let end = a.period.ledger_end_date();
    let rows = report_facts::entries_upto(
        conn,
        a.merchant,
        account,
        end,
        a.as_of,
        after,
        a.limit_sql(),
    )
    .await?;
    let next = next_after(&rows, a.limit, |e| LinesAfter::Entry(e.entry_id));
    let lines = rows
        .into_iter()
        .map(|e| Fact {
            known_at: e.booked_at,
            source: FactSource::JournalEntry,
            name: format!("merchants/{}/journalEntries/{}", a.merchant, e.external_id),
            figure: a.figure.to_string(),
            currency: e.currency_code,
            amount: if sign < 0 { -e.amount } else { e.amount },
            count: e.lines,
            description: format!("booked on {account}"),
        })
        .collect();
    Ok((lines, next))
}

async fn exceptions(
    conn: &mut Conn,
    a: &Ask<'_>,
    types: &[ExceptionType],
    after: Option<LinesAfter>,
) -> Result<Page> {
    let after = match after {
        None => None,
        Some(LinesAfter::Exception(id)) => Some(id),
        Some(_) => return Err(another_figure()),
    };
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    let rows = report_facts::exceptions_open_at(
        conn,
        a.merchant,
        &names,
        a.period.start,
        a.period.end,
        a.as_of,
        after,
        a.limit_sql(),
    )
    .await?;
    let next = next_after(&rows, a.limit, |e| LinesAfter::Exception(e.exception_id));
    let lines = rows
        .into_iter()
        .map(|e| Fact {
            known_at: e.known_at,
            source: FactSource::Exception,
            name: format!("merchants/{}/exceptions/{}", a.merchant, e.exception_id),
            figure: ExceptionType::parse(&e.exception_type)
                .map(exception_figure)
                .unwrap_or_else(|| e.exception_type.clone()),
            currency: e.currency_code,
            amount: e.amount,
            count: e.count.into(),
            description: format!("unresolved {} exception", e.exception_type),
        })
        .collect();
    Ok((lines, next))
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
        let ask = Ask {
            merchant,
            period,
            figure,
            as_of,
            limit,
        };
        let (lines, next) = match source {
            Source::Records(f) => records(&mut conn, &ask, f, after).await?,
            Source::Entries(account, sign) => {
                entries(&mut conn, &ask, account, sign, after).await?
            }
            Source::Exceptions(types) => exceptions(&mut conn, &ask, &types, after).await?,
        };
        Ok((as_of, lines, next))
    }
}
