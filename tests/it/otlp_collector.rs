//! An OTLP http/protobuf collector in process, for the exporter tests: it
//! keeps every POST (path, content type, the decoded export request) and
//! answers with an empty export response (every OTLP `Export*Response`
//! with no partial success encodes to no bytes).

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use prost::Message;

/// (path, content type, request) of each POST.
pub type Posts<T> = Arc<Mutex<Vec<(String, String, T)>>>;

/// Listens on a free loopback port; `T` is the export request expected
/// (`ExportTraceServiceRequest`, `ExportMetricsServiceRequest`).
pub async fn http_collector<T: Message + Default + Send + 'static>() -> (Posts<T>, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts<T> = Arc::default();
    let seen = posts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                let seen = seen.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let ctype = req
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body: hyper::body::Incoming = req.into_body();
                    let body = body.collect().await.unwrap().to_bytes();
                    seen.lock()
                        .unwrap()
                        .push((path, ctype, T::decode(body).unwrap()));
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                            .body(Full::new(bytes::Bytes::new()))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    (posts, port)
}
