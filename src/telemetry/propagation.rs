//! Each call's server span, continuing the caller's trace.
//!
//! [`RpcLayer`] wraps the gRPC server: it reads W3C `traceparent`,
//! `tracestate` and `baggage` from the request's metadata (HTTP/2 headers),
//! opens the server span as their child, records the gRPC status, and times
//! the call for `rpc.server.duration`. Span attributes follow the
//! OpenTelemetry semantic conventions for RPC, v1.27.0 (`rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, `server.address`,
//! `server.port`; the span is named `{rpc.service}/{rpc.method}`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics;

/// W3C trace context and baggage.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// Reads propagation fields from HTTP headers (gRPC metadata).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The caller's trace context, if its metadata carries one.
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    propagator().extract(&Headers(headers))
}

/// `/tally.v1.IngestService/SubmitRecords` -> (service, method).
fn split_path(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.rsplit_once('/').unwrap_or((path, ""))
}

/// gRPC status codes the RPC conventions count as server errors.
fn is_server_error(code: i64) -> bool {
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[derive(Debug, Clone, Copy)]
pub struct RpcLayer {
    server: SocketAddr,
}

impl RpcLayer {
    /// `server`: the address the listener is bound to.
    pub fn new(server: SocketAddr) -> RpcLayer {
        RpcLayer { server }
    }
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            server: self.server,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    server: SocketAddr,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for RpcService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let start = Instant::now();
        let (service, method) = split_path(req.uri().path());
        let (service, method) = (service.to_string(), method.to_string());
        let span = tracing::info_span!(
            target: "tally::rpc",
            "grpc",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            server.address = %self.server.ip(),
            server.port = self.server.port(),
            trace_id = tracing::field::Empty,
        );
        // So every log line of the call names its trace: ours when traces
        // are exported, else the caller's, when it sent one.
        if super::enabled() {
            let _ = span.set_parent(extract(req.headers()));
            if let Some((trace_id, _)) = super::ids(&span) {
                span.record("trace_id", trace_id.as_str());
            }
        } else if req.headers().contains_key("traceparent") {
            let cx = extract(req.headers());
            let sc = cx.span().span_context().clone();
            if sc.is_valid() {
                span.record("trace_id", sc.trace_id().to_string().as_str());
            }
        }
        let call = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let result = call.await;
            // A unary reply's status is in its trailers when OK (0) and in
            // its headers ("trailers-only") when not; a stream that fails
            // after its headers is counted OK here.
            let code = match &result {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0),
                Err(_) => 2,
            };
            span.record("rpc.grpc.status_code", code);
            if is_server_error(code) {
                span.record("otel.status_code", "error");
            }
            metrics::global().rpc_finished(&service, &method, code, start.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/tally.v1.IngestService/SubmitRecords"),
            ("tally.v1.IngestService", "SubmitRecords")
        );
        assert_eq!(split_path("/odd"), ("odd", ""));
    }

    #[test]
    fn a_callers_traceparent_and_baggage_are_read() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        h.insert("baggage", "tenant=acme".parse().unwrap());
        let cx = extract(&h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        use opentelemetry::baggage::BaggageExt;
        assert_eq!(
            cx.baggage().get("tenant").map(|v| v.to_string()),
            Some("acme".into())
        );
        // No metadata: no parent.
        let none = extract(&http::HeaderMap::new());
        assert!(!none.span().span_context().is_valid());
    }
}
