//! Metrics for on-call: served as Prometheus text at `/metrics` on
//! `TALLY_METRICS_ADDR` (unset: no listener; [`prometheus`]) and pushed
//! over OTLP when an endpoint is configured ([`otlp`]).
//!
//! A small registry of its own: counters and histograms keyed by attribute
//! values behind one mutex each, updated a few times per call. Both
//! exports read the same [`Series`] ([`Metrics::snapshot`]), named by
//! OpenTelemetry's conventions (`rpc.server.duration` in ms,
//! `tally.handoff.lag` in s, ...); Prometheus sees them as OpenTelemetry's
//! Prometheus exporter renders them (dots to underscores, the unit as a
//! suffix, `_total` on counters): `rpc_server_duration_milliseconds`,
//! `tally_handoff_lag_seconds`, and so on.
//!
//! The gauges (open exceptions by type and owner, the worker's backlog) are
//! counted in the database at each scrape or push, so every process shows
//! the same truth; histograms and counters are this process's own, counted
//! from its start (cumulative).

pub mod otlp;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

pub use self::prometheus::serve;
use crate::domain::record::{RecordKey, Stage};
use crate::domain::transaction::StoredRecord;
use crate::storage::Store;
use crate::storage::gauges::{self, Count};

/// Attribute values, in the order of the series' keys.
pub type Labels = Vec<String>;

/// A histogram series: the count in each bucket (one past the last bound,
/// for values above it), their sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

struct Histogram {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Labels, HistogramPoint>>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn observe(&self, labels: Labels, value: f64) {
        let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let p = s.entry(labels).or_insert_with(|| HistogramPoint {
            buckets: vec![0; self.bounds.len() + 1],
            sum: 0.0,
            count: 0,
        });
        // The first bucket whose upper bound holds the value (bounds are
        // inclusive, as in OpenTelemetry and Prometheus).
        p.buckets[self.bounds.partition_point(|b| *b < value)] += 1;
        p.sum += value;
        p.count += 1;
    }

    fn points(&self) -> Points {
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        Points::Histogram(
            self.bounds,
            s.iter().map(|(l, p)| (l.clone(), p.clone())).collect(),
        )
    }
}

#[derive(Default)]
struct Counter(Mutex<BTreeMap<Labels, u64>>);

impl Counter {
    fn add(&self, labels: Labels, n: u64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry(labels).or_insert(0) += n;
    }

    fn points(&self) -> Points {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Points::Sum(s.iter().map(|(l, n)| (l.clone(), *n)).collect())
    }
}

/// One series' values at a moment, by attribute values.
#[derive(Debug, Clone, PartialEq)]
pub enum Points {
    /// A monotonic counter, cumulative since the process started.
    Sum(Vec<(Labels, u64)>),
    Gauge(Vec<(Labels, i64)>),
    /// Cumulative too, with its buckets' upper bounds.
    Histogram(&'static [f64], Vec<(Labels, HistogramPoint)>),
}

/// A metric as both exports see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// OpenTelemetry's name (`rpc.server.duration`).
    pub name: &'static str,
    /// UCUM, as OpenTelemetry writes it: `ms`, `s`, `{record}`.
    pub unit: &'static str,
    pub description: &'static str,
    /// Attribute keys (`rpc.method`), one per label value.
    pub keys: &'static [&'static str],
    pub points: Points,
}

/// OpenTelemetry's default explicit bucket bounds (milliseconds).
const MS_BOUNDS: &[f64] = &[
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];
/// Handoff lags run from seconds to the week a payout takes.
const LAG_BOUNDS: &[f64] = &[
    1.0,
    10.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
    12.0 * 3600.0,
    86400.0,
    2.0 * 86400.0,
    7.0 * 86400.0,
    14.0 * 86400.0,
];

/// Seconds: a cash application job runs from milliseconds to a few
/// seconds for a payout of thousands of orders.
const S_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Every series Tally keeps.
pub struct Metrics {
    /// When counting began: the start of every cumulative series.
    started: SystemTime,
    rpc_duration: Histogram,
    records: Counter,
    handoff_lag: Histogram,
    exceptions_opened: Counter,
    exceptions_resolved: Counter,
    apply_duration: Histogram,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            started: SystemTime::now(),
            rpc_duration: Histogram::new(MS_BOUNDS),
            records: Counter::default(),
            handoff_lag: Histogram::new(LAG_BOUNDS),
            exceptions_opened: Counter::default(),
            exceptions_resolved: Counter::default(),
            apply_duration: Histogram::new(S_BOUNDS),
        }
    }

    /// When the cumulative series began.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Every series now, with the database's gauges and the pool's use when
    /// given (neither is shown when its source cannot answer).
    pub fn snapshot(&self, pool: Option<deadpool::Status>, gauges: Option<&Gauges>) -> Vec<Series> {
        let exception_type: &[&str] = &["tally.exception_type"];
        let mut out = vec![
            Series {
                name: "tally.cash_application.duration",
                unit: "s",
                description: "Duration of cash application jobs, by job kind and outcome.",
                keys: &["tally.job_kind", "tally.outcome"],
                points: self.apply_duration.points(),
            },
            Series {
                name: "rpc.server.duration",
                unit: "ms",
                description: "Duration of inbound RPCs.",
                keys: &["rpc.service", "rpc.method", "rpc.grpc.status_code"],
                points: self.rpc_duration.points(),
            },
            Series {
                name: "tally.records.ingested",
                unit: "{record}",
                description: "Records submitted, by kind and outcome (accepted, duplicate, conflict).",
                keys: &["tally.record_kind", "tally.outcome"],
                points: self.records.points(),
            },
            Series {
                name: "tally.handoff.lag",
                unit: "s",
                description: "Event-time lag of a record behind its predecessor in the order's previous stage.",
                keys: &["tally.handoff"],
                points: self.handoff_lag.points(),
            },
            Series {
                name: "tally.exceptions.opened",
                unit: "{exception}",
                description: "Exceptions opened (new, or reopened), by type.",
                keys: exception_type,
                points: self.exceptions_opened.points(),
            },
            Series {
                name: "tally.exceptions.resolved",
                unit: "{exception}",
                description: "Exceptions resolved by later records, by type.",
                keys: exception_type,
                points: self.exceptions_resolved.points(),
            },
        ];
        if let Some(g) = gauges {
            out.extend(g.series());
        }
        if let Some(s) = pool {
            out.extend(pool_series(s));
        }
        out
    }
}

fn gauge(name: &'static str, unit: &'static str, description: &'static str) -> Series {
    Series {
        name,
        unit,
        description,
        keys: &[],
        points: Points::Gauge(vec![]),
    }
}

/// The pool's use, as OpenTelemetry's database client conventions name it.
fn pool_series(s: deadpool::Status) -> Vec<Series> {
    let used = s.size.saturating_sub(s.available);
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let count = Series {
        keys: &["db.client.connection.state"],
        points: Points::Gauge(vec![
            (vec!["used".into()], n(used)),
            (vec!["idle".into()], n(s.available)),
        ]),
        ..gauge(
            "db.client.connection.count",
            "{connection}",
            "Connections in the pool, by state.",
        )
    };
    let max = Series {
        points: Points::Gauge(vec![(vec![], n(s.max_size))]),
        ..gauge(
            "db.client.connection.max",
            "{connection}",
            "Largest number of connections the pool opens.",
        )
    };
    let pending = Series {
        points: Points::Gauge(vec![(vec![], n(s.waiting))]),
        ..gauge(
            "db.client.connection.pending_requests",
            "{request}",
            "Calls waiting for a connection.",
        )
    };
    vec![count, max, pending]
}

/// The database's counts at a scrape or push.
#[derive(Debug, Default)]
pub struct Gauges {
    pub open_exceptions: Vec<Count>,
    pub backlog: Vec<Count>,
}

impl Gauges {
    fn series(&self) -> [Series; 2] {
        let open = self
            .open_exceptions
            .iter()
            .map(|c| (vec![c.a.clone(), c.b.clone()], c.n))
            .collect();
        // Known job kinds at 0 when idle, so a dashboard sees the series
        // before the first job.
        let mut backlog: BTreeMap<Labels, i64> = KNOWN_JOBS
            .iter()
            .map(|k| (vec![k.to_string(), "ready".to_string()], 0))
            .collect();
        for c in &self.backlog {
            backlog.insert(vec![c.a.clone(), c.b.clone()], c.n);
        }
        [
            Series {
                keys: &["tally.exception_type", "tally.owner"],
                points: Points::Gauge(open),
                ..gauge(
                    "tally.exceptions.open",
                    "{exception}",
                    "Unresolved exceptions, by type and owner.",
                )
            },
            Series {
                keys: &["tally.job_kind", "tally.job_state"],
                points: Points::Gauge(backlog.into_iter().collect()),
                ..gauge(
                    "tally.worker.backlog",
                    "{job}",
                    "Work waiting for the worker, by job kind and state.",
                )
            },
        ]
    }
}

/// Reads the gauges; None when the database cannot answer in time (the
/// scrape or push still carries the rest).
pub async fn read_gauges(store: &Store) -> Option<Gauges> {
    let read = async {
        let mut conn = store.conn().await.ok()?;
        Some(Gauges {
            open_exceptions: gauges::open_exceptions(&mut conn).await.ok()?,
            backlog: gauges::backlog(&mut conn).await.ok()?,
        })
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

/// Job kinds always shown in the backlog.
const KNOWN_JOBS: [&str; 3] = ["apply_order", "apply_payout", "deliver_alert"];

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn global() -> &'static Metrics {
    &GLOBAL
}

impl Metrics {
    pub fn rpc_finished(&self, service: &str, method: &str, code: i64, took: Duration) {
        self.rpc_duration.observe(
            vec![service.into(), method.into(), code.to_string()],
            took.as_secs_f64() * 1000.0,
        );
    }

    pub fn record_ingested(&self, kind: &str, outcome: &str) {
        self.records.add(vec![kind.into(), outcome.into()], 1);
    }

    /// One per exception opened (new or reopened), by type.
    pub fn exceptions_opened(&self, types: &[String]) {
        for t in types {
            self.exceptions_opened.add(vec![t.clone()], 1);
        }
    }

    /// One per exception resolved, by type.
    pub fn exceptions_resolved(&self, types: &[String]) {
        for t in types {
            self.exceptions_resolved.add(vec![t.clone()], 1);
        }
    }

    /// The lag of each record in `fresh` behind its predecessor in `records`
    /// (one order's), by event time: see [`handoff_lags`].
    /// Returns each measured record's key and lag (for its span).
    pub fn observe_handoff_lags(
        &self,
        records: &[StoredRecord],
        fresh: &[RecordKey],
    ) -> Vec<(RecordKey, chrono::TimeDelta)> {
        let lags = keyed_handoff_lags(records, fresh);
        for (key, lag) in &lags {
            self.handoff_lag.observe(
                vec![key.kind.handoff().as_str().into()],
                lag.num_milliseconds() as f64 / 1000.0,
            );
        }
        lags
    }

    /// One cash application job ran (`outcome`: done, busy, failed).
    pub fn job_finished(&self, kind: &str, outcome: &str, took: Duration) {
        self.apply_duration
            .observe(vec![kind.into(), outcome.into()], took.as_secs_f64());
    }
}

/// For each record in `fresh`, its handoff and how long after its
/// predecessor it happened: the latest record of the order's previous stage
/// (an order's capture before its fulfilment, a fulfilment before its
/// invoice...) at or before it. Records with no such predecessor (the first
/// stage, or one that arrived out of order) have no lag.
pub fn handoff_lags(
    records: &[StoredRecord],
    fresh: &[RecordKey],
) -> Vec<(&'static str, chrono::TimeDelta)> {
    keyed_handoff_lags(records, fresh)
        .into_iter()
        .map(|(k, lag)| (k.kind.handoff().as_str(), lag))
        .collect()
}

/// [`handoff_lags`], by the measured record's key.
pub fn keyed_handoff_lags(
    records: &[StoredRecord],
    fresh: &[RecordKey],
) -> Vec<(RecordKey, chrono::TimeDelta)> {
    let previous = |s: Stage| match s {
        Stage::OrderCapture => None,
        Stage::Fulfillment => Some(Stage::OrderCapture),
        Stage::Invoice => Some(Stage::Fulfillment),
        Stage::PaymentCapture => Some(Stage::Invoice),
        Stage::CashApplication => Some(Stage::PaymentCapture),
        Stage::Reporting => Some(Stage::CashApplication),
    };
    let mut lags = vec![];
    for sr in records {
        let r = &sr.record;
        if !fresh.contains(&r.key()) {
            continue;
        }
        let Some(prev) = previous(r.kind().stage()) else {
            continue;
        };
        let before: Option<DateTime<Utc>> = records
            .iter()
            .map(|p| &p.record)
            .filter(|p| p.kind().stage() == prev && p.event_time <= r.event_time)
            .map(|p| p.event_time)
            .max();
        if let Some(t) = before {
            lags.push((r.key(), r.event_time - t));
        }
    }
    lags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::{fulfilment, invoice, order};

    fn keys(records: &[&StoredRecord]) -> Vec<RecordKey> {
        records.iter().map(|r| r.record.key()).collect()
    }

    #[test]
    fn a_records_lag_runs_from_the_latest_predecessor_at_or_before_it() {
        let o = order("100.00", 2); // at t0
        let f1 = fulfilment("F1", 1, 60);
        let f2 = fulfilment("F2", 1, 180);
        let inv = invoice("I1", "100.00", 200);
        let records = vec![o.clone(), f1.clone(), f2.clone(), inv.clone()];
        let lags = handoff_lags(&records, &keys(&[&f2, &inv]));
        assert_eq!(
            lags,
            vec![
                ("order_to_fulfillment", chrono::TimeDelta::minutes(180)),
                // Behind the later shipment, not the first.
                ("fulfillment_to_invoice", chrono::TimeDelta::minutes(20)),
            ]
        );
        // Not fresh: not measured again. First stage: no predecessor.
        assert!(handoff_lags(&records, &keys(&[&o])).is_empty());
        // A fulfilment before any order has no lag to show.
        let early = fulfilment("F0", 1, -5);
        assert!(handoff_lags(&[o, early.clone()], &keys(&[&early])).is_empty());
    }
}
