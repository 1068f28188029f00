//! What moved a period's figures between two knowledge times, fact by
//! fact, checked to add up to the two reports' difference.

use chrono::{DateTime, Utc};

use super::{resolve_as_of, sheet_at};
use crate::app::App;
use crate::domain::matching::ExceptionType;
use crate::domain::record::Record;
use crate::domain::report::diff::{Fact, FactSource, explain};
use crate::domain::report::sheet::{LEDGER_BALANCES, exception_figure};
use crate::domain::report::{Period, Sheet, bucket, contributions};
use crate::error::{Error, Result};
use crate::storage::{Conn, report_facts, reports};

pub struct ReportDiff {
    pub from_as_of: DateTime<Utc>,
    pub to_as_of: DateTime<Utc>,
    pub before: Sheet,
    pub after: Sheet,
    /// `after` minus `before`, per figure.
    pub moved: Sheet,
    /// Every fact learned in between that moved a figure, in knowledge order.
    pub facts: Vec<Fact>,
}

fn record_facts(
    merchant: &str,
    period: &Period,
    v: &report_facts::VersionFact,
    out: &mut Vec<Fact>,
) -> Result<()> {
    let in_period = |r: &Record| {
        let b = bucket(r.event_time);
        b >= period.start && b < period.end
    };
    let name = format!("merchants/{merchant}/records/{}", v.record_id);
    let r = &v.record;
    let mut add = |rec: &Record, sign: i64, description: String| -> Result<()> {
        if !in_period(rec) {
            return Ok(());
        }
        let cs =
            contributions(rec).map_err(|e| Error::corrupt("a stored record", e.to_string()))?;
        for c in cs {
            let amount = if sign < 0 { -c.amount } else { c.amount };
            out.push(Fact {
                known_at: v.receive_time,
                source: FactSource::Record,
                name: name.clone(),
                figure: c.figure.name().to_string(),
                currency: c.currency.code().to_string(),
                amount,
                count: c.count * sign,
                description: description.clone(),
            });
        }
        Ok(())
    };
    let what = format!(
        "{} {} from {}",
        r.kind().as_str(),
        r.source_id,
        r.source_system
    );
    match &v.superseded {
        Some((old_id, old)) => {
            add(
                old,
                -1,
                format!("{what}: record {old_id} superseded by a new version"),
            )?;
            add(r, 1, format!("{what}: new version"))?;
        }
        None => add(r, 1, format!("{what}: first received"))?,
    }
    Ok(())
}

async fn facts_between(
    conn: &mut Conn,
    merchant: &str,
    period: &Period,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Fact>> {
    let mut facts = vec![];
    for v in report_facts::versions_between(conn, merchant, after, until).await? {
        record_facts(merchant, period, &v, &mut facts)?;
    }
    for e in
        report_facts::exceptions_between(conn, merchant, period.start, period.end, after, until)
            .await?
    {
        let t = ExceptionType::parse(&e.exception_type)
            .ok_or_else(|| Error::corrupt("an exception type", e.exception_type.clone()))?;
        facts.push(Fact {
            known_at: e.known_at,
            source: FactSource::Exception,
            name: format!("merchants/{merchant}/exceptions/{}", e.exception_id),
            figure: exception_figure(t),
            currency: e.currency_code,
            amount: e.amount,
            count: e.count.into(),
            description: if e.count > 0 {
                "opened or re-valued"
            } else {
                "resolved or re-valued"
            }
            .into(),
        });
    }
    let accounts: Vec<&str> = LEDGER_BALANCES.iter().map(|(_, a, _)| *a).collect();
    for e in report_facts::entries_between(
        conn,
        merchant,
        &accounts,
        period.ledger_end_date(),
        after,
        until,
    )
    .await?
    {
        let Some((figure, _, sign)) = LEDGER_BALANCES.iter().find(|(_, a, _)| *a == e.account)
        else {
            continue;
        };
        facts.push(Fact {
            known_at: e.booked_at,
            source: FactSource::JournalEntry,
            name: format!("merchants/{merchant}/journalEntries/{}", e.external_id),
            figure: figure.to_string(),
            currency: e.currency_code,
            amount: if *sign < 0 { -e.amount } else { e.amount },
            count: e.lines,
            description: format!("booked on {}", e.account),
        });
    }
    // Handoffs are counted per figure: each is many orders' small moves.
    for l in reports::moves(
        conn,
        merchant,
        period.start,
        period.end,
        after,
        until,
        "completeness.",
    )
    .await?
    {
        facts.push(Fact {
            known_at: until,
            source: FactSource::Handoffs,
            name: format!("merchants/{merchant}/transactions"),
            figure: l.figure,
            currency: l.currency,
            amount: l.amount,
            count: l.count,
            description: "orders seen, and handoffs opened or completed".into(),
        });
    }
    facts.retain(|f| !f.amount.is_zero() || f.count != 0);
    facts.sort();
    Ok(facts)
}

impl App {
    /// Every fact learned after `from` up to `to` (default: now, settled)
    /// that moved the period's figures; they add up to the difference.
    pub async fn diff_period_reports(
        &self,
        merchant: &str,
        period: &Period,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Result<ReportDiff> {
        let mut conn = self.store.conn().await?;
        let to = resolve_as_of(&mut conn, "to_as_of", to).await?;
        let from = resolve_as_of(&mut conn, "from_as_of", Some(from)).await?;
        if from > to {
            return Err(Error::invalid(
                "from_as_of",
                "must not be later than to_as_of",
            ));
        }
        let before = sheet_at(&mut conn, merchant, period, from).await?;
        let after = sheet_at(&mut conn, merchant, period, to).await?;
        let facts = facts_between(&mut conn, merchant, period, from, to).await?;
        // The facts must explain every cent: anything else is a bug in how
        // deltas are written or read, never something to report quietly.
        let moved = explain(&before, &after, &facts)
            .map_err(|e| Error::Internal(format!("a report diff does not add up: {e}")))?;
        Ok(ReportDiff {
            from_as_of: from,
            to_as_of: to,
            before,
            after,
            moved,
            facts,
        })
    }
}
