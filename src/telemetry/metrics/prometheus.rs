//! The Prometheus text exposition of [`Series`], served at `/metrics`.
//! Names as OpenTelemetry's Prometheus exporter writes them: dots to
//! underscores, the unit as a suffix (`_milliseconds`, `_seconds`; none for
//! an annotation such as `{record}`), `_total` on counters.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::{Gauges, Metrics, Points, Series, global, read_gauges};
use crate::storage::Store;

impl Metrics {
    /// Prometheus text exposition (format 0.0.4).
    pub fn render(&self, pool: Option<deadpool::Status>, gauges: Option<&Gauges>) -> String {
        render(&self.snapshot(pool, gauges))
    }
}

/// The Prometheus name of a series.
pub fn name(s: &Series) -> String {
    let mut n = s.name.replace('.', "_");
    match s.unit {
        "ms" => n.push_str("_milliseconds"),
        "s" => n.push_str("_seconds"),
        _ => {}
    }
    if matches!(s.points, Points::Sum(_)) {
        n.push_str("_total");
    }
    n
}

pub fn render(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        let name = name(s);
        let kind = match s.points {
            Points::Sum(_) => "counter",
            Points::Gauge(_) => "gauge",
            Points::Histogram(..) => "histogram",
        };
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", s.description);
        let braced = |l: String| if l.is_empty() { l } else { format!("{{{l}}}") };
        match &s.points {
            Points::Sum(points) => {
                for (labels, n) in points {
                    let _ = writeln!(out, "{name}{} {n}", braced(label_text(s.keys, labels)));
                }
            }
            Points::Gauge(points) => {
                for (labels, n) in points {
                    let _ = writeln!(out, "{name}{} {n}", braced(label_text(s.keys, labels)));
                }
            }
            Points::Histogram(bounds, points) => {
                for (labels, p) in points {
                    let l = label_text(s.keys, labels);
                    let sep = if l.is_empty() { "" } else { "," };
                    // Prometheus buckets count everything at or below.
                    let mut below = 0;
                    for (b, bound) in p.buckets.iter().zip(bounds.iter()) {
                        below += b;
                        let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{bound}\"}} {below}");
                    }
                    let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", p.count);
                    let _ = writeln!(out, "{name}_sum{} {}", braced(l.clone()), p.sum);
                    let _ = writeln!(out, "{name}_count{} {}", braced(l), p.count);
                }
            }
        }
    }
    out
}

/// `key="value",...` with the keys' dots as underscores.
fn label_text(keys: &[&str], values: &[String]) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    keys.iter()
        .zip(values)
        .map(|(k, v)| format!("{}=\"{}\"", k.replace('.', "_"), escape(v)))
        .collect::<Vec<_>>()
        .join(",")
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
    use std::time::Duration;

    use super::*;
    use crate::storage::gauges::Count;

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

    #[test]
    fn the_pool_renders_with_and_without_labels() {
        let pool = deadpool::Status {
            max_size: 4,
            size: 3,
            available: 1,
            waiting: 0,
        };
        let text = Metrics::new().render(Some(pool), None);
        assert!(
            text.contains("db_client_connection_count{db_client_connection_state=\"used\"} 2\n")
        );
        assert!(
            text.contains("db_client_connection_count{db_client_connection_state=\"idle\"} 1\n")
        );
        assert!(text.contains("db_client_connection_max 4\n"), "{text}");
        assert!(text.contains("db_client_connection_pending_requests 0\n"));
        assert!(
            !text.contains("tally_worker_backlog"),
            "no gauges read, none shown"
        );
    }
}
