//! OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf: `tally serve` exports its
//! spans by POSTing protobuf to {endpoint}/v1/traces (here, an HTTP
//! collector in process), the caller's trace continuing as over gRPC.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::binary::{free_port, submit_to, tally, terminate, wait_serving};
use crate::common::*;

const TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4736";

/// (path, content type, the spans' trace ids and names) of each POST.
type Posts = Arc<Mutex<Vec<(String, String, Vec<(String, String)>)>>>;

async fn http_collector() -> (Posts, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let seen = posts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let ctype = req
                                .headers()
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            let spans = export
                                .resource_spans
                                .iter()
                                .flat_map(|r| &r.scope_spans)
                                .flat_map(|s| &s.spans)
                                .map(|s| {
                                    let id: String =
                                        s.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                                    (id, s.name.clone())
                                })
                                .collect();
                            seen.lock().unwrap().push((path, ctype, spans));
                            let reply = ExportTraceServiceResponse::default().encode_to_vec();
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                                    .body(Full::new(bytes::Bytes::from(reply)))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (posts, port)
}

#[tokio::test]
async fn spans_are_exported_over_http_protobuf_when_the_protocol_says_so() {
    let (posts, otlp_port) = http_collector().await;
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
        .spawn()
        .unwrap();
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
        let names: Vec<&str> = posts
            .iter()
            .flat_map(|(_, _, spans)| spans)
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
