//! Units: the warehouse shipping more than the storefront sold, per SKU
//! and in total. Counts saturate (see `transaction::units`): a sum that
//! would overflow is at least every unit an order could hold, and so over.

use std::collections::BTreeMap;

use super::Context;
use crate::domain::matching::findings::{ExceptionType, Finding, Observation};
use crate::domain::record::{Body, Handoff, Record};

/// Units per SKU, and the records that named each.
type BySku<'a> = BTreeMap<&'a str, (i64, Vec<&'a Record>)>;

fn shipped_by_sku<'a>(ctx: &Context<'a>) -> BySku<'a> {
    let mut by: BySku<'a> = BTreeMap::new();
    for r in &ctx.fulfilments {
        let Body::Fulfillment(f) = &r.body else {
            continue;
        };
        for l in &f.lines {
            let e = by.entry(l.sku.as_str()).or_default();
            e.0 = e.0.saturating_add(l.quantity);
            if !e.1.iter().any(|x| std::ptr::eq(*x, *r)) {
                e.1.push(r);
            }
        }
    }
    by
}

fn over(
    ctx: &Context<'_>,
    (subject, what): (String, String),
    (ordered, shipped): (i64, i64),
    fulfilments: &[&Record],
) -> Option<Finding> {
    let (or, _) = ctx.order?;
    if shipped <= ordered || fulfilments.is_empty() {
        return None;
    }
    let shipments = Observation::of_many(fulfilments, None);
    Some(Finding {
        exception_type: ExceptionType::AmountMismatch,
        handoff: Handoff::OrderToFulfillment,
        rule: "shipped_more_than_ordered".into(),
        subject,
        summary: format!(
            "{shipped} units of {what} shipped ({} {}), {ordered} ordered ({} {}): {} more than ordered",
            shipments.source_system,
            shipments.source_ids.join(","),
            or.source_system,
            or.source_id,
            shipped.saturating_sub(ordered)
        ),
        observations: vec![Observation::of(or, None), shipments],
        difference: None,
    })
}

/// A finding per SKU shipped beyond its order line (a SKU the order does
/// not have counts as ordered 0), and one for the order when the total is.
pub(crate) fn shipped_more_than_ordered(ctx: &Context<'_>) -> Vec<Finding> {
    let Some((_, o)) = ctx.order else {
        return vec![];
    };
    let mut ordered: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &o.line_items {
        let e = ordered.entry(l.sku.as_str()).or_default();
        *e = e.saturating_add(l.quantity);
    }
    let mut findings: Vec<Finding> = shipped_by_sku(ctx)
        .into_iter()
        .filter_map(|(sku, (shipped, records))| {
            let subject = (format!("{}/sku/{sku}", ctx.order_id), format!("SKU {sku}"));
            let ordered = ordered.get(sku).copied().unwrap_or(0);
            over(ctx, subject, (ordered, shipped), &records)
        })
        .collect();
    let total = (ctx.order_id.to_string(), "the order".to_string());
    findings.extend(over(
        ctx,
        total,
        (ctx.ordered_units(), ctx.shipped_units()),
        &ctx.fulfilments,
    ));
    findings
}
