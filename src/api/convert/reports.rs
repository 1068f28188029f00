//! Period reports to the wire: figures, ghost revenue, completeness,
//! facts and close states.

use rust_decimal::{Decimal, RoundingStrategy};

use super::timestamp;
use crate::app::reports::{CloseState, PeriodReport};
use crate::domain::record::Handoff;
use crate::domain::report::diff::Fact;
use crate::domain::report::{GhostCategory, Line, Sheet};
use crate::proto::tally::v1 as pb;

pub fn figure(l: &Line) -> pb::ReportFigure {
    pb::ReportFigure {
        figure: l.figure.clone(),
        currency_code: l.currency.clone(),
        amount: l.amount.normalize().to_string(),
        count: l.count,
    }
}

pub fn figures(s: &Sheet) -> Vec<pb::ReportFigure> {
    s.lines().iter().map(figure).collect()
}

/// `part / whole` to 4 places, "" when there is no whole.
fn share(part: Decimal, whole: Decimal) -> String {
    if whole.is_zero() {
        return String::new();
    }
    part.checked_div(whole)
        .map(|s| {
            s.round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven)
                .to_string()
        })
        .unwrap_or_default()
}

fn ghost(s: &Sheet) -> Vec<pb::GhostRevenue> {
    let mut out = vec![];
    for cur in s.currencies() {
        let gross = s.get("storefront.gross_sales", &cur).0;
        for cat in GhostCategory::ALL {
            let (amount, n) = s.get(cat.name(), &cur);
            if amount.is_zero() && n == 0 {
                continue;
            }
            out.push(pb::GhostRevenue {
                category: cat.name().trim_start_matches("ghost.").to_string(),
                currency_code: cur.clone(),
                amount: amount.normalize().to_string(),
                share_of_gross: share(amount, gross),
                exception_count: n,
            });
        }
    }
    out
}

fn completeness(s: &Sheet) -> pb::Completeness {
    let orders = s.get("completeness.orders", "").1;
    let complete = s.get("completeness.orders_complete", "").1;
    pb::Completeness {
        orders,
        orders_complete: complete,
        share_complete: share(complete.into(), orders.into()),
        handoffs: Handoff::ALL
            .iter()
            .map(|h| {
                let waiting = s.get(&format!("completeness.waiting.{}", h.as_str()), "").1;
                pb::HandoffCompleteness {
                    handoff: h.as_str().to_string(),
                    waiting,
                    share_done: share((orders - waiting).into(), orders.into()),
                }
            })
            .collect(),
    }
}

pub fn report(r: &PeriodReport) -> pb::GetPeriodReportResponse {
    pb::GetPeriodReportResponse {
        parent: format!("merchants/{}", r.merchant),
        period: r.period.label.clone(),
        time_zone: r.period.zone.name().to_string(),
        start_time: Some(timestamp(r.period.start)),
        end_time: Some(timestamp(r.period.end)),
        as_of: Some(timestamp(r.as_of)),
        closed_as_of: r.close.as_ref().map(|c| timestamp(c.closed_as_of)),
        figures: figures(&r.figures),
        ghost_revenue: ghost(&r.figures),
        completeness: Some(completeness(&r.figures)),
        post_close_adjustments: figures(&r.post_close),
        digest: r.digest.clone(),
    }
}

pub fn fact(f: &Fact) -> pb::ReportFact {
    pb::ReportFact {
        known_time: Some(timestamp(f.known_at)),
        source: f.source.as_str().to_string(),
        name: f.name.clone(),
        r#move: Some(figure(&Line {
            figure: f.figure.clone(),
            currency: f.currency.clone(),
            amount: f.amount,
            count: f.count,
        })),
        description: f.description.clone(),
    }
}

pub fn close(s: &CloseState) -> pb::PeriodClose {
    pb::PeriodClose {
        closed: s.close.is_some(),
        closed_as_of: s.close.as_ref().map(|c| timestamp(c.closed_as_of)),
        actor: s
            .close
            .as_ref()
            .map(|c| c.actor.clone())
            .unwrap_or_default(),
        close_time: s.close.as_ref().map(|c| timestamp(c.close_time)),
        etag: s.etag.clone(),
        history: s
            .history
            .iter()
            .map(|h| pb::PeriodCloseEvent {
                action: h.action.clone(),
                closed_as_of: h.closed_as_of.map(timestamp),
                actor: h.actor.clone(),
                create_time: Some(timestamp(h.create_time)),
                note: h.note.clone(),
            })
            .collect(),
    }
}
