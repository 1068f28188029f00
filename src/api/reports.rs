//! ReportService: period reports as of a knowledge time, their diff, a
//! figure's lines, and period closes. Validate, ask `app::reports`, render.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use crate::api::auth;
use crate::api::convert::reports as convert;
use crate::api::exceptions::actor;
use crate::api::names::parse_parent;
use crate::api::pagination::{self, MAX_PAGE_SIZE};
use crate::api::validate::fields;
use crate::app::App;
use crate::app::reports::CloseChange;
use crate::app::reports::lines::LinesAfter;
use crate::domain::report::{Period, period};
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::report_service_server::ReportService;

const DEFAULT_PAGE: usize = 100;
const NOTE_MAX: usize = 1024;
const ZONE_MAX: usize = 64;

#[derive(Clone)]
pub struct ReportApi {
    app: App,
}

impl ReportApi {
    pub fn new(app: App) -> Self {
        ReportApi { app }
    }
}

fn time(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>> {
    t.map(|t| {
        (t.seconds >= 0 && t.seconds <= 253_402_300_799 && (0..1_000_000_000).contains(&t.nanos))
            .then(|| DateTime::from_timestamp(t.seconds, t.nanos as u32))
            .flatten()
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "not a valid timestamp (1970-9999, nanos 0-999999999)",
                )
            })
    })
    .transpose()
}

/// The period a selector names; errors name `period.<field>`.
fn period_of(sel: Option<&pb::PeriodSelector>) -> Result<Period> {
    let sel = sel.ok_or_else(|| Error::invalid("period", "required"))?;
    let named = |e: period::PeriodError| Error::invalid(format!("period.{}", e.field), e.why);
    fields::id("period.time_zone", &sel.time_zone, ZONE_MAX)?;
    let zone = period::zone(&sel.time_zone).map_err(named)?;
    let start = time("period.start_time", sel.start_time.as_ref())?;
    let end = time("period.end_time", sel.end_time.as_ref())?;
    match (sel.period.is_empty(), start, end) {
        (false, None, None) => {
            fields::id("period.period", &sel.period, 10)?;
            Period::named(&sel.period, zone).map_err(named)
        }
        (true, Some(s), Some(e)) => Period::between(s, e, zone).map_err(named),
        (false, _, _) => Err(Error::invalid(
            "period.start_time",
            "give either period or start_time and end_time, not both",
        )),
        (true, _, _) => Err(Error::invalid(
            "period.period",
            "required: a month (2026-10), a day (2026-10-05), or start_time and end_time",
        )),
    }
}

fn page_size(n: i32) -> Result<usize> {
    match n {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

/// A diff's page token: the offset into its facts, bound to the request
/// (facts between two settled knowledge times never change).
fn diff_scope(merchant: &str, p: &Period, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "diff|{merchant}|{}|{}|{}|{}",
        p.label,
        p.zone.name(),
        from.to_rfc3339(),
        to.to_rfc3339()
    )
}

fn lines_after_key(a: &LinesAfter) -> String {
    match a {
        LinesAfter::Record(source, system, id) => format!("r~{id}~{system}~{source}"),
        LinesAfter::Exception(id) => format!("e~{id}"),
        LinesAfter::Entry(id) => format!("j~{id}"),
    }
}

fn lines_after_of(key: &str) -> Option<LinesAfter> {
    let mut parts = key.splitn(4, '~');
    match (parts.next()?, parts.next()?) {
        ("r", id) => {
            let (system, source) = (parts.next()?, parts.next()?);
            Some(LinesAfter::Record(
                source.into(),
                system.into(),
                id.parse().ok()?,
            ))
        }
        ("e", id) if parts.next().is_none() => Some(LinesAfter::Exception(id.parse().ok()?)),
        ("j", id) if parts.next().is_none() => Some(LinesAfter::Entry(id.parse().ok()?)),
        _ => None,
    }
}

impl ReportApi {
    /// Validates and applies a close (`close`) or a reopen.
    #[allow(clippy::too_many_arguments)]
    async fn change_close(
        &self,
        actor: &str,
        merchant: String,
        period: Option<&pb::PeriodSelector>,
        close: bool,
        as_of: Option<DateTime<Utc>>,
        etag: &str,
        note: &str,
    ) -> Result<crate::app::reports::CloseState> {
        let period = period_of(period)?;
        fields::token("etag", etag)?;
        fields::prose("note", note, NOTE_MAX)?;
        let change = CloseChange {
            close,
            as_of,
            etag,
            actor,
            note,
        };
        self.app.set_period_close(&merchant, &period, change).await
    }
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    async fn get_period_report(
        &self,
        request: Request<pb::GetPeriodReportRequest>,
    ) -> Result<Response<pb::GetPeriodReportResponse>, Status> {
        let req = request.get_ref();
        let merchant = auth::tenant(&request, parse_parent("parent", &req.parent)?)?;
        let period = period_of(req.period.as_ref())?;
        let as_of = time("as_of", req.as_of.as_ref())?;
        let r = self.app.period_report(&merchant, &period, as_of).await?;
        Ok(Response::new(convert::report(&r)))
    }

    async fn diff_period_reports(
        &self,
        request: Request<pb::DiffPeriodReportsRequest>,
    ) -> Result<Response<pb::DiffPeriodReportsResponse>, Status> {
        let req = request.get_ref();
        let merchant = auth::tenant(&request, parse_parent("parent", &req.parent)?)?;
        let period = period_of(req.period.as_ref())?;
        let from = time("from_as_of", req.from_as_of.as_ref())?
            .ok_or_else(|| Error::invalid("from_as_of", "required"))?;
        let to = time("to_as_of", req.to_as_of.as_ref())?;
        let limit = page_size(req.page_size)?;
        let d = self
            .app
            .diff_period_reports(&merchant, &period, from, to)
            .await?;
        let scope = diff_scope(&merchant, &period, d.from_as_of, d.to_as_of);
        // An unset to_as_of resolves anew on each call: a token names the
        // resolved one, so pages of one diff need to_as_of from the first.
        let offset = pagination::decode::<i64>(&req.page_token, &scope)?.unwrap_or(0);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(d.facts.len());
        let end = start.saturating_add(limit).min(d.facts.len());
        let next = if end < d.facts.len() {
            pagination::encode(&(end as i64), &scope)
        } else {
            String::new()
        };
        Ok(Response::new(pb::DiffPeriodReportsResponse {
            from_as_of: Some(crate::api::convert::timestamp(d.from_as_of)),
            to_as_of: Some(crate::api::convert::timestamp(d.to_as_of)),
            moves: convert::figures(&d.moved),
            facts: d.facts[start..end].iter().map(convert::fact).collect(),
            total_size: i32::try_from(d.facts.len()).unwrap_or(i32::MAX),
            next_page_token: next,
        }))
    }

    async fn list_report_lines(
        &self,
        request: Request<pb::ListReportLinesRequest>,
    ) -> Result<Response<pb::ListReportLinesResponse>, Status> {
        let req = request.get_ref();
        let merchant = auth::tenant(&request, parse_parent("parent", &req.parent)?)?;
        let period = period_of(req.period.as_ref())?;
        fields::required_id("figure", &req.figure, 64)?;
        let as_of = time("as_of", req.as_of.as_ref())?;
        let limit = page_size(req.page_size)?;
        let scope = format!(
            "lines|{merchant}|{}|{}|{}",
            period.label,
            period.zone.name(),
            req.figure
        );
        let after = match pagination::decode::<String>(&req.page_token, &scope)? {
            None => None,
            Some(k) => Some(
                lines_after_of(&k)
                    .ok_or_else(|| Error::invalid("page_token", "malformed page token"))?,
            ),
        };
        let (as_of, lines, next) = self
            .app
            .report_lines(&merchant, &period, &req.figure, as_of, after, limit)
            .await?;
        Ok(Response::new(pb::ListReportLinesResponse {
            as_of: Some(crate::api::convert::timestamp(as_of)),
            lines: lines.iter().map(convert::fact).collect(),
            next_page_token: next
                .map(|n| pagination::encode(&lines_after_key(&n), &scope))
                .unwrap_or_default(),
        }))
    }

    async fn close_period(
        &self,
        request: Request<pb::ClosePeriodRequest>,
    ) -> Result<Response<pb::ClosePeriodResponse>, Status> {
        let who = actor(&request)?;
        let r = request.get_ref();
        let merchant = auth::tenant(&request, parse_parent("parent", &r.parent)?)?;
        let as_of = time("as_of", r.as_of.as_ref())?;
        let s = self
            .change_close(
                &who,
                merchant,
                r.period.as_ref(),
                true,
                as_of,
                &r.etag,
                &r.note,
            )
            .await?;
        Ok(Response::new(pb::ClosePeriodResponse {
            period_close: Some(convert::close(&s)),
        }))
    }

    async fn reopen_period(
        &self,
        request: Request<pb::ReopenPeriodRequest>,
    ) -> Result<Response<pb::ReopenPeriodResponse>, Status> {
        let who = actor(&request)?;
        let r = request.get_ref();
        let merchant = auth::tenant(&request, parse_parent("parent", &r.parent)?)?;
        let s = self
            .change_close(
                &who,
                merchant,
                r.period.as_ref(),
                false,
                None,
                &r.etag,
                &r.note,
            )
            .await?;
        Ok(Response::new(pb::ReopenPeriodResponse {
            period_close: Some(convert::close(&s)),
        }))
    }
}
