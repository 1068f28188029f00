//! Issue 9: a caller's trace continues into `tally serve`, its spans reach
//! an OTLP collector (here, in process) with the RPC conventions and each
//! record's attributes, the ids are stored with each record, the worker's
//! cash application, journal and alert spans link back to (or join) the
//! records' trace, log lines name the trace, and `/metrics` serves series
//! that moved.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::alerts::receiver;
use crate::binary::{SpawnStopped, free_port, submit_to, tally, terminate, wait_serving};
use crate::cash::{bt, payout};
use crate::common::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const STREAM_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// A span as received, with its resource's attributes.
type Received = (Vec<KeyValue>, opentelemetry_proto::tonic::trace::v1::Span);

/// What the collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((resource.clone(), s));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_collector() -> (Collector, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector::default();
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (collector, port)
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// GET over a plain socket: HTTP/1.0, one request, read to the end.
async fn http_get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of the series named exactly `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_callers_trace_continues_through_ingest_and_matching_and_metrics_move() {
    let (collector, otlp_port) = start_collector().await;
    let db = TestDb::new().await;
    let (port, metrics_port) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!("tally-telemetry-{}.log", std::process::id()));
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("TALLY_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("TALLY_LOG_FORMAT", "json")
        // The alert receiver below listens on loopback.
        .env("TALLY_ALERT_ALLOW_CIDR", "127.0.0.0/8")
        .env("RUST_LOG", "info")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_SAMPLER")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn_stopped();
    wait_serving(port, &mut child).await;

    // An order whose fulfilment comes a day after its capture, and the
    // payout that pays its charge out.
    let records = vec![
        order("T-1", "100.00"),
        fulfillment("T-1", "2026-11-03T10:00:00Z"),
        charge("T-1", "100.00"),
        invoice("T-1", "100.00"),
        bt("txn_T1", "charge", "ch_T-1", "100.00", "3.20", "po_T1"),
        payout("po_T1", "96.80"),
    ];
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Every owner's webhook is a receiver here: each exception's alert
    // carries the trace of its record.
    let (hook, alerts) = receiver(0).await;
    let mut handoffs =
        tally::proto::tally::v1::handoff_service_client::HandoffServiceClient::new(channel.clone());
    for id in [
        "order-to-fulfillment",
        "fulfillment-to-invoice",
        "invoice-to-payment",
        "payment-to-cash-application",
        "reconciliation-to-reporting",
    ] {
        handoffs
            .update_handoff_contract(pb::UpdateHandoffContractRequest {
                handoff_contract: Some(pb::HandoffContract {
                    name: format!("merchants/acme/handoffContracts/{id}"),
                    alert_webhook_uri: hook.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["alert_webhook_uri".into()],
                }),
            })
            .await
            .unwrap();
    }
    let mut req = tonic::Request::new(pb::SubmitRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: String::new(),
        records,
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    req.metadata_mut()
        .insert("baggage", "caller=tests".parse().unwrap());
    let mut client = IngestServiceClient::new(channel);
    let reply = client.submit_records(req).await.unwrap().into_inner();
    assert_eq!(reply.results.len(), 6);
    // An under-capture opens an exception; the rest of the capture resolves it.
    let mut first = charge("T-2", "60.00");
    first.source_id = "ch_T-2_a".into();
    let mut second = charge("T-2", "40.00");
    second.source_id = "ch_T-2_b".into();
    // A stream's records continue its caller's trace too.
    let mut streamed = tonic::Request::new(tokio_stream::iter(vec![pb::StreamRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: String::new(),
        records: vec![order("S-1", "10.00")],
    }]));
    streamed.metadata_mut().insert(
        "traceparent",
        format!("00-{STREAM_TRACE}-{CALLER_SPAN}-01")
            .parse()
            .unwrap(),
    );
    let mut replies = client.stream_records(streamed).await.unwrap().into_inner();
    while let Some(r) = replies.message().await.unwrap() {
        assert_eq!(r.results.len(), 1);
    }
    for records in [
        vec![order("T-2", "100.00"), invoice("T-2", "100.00"), first],
        vec![second],
    ] {
        client
            .submit_records(pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records,
            })
            .await
            .unwrap();
    }

    // The in-process worker applies the payout.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = db
            .client()
            .await
            .query_opt(
                "SELECT 1 FROM payouts WHERE payout_id = 'po_T1' AND state = 'applied'",
                &[],
            )
            .await
            .unwrap()
            .is_some();
        if applied {
            break;
        }
        assert!(Instant::now() < deadline, "the payout was never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while alerts.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no alert was delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Metrics moved.
    let metrics = http_get(metrics_port, "/metrics").await;
    assert!(
        metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"),
        "{metrics}"
    );
    for (kind, n) in [
        ("storefront_order", 3.0),
        ("fulfillment", 1.0),
        ("processor_payment", 3.0),
        ("invoice", 2.0),
        ("payout", 1.0),
    ] {
        let series = format!(
            "tally_records_ingested_total{{tally_record_kind=\"{kind}\",tally_outcome=\"accepted\"}}"
        );
        assert_eq!(sample(&metrics, &series), Some(n), "{series}\n{metrics}");
    }
    let rpc = "rpc_server_duration_milliseconds_count{rpc_service=\"tally.v1.IngestService\",\
               rpc_method=\"SubmitRecords\",rpc_grpc_status_code=\"0\"}";
    assert_eq!(sample(&metrics, rpc), Some(3.0), "{metrics}");
    let resolved: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("tally_exceptions_resolved_total{"))
        .collect();
    assert_eq!(resolved.len(), 1, "{metrics}");
    let (series, n) = resolved[0].rsplit_once(' ').unwrap();
    assert_eq!(n, "1");
    let opened = series.replace("resolved", "opened");
    assert!(
        sample(&metrics, &opened).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let lag = |s: &str| {
        sample(
            &metrics,
            &format!("tally_handoff_lag_seconds_{s}{{tally_handoff=\"order_to_fulfillment\"}}"),
        )
    };
    assert_eq!(lag("count"), Some(1.0), "{metrics}");
    assert_eq!(lag("sum"), Some(86400.0), "{metrics}");
    assert!(sample(&metrics, "db_client_connection_max").is_some_and(|m| m >= 1.0));
    // The in-process worker's jobs, and its (drained) backlog.
    let applied = "tally_cash_application_duration_seconds_count{tally_job_kind=\"apply_payout\",\
                   tally_outcome=\"done\"}";
    assert!(
        sample(&metrics, applied).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let backlog = "tally_worker_backlog{tally_job_kind=\"apply_payout\",tally_job_state=\"ready\"}";
    assert_eq!(sample(&metrics, backlog), Some(0.0), "{metrics}");
    assert!(http_get(metrics_port, "/other").await.contains("404"),);

    // Each record carries the caller's trace and its own span.
    let rows = db
        .client()
        .await
        .query(
            "SELECT source_id, trace_id, span_id FROM record_log ORDER BY record_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 11);
    let mut stored_spans = vec![];
    for row in &rows[..6] {
        let (trace, span): (Option<String>, Option<String>) = (row.get(1), row.get(2));
        assert_eq!(trace.as_deref(), Some(TRACE_ID));
        let span = span.unwrap();
        assert_eq!(span.len(), 16);
        stored_spans.push(span);
    }
    // The calls without a traceparent start traces of their own.
    let streamed: Option<String> = rows[6].get(1);
    assert_eq!(streamed.as_deref(), Some(STREAM_TRACE));
    let other: Option<String> = rows[7].get(1);
    assert!(other.is_some_and(|t| t.len() == 32 && t != TRACE_ID && t != STREAM_TRACE));

    // Shutdown flushes the batch: the spans arrive without waiting for the
    // exporter's schedule.
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = collector.0.lock().unwrap().clone();
        let has = |n: &str| spans.iter().any(|(_, s)| s.name == n);
        if (has("tally.match") && has("tally.cash.apply") && has("tally.alert.deliver"))
            || Instant::now() > deadline
        {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ours: Vec<_> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == TRACE_ID)
        .collect();
    let named = |name: &'static str| ours.iter().filter(move |(_, s)| s.name == name);

    let (resource, server) = named("tally.v1.IngestService/SubmitRecords")
        .next()
        .unwrap_or_else(|| panic!("no server span in {spans:?}"));
    assert_eq!(attr(resource, "service.name").as_deref(), Some("tally"));
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.kind, SpanKind::Server as i32);
    let a = &server.attributes;
    assert_eq!(attr(a, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attr(a, "rpc.service").as_deref(),
        Some("tally.v1.IngestService")
    );
    assert_eq!(attr(a, "rpc.method").as_deref(), Some("SubmitRecords"));
    assert_eq!(attr(a, "rpc.grpc.status_code").as_deref(), Some("0"));
    assert_eq!(attr(a, "server.port"), Some(port.to_string()));

    let (_, ingest) = named("tally.ingest").next().expect("an ingest span");
    assert_eq!(ingest.parent_span_id, server.span_id);
    assert_eq!(
        attr(&ingest.attributes, "tally.merchant").as_deref(),
        Some("acme")
    );

    let records: Vec<_> = named("tally.record").map(|(_, s)| s).collect();
    assert_eq!(records.len(), 6);
    for r in &records {
        let a = &r.attributes;
        assert_eq!(r.parent_span_id, ingest.span_id);
        assert!(
            stored_spans.contains(&hex(&r.span_id)),
            "stored ids are the spans' own"
        );
        assert_eq!(attr(a, "tally.merchant").as_deref(), Some("acme"));
        let kind = attr(a, "tally.record_kind").unwrap();
        if !["payout", "balance_transaction"].contains(&kind.as_str()) {
            assert_eq!(attr(a, "tally.order_id").as_deref(), Some("T-1"));
        }
        assert_eq!(attr(a, "tally.outcome").as_deref(), Some("accepted"));
        // Never a payload field (amounts, names, card details).
        for kv in a {
            assert!(
                kv.key.starts_with("tally.")
                    || kv.key.starts_with("code.")
                    || kv.key.starts_with("thread.")
                    || kv.key == "target"
                    || kv.key.starts_with("otel."),
                "unexpected attribute {}",
                kv.key
            );
        }
    }
    let fulfilment = records
        .iter()
        .find(|r| attr(&r.attributes, "tally.record_kind").as_deref() == Some("fulfillment"))
        .unwrap();
    assert_eq!(
        attr(&fulfilment.attributes, "tally.handoff").as_deref(),
        Some("order_to_fulfillment")
    );
    assert_eq!(
        attr(&fulfilment.attributes, "tally.source_system").as_deref(),
        Some("shipbob")
    );
    assert_eq!(
        attr(&fulfilment.attributes, "tally.source_id").as_deref(),
        Some("F-T-1")
    );
    // A day behind the order's capture.
    assert_eq!(
        attr(&fulfilment.attributes, "tally.lag").as_deref(),
        Some("86400")
    );

    let (_, reconcile) = named("tally.reconcile").next().expect("a reconcile span");
    let (_, matched) = named("tally.match").next().expect("a matching span");
    assert_eq!(matched.parent_span_id, reconcile.span_id);
    assert_eq!(
        attr(&matched.attributes, "tally.order_id").as_deref(),
        Some("T-1")
    );
    assert!(attr(&matched.attributes, "tally.state").is_some());

    // Cash application and journal writing run in the worker, in traces of
    // their own, linked to the spans of the records they consume: the
    // order's path is reachable from the caller's trace.
    let linked = |s: &opentelemetry_proto::tonic::trace::v1::Span| {
        s.links
            .iter()
            .any(|l| hex(&l.trace_id) == TRACE_ID && stored_spans.contains(&hex(&l.span_id)))
    };
    let applied: Vec<_> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "tally.cash.apply")
        .collect();
    let payout_span = applied
        .iter()
        .find(|s| {
            attr(&s.attributes, "tally.subject_id").as_deref() == Some("po_T1")
                && attr(&s.attributes, "tally.outcome").as_deref() == Some("done")
        })
        .unwrap_or_else(|| panic!("no cash application span for po_T1 in {applied:?}"));
    assert!(linked(payout_span), "{payout_span:?}");
    assert_eq!(
        attr(&payout_span.attributes, "tally.job_kind").as_deref(),
        Some("apply_payout")
    );
    assert_eq!(
        attr(&payout_span.attributes, "tally.merchant").as_deref(),
        Some("acme")
    );
    let journal = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "tally.journal.write" && s.parent_span_id == payout_span.span_id)
        .expect("a journal span under the payout's");
    assert!(linked(journal));
    assert!(attr(&journal.attributes, "tally.entries").is_some_and(|n| n != "0"));

    // Each alert continues the trace of its exception's record: the
    // webhook's traceparent is the delivery span's, a child of that span.
    let all_stored: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .collect();
    let deliveries: Vec<_> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "tally.alert.deliver")
        .collect();
    assert!(!deliveries.is_empty());
    for (status, headers, _) in alerts.lock().unwrap().iter() {
        assert_eq!(*status, 200);
        let tp = headers
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("traceparent")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no traceparent in {headers}"));
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        let d = deliveries
            .iter()
            .find(|d| hex(&d.span_id) == parts[2])
            .unwrap_or_else(|| panic!("{tp} is no delivery span"));
        assert_eq!(hex(&d.trace_id), parts[1]);
        assert!(
            all_stored.contains(&(parts[1].to_string(), hex(&d.parent_span_id))),
            "the delivery's parent is a stored record span"
        );
    }

    // Every log line of the call names its trace.
    let logs = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let batch = logs
        .lines()
        .find(|l| l.contains("stored a batch"))
        .unwrap_or_else(|| panic!("no batch line in {logs}"));
    assert!(batch.contains(TRACE_ID), "{batch}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// No exporter: no ids stored, but the caller's trace id still names the
/// call's log lines, so logs and the caller's trace meet.
#[tokio::test]
async fn without_an_endpoint_logs_still_name_the_callers_trace() {
    let db = TestDb::new().await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("tally-untraced-{}.log", std::process::id()));
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("TALLY_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    submit_to(port, clean_order("U-1"), Some(&caller)).await;
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let batch = logs
        .lines()
        .find(|l| l.contains("stored a batch"))
        .unwrap_or_else(|| panic!("no batch line in {logs}"));
    assert!(batch.contains(TRACE_ID), "{batch}");
    let stored = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM record_log WHERE trace_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_or_stored() {
    let app = TestApp::start().await;
    app.submit(clean_order("Q-1")).await.unwrap();
    assert!(!tally::telemetry::enabled());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM record_log WHERE trace_id IS NOT NULL OR span_id IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM record_log").await, 3);
}
