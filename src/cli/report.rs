//! `tally report --merchant M --period 2026-10 [--as-of T] [--compare-as-of T2]
//! [--format table|csv|json|html]`: asks a running Tally for a period
//! report (and, with --compare-as-of, what moved it) and renders it for
//! people: a table, CSV, JSON, or one self-contained HTML page with inline
//! SVG charts and no script.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::trace::keyed;
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::report_service_client::ReportServiceClient;

/// What to ask for and how to print it.
pub struct ReportQuery<'a> {
    pub addr: &'a str,
    pub merchant: &'a str,
    pub period: &'a str,
    pub time_zone: &'a str,
    pub as_of: Option<DateTime<Utc>>,
    pub compare_as_of: Option<DateTime<Utc>>,
    pub format: &'a str,
    /// An API key, for a server that requires one.
    pub key: Option<&'a str>,
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| "-".into())
}

/// Fetches the report (and the diff) and renders it in `q.format`.
pub async fn fetch(q: &ReportQuery<'_>) -> Result<String, String> {
    let channel = super::trace::channel(q.addr).await?;
    let mut client = ReportServiceClient::new(channel);
    let period = Some(pb::PeriodSelector {
        period: q.period.to_string(),
        time_zone: q.time_zone.to_string(),
        ..Default::default()
    });
    let status = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    let report = client
        .get_period_report(keyed(
            pb::GetPeriodReportRequest {
                parent: format!("merchants/{}", q.merchant),
                period: period.clone(),
                as_of: q.as_of.map(ts),
            },
            q.key,
        )?)
        .await
        .map_err(status)?
        .into_inner();
    let diff = match q.compare_as_of {
        None => None,
        Some(other) => {
            // The earlier of the two times is the diff's start.
            let here = report.as_of;
            let (from, to) = match q.as_of {
                Some(a) if a < other => (Some(ts(a)), Some(ts(other))),
                _ => (Some(ts(other)), here),
            };
            Some(
                client
                    .diff_period_reports(keyed(
                        pb::DiffPeriodReportsRequest {
                            parent: format!("merchants/{}", q.merchant),
                            period,
                            from_as_of: from,
                            to_as_of: to,
                            page_size: 1000,
                            page_token: String::new(),
                        },
                        q.key,
                    )?)
                    .await
                    .map_err(status)?
                    .into_inner(),
            )
        }
    };
    Ok(match q.format {
        "csv" => csv(&report, diff.as_ref()),
        "json" => json_text(&report, diff.as_ref()),
        "html" => html(&report, diff.as_ref()),
        _ => table(&report, diff.as_ref()),
    })
}

fn section(figure: &str) -> &str {
    figure.split('.').next().unwrap_or(figure)
}

/// The readable default: one block per section, amounts right-aligned.
pub fn table(r: &pb::GetPeriodReportResponse, d: Option<&pb::DiffPeriodReportsResponse>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} period {} ({})", r.parent, r.period, r.time_zone);
    let _ = writeln!(out, "as of {}", time(&r.as_of));
    if r.closed_as_of.is_some() {
        let _ = writeln!(out, "closed as of {}", time(&r.closed_as_of));
    }
    let _ = writeln!(out, "digest {}", r.digest);
    let mut last = "";
    for f in &r.figures {
        if section(&f.figure) != last {
            last = section(&f.figure);
            let _ = writeln!(out, "\n{last}");
        }
        let _ = writeln!(
            out,
            "  {:<44} {:>4} {:>16} {:>8}",
            f.figure, f.currency_code, f.amount, f.count
        );
    }
    if let Some(c) = &r.completeness {
        let _ = writeln!(
            out,
            "\ncompleteness: {} of {} orders complete ({})",
            c.orders_complete, c.orders, c.share_complete
        );
        for h in &c.handoffs {
            let _ = writeln!(
                out,
                "  {:<32} waiting {:>8}  done {}",
                h.handoff, h.waiting, h.share_done
            );
        }
    }
    if !r.ghost_revenue.is_empty() {
        let _ = writeln!(out, "\nghost revenue");
        for g in &r.ghost_revenue {
            let _ = writeln!(
                out,
                "  {:<24} {:>4} {:>14}  share {:<8} from {} exceptions",
                g.category, g.currency_code, g.amount, g.share_of_gross, g.exception_count
            );
        }
    }
    if !r.post_close_adjustments.is_empty() {
        let _ = writeln!(out, "\npost-close adjustments (learned after the close)");
        for f in &r.post_close_adjustments {
            let _ = writeln!(
                out,
                "  {:<44} {:>4} {:>16} {:>8}",
                f.figure, f.currency_code, f.amount, f.count
            );
        }
    }
    if let Some(d) = d {
        let _ = writeln!(
            out,
            "\nmoved from {} to {} by {} facts",
            time(&d.from_as_of),
            time(&d.to_as_of),
            d.total_size
        );
        for m in &d.moves {
            let _ = writeln!(
                out,
                "  {:<44} {:>4} {:>16} {:>8}",
                m.figure, m.currency_code, m.amount, m.count
            );
        }
        for f in &d.facts {
            let m = f.r#move.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {} {} {} {}: {}",
                time(&f.known_time),
                f.name,
                m.figure,
                m.currency_code,
                m.amount,
                f.description
            );
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// section,figure,currency,amount,count: figures, post-close adjustments, moves.
pub fn csv(r: &pb::GetPeriodReportResponse, d: Option<&pb::DiffPeriodReportsResponse>) -> String {
    let mut out = String::from("section,figure,currency,amount,count\n");
    let mut rows = |sec: &str, fs: &[pb::ReportFigure]| {
        for f in fs {
            let _ = writeln!(
                out,
                "{sec},{},{},{},{}",
                csv_field(&f.figure),
                f.currency_code,
                f.amount,
                f.count
            );
        }
    };
    rows("figures", &r.figures);
    rows("post_close", &r.post_close_adjustments);
    if let Some(d) = d {
        rows("moved", &d.moves);
    }
    out
}

fn figure_json(f: &pb::ReportFigure) -> serde_json::Value {
    json!({"figure": f.figure, "currency": f.currency_code, "amount": f.amount, "count": f.count})
}

pub fn json_text(
    r: &pb::GetPeriodReportResponse,
    d: Option<&pb::DiffPeriodReportsResponse>,
) -> String {
    let c = r.completeness.clone().unwrap_or_default();
    let mut v = json!({
        "parent": r.parent, "period": r.period, "time_zone": r.time_zone,
        "start_time": time(&r.start_time), "end_time": time(&r.end_time),
        "as_of": time(&r.as_of),
        "closed_as_of": r.closed_as_of.as_ref().map(|_| time(&r.closed_as_of)),
        "digest": r.digest,
        "figures": r.figures.iter().map(figure_json).collect::<Vec<_>>(),
        "ghost_revenue": r.ghost_revenue.iter().map(|g| json!({
            "category": g.category, "currency": g.currency_code, "amount": g.amount,
            "share_of_gross": g.share_of_gross, "exceptions": g.exception_count})).collect::<Vec<_>>(),
        "completeness": {"orders": c.orders, "orders_complete": c.orders_complete,
            "share_complete": c.share_complete,
            "handoffs": c.handoffs.iter().map(|h| json!({"handoff": h.handoff, "waiting": h.waiting,
                "share_done": h.share_done})).collect::<Vec<_>>()},
        "post_close_adjustments": r.post_close_adjustments.iter().map(figure_json).collect::<Vec<_>>(),
    });
    if let Some(d) = d {
        v["diff"] = json!({
            "from_as_of": time(&d.from_as_of), "to_as_of": time(&d.to_as_of),
            "moves": d.moves.iter().map(figure_json).collect::<Vec<_>>(),
            "facts": d.facts.iter().map(|f| json!({"known_time": time(&f.known_time), "source": f.source,
                "name": f.name, "move": f.r#move.as_ref().map(figure_json), "description": f.description}))
                .collect::<Vec<_>>(),
        });
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG: (label, value, shown text).
fn bars(id: &str, title: &str, rows: &[(String, f64, String)]) -> String {
    let max = rows
        .iter()
        .map(|r| r.1.abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let h = 28 * rows.len().max(1) + 30;
    let mut svg = format!(
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{h}\">\
         <text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">{t}</text>",
        t = esc(title)
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = 30 + 28 * i;
        let w = (value.abs() / max * 300.0).round();
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect class=\"bar\" x=\"220\" y=\"{y}\" width=\"{w}\" height=\"18\" fill=\"#4a78b5\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 13,
            esc(label),
            226.0 + w,
            y + 13,
            esc(shown)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One self-contained page: figures, two charts, the digest. No script,
/// no external asset.
pub fn html(r: &pb::GetPeriodReportResponse, d: Option<&pb::DiffPeriodReportsResponse>) -> String {
    let mut rows = String::new();
    for f in &r.figures {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&f.figure),
            esc(&f.currency_code),
            esc(&f.amount),
            f.count
        );
    }
    let ghost: Vec<(String, f64, String)> = r
        .ghost_revenue
        .iter()
        .map(|g| {
            (
                format!("{} {}", g.category, g.currency_code),
                g.amount.parse().unwrap_or(0.0),
                format!("{} ({})", g.amount, g.share_of_gross),
            )
        })
        .collect();
    let c = r.completeness.clone().unwrap_or_default();
    let done: Vec<(String, f64, String)> = c
        .handoffs
        .iter()
        .map(|h| {
            (
                h.handoff.clone(),
                h.share_done.parse().unwrap_or(0.0),
                format!("{} done, {} waiting", h.share_done, h.waiting),
            )
        })
        .collect();
    let mut post = String::new();
    for f in &r.post_close_adjustments {
        let _ = write!(
            post,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&f.figure),
            esc(&f.currency_code),
            esc(&f.amount),
            f.count
        );
    }
    let mut moved = String::new();
    if let Some(d) = d {
        let _ = write!(
            moved,
            "<h2>Moved from {} to {}</h2><table id=\"moves\"><tr><th>figure</th><th>currency</th><th>amount</th><th>count</th></tr>",
            esc(&time(&d.from_as_of)),
            esc(&time(&d.to_as_of))
        );
        for m in &d.moves {
            let _ = write!(
                moved,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&m.figure),
                esc(&m.currency_code),
                esc(&m.amount),
                m.count
            );
        }
        moved.push_str("</table>");
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tally report {period}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}.n{{text-align:right}}</style></head><body>\
         <h1>{parent} — {period} ({zone})</h1><p>As of <b>{as_of}</b>{closed}</p>\
         <p>Digest <code id=\"digest\">{digest}</code></p>\
         <h2>Figures</h2><table id=\"figures\"><tr><th>figure</th><th>currency</th><th>amount</th><th>count</th></tr>{rows}</table>\
         <h2>Ghost revenue</h2>{ghost}<h2>Completeness: {complete} of {orders} orders ({share})</h2>{done}\
         {post}{moved}</body></html>\n",
        period = esc(&r.period),
        parent = esc(&r.parent),
        zone = esc(&r.time_zone),
        as_of = esc(&time(&r.as_of)),
        closed = if r.closed_as_of.is_some() {
            format!(", closed as of {}", esc(&time(&r.closed_as_of)))
        } else {
            String::new()
        },
        digest = esc(&r.digest),
        ghost = bars("ghost-chart", "Ghost revenue by category", &ghost),
        complete = c.orders_complete,
        orders = c.orders,
        share = esc(&c.share_complete),
        done = bars(
            "completeness-chart",
            "Share of orders done per handoff",
            &done
        ),
        post = if post.is_empty() {
            String::new()
        } else {
            format!(
                "<h2>Post-close adjustments</h2><table id=\"post-close\"><tr><th>figure</th><th>currency</th><th>amount</th><th>count</th></tr>{post}</table>"
            )
        },
    )
}
