//! OTLP over TLS: traces and metrics reach an `https://` gRPC collector
//! whose certificate a private CA signed, trusted through the standard
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`; without it (Mozilla's roots only)
//! nothing is sent, and Tally serves on regardless.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tally::proto::tally::v1 as pb;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::alerts_tls::TestCa;
use crate::binary::{SpawnStopped, free_port, submit_to, tally, terminate, wait_serving};
use crate::common::*;

/// Span names and metric pushes received.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<String>>>,
    pushes: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let names = req
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .map(|s| s.name);
        self.spans.lock().unwrap().extend(names);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        _req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        *self.pushes.lock().unwrap() += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A collector for traces and metrics, over TLS with `ca`'s server
/// certificate for 127.0.0.1.
async fn tls_collector(ca: &TestCa) -> (Collector, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector::default();
    let identity = Identity::from_pem(&ca.server_cert_pem, &ca.server_key_pem);
    tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (collector, port)
}

/// `tally serve` exporting traces and metrics to `https://127.0.0.1:otlp`.
fn serve(db: &TestDb, port: u16, otlp: u16) -> std::process::Command {
    let mut cmd = tally();
    cmd.arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("https://127.0.0.1:{otlp}"),
        )
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_CERTIFICATE");
    cmd
}

async fn submit(port: u16, records: Vec<pb::Record>) {
    submit_to(port, records, None).await;
}

#[tokio::test]
async fn traces_and_metrics_reach_an_https_collector_trusted_through_the_certificate_variable() {
    let ca = TestCa::new("otlp");
    let (collector, otlp) = tls_collector(&ca).await;
    let ca_file = std::env::temp_dir().join(format!(
        "tally-otlp-ca-{}-{}.pem",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = serve(&db, port, otlp)
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file)
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    submit(port, clean_order("TLS-1")).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == "tally.record")
            .count();
        let pushes = *collector.pushes.lock().unwrap();
        if records == clean_order("TLS-1").len() && pushes > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "over TLS: {records} record spans, {pushes} metric pushes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    std::fs::remove_file(&ca_file).unwrap();
}

#[tokio::test]
async fn a_collector_signed_by_an_unknown_ca_gets_nothing_and_tally_serves_on() {
    let ca = TestCa::new("otlp-untrusted");
    let (collector, otlp) = tls_collector(&ca).await;
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = serve(&db, port, otlp).spawn_stopped();
    wait_serving(port, &mut child).await;
    submit(port, clean_order("TLS-2")).await;
    // Several metric intervals and span batches go by.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    submit(port, clean_order("TLS-3")).await;
    assert!(collector.spans.lock().unwrap().is_empty());
    assert_eq!(*collector.pushes.lock().unwrap(), 0);
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
}
