//! The OTLP metrics export: every `OTEL_METRIC_EXPORT_INTERVAL` (default
//! 60000 ms) the registry's [`Series`] are sent as they stand, cumulative
//! since the process started, and once more at shutdown. Configured only by
//! the standard variables: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (used as
//! is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (over HTTP, `/v1/metrics` appended)
//! turns it on; `OTEL_SDK_DISABLED=true` or `OTEL_METRICS_EXPORTER=none`
//! keeps it off; `OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL` picks `grpc`
//! (default) or `http/protobuf`, `..._HEADERS` adds headers and
//! `..._TIMEOUT` (default 10000 ms) bounds each push. The resource is the
//! trace exporter's (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, else
//! `service.name=tally`).
//!
//! Why not the OpenTelemetry metrics SDK: it has no observable histogram,
//! so the histograms would have to be recorded twice on every call. The
//! registry already holds exactly what OTLP carries; this turns a snapshot
//! into `ExportMetricsServiceRequest` and sends it. Unset, nothing starts.

mod settings;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1::Resource;

pub use self::settings::Settings;
use super::{Points, Series, global, read_gauges};
use crate::storage::Store;
use crate::telemetry::tracing::Transport;

/// Attribute keys whose values OpenTelemetry's conventions type as ints.
const INT_KEYS: [&str; 1] = ["rpc.grpc.status_code"];

fn attributes(keys: &[&str], values: &[String]) -> Vec<KeyValue> {
    keys.iter()
        .zip(values)
        .map(|(k, v)| {
            let value = match v.parse::<i64>() {
                Ok(i) if INT_KEYS.contains(k) => any_value::Value::IntValue(i),
                _ => any_value::Value::StringValue(v.clone()),
            };
            KeyValue {
                key: k.to_string(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            }
        })
        .collect()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One series as OTLP carries it: counters as cumulative monotonic sums,
/// histograms cumulative with their bounds, gauges as they were read.
fn metric(s: &Series, start: u64, now: u64) -> pm::Metric {
    use pm::metric::Data;
    let cumulative = pm::AggregationTemporality::Cumulative as i32;
    let number = |labels: &[String], v: i64, start: u64| pm::NumberDataPoint {
        attributes: attributes(s.keys, labels),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(pm::number_data_point::Value::AsInt(v)),
        ..Default::default()
    };
    let data = match &s.points {
        Points::Sum(points) => Data::Sum(pm::Sum {
            data_points: points
                .iter()
                .map(|(l, n)| number(l, i64::try_from(*n).unwrap_or(i64::MAX), start))
                .collect(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        Points::Gauge(points) => Data::Gauge(pm::Gauge {
            data_points: points.iter().map(|(l, n)| number(l, *n, 0)).collect(),
        }),
        Points::Histogram(bounds, points) => Data::Histogram(pm::Histogram {
            data_points: points
                .iter()
                .map(|(l, p)| pm::HistogramDataPoint {
                    attributes: attributes(s.keys, l),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    count: p.count,
                    sum: Some(p.sum),
                    bucket_counts: p.buckets.clone(),
                    explicit_bounds: bounds.to_vec(),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: cumulative,
        }),
    };
    pm::Metric {
        name: s.name.into(),
        description: s.description.into(),
        unit: s.unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

/// The request for one push.
pub fn request(
    resource: &Resource,
    schema_url: &str,
    series: &[Series],
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, now) = (nanos(start), nanos(now));
    ExportMetricsServiceRequest {
        resource_metrics: vec![pm::ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![pm::ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "tally".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: series.iter().map(|s| metric(s, start, now)).collect(),
                ..Default::default()
            }],
            schema_url: schema_url.into(),
        }],
    }
}

/// Where pushes go.
enum Sender {
    Grpc(MetricsServiceClient<tonic::transport::Channel>),
    /// Plain HTTP, one connection per push (https:// collectors are reached
    /// over gRPC, or through a local collector or sidecar).
    Http(http::Uri),
}

impl Sender {
    fn new(settings: &Settings, endpoint: &str, timeout: Duration) -> Result<Sender, String> {
        match settings.transport()? {
            Transport::Grpc => {
                // Lazy: a collector that is not up yet is retried at the
                // next push, not a reason to fail the start.
                let mut channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
                    .map_err(|e| format!("OTLP metrics endpoint {endpoint}: {e}"))?
                    .timeout(timeout);
                if let Some(tls) = settings.tls.client_config(endpoint)? {
                    channel = channel
                        .tls_config(tls)
                        .map_err(|e| format!("OTLP metrics endpoint {endpoint}: {e}"))?;
                }
                let channel = channel.connect_lazy();
                Ok(Sender::Grpc(MetricsServiceClient::new(channel)))
            }
            Transport::HttpProtobuf => {
                let uri: http::Uri = endpoint
                    .parse()
                    .map_err(|e| format!("OTLP metrics endpoint {endpoint}: {e}"))?;
                if uri.scheme_str() != Some("http") || uri.host().is_none() {
                    return Err(format!(
                        "OTLP metrics endpoint {endpoint}: this build sends plain http:// only"
                    ));
                }
                Ok(Sender::Http(uri))
            }
        }
    }

    async fn send(
        &mut self,
        req: ExportMetricsServiceRequest,
        headers: &[(String, String)],
    ) -> Result<(), String> {
        match self {
            Sender::Grpc(client) => {
                let mut req = tonic::Request::new(req);
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        k.parse::<tonic::metadata::MetadataKey<_>>(),
                        v.parse::<tonic::metadata::MetadataValue<_>>(),
                    ) {
                        req.metadata_mut().insert(k, v);
                    }
                }
                let reply = client.export(req).await.map_err(|s| s.to_string())?;
                match reply.into_inner().partial_success {
                    Some(p) if p.rejected_data_points > 0 => Err(format!(
                        "{} points rejected: {}",
                        p.rejected_data_points, p.error_message
                    )),
                    _ => Ok(()),
                }
            }
            Sender::Http(uri) => post(uri, prost::Message::encode_to_vec(&req), headers).await,
        }
    }
}

/// POSTs one protobuf body over HTTP/1.1.
async fn post(uri: &http::Uri, body: Vec<u8>, headers: &[(String, String)]) -> Result<(), String> {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::post(path)
        .header(
            http::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(http::header::CONTENT_TYPE, "application/x-protobuf");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let reply = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if reply.status().is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {}", reply.status()))
    }
}

/// The running export; [`Export::shutdown`] pushes once more and stops it.
pub struct Export {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// How long the last push may take.
    last_push: Duration,
}

impl Export {
    /// Sends the last values (bounded by the push timeout) and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(self.last_push, self.task)
            .await
            .is_err()
        {
            tracing::warn!("the last metrics push did not finish in time");
        }
    }
}

/// Starts the periodic push when the settings ask for one: None (and
/// nothing running) otherwise. Problems are logged, never fatal: a process
/// serves its calls whether or not its metrics leave.
pub fn start(get: &impl Fn(&str) -> Option<String>, store: Option<Store>) -> Option<Export> {
    let settings = Settings::from_lookup(get);
    if settings.disabled {
        return None;
    }
    let endpoint = settings.endpoint.clone()?;
    let built = (|| {
        let (interval, timeout) = (settings.interval()?, settings.timeout()?);
        let headers = settings.headers()?;
        let sender = Sender::new(&settings, &endpoint, timeout)?;
        Ok::<_, String>((interval, timeout, headers, sender))
    })();
    let (interval, timeout, headers, sender) = match built {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "metrics are not exported over OTLP");
            return None;
        }
    };
    tracing::info!(%endpoint, ?interval,
        protocol = settings.transport().map(|t| t.as_str()).unwrap_or("?"),
        "exporting metrics over OTLP");
    let mut pusher = Pusher::new(settings.service_named, sender, headers, timeout, store);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Stopping wins over a tick due at the same moment.
            let last = tokio::select! {
                biased;
                _ = stopped.wait_for(|s| *s) => true,
                _ = tick.tick() => false,
            };
            pusher.push().await;
            if last {
                return;
            }
        }
    });
    Some(Export {
        stop,
        task,
        // Reading the gauges (at most 2 s), then the push itself.
        last_push: Duration::from_secs(3) + timeout,
    })
}

/// What each push needs.
struct Pusher {
    resource: Resource,
    schema_url: String,
    sender: Sender,
    headers: Vec<(String, String)>,
    timeout: Duration,
    store: Option<Store>,
}

impl Pusher {
    fn new(
        service_named: bool,
        sender: Sender,
        headers: Vec<(String, String)>,
        timeout: Duration,
        store: Option<Store>,
    ) -> Pusher {
        use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
        // The trace exporter's resource, built the same way.
        let sdk = crate::telemetry::tracing::resource(service_named);
        Pusher {
            resource: Resource {
                attributes: ResourceAttributesWithSchema::from(&sdk).attributes.0,
                ..Default::default()
            },
            schema_url: sdk.schema_url().unwrap_or_default().to_string(),
            sender,
            headers,
            timeout,
            store,
        }
    }

    /// Sends the values as they stand; a failure is logged, and the next
    /// push carries them again (they are cumulative).
    async fn push(&mut self) {
        let pool = self.store.as_ref().map(Store::pool_status);
        let gauges = match &self.store {
            Some(s) => read_gauges(s).await,
            None => None,
        };
        let m = global();
        let series = m.snapshot(pool, gauges.as_ref());
        let req = request(
            &self.resource,
            &self.schema_url,
            &series,
            m.started(),
            SystemTime::now(),
        );
        let sent = self.sender.send(req, &self.headers);
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "pushing metrics over OTLP"),
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "pushing metrics over OTLP timed out")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{Gauges, MS_BOUNDS, Metrics};
    use super::*;
    use crate::storage::gauges::Count;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Settings::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn an_https_endpoint_is_refused_over_http_protobuf() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        let e = Sender::new(&s, s.endpoint.as_deref().unwrap(), Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(e.contains("plain http://"), "{e}");
    }

    fn find<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a pm::Metric {
        req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn attr(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
        attrs.iter().find(|kv| kv.key == key)?.value.clone()?.value
    }

    #[test]
    fn a_snapshot_becomes_cumulative_sums_histograms_with_bounds_and_gauges() {
        let m = Metrics::new();
        m.record_ingested("invoice", "accepted");
        m.record_ingested("invoice", "accepted");
        m.rpc_finished("s", "M", 3, Duration::from_millis(7));
        m.rpc_finished("s", "M", 3, Duration::from_millis(20_000));
        let gauges = Gauges {
            open_exceptions: vec![Count {
                a: "late_handoff".into(),
                b: "ops".into(),
                n: 2,
            }],
            backlog: vec![],
        };
        let start = m.started();
        let now = start + Duration::from_secs(5);
        let resource = Resource::default();
        let req = request(&resource, "", &m.snapshot(None, Some(&gauges)), start, now);
        assert_eq!(
            req.resource_metrics[0].scope_metrics[0]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "tally"
        );

        let records = find(&req, "tally.records.ingested");
        assert_eq!(records.unit, "{record}");
        let Some(pm::metric::Data::Sum(sum)) = &records.data else {
            panic!("{records:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            pm::AggregationTemporality::Cumulative as i32
        );
        let p = &sum.data_points[0];
        assert_eq!(p.value, Some(pm::number_data_point::Value::AsInt(2)));
        assert_eq!(p.start_time_unix_nano, nanos(start));
        assert_eq!(p.time_unix_nano, nanos(now));
        assert_eq!(
            attr(&p.attributes, "tally.record_kind"),
            Some(any_value::Value::StringValue("invoice".into()))
        );

        let rpc = find(&req, "rpc.server.duration");
        assert_eq!(rpc.unit, "ms");
        let Some(pm::metric::Data::Histogram(h)) = &rpc.data else {
            panic!("{rpc:?}")
        };
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, MS_BOUNDS);
        // 7 ms in (5, 10]; 20 s above the last bound.
        let mut want = vec![0; MS_BOUNDS.len() + 1];
        want[2] = 1;
        want[MS_BOUNDS.len()] = 1;
        assert_eq!(p.bucket_counts, want);
        assert_eq!((p.count, p.sum), (2, Some(20_007.0)));
        assert_eq!(
            attr(&p.attributes, "rpc.grpc.status_code"),
            Some(any_value::Value::IntValue(3))
        );

        let open = find(&req, "tally.exceptions.open");
        let Some(pm::metric::Data::Gauge(g)) = &open.data else {
            panic!("{open:?}")
        };
        assert_eq!(
            g.data_points[0].value,
            Some(pm::number_data_point::Value::AsInt(2))
        );
        assert_eq!(
            attr(&g.data_points[0].attributes, "tally.owner"),
            Some(any_value::Value::StringValue("ops".into()))
        );
        let backlog = find(&req, "tally.worker.backlog");
        let Some(pm::metric::Data::Gauge(g)) = &backlog.data else {
            panic!("{backlog:?}")
        };
        assert_eq!(g.data_points.len(), 3, "known job kinds at 0");
    }
}
