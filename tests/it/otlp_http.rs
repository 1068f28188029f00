//! OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf: `tally serve` exports its
//! spans by POSTing protobuf to {endpoint}/v1/traces (here, an HTTP
//! collector in process), the caller's trace continuing as over gRPC.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::binary::{SpawnStopped, free_port, submit_to, tally, terminate, wait_serving};
use crate::common::*;
use crate::otlp_collector::http_collector;

const TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4736";

/// Each span's trace id (hex) and name in one export.
fn spans(export: &ExportTraceServiceRequest) -> Vec<(String, String)> {
    export
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| {
            let id: String = s.trace_id.iter().map(|b| format!("{b:02x}")).collect();
            (id, s.name.clone())
        })
        .collect()
}

#[tokio::test]
async fn spans_are_exported_over_http_protobuf_when_the_protocol_says_so() {
    let (posts, otlp_port) = http_collector::<ExportTraceServiceRequest>().await;
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        // This collector takes spans only (otlp_metrics.rs has metrics).
        .env("OTEL_METRICS_EXPORTER", "none")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_SAMPLER")
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    let caller = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    submit_to(port, clean_order("H-1"), Some(&caller)).await;
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let posts = posts.lock().unwrap().clone();
        let seen: Vec<(String, String)> = posts.iter().flat_map(|(_, _, e)| spans(e)).collect();
        let names: Vec<&str> = seen
            .iter()
            .filter(|(trace, _)| trace == TRACE_ID)
            .map(|(_, name)| name.as_str())
            .collect();
        if names.contains(&"tally.v1.IngestService/SubmitRecords")
            && names.contains(&"tally.record")
        {
            for (path, ctype, _) in &posts {
                assert_eq!(path, "/v1/traces");
                assert_eq!(ctype, "application/x-protobuf");
            }
            break;
        }
        assert!(Instant::now() < deadline, "spans never arrived: {posts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
