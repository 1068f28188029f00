//! The audit's three renderings: a summary table for a terminal, a CSV of
//! every exception row for a spreadsheet, and a self-contained HTML page
//! (no external assets; an inline SVG bar chart of variance by category).

use std::fmt::Write as _;
use std::io::{self, Write};

use rust_decimal::Decimal;

use super::Side;
use super::audit::{Category, Report};
use crate::domain::money::format_amount;

fn amounts(m: &std::collections::BTreeMap<&'static str, Decimal>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(c, a)| {
            let cur = crate::domain::currency::Currency::from_code(c);
            let shown = cur.map_or_else(|| a.to_string(), |cur| format_amount(*a, cur));
            format!("{shown} {c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary a person reads first.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Three-way audit (seed 004)");
    if let Some(t) = r.as_of {
        let _ = writeln!(out, "as of {}", t.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    let _ = writeln!(
        out,
        "\n{:<11} {:>5} {:>10} {:>8}  totals",
        "system", "files", "records", "errors"
    );
    for side in [Side::Storefront, Side::Processor, Side::Ledger] {
        let t = r.sides.get(&side).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<11} {:>5} {:>10} {:>8}  {}",
            side.as_str(),
            t.files,
            t.records,
            t.errors,
            amounts(&t.amounts)
        );
    }
    let _ = writeln!(out, "\norders              {:>10}", r.orders);
    let _ = writeln!(out, "matched             {:>10}", r.matched);
    let _ = writeln!(out, "in exception        {:>10}", r.in_exception);
    let _ = writeln!(out, "storefront only     {:>10}", r.storefront_only);
    let _ = writeln!(out, "processor only      {:>10}", r.processor_only);
    for side in [Side::Processor, Side::Ledger] {
        let n = r.unlinked.get(&side).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<19} {:>10}",
            format!("{} unlinked", side.as_str()),
            n
        );
    }
    let _ = writeln!(out, "\n{:<20} {:>10}  at risk", "variance", "exceptions");
    for (c, (n, sums)) in r.by_category() {
        let _ = writeln!(out, "{:<20} {:>10}  {}", c.as_str(), n, amounts(&sums));
    }
    if !r.errors.is_empty() {
        let _ = writeln!(out, "\nrows not read (first {}):", r.errors.len().min(20));
        for e in r.errors.iter().take(20) {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Every exception row, one per line.
pub fn write_csv(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "order_id,category,exception_type,rule,subject,difference,currency,summary"
    )?;
    for e in &r.exceptions {
        let (amount, currency) = e.difference.map_or((String::new(), ""), |d| {
            (format_amount(d.amount, d.currency), d.currency.code())
        });
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            csv_field(&e.order_id),
            csv_field(e.category.as_str()),
            e.exception_type.as_str(),
            csv_field(&e.rule),
            csv_field(&e.subject),
            amount,
            currency,
            csv_field(&e.summary)
        )?;
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar per category, its length the count of exceptions.
fn chart(r: &Report) -> String {
    let cats = r.by_category();
    let max = cats.values().map(|(n, _)| *n).max().unwrap_or(0).max(1);
    let (bar_h, gap, label_w, width) = (26u64, 10u64, 170u64, 420u64);
    let height = (bar_h + gap) * cats.len() as u64 + gap;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"exceptions by category\">",
        label_w + width + 80
    );
    for (i, (c, (n, sums))) in cats.iter().enumerate() {
        let y = gap + i as u64 * (bar_h + gap);
        let w = (n * width) / max;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"{bar_h}\" fill=\"{}\"><title>{} at risk</title></rect><text x=\"{}\" y=\"{}\" font-size=\"13\">{n}</text>",
            y + 18,
            esc(c.as_str()),
            if *c == Category::Other {
                "#999"
            } else {
                "#c0392b"
            },
            esc(&amounts(sums)),
            label_w + w + 6,
            y + 18
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A page that opens anywhere: styles inline, no scripts, no fetches.
pub fn html(r: &Report) -> String {
    let mut rows = String::new();
    for e in r.exceptions.iter().take(10_000) {
        let diff = e.difference.map_or_else(String::new, |d| d.to_string());
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td></tr>",
            esc(&e.order_id),
            esc(e.category.as_str()),
            esc(&e.rule),
            esc(&e.subject),
            esc(&diff),
            esc(&e.summary)
        );
    }
    let more = r.exceptions.len().saturating_sub(10_000);
    let note = if more > 0 {
        format!("<p>{more} more rows are in the CSV (<code>--format csv</code>).</p>")
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Tally audit</title><style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}td.n{{text-align:right;white-space:nowrap}}pre{{background:#f6f6f6;padding:1em}}</style></head><body><h1>Three-way audit</h1><h2>Summary</h2><pre>{}</pre><h2>Variance by category</h2>{}<h2>Exceptions ({})</h2><table><tr><th>order</th><th>category</th><th>rule</th><th>subject</th><th>difference</th><th>summary</th></tr>{rows}</table>{note}</body></html>\n",
        esc(&table(r)),
        chart(r),
        r.exceptions.len()
    )
}
