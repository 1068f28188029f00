//! The OTLP trace exporter, configured only by the standard variables:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! turns it on; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
//! keeps it off. `OTEL_EXPORTER_OTLP_PROTOCOL` picks `grpc` (default) or
//! `http/protobuf`. The SDK itself reads `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`),
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, and the exporter the
//! endpoint, headers and timeout; we only decide whether to build one.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::filter::Targets;

use super::tls::TlsFiles;

/// What decides whether and how spans leave the process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub disabled: bool,
    pub endpoint: Option<String>,
    /// `grpc` (default), `http/protobuf` or `http/json`.
    pub protocol: Option<String>,
    /// Whether OTEL_SERVICE_NAME or a `service.name` resource attribute
    /// names the service; else it is `tally`.
    pub service_named: bool,
    /// CA and client certificate files for an `https://` gRPC endpoint.
    pub tls: TlsFiles,
}

impl Settings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Settings {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let either = |signal: &str, general: &str| get(signal).or_else(|| get(general));
        let off = |k: &str, word: &str| get(k).is_some_and(|v| v.eq_ignore_ascii_case(word));
        Settings {
            disabled: off("OTEL_SDK_DISABLED", "true") || off("OTEL_TRACES_EXPORTER", "none"),
            endpoint: either(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            protocol: either(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            service_named: get("OTEL_SERVICE_NAME").is_some()
                || get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
                    a.split(',')
                        .any(|kv| kv.trim().starts_with("service.name="))
                }),
            tls: TlsFiles::from_lookup("TRACES", &get),
        }
    }

    /// Whether an exporter is built; an error names what cannot be used.
    pub fn exports(&self) -> Result<bool, String> {
        if self.disabled || self.endpoint.is_none() {
            return Ok(false);
        }
        self.transport().map(|_| true)
    }

    /// The OTLP transport the protocol names: gRPC by default (over TLS for
    /// an `https://` endpoint), or HTTP/protobuf (plain HTTP through hyper).
    pub fn transport(&self) -> Result<Transport, String> {
        match self.protocol.as_deref() {
            None | Some("grpc") => Ok(Transport::Grpc),
            Some("http/protobuf") => Ok(Transport::HttpProtobuf),
            Some(p) => Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={p}: this build exports over grpc or http/protobuf"
            )),
        }
    }
}

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The provider and tracer, or None when nothing is exported. Batched:
/// spans queue in memory and leave in the background, so a slow collector
/// never slows a call (a full queue drops spans instead).
pub fn provider(settings: &Settings) -> Result<Option<(SdkTracerProvider, SdkTracer)>, String> {
    if !settings.exports()? {
        return Ok(None);
    }
    let builder = SdkTracerProvider::builder().with_resource(resource(settings.service_named));
    // The endpoint (and headers, timeout) come from the same variables; over
    // HTTP the exporter appends /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT.
    let built =
        |e: opentelemetry_otlp::ExporterBuildError| format!("building the OTLP exporter: {e}");
    let provider = match settings.transport()? {
        Transport::Grpc => {
            use opentelemetry_otlp::WithTonicConfig;
            let endpoint = settings.endpoint.as_deref().unwrap_or_default();
            let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(tls) = settings.tls.client_config(endpoint)? {
                exporter = exporter.with_tls_config(tls);
            }
            let exporter = exporter.build().map_err(built)?;
            builder.with_batch_exporter(exporter).build()
        }
        Transport::HttpProtobuf => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
                .map_err(built)?;
            // The hyper client needs the Tokio runtime, which the default
            // batch processor's own thread lacks: batch on Tokio instead.
            let batch = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
            builder.with_span_processor(batch).build()
        }
    };
    let tracer = provider.tracer("tally");
    Ok(Some((provider, tracer)))
}

/// The process as every signal names it: what the SDK reads from
/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (and its own
/// `telemetry.sdk.*`), `service.name=tally` unless those name it.
pub fn resource(service_named: bool) -> Resource {
    let mut resource = Resource::builder();
    if !service_named {
        resource = resource.with_service_name("tally");
    }
    resource.build()
}

/// Which spans become OpenTelemetry spans: Tally's own at info and above,
/// not the transport's internals.
pub fn span_filter() -> Targets {
    Targets::new().with_target("tally", tracing::Level::INFO)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Settings::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn no_endpoint_no_exporter() {
        assert_eq!(settings(&[]).exports(), Ok(false));
        assert_eq!(settings(&[("OTEL_SERVICE_NAME", "x")]).exports(), Ok(false));
    }

    #[test]
    fn an_endpoint_exports_unless_disabled() {
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")];
        assert_eq!(settings(&on).exports(), Ok(true));
        let traces_only = [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317")];
        assert_eq!(settings(&traces_only).exports(), Ok(true));
        for off in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(settings(&[on[0], off]).exports(), Ok(false), "{off:?}");
        }
        assert_eq!(
            settings(&[on[0], ("OTEL_SDK_DISABLED", "false")]).exports(),
            Ok(true)
        );
    }

    #[test]
    fn http_protobuf_is_chosen_by_protocol_and_json_refused_by_name() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        let s = settings(&[on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        assert_eq!(s.exports(), Ok(true));
        assert_eq!(s.transport(), Ok(Transport::HttpProtobuf));
        assert_eq!(settings(&[on]).transport(), Ok(Transport::Grpc));
        let s = settings(&[on, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")]);
        let e = s.exports().unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"), "{e}");
    }

    #[test]
    fn the_service_is_tally_unless_named() {
        assert!(!settings(&[]).service_named);
        assert!(settings(&[("OTEL_SERVICE_NAME", "t")]).service_named);
        assert!(settings(&[("OTEL_RESOURCE_ATTRIBUTES", "a=b, service.name=t")]).service_named);
        assert!(
            !settings(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=p")]).service_named
        );
    }
}
