//! What a submission's new records and versions add to period reports:
//! each version's contributions, minus those of the version it superseded,
//! known in the submission's own transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::record::Record;
use crate::domain::report::{self, Contribution};
use crate::error::{Error, Result};
use crate::storage::{Conn, expectations, report_facts, reports};

/// The deltas of one version: `sign` +1 for what it brings, -1 for what a
/// superseded version no longer counts.
pub fn version_deltas(r: &Record, sign: i8) -> Result<Vec<reports::Delta>> {
    let bucket = report::bucket(r.event_time);
    let contributions = report::contributions(r)
        .map_err(|e| Error::invalid(format!("record {}", r.source_id), e.to_string()))?;
    Ok(contributions
        .into_iter()
        .map(|c: Contribution| {
            let (amount, count) = if sign < 0 {
                (-c.amount, -c.count)
            } else {
                (c.amount, c.count)
            };
            (
                bucket,
                c.figure.name().to_string(),
                c.currency.code().to_string(),
                amount,
                count,
            )
        })
        .collect())
}

/// Adds the deltas of records stored now: `stored` are (record id, record),
/// `updated` the ids among them that superseded a version.
pub(crate) async fn count_stored(
    conn: &Conn,
    merchant: &str,
    stored: &[(i64, &Record)],
    updated: &[i64],
) -> Result<()> {
    let mut deltas = vec![];
    for (_, r) in stored {
        deltas.extend(version_deltas(r, 1)?);
    }
    if !updated.is_empty() {
        for v in report_facts::versions_by_id(conn, merchant, updated).await? {
            if let Some((_, old)) = &v.superseded {
                deltas.extend(version_deltas(old, -1)?);
            }
        }
    }
    reports::add(conn, merchant, deltas).await
}

/// What a sync of expectations moves in the completeness figures, at each
/// order's event time: each handoff opened waits (+1), each met stops
/// (-1); an order with none before and some after starts waiting, and the
/// reverse. `open` is every expectation the orders have after the sync.
pub(crate) fn handoff_deltas(
    orders: &[String],
    open: &[(&str, &str)],
    synced: &expectations::Synced,
    event_times: &BTreeMap<String, DateTime<Utc>>,
) -> Vec<reports::Delta> {
    let mut out = vec![];
    let mut add = |order: &str, figure: String, n: i64| {
        if let Some(t) = event_times.get(order) {
            out.push((report::bucket(*t), figure, String::new(), Decimal::ZERO, n));
        }
    };
    for (order, handoff) in &synced.opened {
        add(order, format!("completeness.waiting.{handoff}"), 1);
    }
    for (order, handoff) in &synced.met {
        add(order, format!("completeness.waiting.{handoff}"), -1);
    }
    let after = per_order(open.iter().map(|(o, _)| *o));
    let opened = per_order(synced.opened.iter().map(|(o, _)| o.as_str()));
    let met = per_order(synced.met.iter().map(|(o, _)| o.as_str()));
    let n = |m: &BTreeMap<&str, i64>, o: &str| m.get(o).copied().unwrap_or(0);
    for order in orders {
        let now = n(&after, order);
        let before = now + n(&met, order) - n(&opened, order);
        match (before > 0, now > 0) {
            (false, true) => add(order, "completeness.orders_waiting".into(), 1),
            (true, false) => add(order, "completeness.orders_waiting".into(), -1),
            _ => {}
        }
    }
    out
}

/// How many of `pairs` each order has.
fn per_order<'a>(pairs: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, i64> {
    let mut n: BTreeMap<&str, i64> = BTreeMap::new();
    for o in pairs {
        *n.entry(o).or_default() += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn counts(d: &[reports::Delta]) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for (_, f, _, _, n) in d {
            *m.entry(f.clone()).or_default() += n;
        }
        m
    }

    #[test]
    fn an_order_starts_and_stops_waiting_with_its_first_and_last_handoff() {
        let t: DateTime<Utc> = "2026-11-02T10:07:00Z".parse().unwrap();
        let times: BTreeMap<String, DateTime<Utc>> =
            [("a".to_string(), t), ("b".to_string(), t)].into();
        let orders = vec!["a".to_string(), "b".to_string()];
        // a: new, two handoffs open; b: its last handoff met.
        let synced = expectations::Synced {
            opened: pairs(&[("a", "order_to_fulfillment"), ("a", "invoice_to_payment")]),
            met: pairs(&[("b", "invoice_to_payment")]),
        };
        let open = [("a", "order_to_fulfillment"), ("a", "invoice_to_payment")];
        let d = handoff_deltas(&orders, &open, &synced, &times);
        let c = counts(&d);
        assert_eq!(c["completeness.waiting.order_to_fulfillment"], 1);
        assert_eq!(
            c["completeness.waiting.invoice_to_payment"], 0,
            "+1 for a, -1 for b"
        );
        assert_eq!(c["completeness.orders_waiting"], 0, "a starts, b stops");
        assert!(
            d.iter()
                .all(|x| x.0.to_rfc3339() == "2026-11-02T10:00:00+00:00")
        );

        // Nothing changed: nothing moves, though handoffs stay open.
        let none = handoff_deltas(&orders, &open, &expectations::Synced::default(), &times);
        assert!(none.is_empty(), "{none:?}");
    }
}
