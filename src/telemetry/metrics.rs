//! Metrics for on-call, served as Prometheus text at `/metrics` on
//! `TALLY_METRICS_ADDR` (unset: no listener).
//!
//! A small registry of its own: counters and histograms keyed by label
//! values behind one mutex each, updated a few times per call. Names and
//! units follow OpenTelemetry's conventions as its Prometheus exporter
//! renders them (dots to underscores, the unit as a suffix, `_total` on
//! counters): `rpc.server.duration` (ms) is
//! `rpc_server_duration_milliseconds`, `tally.handoff.lag` (s) is
//! `tally_handoff_lag_seconds`, and so on.
//!
//! The gauges (open exceptions by type and owner, the worker's backlog) are
//! counted in the database at each scrape, so every process shows the same
//! truth; histograms and counters are this process's own.
//!
//! Only Prometheus: exporting these over OTLP would mean rebuilding the
//! registry on the OpenTelemetry metrics SDK (its instruments, views and
//! periodic reader), not a switch; a collector can scrape `/metrics`
//! instead (its `prometheus` receiver).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::record::{RecordKey, Stage};
use crate::domain::transaction::StoredRecord;
use crate::storage::Store;
use crate::storage::gauges::{self, Count};

type Labels = Vec<String>;

/// A histogram series: cumulative bucket counts, sum, count.
type Buckets = (Vec<u64>, f64, u64);

struct Histogram {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Labels, Buckets>>,
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
        let (buckets, sum, count) = s
            .entry(labels)
            .or_insert_with(|| (vec![0; self.bounds.len()], 0.0, 0));
        for (b, bound) in buckets.iter_mut().zip(self.bounds) {
            if value <= *bound {
                *b += 1;
            }
        }
        *sum += value;
        *count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, keys: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (labels, (buckets, sum, count)) in s.iter() {
            let l = label_text(keys, labels);
            let sep = if l.is_empty() { "" } else { "," };
            for (b, bound) in buckets.iter().zip(self.bounds) {
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{bound}\"}} {b}");
            }
            let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{{l}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{l}}} {count}");
        }
    }
}

#[derive(Default)]
struct Counter(Mutex<BTreeMap<Labels, u64>>);

impl Counter {
    fn add(&self, labels: Labels, n: u64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry(labels).or_insert(0) += n;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, keys: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, n) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "{name}{{{}}} {n}", label_text(keys, labels));
        }
    }
}

fn label_text(keys: &[&str], values: &[String]) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    keys.iter()
        .zip(values)
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
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
            rpc_duration: Histogram::new(MS_BOUNDS),
            records: Counter::default(),
            handoff_lag: Histogram::new(LAG_BOUNDS),
            exceptions_opened: Counter::default(),
            exceptions_resolved: Counter::default(),
            apply_duration: Histogram::new(S_BOUNDS),
        }
    }
}

/// The database's counts at a scrape.
#[derive(Debug, Default)]
pub struct Gauges {
    pub open_exceptions: Vec<Count>,
    pub backlog: Vec<Count>,
}

/// Reads the gauges; None when the database cannot answer in time (the
/// scrape still serves the rest).
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

/// Job kinds always shown in the backlog, at 0 when idle, so a dashboard
/// sees the series before the first job.
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

    /// Prometheus text exposition (format 0.0.4).
    pub fn render(&self, pool: Option<deadpool::Status>, gauges: Option<&Gauges>) -> String {
        let mut out = String::new();
        self.apply_duration.render(
            &mut out,
            "tally_cash_application_duration_seconds",
            "Duration of cash application jobs (tally.cash_application.duration), by job kind and outcome.",
            &["tally_job_kind", "tally_outcome"],
        );
        if let Some(g) = gauges {
            render_gauges(&mut out, g);
        }
        self.rpc_duration.render(
            &mut out,
            "rpc_server_duration_milliseconds",
            "Duration of inbound RPCs (rpc.server.duration).",
            &["rpc_service", "rpc_method", "rpc_grpc_status_code"],
        );
        self.records.render(
            &mut out,
            "tally_records_ingested_total",
            "Records submitted, by kind and outcome (accepted, duplicate, conflict).",
            &["tally_record_kind", "tally_outcome"],
        );
        self.handoff_lag.render(
            &mut out,
            "tally_handoff_lag_seconds",
            "Event-time lag of a record behind its predecessor in the order's previous stage.",
            &["tally_handoff"],
        );
        self.exceptions_opened.render(
            &mut out,
            "tally_exceptions_opened_total",
            "Exceptions opened (new, or reopened), by type.",
            &["tally_exception_type"],
        );
        self.exceptions_resolved.render(
            &mut out,
            "tally_exceptions_resolved_total",
            "Exceptions resolved by later records, by type.",
            &["tally_exception_type"],
        );
        if let Some(s) = pool {
            let used = s.size.saturating_sub(s.available);
            let _ = writeln!(
                out,
                "# HELP db_client_connection_count Connections in the pool, by state.\n\
                 # TYPE db_client_connection_count gauge\n\
                 db_client_connection_count{{db_client_connection_state=\"used\"}} {used}\n\
                 db_client_connection_count{{db_client_connection_state=\"idle\"}} {}\n\
                 # HELP db_client_connection_max Largest number of connections the pool opens.\n\
                 # TYPE db_client_connection_max gauge\n\
                 db_client_connection_max {}\n\
                 # HELP db_client_connection_pending_requests Calls waiting for a connection.\n\
                 # TYPE db_client_connection_pending_requests gauge\n\
                 db_client_connection_pending_requests {}",
                s.available, s.max_size, s.waiting
            );
        }
        out
    }
}

fn render_gauges(out: &mut String, g: &Gauges) {
    let _ = writeln!(
        out,
        "# HELP tally_exceptions_open Unresolved exceptions (tally.exceptions.open), by type and owner.\n\
         # TYPE tally_exceptions_open gauge"
    );
    for c in &g.open_exceptions {
        let l = label_text(
            &["tally_exception_type", "tally_owner"],
            &[c.a.clone(), c.b.clone()],
        );
        let _ = writeln!(out, "tally_exceptions_open{{{l}}} {}", c.n);
    }
    let mut backlog: BTreeMap<(String, String), i64> = KNOWN_JOBS
        .iter()
        .map(|k| ((k.to_string(), "ready".to_string()), 0))
        .collect();
    for c in &g.backlog {
        backlog.insert((c.a.clone(), c.b.clone()), c.n);
    }
    let _ = writeln!(
        out,
        "# HELP tally_worker_backlog Work waiting for the worker (tally.worker.backlog), by job kind and state.\n\
         # TYPE tally_worker_backlog gauge"
    );
    for ((kind, state), n) in backlog {
        let l = label_text(&["tally_job_kind", "tally_job_state"], &[kind, state]);
        let _ = writeln!(out, "tally_worker_backlog{{{l}}} {n}");
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

/// Serves `/metrics` until the process ends. HTTP/1 only, no keep-alive
/// tricks: Prometheus scrapes every few seconds.
pub async fn serve(addr: SocketAddr, store: Option<Store>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let store = store.clone();
                    async move {
                        let pool = store.as_ref().map(Store::pool_status);
                        let gauges = match (&store, req.uri().path()) {
                            (Some(s), "/metrics") => read_gauges(s).await,
                            _ => None,
                        };
                        Ok::<_, std::convert::Infallible>(respond(&req, pool, gauges.as_ref()))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn respond<B>(
    req: &http::Request<B>,
    pool: Option<deadpool::Status>,
    gauges: Option<&Gauges>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let (status, ctype, body) = if req.uri().path() == "/metrics" {
        (
            http::StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            global().render(pool, gauges),
        )
    } else {
        (
            http::StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are at /metrics\n".into(),
        )
    };
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, ctype)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("a static response is valid")
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

    #[test]
    fn series_render_as_prometheus_text() {
        let m = Metrics::new();
        m.record_ingested("invoice", "accepted");
        m.record_ingested("invoice", "accepted");
        m.rpc_finished("s", "M", 3, Duration::from_millis(7));
        m.exceptions_opened(&["amount_\"odd\"".to_string()]);
        m.job_finished("apply_payout", "done", Duration::from_millis(30));
        let gauges = Gauges {
            open_exceptions: vec![Count {
                a: "late_handoff".into(),
                b: "fulfillment-ops".into(),
                n: 2,
            }],
            backlog: vec![Count {
                a: "apply_payout".into(),
                b: "parked".into(),
                n: 1,
            }],
        };
        let text = m.render(None, Some(&gauges));
        assert!(text.contains(
            "tally_cash_application_duration_seconds_bucket{tally_job_kind=\"apply_payout\",\
             tally_outcome=\"done\",le=\"0.05\"} 1\n"
        ));
        assert!(text.contains(
            "tally_exceptions_open{tally_exception_type=\"late_handoff\",tally_owner=\"fulfillment-ops\"} 2\n"
        ));
        assert!(text.contains(
            "tally_worker_backlog{tally_job_kind=\"apply_payout\",tally_job_state=\"parked\"} 1\n"
        ));
        assert!(text.contains(
            "tally_worker_backlog{tally_job_kind=\"deliver_alert\",tally_job_state=\"ready\"} 0\n"
        ));
        assert!(text.contains(
            "tally_records_ingested_total{tally_record_kind=\"invoice\",tally_outcome=\"accepted\"} 2\n"
        ));
        let series = "rpc_server_duration_milliseconds_bucket{rpc_service=\"s\",rpc_method=\"M\",\
                      rpc_grpc_status_code=\"3\",le=";
        assert!(text.contains(&format!("{series}\"5\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{series}\"10\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{series}\"+Inf\"}} 1\n")), "{text}");
        assert!(text.contains(
            "tally_exceptions_opened_total{tally_exception_type=\"amount_\\\"odd\\\"\"} 1"
        ));
        assert!(!text.contains("db_client_connection"));
        assert!(text.contains("# TYPE tally_handoff_lag_seconds histogram"));
    }
}
