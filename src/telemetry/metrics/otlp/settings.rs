//! What turns the OTLP metrics push on, and how: the standard variables.

use std::time::Duration;

use crate::telemetry::tls::TlsFiles;
use crate::telemetry::tracing::Transport;

/// What decides whether and how metrics leave the process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub disabled: bool,
    /// The URL pushes go to (over HTTP, `/v1/metrics` already appended to
    /// a general endpoint).
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub headers: Option<String>,
    pub service_named: bool,
    /// CA and client certificate files for an `https://` gRPC endpoint.
    pub tls: TlsFiles,
}

impl Settings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Settings {
        let val = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let either = |signal: &str, general: &str| val(signal).or_else(|| val(general));
        let off = |k: &str, word: &str| val(k).is_some_and(|v| v.eq_ignore_ascii_case(word));
        let protocol = either(
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        );
        let http = protocol.as_deref() == Some("http/protobuf");
        // The signal's own endpoint is used as is; the general one is a
        // base URL over HTTP, and the whole address over gRPC.
        let endpoint = val("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").or_else(|| {
            val("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| match http {
                true => format!("{}/v1/metrics", e.trim_end_matches('/')),
                false => e,
            })
        });
        Settings {
            disabled: off("OTEL_SDK_DISABLED", "true") || off("OTEL_METRICS_EXPORTER", "none"),
            endpoint,
            protocol,
            interval: val("OTEL_METRIC_EXPORT_INTERVAL"),
            timeout: either(
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
            headers: either(
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            service_named: crate::telemetry::tracing::Settings::from_lookup(get).service_named,
            tls: TlsFiles::from_lookup("METRICS", get),
        }
    }

    /// How often to push; an error names the variable.
    pub fn interval(&self) -> Result<Duration, String> {
        millis(
            "OTEL_METRIC_EXPORT_INTERVAL",
            self.interval.as_deref(),
            60_000,
        )
    }

    /// How long one push may take.
    pub fn timeout(&self) -> Result<Duration, String> {
        millis(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            self.timeout.as_deref(),
            10_000,
        )
    }

    /// `k=v,k2=v2`, values percent-decoded as the specification says.
    pub fn headers(&self) -> Result<Vec<(String, String)>, String> {
        let Some(h) = &self.headers else {
            return Ok(vec![]);
        };
        h.split(',')
            .filter(|kv| !kv.trim().is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    format!("OTEL_EXPORTER_OTLP_HEADERS: {kv:?} is not key=value")
                })?;
                Ok((k.trim().to_ascii_lowercase(), percent_decode(v.trim())))
            })
            .collect()
    }

    pub fn transport(&self) -> Result<Transport, String> {
        crate::telemetry::tracing::Settings {
            protocol: self.protocol.clone(),
            ..Default::default()
        }
        .transport()
    }
}

fn millis(var: &str, v: Option<&str>, default: u64) -> Result<Duration, String> {
    match v {
        None => Ok(Duration::from_millis(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(format!("{var}={v}: expected milliseconds above 0")),
        },
    }
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Settings::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()))
    }

    const ON: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/");

    #[test]
    fn the_endpoint_turns_it_on_unless_metrics_or_the_sdk_are_off() {
        assert_eq!(settings(&[]).endpoint, None);
        let s = settings(&[ON]);
        assert_eq!(s.endpoint.as_deref(), Some("http://c:4317/"));
        assert!(!s.disabled);
        for off in [
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            assert!(settings(&[ON, off]).disabled, "{off:?}");
        }
        // Traces off says nothing about metrics.
        assert!(!settings(&[ON, ("OTEL_TRACES_EXPORTER", "none")]).disabled);
    }

    #[test]
    fn over_http_the_general_endpoint_is_a_base_and_the_signals_is_whole() {
        let http = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        let s = settings(&[ON, http]);
        assert_eq!(s.endpoint.as_deref(), Some("http://c:4317/v1/metrics"));
        assert_eq!(s.transport(), Ok(Transport::HttpProtobuf));
        let own = ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/x");
        assert_eq!(
            settings(&[ON, http, own]).endpoint.as_deref(),
            Some("http://m:9/x")
        );
        let grpc_own = settings(&[own]);
        assert_eq!(grpc_own.endpoint.as_deref(), Some("http://m:9/x"));
        assert_eq!(grpc_own.transport(), Ok(Transport::Grpc));
        let json = settings(&[ON, ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")]);
        assert!(json.transport().is_err());
    }

    #[test]
    fn interval_timeout_and_headers_are_read_or_refused_by_name() {
        assert_eq!(settings(&[]).interval(), Ok(Duration::from_secs(60)));
        assert_eq!(settings(&[]).timeout(), Ok(Duration::from_secs(10)));
        let s = settings(&[("OTEL_METRIC_EXPORT_INTERVAL", "250")]);
        assert_eq!(s.interval(), Ok(Duration::from_millis(250)));
        for bad in ["0", "1s", "-5"] {
            let e = settings(&[("OTEL_METRIC_EXPORT_INTERVAL", bad)])
                .interval()
                .unwrap_err();
            assert!(e.contains("OTEL_METRIC_EXPORT_INTERVAL"), "{e}");
        }
        let s = settings(&[("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "500")]);
        assert_eq!(s.timeout(), Ok(Duration::from_millis(500)));
        let s = settings(&[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Api-Key=a%20b%3D, x-tenant=t1",
        )]);
        assert_eq!(
            s.headers(),
            Ok(vec![
                ("api-key".into(), "a b=".into()),
                ("x-tenant".into(), "t1".into())
            ])
        );
        assert!(
            settings(&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")])
                .headers()
                .is_err()
        );
    }
}
