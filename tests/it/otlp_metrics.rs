//! Issue 9 item 4, "and over OTLP when configured": `tally serve` pushes
//! the series it serves at `/metrics` to an OTLP collector (here, in
//! process) every OTEL_METRIC_EXPORT_INTERVAL over gRPC, once more at
//! shutdown (over http/protobuf here, with a long interval, so only the
//! last push arrives), and not at all when OTEL_METRICS_EXPORTER=none;
//! `tally worker` pushes too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{self as pm, metric::Data, number_data_point};
use tally::proto::tally::v1 as pb;

use crate::binary::{SpawnStopped, free_port, submit_to, tally, terminate, wait_serving};
use crate::common::*;
use crate::otlp_collector::http_collector;

/// Every request the collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn grpc_collector() -> (Collector, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (collector, port)
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attrs.iter().find(|kv| kv.key == key)?.value.clone()?.value
}

fn text(v: &str) -> Option<any_value::Value> {
    Some(any_value::Value::StringValue(v.into()))
}

/// The metric named `name` in one request.
fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a pm::Metric> {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == name)
}

/// The value of the counter `tally.records.ingested` for one kind,
/// accepted; asserts it is a cumulative monotonic sum.
fn ingested(req: &ExportMetricsServiceRequest, kind: &str) -> Option<i64> {
    let m = metric(req, "tally.records.ingested")?;
    assert_eq!(m.unit, "{record}");
    let Some(Data::Sum(sum)) = &m.data else {
        panic!("not a sum: {m:?}")
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        pm::AggregationTemporality::Cumulative as i32
    );
    sum.data_points
        .iter()
        .find(|p| {
            attr(&p.attributes, "tally.record_kind") == text(kind)
                && attr(&p.attributes, "tally.outcome") == text("accepted")
        })
        .and_then(|p| match p.value {
            Some(number_data_point::Value::AsInt(n)) => Some(n),
            _ => None,
        })
}

/// SubmitRecords' duration histogram point, status OK.
fn submit_duration(req: &ExportMetricsServiceRequest) -> Option<pm::HistogramDataPoint> {
    let m = metric(req, "rpc.server.duration")?;
    assert_eq!(m.unit, "ms");
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram: {m:?}")
    };
    h.data_points
        .iter()
        .find(|p| {
            attr(&p.attributes, "rpc.service") == text("tally.v1.IngestService")
                && attr(&p.attributes, "rpc.method") == text("SubmitRecords")
                && attr(&p.attributes, "rpc.grpc.status_code")
                    == Some(any_value::Value::IntValue(0))
        })
        .cloned()
}

/// The open-exceptions gauge: (type, owner) -> count.
fn open_exceptions(req: &ExportMetricsServiceRequest) -> Vec<(String, String, i64)> {
    let Some(m) = metric(req, "tally.exceptions.open") else {
        return vec![];
    };
    let Some(Data::Gauge(g)) = &m.data else {
        panic!("not a gauge: {m:?}")
    };
    let s = |p: &pm::NumberDataPoint, k: &str| match attr(&p.attributes, k) {
        Some(any_value::Value::StringValue(s)) => s,
        other => panic!("{k}: {other:?}"),
    };
    g.data_points
        .iter()
        .map(|p| {
            let Some(number_data_point::Value::AsInt(n)) = p.value else {
                panic!("{p:?}")
            };
            (s(p, "tally.exception_type"), s(p, "tally.owner"), n)
        })
        .collect()
}

async fn submit(port: u16, records: Vec<pb::Record>) {
    submit_to(port, records, None).await;
}

/// `tally SUBCOMMAND` exporting to the collector at `otlp_port`.
fn run(sub: &str, db: &TestDb, port: u16, otlp_port: u16) -> std::process::Command {
    let mut cmd = tally();
    cmd.arg(sub)
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        // The collectors here take metrics only.
        .env("OTEL_TRACES_EXPORTER", "none")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_METRIC_EXPORT_INTERVAL");
    cmd
}

#[tokio::test]
async fn serve_pushes_its_metrics_over_otlp_grpc_at_each_interval() {
    let (collector, otlp_port) = grpc_collector().await;
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = run("serve", &db, port, otlp_port)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("OTEL_SERVICE_NAME", "tally-otlp-metrics")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=it")
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    // A push before any record: the counter has not moved yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while collector.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no push arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushed_before = collector.0.lock().unwrap().len();
    assert_eq!(
        ingested(&collector.0.lock().unwrap()[0], "storefront_order"),
        None
    );

    // An under-capture: an exception stays open.
    submit(
        port,
        vec![
            order("M-1", "100.00"),
            charge("M-1", "60.00"),
            invoice("M-1", "100.00"),
        ],
    )
    .await;
    let rows = db
        .client()
        .await
        .query(
            "SELECT type, coalesce(owner, ''), count(*) FROM exceptions
             WHERE state <> 'resolved' GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let open: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(!open.is_empty());

    let deadline = Instant::now() + Duration::from_secs(20);
    let moved = loop {
        let pushed = collector.0.lock().unwrap().clone();
        if let Some(req) = pushed[pushed_before..]
            .iter()
            .find(|r| ingested(r, "storefront_order") == Some(1) && submit_duration(r).is_some())
        {
            break req.clone();
        }
        assert!(Instant::now() < deadline, "the values never moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ingested(&moved, "processor_payment"), Some(1));
    assert_eq!(ingested(&moved, "invoice"), Some(1));
    let rpc = submit_duration(&moved).unwrap();
    assert_eq!(rpc.count, 1);
    assert!(rpc.sum.is_some_and(|s| s > 0.0));
    assert_eq!(rpc.explicit_bounds.first(), Some(&0.0));
    assert_eq!(rpc.bucket_counts.len(), rpc.explicit_bounds.len() + 1);
    assert_eq!(rpc.bucket_counts.iter().sum::<u64>(), 1);
    assert!(rpc.start_time_unix_nano > 0 && rpc.start_time_unix_nano < rpc.time_unix_nano);
    assert_eq!(open_exceptions(&moved), open);
    let backlog = metric(&moved, "tally.worker.backlog").unwrap();
    assert!(matches!(backlog.data, Some(Data::Gauge(_))));
    assert!(metric(&moved, "db.client.connection.max").is_some());
    assert!(metric(&moved, "tally.handoff.lag").is_some());

    // The resource is the trace exporter's.
    let resource = &moved.resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes;
    assert_eq!(attr(resource, "service.name"), text("tally-otlp-metrics"));
    assert_eq!(attr(resource, "deployment.environment"), text("it"));
    assert_eq!(attr(resource, "telemetry.sdk.language"), text("rust"));
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
}

#[tokio::test]
async fn the_last_values_are_pushed_at_shutdown_over_http_protobuf() {
    let (posts, otlp_port) = http_collector::<ExportMetricsServiceRequest>().await;
    let db = TestDb::new().await;
    let port = free_port();
    // The first scheduled push would come after a minute: only the one at
    // shutdown arrives.
    let mut child = run("serve", &db, port, otlp_port)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    submit(port, clean_order("H-1")).await;
    assert!(posts.lock().unwrap().is_empty());
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "one push, at shutdown");
    let (path, ctype, req) = &posts[0];
    assert_eq!(path, "/v1/metrics");
    assert_eq!(ctype, "application/x-protobuf");
    assert_eq!(ingested(req, "storefront_order"), Some(1));
    assert_eq!(submit_duration(req).map(|p| p.count), Some(1));
    let resource = &req.resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes;
    assert_eq!(attr(resource, "service.name"), text("tally"));
}

#[tokio::test]
async fn otel_metrics_exporter_none_pushes_nothing() {
    let (collector, otlp_port) = grpc_collector().await;
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = run("serve", &db, port, otlp_port)
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "50")
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    submit(port, clean_order("N-1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    assert!(collector.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_worker_pushes_its_backlog_too() {
    let (collector, otlp_port) = grpc_collector().await;
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = run("worker", &db, port, otlp_port)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let backlog = loop {
        let pushed = collector.0.lock().unwrap().clone();
        if let Some(m) = pushed
            .iter()
            .find_map(|r| metric(r, "tally.worker.backlog").cloned())
        {
            break m;
        }
        assert!(Instant::now() < deadline, "the worker never pushed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let Some(Data::Gauge(g)) = backlog.data else {
        panic!("{backlog:?}")
    };
    let ready_payouts = g.data_points.iter().find(|p| {
        attr(&p.attributes, "tally.job_kind") == text("apply_payout")
            && attr(&p.attributes, "tally.job_state") == text("ready")
    });
    assert_eq!(
        ready_payouts.and_then(|p| p.value),
        Some(number_data_point::Value::AsInt(0))
    );
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
}
